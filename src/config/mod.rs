//! Configuration: where it is looked up, the raw TOML/environment shape, and
//! the validated [`Config`] every other module reads.
//!
//! Loading goes in two steps, as ripgrep does with its flags: the `config`
//! crate merges the TOML file and `STOCKDROP__SECTION__KEY` environment
//! overrides into a [`RawConfig`] (plain serde types with built-in defaults),
//! then [`Config::from_raw`] checks every value and turns it into typed paths,
//! durations and enums. Every error names the key it is about.
//!
//! The file's shape is in `raw.rs`; the rules one inbox's files are read by
//! (`ImportRules`, with the column aliases) in `rules.rs`. The header
//! vocabulary those aliases are checked against lives with the header
//! search, in `validate::header`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod raw;
mod rules;

pub use raw::*;
pub use rules::*;

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
// Validated shape.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
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
    /// Every inbox (SPEC §2.1): the `[[inbox]]` tables in file order, or
    /// the one `default` inbox of `paths.inbox`/`paths.outbox`. Never empty.
    pub inboxes: Vec<Inbox>,
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

        let rules =
            ImportRules::from_raw(&raw.import, &raw.csv, &raw.sheet, &raw.columns, &raw.report)?;
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
        let inboxes = build_inboxes(&raw, &rules, &paths, &resolve)?;
        Ok(Config {
            source,
            inboxes,
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

    /// The inbox of this name.
    pub fn inbox(&self, name: &str) -> Option<&Inbox> {
        self.inboxes.iter().find(|i| i.name == name)
    }

    /// The inbox a command without `--inbox` means: the one named
    /// `default`, else the only one; `None` when several are declared and
    /// none is `default` (the command must be told which).
    pub fn default_inbox(&self) -> Option<&Inbox> {
        self.inbox(DEFAULT_INBOX).or(match self.inboxes.as_slice() {
            [only] => Some(only),
            _ => None,
        })
    }

    /// The inbox `--inbox NAME` names (or [`Config::default_inbox`] when
    /// `None`); the error lists the names there are.
    pub fn select_inbox(&self, name: Option<&str>) -> Result<&Inbox, String> {
        let found = match name {
            Some(name) => self.inbox(name),
            None => self.default_inbox(),
        };
        found.ok_or_else(|| {
            let known = self.inbox_names().join(", ");
            match name {
                Some(name) => format!("no inbox named {name:?}; the inboxes are: {known}"),
                None => format!("several inboxes are configured; name one with --inbox ({known})"),
            }
        })
    }

    pub fn inbox_names(&self) -> Vec<&str> {
        self.inboxes.iter().map(|i| i.name.as_str()).collect()
    }

    /// Whether `[[inbox]]` tables are declared: then archive and failed
    /// keep a folder per inbox name (SPEC §2 step 6).
    pub fn has_inbox_tables(&self) -> bool {
        self.inboxes.iter().any(|i| i.declared)
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
        for (shown, inbox) in raw.inbox.iter_mut().zip(self.inboxes.iter()) {
            shown.path = show(&inbox.path);
            shown.outbox = show(&inbox.outbox);
        }
        toml::to_string_pretty(&raw).unwrap_or_else(|e| format!("# cannot show config: {e}\n"))
    }
}

/// The inboxes of the config, checked: names valid and unique; no inbox
/// folder equal to or inside another, or to the work, archive or failed
/// folder (the daemon would claim its own files, or another account's);
/// no outbox shared, or inside an inbox (reports taken for uploads, or
/// shown to another account). Whether each is on the filesystem of
/// `paths.work` is checked once the folders exist (`dirs::prepare`).
fn build_inboxes(
    raw: &RawConfig,
    rules: &ImportRules,
    paths: &Paths,
    resolve: &dyn Fn(&str, &str) -> Result<PathBuf, ConfigError>,
) -> Result<Vec<Inbox>, ConfigError> {
    if raw.inbox.is_empty() {
        return Ok(vec![Inbox {
            name: DEFAULT_INBOX.to_string(),
            path: paths.inbox.clone(),
            outbox: paths.outbox.clone(),
            rules: rules.clone(),
            declared: false,
        }]);
    }
    let mut inboxes: Vec<Inbox> = Vec::new();
    for (index, table) in raw.inbox.iter().enumerate() {
        let name = table.name.trim();
        if !valid_inbox_name(name) {
            return Err(bad(
                &format!("inbox[{}].name", index + 1),
                format!(
                    "must be 1 to {MAX_INBOX_NAME} letters, digits, - or _; got {:?}",
                    table.name
                ),
            ));
        }
        let prefix = format!("inbox.{name}.");
        if inboxes.iter().any(|i| i.name == name) {
            return Err(bad(
                &format!("{prefix}name"),
                "another [[inbox]] has this name; names must be unique",
            ));
        }
        let within = |e: ConfigError| match e {
            ConfigError::BadValue { key, message } => ConfigError::BadValue {
                key: format!("{prefix}{key}"),
                message,
            },
            other => other,
        };
        let import = overlay_import(&raw.import, &table.import).map_err(within)?;
        let mut columns = raw.columns.clone();
        columns.extend(table.columns.clone());
        let inbox_rules =
            ImportRules::from_raw(&import, &raw.csv, &raw.sheet, &columns, &raw.report)
                .map_err(within)?;
        inboxes.push(Inbox {
            name: name.to_string(),
            path: resolve(&format!("{prefix}path"), &table.path)?,
            outbox: resolve(&format!("{prefix}outbox"), &table.outbox)?,
            rules: inbox_rules,
            declared: true,
        });
    }
    let related = |a: &Path, b: &Path| {
        let (a, b) = (lexical(a), lexical(b));
        a.starts_with(&b) || b.starts_with(&a)
    };
    for (n, inbox) in inboxes.iter().enumerate() {
        for (key, dir) in [
            ("paths.work", &paths.work),
            ("paths.archive", &paths.archive),
            ("paths.failed", &paths.failed),
        ] {
            if related(&inbox.path, dir) {
                return Err(bad(
                    &inbox.key("path"),
                    format!(
                        "{} is, contains or is inside {key} = {}; an inbox must be a folder of its own",
                        inbox.path.display(),
                        dir.display()
                    ),
                ));
            }
        }
        for other in &inboxes {
            if lexical(&inbox.outbox) == lexical(&other.path)
                || (other.name != inbox.name
                    && lexical(&inbox.outbox).starts_with(lexical(&other.path)))
            {
                return Err(bad(
                    &inbox.key("outbox"),
                    format!(
                        "{} is or is inside the folder of inbox {:?}; reports would be taken for uploads, or shown to another account",
                        inbox.outbox.display(),
                        other.name
                    ),
                ));
            }
        }
        for other in &inboxes[n + 1..] {
            if related(&inbox.path, &other.path) {
                return Err(bad(
                    &other.key("path"),
                    format!(
                        "{} is, contains or is inside the folder of inbox {:?} ({}); every inbox needs a folder of its own",
                        other.path.display(),
                        inbox.name,
                        inbox.path.display()
                    ),
                ));
            }
            if lexical(&inbox.outbox) == lexical(&other.outbox) {
                return Err(bad(
                    &other.key("outbox"),
                    format!(
                        "{} is also the outbox of inbox {:?}; an account must see only its own reports",
                        other.outbox.display(),
                        inbox.name
                    ),
                ));
            }
        }
    }
    Ok(inboxes)
}

/// `path` with `.` dropped and `..` taken back, without touching the
/// filesystem (the folders may not exist yet): enough to compare two
/// configured paths.
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The keys an `[[inbox]]` table accepts.
const INBOX_KEYS: &[&str] = &["name", "path", "outbox", "import", "columns"];

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
            "max_locations",
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
        if section == "inbox" {
            check_inbox_keys(value)?;
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

/// `[[inbox]]` tables: each a table of [`INBOX_KEYS`], its `import` of the
/// `[import]` keys; a misspelt key is named `inbox.<name>.import.<key>`.
fn check_inbox_keys(value: config::Value) -> Result<(), ConfigError> {
    let tables = value
        .into_array()
        .map_err(|_| bad("inbox", "must be an array of tables ([[inbox]])"))?;
    let import_keys = KNOWN_KEYS
        .iter()
        .find(|(name, _)| *name == "import")
        .map_or(&[][..], |(_, keys)| *keys);
    for (index, table) in tables.into_iter().enumerate() {
        let table = table
            .into_table()
            .map_err(|_| bad("inbox", "each [[inbox]] must be a table"))?;
        let label = match table.get("name").and_then(|n| n.clone().into_string().ok()) {
            Some(name) if valid_inbox_name(&name) => format!("inbox.{name}"),
            _ => format!("inbox[{}]", index + 1),
        };
        for (key, value) in table {
            if !INBOX_KEYS.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey(format!("{label}.{key}")));
            }
            if key == "import" {
                let import = value.into_table().map_err(|_| {
                    bad(
                        &format!("{label}.import"),
                        "must be a table ([inbox.import])",
                    )
                })?;
                for key in import.keys() {
                    if !import_keys.contains(&key.as_str()) {
                        return Err(ConfigError::UnknownKey(format!("{label}.import.{key}")));
                    }
                }
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
    use crate::columns::ColumnTarget;
    use crate::model::Field;

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
    fn the_shipped_inbox_examples_load_once_uncommented() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (file, names) in [
            ("config/stockdrop.toml", ["boston", "chicago"]),
            ("packaging/stockdrop.toml", ["boston", "vendor-acme"]),
        ] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            let start = text.find("# [[inbox]]").unwrap();
            let (head, tail) = text.split_at(start);
            let mut uncommented = head.to_string();
            for line in tail.lines() {
                uncommented.push_str(line.strip_prefix("# ").unwrap_or(line));
                uncommented.push('\n');
            }
            let dir = tempfile::tempdir().unwrap();
            let path = write(dir.path(), &uncommented);
            let c = Config::load(Some(&path), env(&[])).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(c.inbox_names(), names, "{file}");
            assert!(c
                .inbox("boston")
                .unwrap()
                .outbox
                .ends_with("sftp/boston/reports"));
        }
    }

    #[test]
    fn locate_follows_the_documented_order() {
        assert_eq!(
            locate(Some(Path::new("a.toml")), Some("b.toml")),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(locate(None, Some("b.toml")), Some(PathBuf::from("b.toml")));
    }

    const TWO_INBOXES: &str = r#"
[import]
on_error = "reject-file"
[columns]
"Stock On Hand" = "quantity"
[[inbox]]
name = "boston"
path = "sftp/boston/upload"
outbox = "sftp/boston/reports"
[inbox.import]
locations = ["Store Boston 001"]
job_type = "adjust"
[inbox.columns]
"Menge" = "quantity"
[[inbox]]
name = "chicago-2"
path = "sftp/chicago/upload"
outbox = "sftp/chicago/reports"
"#;

    #[test]
    fn no_inbox_tables_mean_the_one_default_inbox() {
        let c = Config::defaults();
        assert_eq!(c.inbox_names(), ["default"]);
        let inbox = c.default_inbox().unwrap();
        assert_eq!(inbox.path, c.paths.inbox);
        assert_eq!(inbox.outbox, c.paths.outbox);
        assert!(!c.has_inbox_tables());
        assert!(c
            .select_inbox(Some("boston"))
            .unwrap_err()
            .contains("default"));
    }

    #[test]
    fn inbox_tables_override_the_global_rules_for_their_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), TWO_INBOXES);
        let c = Config::load(
            Some(&file),
            env(&[("STOCKDROP__IMPORT__ITEMS_PER_JOB", "7")]),
        )
        .unwrap();
        assert_eq!(c.inbox_names(), ["boston", "chicago-2"]);
        assert!(c.has_inbox_tables());
        let boston = c.inbox("boston").unwrap();
        assert_eq!(boston.path, dir.path().join("sftp/boston/upload"));
        assert_eq!(
            boston.rules.locations.as_deref(),
            Some(&["Store Boston 001".to_string()][..])
        );
        assert_eq!(boston.rules.job_type, JobType::Adjust);
        // Not overridden: the global value, environment included.
        assert_eq!(boston.rules.on_error, OnError::RejectFile);
        assert_eq!(boston.rules.items_per_job, 7);
        assert!(boston.rules.columns.contains_key("menge"));
        assert!(boston.rules.columns.contains_key("stockonhand"));
        let chicago = c.inbox("chicago-2").unwrap();
        assert_eq!(chicago.rules.locations, None);
        assert_eq!(chicago.rules.job_type, JobType::Refresh);
        assert!(!chicago.rules.columns.contains_key("menge"));
        assert!(c.default_inbox().is_none());
        assert!(c
            .select_inbox(None)
            .unwrap_err()
            .contains("boston, chicago-2"));
        let shown = c.to_toml();
        assert!(
            shown.contains("[[inbox]]") && shown.contains("chicago-2"),
            "{shown}"
        );
    }

    #[test]
    fn bad_inbox_tables_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = |name: &str, path: &str, outbox: &str| {
            format!("[[inbox]]\nname = \"{name}\"\npath = \"{path}\"\noutbox = \"{outbox}\"\n")
        };
        let a = inbox("a", "in/a", "out/a");
        for (text, key, says) in [
            (inbox("a b", "in/a", "out/a"), "inbox[1].name", "letters"),
            (inbox("", "in/a", "out/a"), "inbox[1].name", "letters"),
            (
                a.clone() + &inbox("a", "in/b", "out/b"),
                "inbox.a.name",
                "unique",
            ),
            (
                a.clone() + &inbox("b", "in/a", "out/b"),
                "inbox.b.path",
                "inbox \"a\"",
            ),
            (
                a.clone() + &inbox("b", "in/a/sub", "out/b"),
                "inbox.b.path",
                "inbox \"a\"",
            ),
            (
                a.clone() + &inbox("b", "in", "out/b"),
                "inbox.b.path",
                "inbox \"a\"",
            ),
            (
                a.clone() + &inbox("b", "in/b", "out/a"),
                "inbox.b.outbox",
                "own reports",
            ),
            (
                a.clone() + &inbox("b", "in/b", "in/a"),
                "inbox.b.outbox",
                "inbox \"a\"",
            ),
            (inbox("a", "in/a", "in/a"), "inbox.a.outbox", "uploads"),
            (
                inbox("a", "var/work", "out/a"),
                "inbox.a.path",
                "paths.work",
            ),
            (
                inbox("a", "var/archive/x", "out/a"),
                "inbox.a.path",
                "paths.archive",
            ),
            (inbox("a", "var", "out/a"), "inbox.a.path", "paths.work"),
            (inbox("a", "", "out/a"), "inbox.a.path", "empty"),
            (
                a.clone() + "[inbox.import]\non_eror = \"x\"\n",
                "inbox.a.import.on_eror",
                "unknown",
            ),
            (
                a.clone() + "[inbox.import]\non_error = \"x\"\n",
                "inbox.a.import.on_error",
                "reject-rows",
            ),
            (
                a.clone() + "[inbox.import]\nitems_per_job = \"many\"\n",
                "inbox.a.import",
                "invalid",
            ),
            (
                a.clone() + "[inbox.columns]\nMenge = \"qty2\"\n",
                "inbox.a.columns.Menge",
                "field name",
            ),
            (
                a.clone() + "outboxes = \"x\"\n",
                "inbox.a.outboxes",
                "unknown",
            ),
        ] {
            let file = write(dir.path(), &text);
            let err = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
            assert!(
                err.contains(&format!("`{key}`")) && err.contains(says),
                "{text} → {err}"
            );
        }
    }
}
