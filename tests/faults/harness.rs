//! What every fault scenario needs: a data root, `stockdrop run` as a real
//! child process (the release binary when the suite is run by
//! `tests/faults/run.sh`) whose peak memory is watched, and the accounting
//! that turns what the daemon left behind — imports, jobs, history, reports
//! and originals — into the figures of one scenario line.
//!
//! Nothing here asserts: a scenario that fails prints its failing figures,
//! and the `cargo test` entry points assert on them afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::daemon::DataRoot;

/// Every daemon runs under `ulimit -v` of this many KiB, so a file that
/// makes it allocate without bound aborts it instead of taking the machine
/// (the abort is counted as a crash). SPEC §4.5's bound is 256 MiB
/// resident; this is far above it.
pub const ADDRESS_SPACE_KIB: u64 = 4 * 1024 * 1024;

/// SPEC §4.5: importing any file stays within 256 MiB resident.
pub const MEMORY_BOUND_KIB: u64 = 256 * 1024;

/// The binary under test: `STOCKDROP_FAULTS_BIN` (the release build, set
/// by `run.sh`), else the one cargo built for this test.
pub fn bin() -> PathBuf {
    std::env::var_os("STOCKDROP_FAULTS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stockdrop")))
}

/// How big a run is: `cargo test` (a few quick rounds), `run.sh --quick`,
/// or the full run.
#[derive(Debug, Clone)]
pub struct Scale {
    pub name: &'static str,
    pub crash_rounds: usize,
    pub big_rows: usize,
    pub burst_files: usize,
    pub mutations: usize,
    /// How long an environment fault lasts.
    pub env_fault: Duration,
    pub single_line_bytes: usize,
    /// Whether the mutations take a new random seed (printed, to replay);
    /// `cargo test` uses a fixed one so its runs repeat.
    pub fresh_seed: bool,
}

impl Scale {
    pub fn test() -> Scale {
        Scale {
            name: "test",
            crash_rounds: 6,
            big_rows: 20_000,
            burst_files: 300,
            mutations: 200,
            env_fault: Duration::from_secs(4),
            single_line_bytes: 4 << 20,
            fresh_seed: false,
        }
    }

    pub fn quick() -> Scale {
        Scale {
            name: "quick",
            crash_rounds: 15,
            big_rows: 300_000,
            burst_files: 1_000,
            mutations: 200,
            env_fault: Duration::from_secs(8),
            single_line_bytes: 100 << 20,
            fresh_seed: true,
        }
    }

    pub fn full() -> Scale {
        Scale {
            name: "full",
            crash_rounds: 100,
            big_rows: 300_000,
            burst_files: 10_000,
            mutations: 1_000,
            env_fault: Duration::from_secs(40),
            single_line_bytes: 100 << 20,
            fresh_seed: true,
        }
    }

    /// From `STOCKDROP_FAULTS_SCALE` (`full`, `quick`, `test`).
    pub fn from_env() -> Scale {
        match std::env::var("STOCKDROP_FAULTS_SCALE").as_deref() {
            Ok("full") => Scale::full(),
            Ok("quick") => Scale::quick(),
            _ => Scale::test(),
        }
    }
}

// ---------------------------------------------------------------------------
// The data root.

/// A data root in RAM (`/dev/shm` when usable) with its inbox: a
/// [`DataRoot`] (paths, store reads, run numbering) and what only the suite
/// needs.
pub struct Root {
    pub data: DataRoot,
}

impl std::ops::Deref for Root {
    type Target = DataRoot;

    fn deref(&self) -> &DataRoot {
        &self.data
    }
}

impl Root {
    pub fn new(config: &str) -> Root {
        let root = Root {
            data: DataRoot::new("stockdrop-faults-", config),
        };
        fs::create_dir_all(root.inbox()).expect("create the inbox");
        root
    }

    /// Writes `bytes` under a hidden name and renames it into the inbox, as
    /// a careful uploader does.
    pub fn drop_bytes(&self, name: &str, bytes: &[u8]) {
        let tmp = self.inbox().join(format!(".{name}.uploading"));
        fs::write(&tmp, bytes).expect("write an upload");
        fs::rename(&tmp, self.inbox().join(name)).expect("rename an upload");
    }

    /// Starts `stockdrop run` here.
    pub fn start(&self) -> Proc {
        let log = self.run_log(self.next_run());
        Proc::start(&self.config_path(), log)
    }

