//! Reports (SPEC §5): the JSON report for scripts, the HTML page for people
//! and the errors CSV to fix and drop back, all written atomically into the
//! outbox as `<original stem>.<import id>.<ext>`.

pub mod errors_csv;
pub mod html;
pub mod index;
pub mod jobs;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable::{replace, replace_with_bytes, sync_dir, Durability};
use crate::issue::{Code, Issue};
use crate::plan::Draft;
pub use jobs::{JobEntry, JobList, JobSource, JOBS_HELD};

/// An error or warning as reports show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub row: Option<u64>,
    pub sheet: Option<String>,
    pub cell: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pointer: Option<String>,
    pub column: Option<String>,
    pub value: Option<String>,
    pub code: Code,
    pub message: String,
}

impl From<&Issue> for Entry {
    fn from(i: &Issue) -> Entry {
        Entry {
            row: i.place.row,
            sheet: i.place.sheet.clone(),
            cell: i.place.cell.clone(),
            pointer: i.place.pointer.clone(),
            column: i.place.column.clone(),
            value: i.value.clone(),
            code: i.code,
            message: i.message.clone(),
        }
    }
}

impl Entry {
    /// `Sheet2!C5`, `F14`, `row 14` or a JSON pointer.
    pub fn place(&self) -> String {
        crate::issue::Place {
            row: self.row,
            sheet: self.sheet.clone(),
            cell: self.cell.clone(),
            column: None,
            pointer: self.pointer.clone(),
        }
        .human()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rows {
    pub total: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// The JSON report of one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub import_id: Option<i64>,
    pub file: String,
    pub sha256: String,
    pub format: String,
    pub status: String,
    pub duplicate_of: Option<i64>,
    pub refresh_mode: String,
    /// `refresh` or `adjust` (SPEC §1.1): what the file's jobs do.
    #[serde(default)]
    pub job_type: String,
    /// The inbox (SPEC §2.1) the file came from: `default` with no
    /// `[[inbox]]` tables.
    #[serde(default)]
    pub inbox: String,
    pub received_at: String,
    pub finished_at: String,
    pub rows: Rows,
    /// Every job of the file, in order (see [`JobList`]).
    pub jobs: JobList,
    /// `jobs` lists only the first [`JOBS_HELD`]: a `validate` report of a
    /// file with more (an import's report lists them all).
    #[serde(default)]
    pub jobs_truncated: bool,
    pub error_counts: BTreeMap<Code, u64>,
    pub errors: Vec<Entry>,
    pub errors_truncated: bool,
    /// The errors CSV reached its size limit and lists only the first rows
    /// left out.
    #[serde(default)]
    pub errors_csv_truncated: bool,
    pub warning_counts: BTreeMap<Code, u64>,
    pub warnings: Vec<Entry>,
}

/// The file status of SPEC §5, from what the plan decided and how its jobs
/// ended. `pending` jobs count as applied (what `validate` predicts).
pub fn file_status(draft: &Draft, jobs: &JobList, duplicate: bool) -> &'static str {
    if duplicate {
        return "duplicate";
    }
    if jobs.count("failed") > 0 {
        return "failed";
    }
    let applied = ["success", "pending", "working", "reverted"]
        .iter()
        .any(|status| jobs.count(status) > 0);
    let any_error = draft.error_counts.values().any(|&n| n > 0);
    match (applied, any_error) {
        (true, false) => "applied",
        (true, true) => "partial",
        (false, true) => "rejected",
        // Nothing to apply and nothing wrong: a header with no rows.
        (false, false) => "applied",
    }
}

impl Report {
    pub fn from_draft(draft: &Draft) -> Report {
        Report {
            import_id: None,
            file: String::new(),
            sha256: String::new(),
            format: String::new(),
            status: String::new(),
            duplicate_of: None,
            refresh_mode: String::new(),
            job_type: String::new(),
            inbox: String::new(),
            received_at: String::new(),
            finished_at: String::new(),
            rows: Rows {
                total: draft.rows_total,
                accepted: draft.rows_accepted,
                rejected: draft.rows_rejected,
            },
            jobs: JobList::new(),
            jobs_truncated: false,
            error_counts: draft.error_counts.clone(),
            errors: draft.errors.iter().map(Entry::from).collect(),
            errors_truncated: draft.errors_truncated,
            errors_csv_truncated: draft.errors_csv_omitted > 0,
            warning_counts: draft.warning_counts.clone(),
            warnings: draft.warnings.iter().map(Entry::from).collect(),
        }
    }

