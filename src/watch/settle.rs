//! Settling (SPEC §2): a file is ready once its size and modification time,
//! as observed on the daemon's own monotonic clock, have not changed for
//! `watch.settle_ms`. An old modification time (SFTP clients preserve the
//! source's) does not make a file ready sooner: the clock starts when the
//! daemon first sees the current size and time.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::time::{Duration, Instant, SystemTime};

use super::scan::Entry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Observation {
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

#[derive(Debug, Default)]
pub struct Settler {
    /// By raw name (what the filesystem holds).
    seen: HashMap<OsString, Observation>,
}

impl Settler {
    /// Records a scan taken at `now`; returns the entries that are ready,
    /// oldest modification time first, then by name. A ready file is
    /// forgotten: the caller claims it (or it reappears and settles again).
    pub fn observe(&mut self, entries: Vec<Entry>, now: Instant, settle: Duration) -> Vec<Entry> {
        let present: std::collections::HashSet<&OsStr> =
            entries.iter().map(|e| e.name.as_os_str()).collect();
        self.seen
            .retain(|name, _| present.contains(name.as_os_str()));
        let mut ready = Vec::new();
        for entry in entries {
            let current = Observation {
                size: entry.size,
                modified: entry.modified,
                since: now,
            };
            match self.seen.get(&entry.name) {
                Some(seen) if seen.size == current.size && seen.modified == current.modified => {
                    if now.duration_since(seen.since) >= settle {
                        self.seen.remove(&entry.name);
                        ready.push(entry);
                    }
                }
                _ => {
                    self.seen.insert(entry.name.clone(), current);
                }
            }
        }
        ready.sort_by(|a, b| {
            a.modified
                .cmp(&b.modified)
                .then_with(|| a.name.cmp(&b.name))
        });
        ready
    }

    /// When the next file could become ready, if any is waiting.
    pub fn next_deadline(&self, settle: Duration) -> Option<Instant> {
        self.seen.values().map(|o| o.since + settle).min()
    }

    /// How many files are waiting to settle.
    pub fn waiting(&self) -> usize {
        self.seen.len()
    }

    /// The raw names of the files waiting to settle.
    pub fn names(&self) -> impl Iterator<Item = &OsStr> {
        self.seen.keys().map(OsString::as_os_str)
    }

    /// Starts a file's settle clock again at `now`: it was written since
    /// the last scan, or a process still holds it open for writing.
    pub fn restart(&mut self, entry: &Entry, now: Instant) {
        self.seen.insert(
            entry.name.clone(),
            Observation {
                size: entry.size,
                modified: entry.modified,
                since: now,
            },
        );
    }

    /// Forgets a file, so it settles again from scratch.
    pub fn forget(&mut self, name: &OsStr) {
        self.seen.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn entry(name: &str, size: u64, secs: u64) -> Entry {
        Entry {
            name: name.into(),
            path: PathBuf::from(name),
            size,
            modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            identity: crate::open::Identity { dev: 1, ino: size },
        }
    }

    #[test]
    fn a_growing_file_is_never_ready() {
        let settle = Duration::from_millis(100);
        let mut s = Settler::default();
        let t0 = Instant::now();
        for step in 0..10u64 {
            let now = t0 + Duration::from_millis(60 * step);
            assert!(s
                .observe(vec![entry("a.csv", step * 10, step)], now, settle)
                .is_empty());
        }
    }

    #[test]
    fn an_unchanged_file_is_ready_after_settle_time_even_if_old() {
        let settle = Duration::from_millis(100);
        let mut s = Settler::default();
        let t0 = Instant::now();
        // mtime far in the past does not count.
        assert!(s.observe(vec![entry("a.csv", 5, 1)], t0, settle).is_empty());
        assert!(s
            .observe(
                vec![entry("a.csv", 5, 1)],
                t0 + Duration::from_millis(50),
                settle
            )
            .is_empty());
        let ready = s.observe(
            vec![entry("a.csv", 5, 1)],
            t0 + Duration::from_millis(100),
            settle,
        );
        assert_eq!(ready.len(), 1);
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn ready_files_come_oldest_first_then_by_name() {
        let settle = Duration::ZERO;
        let mut s = Settler::default();
        let t0 = Instant::now();
        let files = vec![
            entry("c.csv", 1, 5),
            entry("b.csv", 1, 9),
            entry("a.csv", 1, 5),
        ];
        s.observe(files.clone(), t0, settle);
        let ready: Vec<OsString> = s
            .observe(files, t0, settle)
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(ready, ["a.csv", "c.csv", "b.csv"]);
    }

    #[test]
    fn a_restarted_file_waits_a_whole_settle_period_again() {
        let settle = Duration::from_millis(100);
        let mut s = Settler::default();
        let t0 = Instant::now();
        let a = entry("a.csv", 5, 1);
        assert!(s.observe(vec![a.clone()], t0, settle).is_empty());
        // Written again (same size and time) just before it would settle.
        s.restart(&a, t0 + Duration::from_millis(90));
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(s.observe(vec![a.clone()], at(150), settle).is_empty());
        assert_eq!(s.next_deadline(settle), Some(at(190)));
        assert_eq!(s.observe(vec![a], at(190), settle).len(), 1);
    }
}