    /// Every daemon log of this root, concatenated.
    pub fn logs(&self) -> String {
        (1..=self.runs())
            .map(|n| fs::read_to_string(self.run_log(n)).unwrap_or_default())
            .collect()
    }

    /// Runs `stockdrop ARGS` here (a CLI command beside the daemon), at
    /// most `limit` long; `None` when it had to be killed.
    pub fn cli(&self, args: &[&str], limit: Duration) -> Option<(Option<i32>, String)> {
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("STOCKDROP_CRASH_AT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run stockdrop");
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let out = child.wait_with_output().expect("collect output");
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                return Some((out.status.code(), text));
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `PRAGMA integrity_check` said `ok`.
    pub fn integrity_ok(&self) -> bool {
        let rows = self.rows("PRAGMA integrity_check", |r| r.get::<_, String>(0));
        rows == ["ok"]
    }

    /// (location, sku) → quantity of every inventory record with a sku.
    pub fn stock(&self) -> BTreeMap<(String, String), i64> {
        self.rows(
            "SELECT l.name, i.sku, i.quantity FROM inventory i JOIN locations l ON l.id = i.location_id \
             WHERE i.sku IS NOT NULL",
            |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)),
        )
        .into_iter()
        .collect()
    }

    /// Names in a folder (not hidden), recursively, with the folder they
    /// are in; empty when it is missing.
    pub fn files_under(&self, dir: &Path) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.filter_map(Result::ok) {
                let Ok(t) = e.file_type() else { continue };
                if t.is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, &mut out);
        out
    }

    /// Entries of the inbox and work folders (hidden ones included in
    /// work, where nothing should be left).
    pub fn left_in(&self, dir: &Path) -> Vec<String> {
        match fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// The daemon.

/// A running `stockdrop run`, its log, and a thread that records its peak
/// resident memory (`VmHWM`) until it exits. Killed if dropped running.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    peak_kib: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    pub status: Option<ExitStatus>,
    /// Set when this suite sent the signal that ended it.
    pub killed_by_us: bool,
}

