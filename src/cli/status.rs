//! `stockdrop status`: what a person asks first — is the daemon running,
//! what is waiting, how the last day went, and the last error.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{open_read, output, CmdResult, Exit};
use crate::config::Config;
use crate::issue::count;
use crate::store::queries::{self, LastError};
use crate::watch::scan::Filter;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this inbox: its waiting files, its imports and jobs, its last
    /// error.
    #[arg(long, value_name = "NAME")]
    inbox: Option<String>,
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Serialize)]
struct Status {
    daemon_running: bool,
    inbox_waiting: usize,
    /// Files waiting in each inbox (SPEC §2.1), by inbox name.
    inboxes: BTreeMap<String, usize>,
    work_claimed: usize,
    /// The file the daemon is on, its stage and how far.
    in_progress: Option<String>,
    imports_24h: BTreeMap<String, i64>,
    jobs_24h: BTreeMap<String, i64>,
    last_error: Option<LastError>,
    /// The operational failure the running daemon is retrying, if any.
    retrying: Option<crate::daemon::Fault>,
}

/// The daemon holds an flock on its lock file while it runs and writes its
/// pid there (see `daemon`). Reading the pid and looking for that process
/// never takes the lock, so `status` cannot stop a daemon from starting.
fn daemon_running(config: &Config) -> bool {
    let lock = config.paths.work.join(crate::daemon::LOCK_FILE);
    let Ok(text) = std::fs::read_to_string(lock) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<u32>() else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    // A pid left by a daemon killed with -9 may since name another process.
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim().starts_with("stockdrop"))
        .unwrap_or(false)
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let only = super::inbox_filter(config, args.inbox.as_deref())?;
    let mut filter = Filter::new(&config.ignore, config.done_marker.as_deref()).ok();
    let inboxes: BTreeMap<String, usize> = config
        .inboxes
        .iter()
        .filter(|i| only.is_none_or(|name| name == i.name))
        .map(|i| {
            let waiting = filter
                .as_mut()
                .and_then(|f| f.scan(&i.path).ok())
                .map_or(0, |e| e.len());
            (i.name.clone(), waiting)
        })
        .collect();
    let inbox_waiting = inboxes.values().sum();
    let work_claimed = crate::claim::claimed_files(&config.paths.work).map_or(0, |files| {
        files
            .iter()
            .filter(|f| only.is_none_or(|name| crate::claim::inbox_of(f) == name))
            .count()
    });
    let since = (chrono::Utc::now() - chrono::Duration::hours(24))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (imports_24h, jobs_24h, last_error) = match open_read(config)? {
        Some(store) => {
            let read = store.read();
            let (imports, jobs) = queries::counts_since_in(&read, &since, only)?;
            (imports, jobs, queries::last_error_in(&read, only)?)
        }
        None => Default::default(),
    };
    let running = daemon_running(config);
    // While the daemon retries a fault, that is the last error.
    let retrying = running
        .then(|| crate::daemon::read_fault(&config.paths.work))
        .flatten()
        .filter(|f| only.is_none_or(|name| f.inbox == name));
    let last_error = match &retrying {
        Some(f) => Some(LastError {
            import_id: f.import_id.unwrap_or_default(),
            file: f.file.clone(),
            status: "retrying".into(),
            finished_at: None,
            code: Some("operational-error".into()),
            message: Some(format!(
                "{} (attempt {}, failing since {}; the file stays claimed and is retried until the cause is gone)",
                f.error, f.attempts, f.since
            )),
        }),
        None => last_error,
    };
    let in_progress = std::fs::read_to_string(crate::pipeline::progress_file(&config.paths.work))
        .ok()
        .filter(|_| running)
        .map(|line| line.trim().to_string());
    let status = Status {
        daemon_running: running,
        inbox_waiting,
        inboxes,
        work_claimed,
        in_progress,
        imports_24h,
        jobs_24h,
        last_error,
        retrying,
    };
    if args.json {
        output::json(&status)?;
        return Ok(Exit::Success);
    }
    let counts = |m: &BTreeMap<String, i64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut text = format!(
        "daemon:        {}\ninbox:         {} waiting\nwork:          {} in hand\nlast 24 hours: files: {}\n               jobs: {}",
        if status.daemon_running { "running" } else { "not running" },
        count(status.inbox_waiting as u64, "file", "files"),
        count(status.work_claimed as u64, "file", "files"),
        counts(&status.imports_24h),
        counts(&status.jobs_24h),
    );
    if status.inboxes.len() > 1 || only.is_some() {
        let each: Vec<String> = status
            .inboxes
            .iter()
            .map(|(name, waiting)| format!("{name} {waiting}"))
            .collect();
        text.push_str(&format!("\ninboxes:       {} waiting", each.join(", ")));
    }
    if let Some(line) = &status.in_progress {
        text.push_str(&format!("\nnow:           {line}"));
    }
    match (&status.retrying, &status.last_error) {
        (Some(f), _) => text.push_str(&format!(
            "\nlast error:    retrying {}{} since {} (attempt {}): {}; the file stays claimed and is retried until the cause is gone",
            f.file,
            f.import_id.map_or(String::new(), |id| format!(" (import {id})")),
            f.since,
            f.attempts,
            f.error
        )),
        (None, Some(e)) => text.push_str(&format!(
            "\nlast error:    import {} ({}, {}) at {}: {}",
            e.import_id,
            e.file,
            e.status,
            e.finished_at.as_deref().unwrap_or("-"),
            e.message.as_deref().unwrap_or("-")
        )),
        (None, None) => text.push_str("\nlast error:    none"),
    }
    output::println_or_fail(&text)?;
    Ok(Exit::Success)
}
