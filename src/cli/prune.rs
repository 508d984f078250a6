//! `stockdrop prune [--dry-run]`: apply the retention settings now.

use super::{open_existing_write, output, CmdResult, Exit, Failure};
use crate::config::Config;
use crate::issue::count;
use crate::retention;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only list what would be removed.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let mut store = open_existing_write(config)?;
    let today = chrono::Utc::now().date_naive();
    let pruned = retention::prune(config, store.as_mut(), today, args.dry_run)
        .map_err(|e| Failure::Io(e.to_string()))?;
    if args.json {
        output::json(&serde_json::json!({
            "dry_run": args.dry_run,
            "folders": pruned.folders,
            "reports": pruned.reports,
            "history_jobs": pruned.history_jobs,
        }))?;
        return Ok(Exit::Success);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    let mut text = format!(
        "{verb}: {} of originals, {}, the history of {}",
        count(pruned.folders.len() as u64, "dated folder", "dated folders"),
        count(pruned.reports.len() as u64, "report", "reports"),
        count(pruned.history_jobs, "job", "jobs")
    );
    for path in pruned.folders.iter().chain(&pruned.reports) {
        text.push_str(&format!("\n  {}", path.display()));
    }
    output::println_or_fail(&text)?;
    Ok(Exit::Success)
}
