//! `notify.command`: a command the operator configures, run after each file
//! with its outcome in the environment (to mail someone when a file is
//! rejected, say). It runs in the background: its failure is logged and
//! never holds up the queue.

use std::process::{Command, Stdio};

use crate::pipeline::Outcome;

/// Starts `command` (through `sh -c`) for one file's outcome.
pub fn run(command: &str, outcome: &Outcome) {
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
    start(child, report.file.clone(), report.import_id);
}

/// Starts `command` for a fault the daemon is retrying (SPEC §2): the
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
        .env("STOCKDROP_ATTEMPTS", fault.attempts.to_string());
    start(child, fault.file.clone(), fault.import_id);
}

fn start(mut child: Command, file: String, import_id: Option<i64>) {
    match child.spawn() {
        Ok(mut process) => {
            std::thread::spawn(move || match process.wait() {
                Ok(status) if status.success() => {}
                Ok(status) => {
                    tracing::warn!(file = %file, import_id, %status, "notify.command failed")
                }
                Err(e) => {
                    tracing::warn!(file = %file, import_id, error = %e, "notify.command failed")
                }
            });
        }
        Err(e) => {
            tracing::warn!(file = %file, import_id, error = %e, "cannot start notify.command")
        }
    }
}
