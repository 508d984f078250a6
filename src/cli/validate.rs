//! `stockdrop validate FILE…`: parse, validate and resolve against the
//! store as an import would, writing nothing.

use std::path::PathBuf;

use super::{open_read, output, summary, CmdResult, Exit, Failure};
use crate::config::Config;
use crate::pipeline;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Validate by this inbox's rules (default: the inbox named `default`,
    /// or the only one).
    #[arg(long, value_name = "NAME")]
    inbox: Option<String>,
    /// Print each file's JSON report, one per line.
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let inbox = config
        .select_inbox(args.inbox.as_deref())
        .map_err(Failure::Usage)?;
    // Resolve against the real store when there is one, else an empty one in
    // memory: nothing is created on disk.
    let store = match open_read(config)? {
        Some(store) => store,
        None => Store::in_memory()?,
    };
    let mut exit = Exit::Success;
    for file in &args.files {
        match pipeline::validate_path(&store, inbox, file) {
            Ok(reports) => {
                for report in reports {
                    if args.json {
                        output::json_line(&report)?;
                    } else {
                        output::println_or_fail(&summary::summary(&report))?;
                    }
                    let errors: u64 = report.error_counts.values().sum();
                    if errors > 0 {
                        exit = exit.worst(Exit::Rejected);
                    }
                }
            }
            Err(e) => {
                eprintln!("stockdrop: {}: {e}", file.display());
                if args.json {
                    output::file_failure(file, &e.to_string(), Exit::Operational)?;
                }
                exit = exit.worst(Exit::Operational);
            }
        }
    }
    Ok(exit)
}
