//! `notify.command`: a command the operator configures, run after each file
//! with its outcome in the environment (to mail someone when a file is
//! rejected, say). It runs in the background: its failure is logged and
//! never holds up the queue.
//!
//! At most [`MAX_RUNNING`] commands run at once (SPEC §7): a ZIP archive of
//! 1,000 members makes 1,000 outcomes, and starting 1,000 shells at once
//! would take the host's processes. Outcomes wait in a queue of at most
//! [`MAX_WAITING`]; queuing never blocks the daemon, and past that bound an
//! outcome's command is skipped with a warning (its reports are written
//! all the same). When the daemon stops it gives the commands running and
//! waiting up to [`STOP_WAIT`] to finish (a file applied just before a
//! SIGTERM still gets its mail); what is left then is logged, not run.

use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::pipeline::Outcome;

/// How many `notify.command`s run at the same time, at most.
pub const MAX_RUNNING: usize = 4;
/// How many outcomes may wait for a free slot.
pub const MAX_WAITING: usize = 10_000;
/// How long a stopping daemon waits for its commands: well inside systemd's
/// default `TimeoutStopSec` (90 s), after which the unit's processes are
/// killed anyway.
pub const STOP_WAIT: Duration = Duration::from_secs(10);

/// One command to run, with what its log lines say about it.
struct Job {
    command: Command,
    file: String,
    import_id: Option<i64>,
}

struct Slots {
    running: usize,
    waiting: VecDeque<Job>,
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots {
    running: 0,
    waiting: VecDeque::new(),
});
/// Signalled when the last running command's worker ends.
static IDLE: Condvar = Condvar::new();

/// Queues `command` (run through `sh -c`) for one file's outcome; it starts
/// at once when fewer than [`MAX_RUNNING`] are running.
/// `STOCKDROP_INBOX` is the inbox the file came from (SPEC §2.1).
pub fn run(command: &str, outcome: &Outcome, inbox: &str) {
    let mut job = prepare(command, outcome);
    job.command.env("STOCKDROP_INBOX", inbox);
    enqueue(job);
}

/// Starts `job` when a slot is free, else queues it (never blocking).
fn enqueue(job: Job) {
    let Ok(mut slots) = SLOTS.lock() else {
        tracing::warn!(file = %job.file, import_id = job.import_id, "notify.command not run: its queue is broken");
        return;
    };
    if slots.running < MAX_RUNNING {
        slots.running += 1;
        drop(slots);
        if let Err(e) = std::thread::Builder::new()
            .name("notify.command".into())
            .spawn(move || work(job))
        {
            tracing::warn!(error = %e, "cannot start a thread for notify.command");
            if let Ok(mut slots) = SLOTS.lock() {
                slots.running -= 1;
                if slots.running == 0 {
                    IDLE.notify_all();
                }
            }
        }
    } else if slots.waiting.len() < MAX_WAITING {
        slots.waiting.push_back(job);
    } else {
        drop(slots);
        tracing::warn!(file = %job.file, import_id = job.import_id, "notify.command not run: {MAX_WAITING} outcomes already wait for it");
    }
}

/// Runs `job`, then whatever waits, until nothing does; then frees its slot.
fn work(mut job: Job) {
    loop {
        execute(job);
        let Ok(mut slots) = SLOTS.lock() else { return };
        match slots.waiting.pop_front() {
            Some(next) => job = next,
            None => {
                slots.running -= 1;
                if slots.running == 0 {
                    IDLE.notify_all();
                }
                return;
            }
        }
    }
}

/// Waits until every queued and running command has finished, or `limit`
/// has passed; called once, as the daemon stops. Commands still running or
/// waiting then are logged (a running one carries on in its own process).
pub fn finish(limit: Duration) {
    let deadline = Instant::now() + limit;
    let Ok(mut slots) = SLOTS.lock() else { return };
    while slots.running > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        slots = match IDLE.wait_timeout(slots, left) {
            Ok((slots, _)) => slots,
            Err(_) => return,
        };
    }
    if slots.running > 0 || !slots.waiting.is_empty() {
        tracing::warn!(
            running = slots.running,
            not_run = slots.waiting.len(),
            "stopping with notify.commands unfinished after {} s",
            limit.as_secs()
        );
        // Nothing starts once the daemon has said it stops.
        slots.waiting.clear();
    }
}

fn execute(mut job: Job) {
    let (file, import_id) = (&job.file, job.import_id);
    match job.command.spawn().and_then(|mut process| process.wait()) {
        Ok(status) if status.success() => {}
        Ok(status) => tracing::warn!(file = %file, import_id, %status, "notify.command failed"),
        Err(e) => tracing::warn!(file = %file, import_id, error = %e, "cannot run notify.command"),
    }
}

/// The command for one outcome, its environment set. `STOCKDROP_FILE` is
/// the displayable form of the name (`crate::names`).
fn prepare(command: &str, outcome: &Outcome) -> Job {
    let report = &outcome.report;
    let path_ending = |ending: &str| {
        outcome
            .paths
            .iter()
            .find(|p| p.to_string_lossy().ends_with(ending))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .env(
            "STOCKDROP_IMPORT_ID",
            report.import_id.unwrap_or_default().to_string(),
        )
        .env("STOCKDROP_FILE", &report.file)
        .env("STOCKDROP_STATUS", &report.status)
        .env("STOCKDROP_ROWS_TOTAL", report.rows.total.to_string())
        .env("STOCKDROP_ROWS_ACCEPTED", report.rows.accepted.to_string())
        .env("STOCKDROP_ROWS_REJECTED", report.rows.rejected.to_string())
        .env("STOCKDROP_REPORT_JSON", path_ending(".json"))
        .env("STOCKDROP_REPORT_HTML", path_ending(".html"))
        .env("STOCKDROP_ERRORS_CSV", path_ending(".errors.csv"));
    Job {
        command: child,
        file: report.file.clone(),
        import_id: report.import_id,
    }
}

/// Queues `command` for a fault the daemon is retrying (SPEC §2): the
/// file stays claimed; `STOCKDROP_STATUS` is `retrying` and
/// `STOCKDROP_ERROR` says why. Run when the fault begins or its cause
/// changes, not at every attempt.
pub fn fault(command: &str, fault: &crate::daemon::Fault) {
    let mut child = Command::new("sh");
    child
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .env(
            "STOCKDROP_IMPORT_ID",
            fault.import_id.map(|id| id.to_string()).unwrap_or_default(),
        )
        .env("STOCKDROP_FILE", &fault.file)
        .env("STOCKDROP_STATUS", "retrying")
        .env("STOCKDROP_ERROR", &fault.error)
        .env("STOCKDROP_ATTEMPTS", fault.attempts.to_string())
        .env("STOCKDROP_INBOX", &fault.inbox);
    enqueue(Job {
        command: child,
        file: fault.file.clone(),
        import_id: fault.import_id,
    });
}
