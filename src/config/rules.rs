//! The rules that decide how one inbox's rows become jobs
//! ([`ImportRules`]), built from the `[import]`, `[csv]`, `[sheet]`,
//! `[columns]` and `[report]` sections — or, for an `[[inbox]]`, from those
//! with its `[inbox.import]` and `[inbox.columns]` laid over them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::raw::{RawCsv, RawImport, RawReport, RawSheet};
use super::{bad, ConfigError, MAX_ITEMS_PER_JOB};
use crate::columns::{normalise_header, ColumnTarget};
use crate::model::Field;

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
    /// The most distinct locations a file may name — or an archive's
    /// members, in all.
    pub max_locations: u64,
    /// For a member of an archive: the locations the members before it
    /// named (0 for a file of its own). Not configured: the pipeline sets
    /// it.
    pub archive_locations: u64,
    /// For a member of an archive: what is left of the archive's errors-CSV
    /// room (`None` for a file of its own). Not configured either.
    pub errors_csv_room: Option<u64>,
    pub max_unzipped_bytes: u64,
    pub csv_delimiter: Option<u8>,
    /// `csv.decimal`: `Some(',')` or `Some('.')`; `None` when not set.
    pub csv_decimal: Option<char>,
    pub sheet_names: Vec<String>,
    /// Normalised header name → what it maps to.
    pub columns: BTreeMap<String, ColumnTarget>,
    pub max_errors: usize,
}

impl ImportRules {
    /// Counts what an archive member used of the archive's shared limits:
    /// the `locations` it named and the `errors_csv` bytes it wrote.
    pub fn count_member(&mut self, locations: u64, errors_csv: u64) {
        self.archive_locations = self.archive_locations.saturating_add(locations);
        self.errors_csv_room = self
            .errors_csv_room
            .map(|room| room.saturating_sub(errors_csv));
    }

    /// Checks the rule sections and builds the rules. Errors name the key
    /// as the global sections spell it (`import.on_error`); the caller adds
    /// an inbox's prefix.
    pub(super) fn from_raw(
        i: &RawImport,
        csv: &RawCsv,
        sheet: &RawSheet,
        column_aliases: &BTreeMap<String, String>,
        report: &RawReport,
    ) -> Result<ImportRules, ConfigError> {
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
            ("import.max_locations", i.max_locations),
            ("import.max_unzipped_bytes", i.max_unzipped_bytes),
        ] {
            if value == 0 {
                return Err(bad(key, "must be at least 1"));
            }
        }
        let csv_delimiter = match csv.delimiter.as_str() {
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
        let csv_decimal = match csv.decimal.as_str() {
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
        for (header, target) in column_aliases {
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
        if report.max_errors == 0 {
            return Err(bad("report.max_errors", "must be at least 1"));
        }
        Ok(ImportRules {
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
            max_locations: i.max_locations,
            archive_locations: 0,
            errors_csv_room: None,
            max_unzipped_bytes: i.max_unzipped_bytes,
            csv_delimiter,
            csv_decimal,
            sheet_names: sheet.names.clone(),
            columns,
            max_errors: usize::try_from(report.max_errors).unwrap_or(usize::MAX),
        })
    }
}

/// The name of the one inbox a config without `[[inbox]]` tables has.
pub const DEFAULT_INBOX: &str = "default";

/// The longest inbox name: it is written into claimed file names and
/// folder names, which must stay well inside `NAME_MAX`.
pub const MAX_INBOX_NAME: usize = 64;

/// One inbox (SPEC §2.1): where an account drops files, where its reports
/// go (and only its), and the rules its files are read by. This, not the
/// whole config, is what the pipeline is given for a file.
#[derive(Debug, Clone)]
pub struct Inbox {
    pub name: String,
    pub path: PathBuf,
    pub outbox: PathBuf,
    pub rules: ImportRules,
    /// Declared by an `[[inbox]]` table (not the implicit `default`): its
    /// originals are archived under a folder of its name, and errors name
    /// its keys as `inbox.<name>.…`.
    pub declared: bool,
}

impl Inbox {
    /// The config key for this inbox's `path` or `outbox`, as an error
    /// about it should name it.
    pub fn key(&self, what: &str) -> String {
        match (self.declared, what) {
            (false, "path") => "paths.inbox".to_string(),
            (false, _) => format!("paths.{what}"),
            (true, _) => format!("inbox.{}.{what}", self.name),
        }
    }
}

/// Whether `name` may name an inbox: letters, digits, `-` and `_`, so it is
/// safe as a folder name, a metrics label and a claim tag.
pub fn valid_inbox_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INBOX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `global` with an inbox's `[inbox.import]` keys laid over it; a bad value
/// is named by its key without the inbox prefix (the caller adds it).
pub(super) fn overlay_import(
    global: &RawImport,
    over: &toml::Table,
) -> Result<RawImport, ConfigError> {
    let mut table = match toml::Value::try_from(global) {
        Ok(toml::Value::Table(table)) => table,
        _ => return Err(bad("import", "cannot merge the inbox's import keys")),
    };
    for (key, value) in over {
        table.insert(key.clone(), value.clone());
    }
    toml::Value::Table(table)
        .try_into::<RawImport>()
        .map_err(|e| bad("import", e.to_string()))
}