impl Proc {
    fn start(config: &Path, log: PathBuf) -> Proc {
        let out = fs::File::create(&log).expect("create a log");
        let err = out.try_clone().expect("clone a log");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -v {ADDRESS_SPACE_KIB}; exec \"$0\" \"$@\""))
            .arg(bin())
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("STOCKDROP_CRASH_AT")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command.spawn().expect("start stockdrop run");
        let peak_kib = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (pid, peak, stop) = (child.id(), peak_kib.clone(), done.clone());
        std::thread::spawn(move || {
            let path = format!("/proc/{pid}/status");
            while !stop.load(Ordering::Relaxed) {
                let Ok(text) = fs::read_to_string(&path) else {
                    break;
                };
                if let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        });
        Proc {
            child,
            log,
            peak_kib,
            done,
            status: None,
            killed_by_us: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn peak_kib(&self) -> u64 {
        self.peak_kib.load(Ordering::Relaxed)
    }

    /// Waits until it watches the inbox (its signal handlers are in
    /// place); false if it exited or took longer than 20 s.
    pub fn wait_ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if self.log().contains("watching the inbox") {
                return true;
            }
            if self.exited() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether it has exited (by itself or by a signal).
    pub fn exited(&mut self) -> bool {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                self.done.store(true, Ordering::Relaxed);
            }
        }
        self.status.is_some()
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        if !self.exited() {
            self.killed_by_us = true;
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
            self.done.store(true, Ordering::Relaxed);
        }
    }

    /// SIGTERM and up to `limit` for it to exit; then `kill -9`. Returns
    /// whether it exited by itself with code 0.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        if self.exited() {
            return self.status.is_some_and(|s| s.code() == Some(0));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.exited() {
                return self.status.is_some_and(|s| s.code() == Some(0));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        false
    }

    /// It died by a signal this suite did not send (an abort, a crash).
    pub fn crashed(&mut self) -> bool {
        self.exited() && !self.killed_by_us && self.status.is_some_and(|s| s.signal().is_some())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        self.done.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// Waiting.

/// Polls `cond` every 50 ms for at most `limit`; returns the time it took,
/// `None` on a timeout.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// The accounting.

/// One import row, and the name its file was dropped as (from its claimed
/// path `work/<stamp>-<n>_<name>[#member]`).
#[derive(Debug, Clone)]
pub struct Import {
    pub id: i64,
    pub file: String,
    pub status: String,
    pub claimed: String,
    pub dropped: String,
    pub rows_accepted: i64,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub import_id: i64,
    pub item_count: i64,
    pub zeroed: i64,
    pub status: String,
}

impl Root {
    pub fn imports(&self) -> Vec<Import> {
        self.rows(
            "SELECT id, file, status, source_path, rows_accepted FROM imports ORDER BY id",
            |r| {
                let claimed: String = r.get(3)?;
                let base = claimed.rsplit('/').next().unwrap_or_default();
                let base = match base.rsplit_once('#') {
                    Some((b, member)) if member.parse::<u32>().is_ok() => b,
                    _ => base,
                };
                let dropped = base
                    .split_once('_')
                    .map_or(base, |(_, name)| name)
                    .to_string();
                Ok(Import {
                    id: r.get(0)?,
                    file: r.get(1)?,
                    status: r.get(2)?,
                    claimed,
                    dropped,
                    rows_accepted: r.get(4)?,
                })
            },
        )
    }

    pub fn jobs(&self) -> Vec<Job> {
        self.rows(
            "SELECT id, import_id, item_count, zeroed, status FROM jobs ORDER BY id",
            |r| {
                Ok(Job {
                    id: r.get(0)?,
                    import_id: r.get(1)?,
                    item_count: r.get(2)?,
                    zeroed: r.get(3)?,
                    status: r.get(4)?,
                })
            },
        )
    }

    /// job id → (history entries, distinct records).
    pub fn history_per_job(&self) -> BTreeMap<i64, (i64, i64)> {
        let mut records: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (job, record) in self.history() {
            records.entry(job).or_default().push(record);
        }
        records
            .into_iter()
            .map(|(job, ids)| {
                let distinct: BTreeSet<i64> = ids.iter().copied().collect();
                (job, (ids.len() as i64, distinct.len() as i64))
            })
            .collect()
    }

    /// import id → how many JSON reports in the outbox carry it.
    pub fn reports(&self) -> BTreeMap<i64, usize> {
        let mut out = BTreeMap::new();
        for path in self.files_under(&self.outbox()) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".json") || name.starts_with('.') {
                continue;
            }
            let Ok(bytes) = fs::read(&path) else { continue };
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            if let Some(id) = value["import_id"].as_i64() {
                *out.entry(id).or_insert(0) += 1;
            }
        }
        out
    }

    /// The originals kept in archive/ and failed/: file names
    /// `<import id>_<name>`.
    pub fn kept(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for dir in ["archive", "failed"] {
            for path in self.files_under(&self.var().join(dir)) {
                if let Some(n) = path.file_name().and_then(|n| n.to_str()) {
                    out.insert(n.to_string());
                }
            }
        }
        out
    }

    /// Whether every one of `names` has a final import (not `planned`)
    /// and nothing is left in the inbox or work folder.
    pub fn drained(&self, names: &BTreeMap<String, usize>) -> bool {
        if !self.left_in(&self.work()).is_empty() {
            return false;
        }
        let inbox: BTreeSet<String> = self.left_in(&self.inbox()).into_iter().collect();
        if names.keys().any(|n| inbox.contains(n)) {
            return false;
        }
        let imports = self.imports();
        names.iter().all(|(name, claims)| {
            let mine: BTreeSet<&str> = imports
                .iter()
                .filter(|i| &i.dropped == name && i.status != "planned")
                .map(|i| i.claimed.split('#').next().unwrap_or_default())
                .collect();
            mine.len() >= *claims
        })
    }

    /// Counts what became of `names` (name → how many times it was
    /// dropped as a new file): lost, reported more than once, jobs applied
    /// twice or in part. With `every_item_changes`, a success job must
    /// have one history row per item (the scenario made every item
    /// change its record), so fewer is a job applied in part.
    pub fn tally(&self, names: &BTreeMap<String, usize>, every_item_changes: bool) -> Tally {
        let imports = self.imports();
        let jobs = self.jobs();
        let history = self.history_per_job();
        let reports = self.reports();
        let kept = self.kept();
        let mut t = Tally::default();
        let by_id: BTreeMap<i64, &Import> = imports.iter().map(|i| (i.id, i)).collect();
        for (name, claims) in names {
            let mine: Vec<&Import> = imports.iter().filter(|i| &i.dropped == name).collect();
            // Claimed paths (one per time the file was taken) and members.
            let mut slots: BTreeMap<&str, usize> = BTreeMap::new();
            for i in &mine {
                *slots.entry(i.claimed.as_str()).or_insert(0) += 1;
            }
            let claimed: BTreeSet<&str> = slots
                .keys()
                .map(|c| c.split('#').next().unwrap_or_default())
                .collect();
            let finals: Vec<&&Import> = mine.iter().filter(|i| i.status != "planned").collect();
            let reported = finals
                .iter()
                .filter(|i| reports.contains_key(&i.id))
                .count();
            let original_kept = finals
                .iter()
                .any(|i| kept.contains(&format!("{}_{name}", i.id)));
            if finals.is_empty() || reported == 0 || !original_kept {
                t.lost += 1;
                t.lost_names.push(name.clone());
            }
            if claimed.len() > *claims {
                t.extra += claimed.len() - claims;
                t.extra_names.push(name.clone());
            }
            for (slot, n) in &slots {
                if *n > 1 {
                    t.extra += n - 1;
                    t.extra_names.push(format!("{name} ({slot} ×{n})"));
                }
            }
            for i in &mine {
                if let Some(n) = reports.get(&i.id) {
                    if *n > 1 {
                        t.extra += n - 1;
                        t.extra_names
                            .push(format!("{name} (import {} ×{n} reports)", i.id));
                    }
                }
            }
        }
        for job in &jobs {
            let Some(import) = by_id.get(&job.import_id) else {
                continue;
            };
            let (rows, distinct) = history.get(&job.id).copied().unwrap_or((0, 0));
            if job.status == "success" {
                if rows > job.item_count + job.zeroed || distinct < rows {
                    t.twice += 1;
                    t.twice_jobs.push(job.id);
                } else if every_item_changes && rows < job.item_count + job.zeroed {
                    t.part += 1;
                    t.part_jobs.push(job.id);
                }
            } else if import.status != "planned"
                && matches!(job.status.as_str(), "pending" | "working")
            {
                // A finished import with jobs never applied: in part.
                t.part += 1;
                t.part_jobs.push(job.id);
            }
        }
        t.left = self.left_in(&self.work()).len();
        t
    }
}