    /// `<stem>.<import id>`: the common part of the report file names.
    /// `file` is a displayable form (`crate::names`), so the stem is one
    /// too; a stem that would make `<stem>.<id>.errors.csv` — or the
    /// temporary name it is written under — longer than `NAME_MAX` is
    /// shortened (`names::shorten`); `file` keeps the whole name.
    pub fn base_name(&self) -> String {
        let stem = Path::new(&self.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "file".to_string());
        let id = self
            .import_id
            .map(|id| format!(".{id}"))
            .unwrap_or_default();
        let room = crate::names::NAME_MAX
            .saturating_sub(TEMPORARY_NAME_EXTRA + id.len() + LONGEST_ENDING.len());
        format!("{}{id}", crate::names::shorten(&stem, room))
    }

    /// The errors CSV's name: `<base>.errors.csv`. An adjust file's says
    /// `_UPDATE_` (added when its own name did not), so that dropped back
    /// in it is an adjust file again wherever it lands (SPEC §1.1).
    pub fn errors_csv_name(&self) -> String {
        let base = self.base_name();
        let marker = if self.job_type == "adjust"
            && crate::adjust::kind_of(&base, crate::config::JobType::Refresh)
                != crate::config::JobType::Adjust
        {
            "_UPDATE_"
        } else {
            ""
        };
        format!("{base}{marker}.errors.csv")
    }
}

/// The longest ending `write_all` adds to a base name.
const LONGEST_ENDING: &str = "_UPDATE_.errors.csv";
/// What `durable::replace` adds to a name for its temporary file
/// (`.NAME.tmp-PID`, a pid of at most 7 digits), with room to spare.
const TEMPORARY_NAME_EXTRA: usize = 16;

/// Where an import's errors CSV waits, written while planning, until its
/// reports are written: hidden, beside them.
pub fn staged_errors_csv(dir: &Path, import_id: i64) -> PathBuf {
    dir.join(format!(".{import_id}.errors.csv.part"))
}

/// Writes the report's files into `dir`; returns their paths. The errors
/// CSV, written while planning, is renamed into place when rows were left
/// out — never for a duplicate (nothing was done with its rows; the import
/// it repeats has the CSV).
pub fn write_all(
    report: &Report,
    draft: &Draft,
    dir: &Path,
    import_id: i64,
) -> std::io::Result<Vec<PathBuf>> {
    let base = report.base_name();
    let mut written = Vec::new();
    // Each file whole on disk before its name; the names made durable by
    // one fsync of the folder at the end, before the caller records the
    // import as finished.
    let json = dir.join(format!("{base}.json"));
    // Streamed: the job list may be read from the store as it is written.
    replace(&json, Durability::Written, |out| {
        serde_json::to_writer_pretty(&mut *out, report).map_err(std::io::Error::other)?;
        out.write_all(b"\n")
    })?;
    written.push(json);
    let html_path = dir.join(format!("{base}.html"));
    replace_with_bytes(
        &html_path,
        Durability::Written,
        html::render(report).as_bytes(),
    )?;
    written.push(html_path);
    let csv_path = dir.join(report.errors_csv_name());
    let staged = staged_errors_csv(dir, import_id);
    if report.duplicate_of.is_some() {
        if staged.exists() {
            std::fs::remove_file(&staged)?;
        }
    } else if draft.errors_csv_rows > 0 || draft.errors_csv_omitted > 0 {
        if staged.exists() {
            std::fs::rename(&staged, &csv_path)?;
        }
        // Otherwise renamed already, by an attempt that crashed after.
        if csv_path.exists() {
            written.push(csv_path);
        }
    } else if !draft.errors_csv.is_empty() {
        let csv = errors_csv::render(draft)?;
        replace_with_bytes(&csv_path, Durability::Written, &csv)?;
        written.push(csv_path);
    } else if staged.exists() {
        // Left by an attempt whose plan never committed.
        std::fs::remove_file(&staged)?;
    }
    sync_dir(dir)?;
    Ok(written)
}
