//! Named points where a test can make the process die as `kill -9` would.
//!
//! With `STOCKDROP_CRASH_AT=NAME` in the environment, reaching point `NAME`
//! aborts the process at once: no destructors, no flushing, exactly what a
//! power cut or `kill -9` leaves behind. Without the variable, a point costs
//! one environment lookup per file or per location, never per row.
//!
//! Points: `after-plan` (the plan is committed, nothing applied),
//! `after-commit-N` (the Nth location transaction of the process committed),
//! `after-reports` (reports written, import not yet marked finished);
//! and `panic-while-reading`, where the file's reader panics instead (as
//! calamine has on a damaged workbook), which must reject only that file.

use std::sync::atomic::{AtomicU64, Ordering};

static COMMITS: AtomicU64 = AtomicU64::new(0);

/// Aborts if the environment names this point.
pub fn hit(name: &str) {
    if let Ok(wanted) = std::env::var("STOCKDROP_CRASH_AT") {
        if wanted == name {
            eprintln!("stockdrop: crash point {name} reached, aborting (STOCKDROP_CRASH_AT)");
            std::process::abort();
        }
    }
}

/// Panics, as a reader with a bug would, if the environment names this
/// point.
pub fn panic_at(name: &str) {
    if std::env::var("STOCKDROP_CRASH_AT").is_ok_and(|wanted| wanted == name) {
        panic!("crash point {name} reached (STOCKDROP_CRASH_AT)");
    }
}

/// Counts a location commit and aborts at `after-commit-N` if asked.
pub fn hit_commit() {
    let n = COMMITS.fetch_add(1, Ordering::SeqCst) + 1;
    if std::env::var_os("STOCKDROP_CRASH_AT").is_some() {
        hit(&format!("after-commit-{n}"));
    }
}