/// What [`Root::tally`] counted.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub lost: usize,
    pub extra: usize,
    pub twice: usize,
    pub part: usize,
    pub left: usize,
    pub lost_names: Vec<String>,
    pub extra_names: Vec<String>,
    pub twice_jobs: Vec<i64>,
    pub part_jobs: Vec<i64>,
}

// ---------------------------------------------------------------------------
// The figures of one scenario.

/// One scenario's line: the figures, then what went wrong, if anything.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub scenario: String,
    pub files: usize,
    pub faults: usize,
    pub lost: usize,
    pub twice: usize,
    pub part: usize,
    pub panics: usize,
    pub extra: usize,
    /// Records whose quantity differs from applying each file once.
    pub store_diff: Option<usize>,
    pub integrity: Option<bool>,
    pub peak_kib: u64,
    pub drain: Option<Duration>,
    /// Other measured facts (`status` said …, seconds to recover, …).
    pub notes: Vec<String>,
    /// Why the scenario fails (empty: it holds).
    pub failures: Vec<String>,
    /// The fault was not made clear (nothing in the log, or `status` said
    /// nothing): a failure too, but not of what the files became.
    pub unclear: Vec<String>,
    /// Set when the scenario could not run here (and why).
    pub skipped: Option<String>,
}

impl Figures {
    pub fn new(scenario: &str) -> Figures {
        Figures {
            scenario: scenario.to_string(),
            ..Figures::default()
        }
    }

    /// Adds a tally's counts and names what it found.
    pub fn add_tally(&mut self, t: &Tally) {
        self.lost += t.lost;
        self.twice += t.twice;
        self.part += t.part;
        self.extra += t.extra;
        if !t.lost_names.is_empty() {
            self.fail(format!("lost or unreported: {}", short_list(&t.lost_names)));
        }
        if !t.extra_names.is_empty() {
            self.fail(format!("extra reports: {}", short_list(&t.extra_names)));
        }
        if !t.twice_jobs.is_empty() {
            self.fail(format!("jobs applied twice: {:?}", t.twice_jobs));
        }
        if !t.part_jobs.is_empty() {
            self.fail(format!(
                "jobs applied in part: {:?}",
                short_list(&t.part_jobs)
            ));
        }
        if t.left > 0 {
            self.fail(format!("{} file(s) left in work/", t.left));
        }
    }

