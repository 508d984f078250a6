//! `stockdrop revert JOB [--force]`: undo a job.

use super::{open_existing_write, output, CmdResult, Exit, Failure};
use crate::config::Config;
use crate::issue::count;
use crate::revert::{self, RevertError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The jobID to revert.
    job: i64,
    /// Revert even though later jobs changed the same items (their values are overwritten too).
    #[arg(long)]
    force: bool,
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let unknown = || Failure::Usage(format!("there is no job {}", args.job));
    let mut store = open_existing_write(config)?.ok_or_else(unknown)?;
    match revert::revert(&mut store, args.job, args.force) {
        Ok(done) => {
            if args.json {
                output::json(&serde_json::json!({
                    "job_id": done.job,
                    "status": "reverted",
                    "revert_job_id": done.revert_job,
                    "records": done.records,
                }))?;
            } else {
                output::println_or_fail(&format!(
                    "job {} reverted: {} restored, recorded as job {}",
                    done.job,
                    count(done.records as u64, "record", "records"),
                    done.revert_job
                ))?;
            }
            Ok(Exit::Success)
        }
        Err(RevertError::Unknown(_)) => Err(unknown()),
        Err(RevertError::Store(e)) => Err(Failure::Store(e)),
        Err(refused) => {
            eprintln!("stockdrop: revert refused: {refused}");
            if args.json {
                let later = match &refused {
                    RevertError::LaterJobs { later, .. } => later.clone(),
                    _ => Vec::new(),
                };
                output::json(&serde_json::json!({
                    "job_id": args.job,
                    "status": "refused",
                    "reason": refused.to_string(),
                    "later_jobs": later,
                }))?;
            }
            Ok(Exit::Rejected)
        }
    }
}
