//! What the daemon says about the file in hand (its stage, how far), for
//! systemd's `STATUS=` and `stockdrop status`.

use std::path::{Path, PathBuf};

use super::Progress;
use crate::apply::now;

/// Where the daemon says which file it is on, its stage and how far, for
/// `stockdrop status`: a hidden file in the work folder (private to
/// stockdrop, skipped by the claimed-file listing).
pub fn progress_file(work: &Path) -> PathBuf {
    work.join(".progress")
}

/// The daemon's progress reporter for the file `name`: once the file has
/// been in hand for a second, and then at most once a second, one line —
/// the file, its stage, how far — to systemd's `STATUS=` and to
/// [`progress_file`]. A file done sooner is never announced: a burst of
/// small files would each create and delete the progress file (which
/// costs more than a small file's report on some filesystems), for a line
/// no one could read in time. The name is the uploader's: control
/// characters are replaced, so it cannot add lines to a notification.
pub fn operator_progress(work: &Path, name: &str) -> Progress {
    progress_after(work, name, std::time::Duration::from_secs(1))
}

/// [`operator_progress`], first told `quiet` after it is made.
pub(super) fn progress_after(work: &Path, name: &str, quiet: std::time::Duration) -> Progress {
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let path = progress_file(work);
    let quiet_until = std::time::Instant::now() + quiet;
    let last = std::sync::Mutex::new(None::<std::time::Instant>);
    std::sync::Arc::new(move |stage: &str, done: u64, of: u64| {
        let Ok(mut last) = last.lock() else {
            return;
        };
        let now_ = std::time::Instant::now();
        let due = now_ >= quiet_until
            && last.is_none_or(|t| now_.duration_since(t) >= std::time::Duration::from_secs(1));
        if !due {
            return;
        }
        *last = Some(now_);
        let how_far = match (done, of) {
            (0, 0) => String::new(),
            (done, 0) => format!(" ({done} rows)"),
            (done, of) => format!(" ({done} of {of})"),
        };
        let line = format!("importing {name}: {stage}{how_far}");
        crate::systemd::status(&line);
        // Meaningful only while the daemon runs (`status` shows it only
        // then): never fsynced.
        let text = format!("{line} (at {})\n", now());
        let _ = crate::durable::replace_with_bytes(
            &path,
            crate::durable::Durability::Volatile,
            text.as_bytes(),
        );
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn operator_progress_names_the_file_and_stage_on_one_line() {
        let work = tempfile::tempdir().unwrap();
        let progress = progress_after(
            work.path(),
            "x\nWATCHDOG_USEC=1\ny.csv",
            std::time::Duration::ZERO,
        );
        progress("applying jobs", 3, 20);
        let line = fs::read_to_string(progress_file(work.path())).unwrap();
        assert!(
            line.starts_with("importing x?WATCHDOG_USEC=1?y.csv: applying jobs (3 of 20) (at "),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1, "{line}");
        // At most once a second: the next call within it changes nothing.
        progress("writing reports", 0, 0);
        assert_eq!(
            fs::read_to_string(progress_file(work.path())).unwrap(),
            line
        );
    }

    /// A file done within its quiet start is never announced: no
    /// progress file is made for it.
    #[test]
    fn operator_progress_is_quiet_at_first() {
        let work = tempfile::tempdir().unwrap();
        let progress = progress_after(
            work.path(),
            "small.csv",
            std::time::Duration::from_secs(3600),
        );
        progress("reading", 0, 0);
        progress("applying jobs", 1, 1);
        assert!(!progress_file(work.path()).exists());
    }
}