    /// Records the peak memory and crashes of a daemon that has exited:
    /// one panic per death by a signal it was not sent, else one per
    /// `panicked` line (a panic caught in a thread).
    pub fn add_proc(&mut self, p: &mut Proc) {
        self.peak_kib = self.peak_kib.max(p.peak_kib());
        let log = p.log();
        let cause = log
            .lines()
            .find(|l| l.contains("panicked at") || l.contains("memory allocation of"))
            .or_else(|| log.lines().last())
            .unwrap_or_default()
            .trim()
            .to_string();
        if p.crashed() {
            self.panics += 1;
            let signal = p.status.and_then(|s| s.signal()).unwrap_or_default();
            self.fail(format!("the daemon died by signal {signal}: {cause}"));
        } else {
            let panicked = log.lines().filter(|l| l.contains("panicked")).count();
            if panicked > 0 {
                self.panics += panicked;
                self.fail(format!("panicked in the log: {cause}"));
            }
        }
    }

    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    pub fn fail(&mut self, s: impl Into<String>) {
        self.failures.push(s.into());
    }

    pub fn ok(&self) -> bool {
        self.core_ok() && self.unclear.is_empty()
    }

    /// Every file kept, reported once, applied once and completely, the
    /// store right, no panic, and drained — whatever the log and `status`
    /// said meanwhile.
    pub fn core_ok(&self) -> bool {
        self.skipped.is_some()
            || (self.failures.is_empty()
                && self.drain.is_some()
                && self.lost == 0
                && self.twice == 0
                && self.part == 0
                && self.panics == 0
                && self.extra == 0
                && self.store_diff.unwrap_or(0) == 0
                && self.integrity != Some(false))
    }

    /// The scenario's line, then its notes and failures indented.
    pub fn render(&self) -> String {
        let mut s = format!("{:<22}", self.scenario);
        if let Some(why) = &self.skipped {
            let _ = write!(s, " SKIPPED: {why}");
            return s;
        }
        let _ = write!(
            s,
            " files={} faults={} lost={} twice={} part={} panics={} extra_reports={}",
            self.files, self.faults, self.lost, self.twice, self.part, self.panics, self.extra
        );
        if let Some(d) = self.store_diff {
            let _ = write!(s, " store_diff={d}");
        }
        if let Some(ok) = self.integrity {
            let _ = write!(s, " integrity={}", if ok { "ok" } else { "FAILED" });
        }
        let _ = write!(s, " peak_rss={}MiB", self.peak_kib.div_ceil(1024));
        match self.drain {
            Some(d) => {
                let _ = write!(s, " drain={:.1}s", d.as_secs_f64());
            }
            None => s.push_str(" drain=-"),
        }
        s.push_str(if self.ok() { "  OK" } else { "  FAIL" });
        for n in &self.notes {
            let _ = write!(s, "\n    · {n}");
        }
        for f in self.failures.iter().chain(&self.unclear) {
            let _ = write!(s, "\n    ✗ {f}");
        }
        s
    }

    /// Prints the line (stderr, which `cargo test -- --nocapture` and
    /// `run.sh` show) and returns self.
    pub fn print(self) -> Figures {
        let text: String = self
            .render()
            .lines()
            .map(|l| format!("FAULTS {l}\n"))
            .collect();
        eprint!("{text}");
        self
    }

    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.ok(), "fault scenario failed:\n{}", self.render());
    }

    #[track_caller]
    pub fn assert_core_ok(&self) {
        assert!(self.core_ok(), "fault scenario failed:\n{}", self.render());
    }
}

fn short_list<T: std::fmt::Debug>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(8).map(|i| format!("{i:?}")).collect();
    if items.len() > 8 {
        format!("{} … ({} in all)", shown.join(", "), items.len())
    } else {
        shown.join(", ")
    }
}

/// The log lines that contain `needle`, at most `n`, trimmed of their
/// timestamp.
pub fn log_lines(log: &str, needle: &str, n: usize) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(needle))
        .take(n)
        .map(|l| {
            l.split_once(' ')
                .map_or(l, |(_, rest)| rest)
                .trim()
                .to_string()
        })
        .collect()
}
