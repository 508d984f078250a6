//! Configuration: where it is looked up, the raw TOML/environment shape, and
//! the validated [`Config`] every other module reads.
//!
//! Loading goes in two steps, as ripgrep does with its flags: the `config`
//! crate merges the TOML file and `STOCKDROP__SECTION__KEY` environment
//! overrides into a [`RawConfig`] (plain serde types with built-in defaults),
//! then [`Config::from_raw`] checks every value and turns it into typed paths,
//! durations and enums. Every error names the key it is about.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::model::Field;
use crate::validate::header::normalise_header;

/// The most items one refresh job may carry (the OMS API's limit).
pub const MAX_ITEMS_PER_JOB: usize = 1000;

/// A configuration problem, always naming the key (or file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown config key `{0}` (see config/stockdrop.toml for the keys stockdrop knows)")]
    UnknownKey(String),
    #[error(
        "unknown config key `{key}`, from the environment variable {variable} \
         (see config/stockdrop.toml for the keys stockdrop knows)"
    )]
    UnknownEnvKey { key: String, variable: String },
    #[error("config key `{key}`: {message}")]
    BadValue { key: String, message: String },
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::BadValue {
        key: key.to_string(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------
// Raw shape: exactly what the TOML file may contain.

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub paths: RawPaths,
    pub watch: RawWatch,
    pub import: RawImport,
    pub csv: RawCsv,
    pub sheet: RawSheet,
    pub columns: BTreeMap<String, String>,
    pub report: RawReport,
    pub log: RawLog,
    pub retention: RawRetention,
    pub metrics: RawMetrics,
    pub notify: RawNotify,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPaths {
    pub inbox: String,
    pub work: String,
    pub archive: String,
    pub failed: String,
    pub outbox: String,
    pub database: String,
}

impl Default for RawPaths {
    fn default() -> Self {
        RawPaths {
            inbox: "var/inbox".into(),
            work: "var/work".into(),
            archive: "var/archive".into(),
            failed: "var/failed".into(),
            outbox: "var/outbox".into(),
            database: "var/stockdrop.db".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWatch {
    pub poll: bool,
    pub rescan_interval_s: u64,
    pub settle_ms: u64,
    pub ignore: Vec<String>,
    pub done_marker: String,
}

impl Default for RawWatch {
    fn default() -> Self {
        RawWatch {
            poll: false,
            rescan_interval_s: 30,
            settle_ms: 2000,
            ignore: Vec::new(),
            done_marker: String::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawImport {
    pub on_error: String,
    pub duplicates: String,
    pub upc_check: String,
    pub refresh_mode: String,
    pub job_type: String,
    pub adjust_below_zero: String,
    pub full_max_zero_pct: f64,
    pub items_per_job: u64,
    pub manufacturer_id: Option<i64>,
    pub default_location: String,
    pub location_from_filename: String,
    pub location_from_sheet: bool,
    pub locations: Vec<String>,
    pub skip_duplicate_files: bool,
    pub max_attempts: u32,
    pub max_file_bytes: u64,
    pub max_rows: u64,
    pub max_unzipped_bytes: u64,
}

impl Default for RawImport {
    fn default() -> Self {
        RawImport {
            on_error: "reject-rows".into(),
            duplicates: "reject".into(),
            upc_check: "warn".into(),
            refresh_mode: "delta".into(),
            job_type: "refresh".into(),
            adjust_below_zero: "reject".into(),
            full_max_zero_pct: 50.0,
            items_per_job: MAX_ITEMS_PER_JOB as u64,
            manufacturer_id: None,
            default_location: String::new(),
            location_from_filename: String::new(),
            location_from_sheet: false,
            locations: Vec::new(),
            skip_duplicate_files: true,
            max_attempts: 5,
            max_file_bytes: 256 * 1024 * 1024,
            max_rows: 5_000_000,
            max_unzipped_bytes: 1024 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCsv {
    /// Empty: detect among `,` `;` tab `|`.
    pub delimiter: String,
    /// The decimal separator the sender writes in text files: `","` or
    /// `"."`; empty: both in `;`/tab files (and `1,000` refused), `.` else.
    pub decimal: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSheet {
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawReport {
    pub max_errors: u64,
}

impl Default for RawReport {
    fn default() -> Self {
        RawReport { max_errors: 10_000 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRetention {
    pub archive_days: u64,
    pub outbox_days: u64,
    /// 0: keep history forever.
    pub history_days: u64,
}

impl Default for RawRetention {
    fn default() -> Self {
        RawRetention {
            archive_days: 90,
            outbox_days: 90,
            history_days: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMetrics {
    /// Empty: no metrics file.
    pub textfile: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawNotify {
    /// Empty: no command.
    pub command: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    pub format: String,
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

// ---------------------------------------------------------------------------
// Validated shape.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    RejectRows,
    RejectLocation,
    RejectFile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Duplicates {
    Reject,
    LastWins,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpcCheck {
    Warn,
    Error,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefreshMode {
    Delta,
    Full,
}

/// What a file's jobs do (SPEC §1.1): set counts, or add to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobType {
    Refresh,
    Adjust,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Refresh => "refresh",
            JobType::Adjust => "adjust",
        }
    }
}

/// `import.adjust_below_zero`: what an adjustment below 0 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BelowZero {
    Reject,
    Clamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What a configured column alias maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnTarget {
    Field(Field),
    Ignore,
}

#[derive(Debug, Clone)]
pub struct Paths {
    pub inbox: PathBuf,
    pub work: PathBuf,
    pub archive: PathBuf,
    pub failed: PathBuf,
    pub outbox: PathBuf,
    pub database: PathBuf,
}

/// The rules that decide how rows become jobs. Kept apart from the rest of
/// the config because validation and planning need nothing else.
#[derive(Debug, Clone)]
pub struct ImportRules {
    pub on_error: OnError,
    pub duplicates: Duplicates,
    pub upc_check: UpcCheck,
    pub refresh_mode: RefreshMode,
    /// The configured kind; a file's own kind is `job_type::of_file`.
    pub job_type: JobType,
    pub adjust_below_zero: BelowZero,
    pub full_max_zero_pct: f64,
    pub items_per_job: usize,
    pub manufacturer_id: Option<u32>,
    pub default_location: Option<String>,
    pub location_from_filename: Option<Regex>,
    pub location_from_sheet: bool,
    pub locations: Option<Vec<String>>,
    pub skip_duplicate_files: bool,
    pub max_attempts: u32,
    pub max_file_bytes: u64,
    pub max_rows: u64,
    pub max_unzipped_bytes: u64,
    pub csv_delimiter: Option<u8>,
    /// `csv.decimal`: `Some(',')` or `Some('.')`; `None` when not set.
    pub csv_decimal: Option<char>,
    pub sheet_names: Vec<String>,
    /// Normalised header name → what it maps to.
    pub columns: BTreeMap<String, ColumnTarget>,
    pub max_errors: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this config was read from; `None` for built-in defaults.
    pub source: Option<PathBuf>,
    pub paths: Paths,
    pub poll: bool,
    pub rescan_interval: Duration,
    pub settle: Duration,
    pub ignore: Vec<String>,
    pub done_marker: Option<String>,
    pub rules: ImportRules,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Originals in archive/ and failed/ older than this are pruned.
    pub archive_days: u64,
    /// Reports in the outbox older than this are pruned.
    pub outbox_days: u64,
    /// History older than this is pruned; `None`: kept forever.
    pub history_days: Option<u64>,
    /// node_exporter textfile-collector file, written after each file.
    pub metrics_textfile: Option<PathBuf>,
    /// Run after each file with the outcome in its environment.
    pub notify_command: Option<String>,
    /// The merged raw values, printed by `check-config`.
    pub raw: RawConfig,
}

/// The places a config file is looked for, in order (§6): `--config`, then
/// `$STOCKDROP_CONFIG`, then `./stockdrop.toml`, then
/// `/etc/stockdrop/stockdrop.toml`; `None` means built-in defaults.
pub fn locate(explicit: Option<&Path>, env_value: Option<&str>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(value) = env_value.filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(value));
    }
    ["stockdrop.toml", "/etc/stockdrop/stockdrop.toml"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

impl Config {
    /// Loads the config from `file` (or built-in defaults) with the
    /// environment overrides in `env` (normally the process environment).
    pub fn load(
        file: Option<&Path>,
        env: Option<config::Map<String, String>>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    message: "no such file".into(),
                });
            }
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        // Kept to say which variable a misspelt key came from.
        let variables: Vec<String> = match &env {
            Some(map) => map.keys().cloned().collect(),
            None => std::env::vars_os()
                .filter_map(|(k, _)| k.into_string().ok())
                .collect(),
        };
        let environment = config::Environment::with_prefix("STOCKDROP")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("watch.ignore")
            .with_list_parse_key("import.locations")
            .with_list_parse_key("sheet.names")
            .source(env);
        builder = builder.add_source(environment);
        let merged = builder.build().map_err(|e| match file {
            Some(path) => ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            },
            None => bad("environment", e.to_string()),
        })?;
        check_known_keys(&merged).map_err(|e| from_environment(e, &variables))?;
        let raw: RawConfig = merged
            .try_deserialize()
            .map_err(|e| from_environment(describe_deserialize_error(e), &variables))?;
        let base = match file {
            Some(path) => path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            None => PathBuf::from("."),
        };
        Config::from_raw(raw, file.map(Path::to_path_buf), &base)
            .map_err(|e| from_environment(e, &variables))
    }

    /// Built-in defaults with no environment: what tests and `validate`
    /// without a config start from.
    pub fn defaults() -> Config {
        // The defaults are valid by construction; a failure here is a bug in
        // this file, which the unit tests below catch.
        Config::from_raw(RawConfig::default(), None, Path::new("."))
            .expect("built-in defaults are valid")
    }

    pub fn from_raw(
        raw: RawConfig,
        source: Option<PathBuf>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let resolve = |key: &str, value: &str| -> Result<PathBuf, ConfigError> {
            if value.trim().is_empty() {
                return Err(bad(key, "must not be empty"));
            }
            let path = PathBuf::from(value);
            Ok(if path.is_absolute() {
                path
            } else {
                base.join(path)
            })
        };
        let paths = Paths {
            inbox: resolve("paths.inbox", &raw.paths.inbox)?,
            work: resolve("paths.work", &raw.paths.work)?,
            archive: resolve("paths.archive", &raw.paths.archive)?,
            failed: resolve("paths.failed", &raw.paths.failed)?,
            outbox: resolve("paths.outbox", &raw.paths.outbox)?,
            database: resolve("paths.database", &raw.paths.database)?,
        };

        let i = &raw.import;
        let on_error = match i.on_error.as_str() {
            "reject-rows" => OnError::RejectRows,
            "reject-location" => OnError::RejectLocation,
            "reject-file" => OnError::RejectFile,
            other => {
                return Err(bad(
                    "import.on_error",
                    format!("expected reject-rows, reject-location or reject-file; got {other:?}"),
                ))
            }
        };
        let duplicates = match i.duplicates.as_str() {
            "reject" => Duplicates::Reject,
            "last-wins" => Duplicates::LastWins,
            other => {
                return Err(bad(
                    "import.duplicates",
                    format!("expected reject or last-wins; got {other:?}"),
                ))
            }
        };
        let upc_check = match i.upc_check.as_str() {
            "warn" => UpcCheck::Warn,
            "error" => UpcCheck::Error,
            "off" => UpcCheck::Off,
            other => {
                return Err(bad(
                    "import.upc_check",
                    format!("expected warn, error or off; got {other:?}"),
                ))
            }
        };
        let refresh_mode = match i.refresh_mode.as_str() {
            "delta" => RefreshMode::Delta,
            "full" => RefreshMode::Full,
            other => {
                return Err(bad(
                    "import.refresh_mode",
                    format!("expected delta or full; got {other:?}"),
                ))
            }
        };
        let job_type = match i.job_type.as_str() {
            "refresh" => JobType::Refresh,
            "adjust" => JobType::Adjust,
            other => {
                return Err(bad(
                    "import.job_type",
                    format!("expected refresh or adjust; got {other:?}"),
                ))
            }
        };
        let adjust_below_zero = match i.adjust_below_zero.as_str() {
            "reject" => BelowZero::Reject,
            "clamp" => BelowZero::Clamp,
            other => {
                return Err(bad(
                    "import.adjust_below_zero",
                    format!("expected reject or clamp; got {other:?}"),
                ))
            }
        };
        if !(0.0..=100.0).contains(&i.full_max_zero_pct) {
            return Err(bad(
                "import.full_max_zero_pct",
                format!(
                    "must be a percentage from 0 to 100; got {}",
                    i.full_max_zero_pct
                ),
            ));
        }
        if i.items_per_job == 0 || i.items_per_job > MAX_ITEMS_PER_JOB as u64 {
            return Err(bad(
                "import.items_per_job",
                format!(
                    "must be from 1 to {MAX_ITEMS_PER_JOB}; got {}",
                    i.items_per_job
                ),
            ));
        }
        let manufacturer_id = match i.manufacturer_id {
            None => None,
            Some(v) if (0..=i64::from(i32::MAX)).contains(&v) => Some(v as u32),
            Some(v) => {
                return Err(bad(
                    "import.manufacturer_id",
                    format!("must be from 0 to 2147483647; got {v}"),
                ))
            }
        };
        let default_location =
            Some(i.default_location.trim().to_string()).filter(|s| !s.is_empty());
        let location_from_filename = if i.location_from_filename.is_empty() {
            None
        } else {
            let re = Regex::new(&i.location_from_filename)
                .map_err(|e| bad("import.location_from_filename", e.to_string()))?;
            if !re.capture_names().any(|n| n == Some("location")) {
                return Err(bad(
                    "import.location_from_filename",
                    "the regex needs a named group `location`, e.g. \"^store(?P<location>\\d+)\"",
                ));
            }
            Some(re)
        };
        let locations = if i.locations.is_empty() {
            None
        } else {
            let list: Vec<String> = i.locations.iter().map(|l| l.trim().to_string()).collect();
            if list.iter().any(String::is_empty) {
                return Err(bad("import.locations", "location names must not be empty"));
            }
            Some(list)
        };
        if i.max_attempts == 0 {
            return Err(bad("import.max_attempts", "must be at least 1"));
        }
        for (key, value) in [
            ("import.max_file_bytes", i.max_file_bytes),
            ("import.max_rows", i.max_rows),
            ("import.max_unzipped_bytes", i.max_unzipped_bytes),
        ] {
            if value == 0 {
                return Err(bad(key, "must be at least 1"));
            }
        }
        let csv_delimiter = match raw.csv.delimiter.as_str() {
            "" => None,
            "," => Some(b','),
            ";" => Some(b';'),
            "\t" | "tab" => Some(b'\t'),
            "|" => Some(b'|'),
            other => {
                return Err(bad(
                    "csv.delimiter",
                    format!("expected \",\", \";\", \"\\t\" (or \"tab\") or \"|\"; got {other:?}"),
                ))
            }
        };
        let csv_decimal = match raw.csv.decimal.as_str() {
            "" => None,
            "," => Some(','),
            "." => Some('.'),
            other => {
                return Err(bad(
                    "csv.decimal",
                    format!("expected \",\" or \".\" (or \"\" to accept both); got {other:?}"),
                ))
            }
        };
        let mut columns = BTreeMap::new();
        for (header, target) in &raw.columns {
            let key = format!("columns.{header}");
            let normalised = normalise_header(header);
            if normalised.is_empty() {
                return Err(bad(&key, "the header name must contain a letter or digit"));
            }
            let target = if target.eq_ignore_ascii_case("ignore") {
                ColumnTarget::Ignore
            } else {
                match Field::from_alias(&normalise_header(target)) {
                    Some(field) => ColumnTarget::Field(field),
                    None => {
                        return Err(bad(
                            &key,
                            format!(
                                "expected a field name ({}) or \"ignore\"; got {target:?}",
                                Field::ALL
                                    .iter()
                                    .map(|f| f.api_name())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ))
                    }
                }
            };
            columns.insert(normalised, target);
        }
        if raw.report.max_errors == 0 {
            return Err(bad("report.max_errors", "must be at least 1"));
        }
        let log_format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(bad(
                    "log.format",
                    format!("expected text or json; got {other:?}"),
                ))
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
            return Err(bad(
                "log.level",
                format!(
                    "expected error, warn, info, debug or trace; got {:?}",
                    raw.log.level
                ),
            ));
        }
        for pattern in &raw.watch.ignore {
            if pattern.is_empty() {
                return Err(bad("watch.ignore", "patterns must not be empty"));
            }
        }
        for (key, days) in [
            ("retention.archive_days", raw.retention.archive_days),
            ("retention.outbox_days", raw.retention.outbox_days),
        ] {
            if days == 0 {
                return Err(bad(key, "must be at least 1 (days)"));
            }
        }
        if raw.watch.rescan_interval_s == 0 {
            return Err(bad("watch.rescan_interval_s", "must be at least 1"));
        }
        let rules = ImportRules {
            on_error,
            duplicates,
            upc_check,
            refresh_mode,
            job_type,
            adjust_below_zero,
            full_max_zero_pct: i.full_max_zero_pct,
            items_per_job: i.items_per_job as usize,
            manufacturer_id,
            default_location,
            location_from_filename,
            location_from_sheet: i.location_from_sheet,
            locations,
            skip_duplicate_files: i.skip_duplicate_files,
            max_attempts: i.max_attempts,
            max_file_bytes: i.max_file_bytes,
            max_rows: i.max_rows,
            max_unzipped_bytes: i.max_unzipped_bytes,
            csv_delimiter,
            csv_decimal,
            sheet_names: raw.sheet.names.clone(),
            columns,
            max_errors: usize::try_from(raw.report.max_errors).unwrap_or(usize::MAX),
        };
        Ok(Config {
            source,
            paths,
            poll: raw.watch.poll,
            rescan_interval: Duration::from_secs(raw.watch.rescan_interval_s),
            settle: Duration::from_millis(raw.watch.settle_ms),
            ignore: raw.watch.ignore.clone(),
            done_marker: Some(raw.watch.done_marker.clone()).filter(|s| !s.is_empty()),
            rules,
            log_format,
            log_level: raw.log.level.clone(),
            archive_days: raw.retention.archive_days,
            outbox_days: raw.retention.outbox_days,
            history_days: Some(raw.retention.history_days).filter(|&d| d > 0),
            metrics_textfile: Some(raw.metrics.textfile.trim())
                .filter(|t| !t.is_empty())
                .map(|t| resolve("metrics.textfile", t))
                .transpose()?,
            notify_command: Some(raw.notify.command.trim().to_string()).filter(|c| !c.is_empty()),
            raw,
        })
    }

    /// The effective configuration as TOML, paths resolved.
    pub fn to_toml(&self) -> String {
        let mut raw = self.raw.clone();
        let show = |p: &Path| p.display().to_string();
        raw.paths = RawPaths {
            inbox: show(&self.paths.inbox),
            work: show(&self.paths.work),
            archive: show(&self.paths.archive),
            failed: show(&self.paths.failed),
            outbox: show(&self.paths.outbox),
            database: show(&self.paths.database),
        };
        toml::to_string_pretty(&raw).unwrap_or_else(|e| format!("# cannot show config: {e}\n"))
    }
}

/// The keys each section accepts; `columns` takes any key.
const KNOWN_KEYS: &[(&str, &[&str])] = &[
    (
        "paths",
        &["inbox", "work", "archive", "failed", "outbox", "database"],
    ),
    (
        "watch",
        &[
            "poll",
            "rescan_interval_s",
            "settle_ms",
            "ignore",
            "done_marker",
        ],
    ),
    (
        "import",
        &[
            "on_error",
            "duplicates",
            "upc_check",
            "refresh_mode",
            "job_type",
            "adjust_below_zero",
            "full_max_zero_pct",
            "items_per_job",
            "manufacturer_id",
            "default_location",
            "location_from_filename",
            "location_from_sheet",
            "locations",
            "skip_duplicate_files",
            "max_attempts",
            "max_file_bytes",
            "max_rows",
            "max_unzipped_bytes",
        ],
    ),
    ("csv", &["delimiter", "decimal"]),
    ("sheet", &["names"]),
    ("report", &["max_errors"]),
    ("log", &["format", "level"]),
    (
        "retention",
        &["archive_days", "outbox_days", "history_days"],
    ),
    ("metrics", &["textfile"]),
    ("notify", &["command"]),
];

/// Walks the merged tree so that a misspelt key is reported by its full
/// dotted name (`import.on_eror`), which serde's own message does not give.
fn check_known_keys(merged: &config::Config) -> Result<(), ConfigError> {
    let top: BTreeMap<String, config::Value> = merged
        .clone()
        .try_deserialize()
        .map_err(|e| bad("(top level)", e.to_string()))?;
    for (section, value) in top {
        if section == "columns" {
            continue;
        }
        let Some((_, keys)) = KNOWN_KEYS.iter().find(|(name, _)| *name == section) else {
            return Err(ConfigError::UnknownKey(section));
        };
        let table = value
            .into_table()
            .map_err(|_| bad(&section, "must be a table ([section])"))?;
        for key in table.keys() {
            if !keys.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey(format!("{section}.{key}")));
            }
        }
    }
    Ok(())
}

/// A key that an environment variable supplied — unknown, or with a bad
/// value — names that variable (`STOCKDROP__IMPORT__ON_EROR`): the config
/// file may not have it at all.
fn from_environment(error: ConfigError, variables: &[String]) -> ConfigError {
    let key = match &error {
        ConfigError::UnknownKey(key) | ConfigError::BadValue { key, .. } => key.clone(),
        _ => return error,
    };
    let named = |variable: &&String| {
        variable
            .strip_prefix("STOCKDROP__")
            .map(|rest| rest.to_lowercase().replace("__", "."))
            .is_some_and(|dotted| dotted == key || dotted.starts_with(&format!("{key}.")))
    };
    let Some(variable) = variables.iter().find(named).cloned() else {
        return error;
    };
    match error {
        ConfigError::UnknownKey(key) => ConfigError::UnknownEnvKey { key, variable },
        ConfigError::BadValue { key, message } => ConfigError::BadValue {
            key,
            message: format!("{message} (from the environment variable {variable})"),
        },
        other => other,
    }
}

fn describe_deserialize_error(e: config::ConfigError) -> ConfigError {
    // The config crate's message already names the key ("... for key
    // `import.items_per_job`"); keep it whole.
    let text = e.to_string();
    let key = text
        .split("for key `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("(value)")
        .to_string();
    ConfigError::BadValue { key, message: text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("stockdrop.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_misspelt_environment_variable_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "[import]\non_error = \"reject-rows\"\n");
        let err = Config::load(
            Some(&file),
            env(&[("STOCKDROP__IMPORT__ON_EROR", "reject-file")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("import.on_eror"), "{err}");
        assert!(
            err.contains("environment variable STOCKDROP__IMPORT__ON_EROR"),
            "{err}"
        );
        let err = Config::load(None, env(&[("STOCKDROP__IMPRT__ON_ERROR", "reject-file")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`imprt`") && err.contains("STOCKDROP__IMPRT__ON_ERROR"),
            "{err}"
        );
        let file = write(dir.path(), "[import]\non_eror = \"reject-rows\"\n");
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("import.on_eror") && !err.contains("environment"),
            "{err}"
        );
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::defaults();
        assert_eq!(c.paths.inbox, Path::new("./var/inbox"));
        assert_eq!(c.paths.database, Path::new("./var/stockdrop.db"));
        assert_eq!(c.rules.on_error, OnError::RejectRows);
        assert_eq!(c.rules.items_per_job, 1000);
        assert_eq!(c.rules.max_errors, 10_000);
        assert_eq!(c.settle, Duration::from_millis(2000));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "[paths]\ninbox = \"drop\"\ndatabase = \"/abs/db\"\n",
        );
        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(c.paths.inbox, dir.path().join("drop"));
        assert_eq!(c.paths.database, Path::new("/abs/db"));
        assert_eq!(c.paths.outbox, dir.path().join("var/outbox"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "[import]\non_error = \"reject-location\"\n");
        let c = Config::load(
            Some(&file),
            env(&[
                ("STOCKDROP__IMPORT__ON_ERROR", "reject-file"),
                ("STOCKDROP__IMPORT__ITEMS_PER_JOB", "10"),
                ("STOCKDROP__IMPORT__DEFAULT_LOCATION", "11"),
            ]),
        )
        .unwrap();
        assert_eq!(c.rules.on_error, OnError::RejectFile);
        assert_eq!(c.rules.items_per_job, 10);
        assert_eq!(c.rules.default_location.as_deref(), Some("11"));
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "[import]\non_eror = \"reject-file\"\n");
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("import.on_eror"), "{err}");
        let file = write(dir.path(), "[imports]\non_error = \"reject-file\"\n");
        let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(err.contains("`imports`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        for (text, key) in [
            ("[import]\non_error = \"skip\"\n", "import.on_error"),
            ("[import]\nitems_per_job = 1001\n", "import.items_per_job"),
            (
                "[import]\nitems_per_job = \"many\"\n",
                "import.items_per_job",
            ),
            (
                "[import]\nlocation_from_filename = \"^store\"\n",
                "import.location_from_filename",
            ),
            (
                "[columns]\n\"Stock On Hand\" = \"qty2\"\n",
                "columns.Stock On Hand",
            ),
            ("[csv]\ndelimiter = \"x\"\n", "csv.delimiter"),
            ("[csv]\ndecimal = \";\"\n", "csv.decimal"),
        ] {
            let file = write(dir.path(), text);
            let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
            assert!(err.contains(key), "{text} → {err}");
        }
    }

    #[test]
    fn column_aliases_are_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "[columns]\n\"Stock On Hand\" = \"quantity\"\n\"Available\" = \"ignore\"\n",
        );
        let c = Config::load(Some(&file), env(&[])).unwrap();
        assert_eq!(
            c.rules.columns.get("stockonhand"),
            Some(&ColumnTarget::Field(Field::Quantity))
        );
        assert_eq!(
            c.rules.columns.get("available"),
            Some(&ColumnTarget::Ignore)
        );
    }

    #[test]
    fn shipped_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let example = Config::load(Some(&root.join("config/stockdrop.toml")), env(&[])).unwrap();
        let defaults = Config::defaults();
        assert_eq!(example.rules.items_per_job, defaults.rules.items_per_job);
        assert_eq!(example.rules.max_file_bytes, defaults.rules.max_file_bytes);
        assert_eq!(example.settle, defaults.settle);
        let packaged =
            Config::load(Some(&root.join("packaging/stockdrop.toml")), env(&[])).unwrap();
        assert!(packaged.paths.inbox.is_absolute());
        assert!(packaged.paths.database.starts_with("/var/lib/stockdrop"));
    }

    #[test]
    fn locate_follows_the_documented_order() {
        assert_eq!(
            locate(Some(Path::new("a.toml")), Some("b.toml")),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(locate(None, Some("b.toml")), Some(PathBuf::from("b.toml")));
    }
}
