//! `stockdrop import FILE…`: process files now through the same pipeline
//! the daemon uses, leaving the originals where they are.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use super::{open_write, output, summary, CmdResult, Exit, Failure};
use crate::config::Config;
use crate::pipeline::{self, ImportOptions, Outcome, Progress};
use crate::report::index;

/// Files larger than this get a progress bar on a terminal.
const PROGRESS_BYTES: u64 = 10 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files to import.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Apply a file even when it repeats the last import of its locations.
    #[arg(long)]
    force: bool,
    /// The inbox whose rules apply and whose outbox gets the reports (and
    /// which the store records); default: the inbox named `default`, or the
    /// only one.
    #[arg(long, value_name = "NAME")]
    inbox: Option<String>,
    /// Write reports here instead of the outbox.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Print each file's JSON report, one per line.
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    // Named before anything is opened: an unknown inbox is a usage error.
    let inbox = config
        .select_inbox(args.inbox.as_deref())
        .map_err(Failure::Usage)?;
    let mut store = open_write(config)?;
    let mut exit = Exit::Success;
    // Each outbox's index is rewritten once a file is done (SPEC §5).
    let mut owed = index::Owed::default();
    // An import killed half way is finished first, from its stored plan.
    for (import_id, result) in pipeline::recover(&mut store)? {
        match result {
            Ok(outcome) => {
                eprintln!(
                    "stockdrop: finished interrupted import {import_id} ({})",
                    outcome.report.file
                );
                pipeline::index_owed(&mut owed, [&outcome]);
                exit = exit.worst(print_outcome(&outcome, args.json)?);
            }
            Err(e) => {
                eprintln!("stockdrop: cannot finish interrupted import {import_id} yet: {e}");
                exit = exit.worst(Exit::Operational);
            }
        }
    }
    owed.pay(&store.read());
    for file in &args.files {
        let options = ImportOptions {
            force: args.force,
            report_dir: args.report_dir.clone(),
            progress: progress_for(file),
            ..ImportOptions::default()
        };
        match pipeline::import_path(&mut store, inbox, file, &options) {
            Ok(outcomes) => {
                pipeline::index_owed(&mut owed, &outcomes);
                owed.pay(&store.read());
                for outcome in &outcomes {
                    exit = exit.worst(print_outcome(outcome, args.json)?);
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

/// Prints one file's outcome (summary, or its report as one JSON line) and
/// returns the exit code its status asks for.
pub fn print_outcome(outcome: &Outcome, json: bool) -> Result<Exit, Failure> {
    let report = &outcome.report;
    if json {
        output::json_line(report)?;
    } else {
        let mut text = summary::summary(report);
        for path in &outcome.paths {
            text.push_str(&format!("\n  report: {}", path.display()));
        }
        output::println_or_fail(&text)?;
    }
    Ok(exit_for(&report.status))
}

/// The exit code a file's status asks for. A status that is not final
/// (an import still `planned`) means the work is not done: operational.
pub fn exit_for(status: &str) -> Exit {
    match status {
        "applied" | "duplicate" => Exit::Success,
        "partial" | "rejected" => Exit::Rejected,
        _ => Exit::Operational,
    }
}

/// A progress bar on stderr for a large file when stderr is a terminal.
fn progress_for(file: &std::path::Path) -> Option<Progress> {
    let large = std::fs::metadata(file)
        .map(|m| m.len() > PROGRESS_BYTES)
        .unwrap_or(false);
    if !large || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    // A spinner while the file is read and checked (no count is known), a
    // bar of jobs while they are applied.
    let spinner = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let counted =
        ProgressStyle::with_template("{spinner} {elapsed_precise} {msg} {wide_bar} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(spinner.clone());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(Arc::new(move |stage: &str, done: u64, of: u64| {
        bar.set_message(format!("{stage}…"));
        if of == 0 {
            bar.set_style(spinner.clone());
            return;
        }
        bar.set_style(counted.clone());
        bar.set_length(of);
        bar.set_position(done);
        if done >= of {
            bar.finish_and_clear();
        }
    }))
}
