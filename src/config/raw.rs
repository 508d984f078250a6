//! The config file's shape: exactly what the TOML file (and the
//! `STOCKDROP__SECTION__KEY` environment) may contain, as plain serde types
//! with the built-in defaults. Nothing here is checked; `Config::from_raw`
//! does that.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::MAX_ITEMS_PER_JOB;

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
    /// `[[inbox]]` tables (SPEC §2.1); none: the one `default` inbox of
    /// `paths.inbox` and `paths.outbox`. Last, so TOML output puts the
    /// array of tables after the plain sections.
    pub inbox: Vec<RawInbox>,
}

/// One `[[inbox]]` table: an uploading account's drop folder and outbox,
/// and what its files are read by differently from the global rules.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawInbox {
    pub name: String,
    pub path: String,
    pub outbox: String,
    /// Any `[import]` key, kept as written: laid over the global `[import]`
    /// when the rules are built, so an inbox states only what differs.
    pub import: toml::Table,
    /// Aliases added to the global `[columns]` for this inbox's files.
    pub columns: BTreeMap<String, String>,
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
    pub max_locations: u64,
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
            max_locations: 10_000,
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
