//! `stockdrop jobs` and `stockdrop job ID`.

use serde::Serialize;

use super::{open_read, output, CmdResult, Exit, Failure};
use crate::config::Config;
use crate::store::queries::{self, Change, JobFilter, JobRow};

/// A job's status (SPEC §1), as `--status` takes it: anything else is a
/// usage error naming these, never an empty listing.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum JobStatus {
    Pending,
    Working,
    Success,
    Failed,
    Rejected,
    Reverted,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Working => "working",
            JobStatus::Success => "success",
            JobStatus::Failed => "failed",
            JobStatus::Rejected => "rejected",
            JobStatus::Reverted => "reverted",
        }
    }
}

/// A job's type (SPEC §1, §1.1), as `--type` takes it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum JobKind {
    Refresh,
    Adjust,
    Revert,
}

impl JobKind {
    fn as_str(self) -> &'static str {
        match self {
            JobKind::Refresh => "refresh",
            JobKind::Adjust => "adjust",
            JobKind::Revert => "revert",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only jobs of this type.
    #[arg(long = "type", value_enum)]
    job_type: Option<JobKind>,
    /// Only jobs with this status.
    #[arg(long, value_enum)]
    status: Option<JobStatus>,
    /// Only jobs of this location.
    #[arg(long)]
    location: Option<String>,
    /// Only jobs of files from this inbox.
    #[arg(long, value_name = "NAME")]
    inbox: Option<String>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The jobID.
    id: i64,
    #[arg(long)]
    pub(super) json: bool,
}

pub fn list(args: ListArgs, config: &Config) -> CmdResult {
    let inbox = super::inbox_filter(config, args.inbox.as_deref())?.map(str::to_string);
    let filter = JobFilter {
        inbox,
        status: args.status.map(|s| s.as_str().to_string()),
        location: args.location,
        job_type: args.job_type.map(|t| t.as_str().to_string()),
        import_id: None,
        limit: Some(args.limit),
    };
    let rows = match open_read(config)? {
        Some(store) => queries::jobs(&store.read(), &filter)?,
        None => Vec::new(),
    };
    if args.json {
        output::json(&rows)?;
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        output::println_or_fail("no jobs")?;
        return Ok(Exit::Success);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|j| {
            vec![
                j.job_id.to_string(),
                j.job_type.clone(),
                j.import_id.to_string(),
                j.location.clone(),
                j.item_count.to_string(),
                j.zeroed.to_string(),
                j.status.clone(),
                j.file.clone(),
                j.added.clone(),
            ]
        })
        .collect();
    output::println_or_fail(&output::table(
        &[
            "JOB", "TYPE", "IMPORT", "LOCATION", "ITEMS", "ZEROED", "STATUS", "FILE", "ADDED",
        ],
        &table,
    ))?;
    Ok(Exit::Success)
}

#[derive(Serialize)]
struct JobDetail {
    #[serde(flatten)]
    job: JobRow,
    changes: Vec<Change>,
}

pub fn show(args: ShowArgs, config: &Config) -> CmdResult {
    let unknown = || Failure::Usage(format!("there is no job {}", args.id));
    let store = open_read(config)?.ok_or_else(unknown)?;
    let read = store.read();
    let job = queries::job(&read, args.id)?.ok_or_else(unknown)?;
    let changes = queries::job_changes(&read, args.id)?;
    if args.json {
        output::json(&JobDetail { job, changes })?;
        return Ok(Exit::Success);
    }
    let mut text = format!(
        "job {}  ({}, import {})\n  location:   {}\n  status:     {}\n  items:      {}{}\n  file:       {}\n  added:      {}\n  started:    {}\n  finished:   {}",
        job.job_id,
        job.job_type,
        job.import_id,
        job.location,
        job.status,
        job.item_count,
        if job.zeroed > 0 { format!(" (+{} set to 0)", job.zeroed) } else { String::new() },
        job.file,
        job.added,
        output::opt(&job.started),
        output::opt(&job.finished),
    );
    for message in &job.messages {
        text.push_str(&format!("\n  note:       {message}"));
    }
    text.push_str(&format!("\n  changes:    {}", changes.len()));
    for change in &changes {
        let ids: Vec<String> = [
            change.sku.as_ref().map(|v| format!("sku {v}")),
            change
                .part_number
                .as_ref()
                .map(|v| format!("partNumber {v}")),
            change.upc.as_ref().map(|v| format!("upc {v}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut fields = Vec::new();
        if let Some(after) = change.after.as_object() {
            for (name, value) in after {
                let before = change
                    .before
                    .get(name)
                    .map_or("—".to_string(), |v| v.to_string());
                fields.push(format!("{name} {before} → {value}"));
            }
        }
        text.push_str(&format!(
            "\n    {:<7} {}: {}",
            change.action,
            ids.join(", "),
            fields.join("; ")
        ));
    }
    output::println_or_fail(&text)?;
    Ok(Exit::Success)
}
