//! The plan of a file: everything decided before the first commit. It is
//! stored with the import (jobs with their items, the report's draft), and
//! recovery after a crash applies exactly this plan, whatever the
//! configuration says by then.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{JobType, RefreshMode};
use crate::issue::{Code, Issue};
use crate::model::Item;

/// One item of a job, with the record it resolved to (`None`: a new record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedItem {
    pub row: u64,
    pub record: Option<i64>,
    pub item: Item,
}

/// What applying a job does; stored in the job's `plan` column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobPlan {
    pub items: Vec<PlannedItem>,
    /// Records set to quantity 0 (full mode), on the location's last job.
    pub zero: Vec<i64>,
}

impl JobPlan {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<JobPlan, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// A row of the errors CSV: the original cells and why it was not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorsCsvRow {
    pub cells: Vec<String>,
    pub location: Option<String>,
    pub error: String,
}

/// The parts of the report fixed at planning time; stored with the import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Draft {
    pub rows_total: u64,
    pub rows_accepted: u64,
    pub rows_rejected: u64,
    /// Nothing of the file can apply (a file error, or every row/location
    /// rejected).
    pub errors: Vec<Issue>,
    pub error_counts: BTreeMap<Code, u64>,
    pub errors_truncated: bool,
    pub warnings: Vec<Issue>,
    pub warning_counts: BTreeMap<Code, u64>,
    /// The header of the errors CSV (the file's own columns); empty when no
    /// row was left out.
    pub errors_csv_header: Vec<String>,
    /// Whether the errors CSV needs a location column of its own.
    pub errors_csv_location: bool,
    /// Whether its rows come from several sheets (first column `sheet`).
    #[serde(default)]
    pub errors_csv_sheets: bool,
    /// Rows of a plan stored by an earlier version, which kept the errors
    /// CSV here; now it is written to a file while planning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors_csv: Vec<ErrorsCsvRow>,
    /// Rows in the errors CSV, and rows left out of it once it reached its
    /// size limit.
    #[serde(default)]
    pub errors_csv_rows: u64,
    #[serde(default)]
    pub errors_csv_omitted: u64,
    /// The distinct locations the file named: what an archive's later
    /// members may still name (`import.max_locations`), kept with the plan
    /// so that an archive resumed after a crash counts them as before.
    #[serde(default)]
    pub locations: u64,
}

impl Draft {
    /// Adds an error, counting it always and listing it up to `max`.
    pub fn push_error(&mut self, issue: Issue, max: usize) {
        *self.error_counts.entry(issue.code).or_default() += 1;
        if self.errors.len() < max {
            self.errors.push(issue);
        } else {
            self.errors_truncated = true;
        }
    }

    pub fn push_warning(&mut self, issue: Issue, max: usize) {
        *self.warning_counts.entry(issue.code).or_default() += 1;
        if self.warnings.len() < max {
            self.warnings.push(issue);
        }
    }
}

/// A row left out of the jobs, to be copied into the errors CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOutRow {
    pub table: u16,
    pub number: u64,
    pub location: Option<String>,
    pub error: String,
}

/// What resolving decided, beside the jobs and rows left out it staged
/// (`store::stage`).
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: RefreshMode,
    /// What the file's jobs do: set counts (`refresh`) or add to them
    /// (`adjust`, where each item's quantity is the change).
    pub job_type: JobType,
    pub draft: Draft,
    /// Every location the file names, for duplicate-file detection.
    pub locations: Vec<String>,
    /// Per location (by index): rejected by a policy or the full-mode guard.
    pub rejected: Vec<bool>,
    /// Nothing of the file applies.
    pub file_rejected: bool,
    /// Rows left out (rejected or not applied).
    pub left_out: u64,
}

impl Plan {
    /// Whether the jobs of the location at `index` are rejected.
    pub fn is_rejected(&self, index: u32) -> bool {
        self.file_rejected || self.rejected.get(index as usize).copied().unwrap_or(true)
    }
}
