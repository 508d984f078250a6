//! Shared helpers for the tests that run the daemon (in process in
//! `daemon.rs`, as a child process in `daemon_process.rs`, `systemd.rs` and
//! `operations.rs`): a data root in RAM, dropping files into its inbox,
//! listing folders, reading the store without blocking the daemon, polling
//! with a deadline, signals, and a `stockdrop run` child that is killed if a
//! test panics.
//!
//! Each test file keeps what only it needs (its `Env`/`Root` with its own
//! `describe()` and store rows); those wrap a [`DataRoot`].

use std::cell::Cell;
use std::fmt::{Display, Write as _};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_stockdrop");
/// How often every wait looks again.
pub const POLL: Duration = Duration::from_millis(20);
/// Files are ready 200 ms after they stop changing; a rescan every second.
pub const FAST_WATCH: &str = "[watch]\nsettle_ms = 200\nrescan_interval_s = 1\n";

// ---------------------------------------------------------------------------
// The data root.

/// A temporary data root: `stockdrop.toml`, `var/` (the default data
/// folder) and numbered logs of the processes a test started.
pub struct DataRoot {
    pub dir: TempDir,
    /// Numbering for log and output files.
    runs: Cell<usize>,
}

impl DataRoot {
    /// A root in RAM when possible (see [`temp_root`]), named `<prefix>…`,
    /// whose `stockdrop.toml` holds `config`.
    pub fn new(prefix: &str, config: &str) -> DataRoot {
        let root = DataRoot {
            dir: temp_root(prefix),
            runs: Cell::new(0),
        };
        root.set_config(config);
        root
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("stockdrop.toml")
    }

    /// Replaces the config file.
    pub fn set_config(&self, config: &str) {
        fs::write(self.config_path(), config).expect("write stockdrop.toml");
    }

    pub fn var(&self) -> PathBuf {
        self.path().join("var")
    }
    pub fn inbox(&self) -> PathBuf {
        self.var().join("inbox")
    }
    pub fn work(&self) -> PathBuf {
        self.var().join("work")
    }
    pub fn outbox(&self) -> PathBuf {
        self.var().join("outbox")
    }
    pub fn archive_today(&self) -> PathBuf {
        self.var().join("archive").join(today())
    }
    pub fn failed_today(&self) -> PathBuf {
        self.var().join("failed").join(today())
    }
    pub fn database(&self) -> PathBuf {
        self.var().join("stockdrop.db")
    }

    /// Writes a file into the inbox under a hidden name, then renames it,
    /// as a careful uploader does; returns its path. The inbox must exist.
    pub fn drop_file(&self, name: &str, content: &str) -> PathBuf {
        let tmp = self.inbox().join(format!(".{name}.uploading"));
        fs::write(&tmp, content).expect("write upload");
        let path = self.inbox().join(name);
        fs::rename(&tmp, &path).expect("rename upload");
        path
    }

    /// Non-hidden entries of a directory, sorted; empty when it is missing.
    pub fn names(&self, dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// The number of the next process started in this root (1, 2, …).
    pub fn next_run(&self) -> usize {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        n
    }

    /// How many processes have been numbered so far.
    pub fn runs(&self) -> usize {
        self.runs.get()
    }

    /// The log file of run `n`.
    pub fn run_log(&self, n: usize) -> PathBuf {
        self.path().join(format!("run-{n}.log"))
    }

    /// `stockdrop --config <this root's> ARGS`, with nothing of the test's
    /// own environment that would change what the binary does (config,
    /// crash point, systemd, journald, log filter) and no stdin.
    pub fn stockdrop_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("STOCKDROP_CONFIG")
            .env_remove("STOCKDROP_CRASH_AT")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        command
    }

    /// Spawns `command` (usually a [`DataRoot::stockdrop_command`] with
    /// `run`) as the next run, its output going to [`DataRoot::run_log`].
    pub fn spawn_run(&self, command: Command) -> Daemon {
        Daemon::spawn_logged(command, self.run_log(self.next_run()))
    }

    /// The last `lines` lines of every run's log, for failure messages.
    pub fn write_logs(&self, out: &mut String, lines: usize) {
        for n in 1..=self.runs() {
            write_tail(out, &format!("run {n} log"), &self.run_log(n), lines);
        }
    }

    /// A read-only connection to the store, `None` before it exists. It
    /// never takes the write lock, so polling does not hold up the daemon.
    pub fn read_store(&self) -> Option<rusqlite::Connection> {
        let path = self.database();
        if !path.exists() {
            return None;
        }
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        conn.busy_timeout(Duration::from_secs(5)).ok()?;
        Some(conn)
    }

    /// (job id, record id) of every history entry, by job; empty before
    /// the store exists.
    pub fn history(&self) -> Vec<(i64, i64)> {
        self.read_store()
            .and_then(|conn| stockdrop::store::history::all_entries(&conn).ok())
            .unwrap_or_default()
    }

    /// Rows of a query; empty when the store (or the table) is not there.
    pub fn rows<T>(
        &self,
        sql: &str,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Vec<T> {
        let Some(conn) = self.read_store() else {
            return Vec::new();
        };
        let Ok(mut stmt) = conn.prepare(sql) else {
            return Vec::new();
        };
        stmt.query_map([], map)
            .and_then(|rows| rows.collect())
            .unwrap_or_default()
    }
}

/// A temporary directory named `<prefix>…` in `/dev/shm`, when that is
/// usable.
pub fn shm_root(prefix: &str) -> Option<TempDir> {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return None;
    }
    tempfile::Builder::new().prefix(prefix).tempdir_in(shm).ok()
}

/// A temporary directory, in RAM when `/dev/shm` is usable: the daemon and
/// the store fsync every step, which on a disk makes a burst of files slow
/// without testing anything more (a killed process loses nothing that is in
/// the page cache).
pub fn temp_root(prefix: &str) -> TempDir {
    shm_root(prefix).unwrap_or_else(|| {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir")
    })
}

/// Today's UTC date, as the daemon names its dated folders.
pub fn today() -> String {
    days_ago(0)
}

/// The UTC date `days` days ago, as `YYYY-MM-DD`.
pub fn days_ago(days: i64) -> String {
    (chrono::Utc::now().date_naive() - chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

/// A CSV of `(location, sku, quantity)` rows.
pub fn csv<Q: Display>(rows: &[(&str, &str, Q)]) -> String {
    let mut out = String::from("location,sku,quantity\n");
    for (location, sku, quantity) in rows {
        let _ = writeln!(out, "{location},{sku},{quantity}");
    }
    out
}

// ---------------------------------------------------------------------------
// Failure messages.

/// The tree under `dir`, one entry a line, indented by depth, folders
/// ending in `/`; with `detail`, files show their size and links and
/// special files are marked (links are never followed).
pub fn tree(dir: &Path, detail: bool) -> String {
    fn walk(dir: &Path, depth: usize, detail: bool, out: &mut String) {
        let mut entries: Vec<_> = match fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(Result::ok).collect(),
            Err(_) => return,
        };
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let meta = fs::symlink_metadata(e.path()).ok();
            let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
            let kind = match &meta {
                Some(m) if m.is_dir() => "/".to_string(),
                _ if !detail => String::new(),
                Some(m) if m.file_type().is_symlink() => " -> (link)".to_string(),
                Some(m) if m.is_file() => format!(" ({} bytes)", m.len()),
                _ => " (special)".to_string(),
            };
            let _ = writeln!(
                out,
                "{}{}{kind}",
                "  ".repeat(depth),
                e.file_name().to_string_lossy()
            );
            if is_dir {
                walk(&e.path(), depth + 1, detail, out);
            }
        }
    }
    let mut out = String::new();
    walk(dir, 0, detail, &mut out);
    out
}

/// Appends the last `n` lines of the file at `path` (none when it cannot
/// be read) under a `--- <title> (last <k> lines) ---` heading.
pub fn write_tail(out: &mut String, title: &str, path: &Path, n: usize) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(n)..];
    let _ = writeln!(out, "--- {title} (last {} lines) ---", tail.len());
    for line in tail {
        let _ = writeln!(out, "{line}");
    }
}

// ---------------------------------------------------------------------------
// Waiting.

/// A data root whose state a timed-out wait prints.
pub trait Describe {
    /// How long a wait for the daemon to get ready may take.
    const DEADLINE: Duration;

    /// What the test should see when a wait times out (folders, store,
    /// logs).
    fn describe(&self) -> String;
}

/// Polls `cond` every [`POLL`] until it holds; fails after `deadline` with
/// the state of `root`.
#[track_caller]
pub fn wait_until(
    root: &impl Describe,
    deadline: Duration,
    what: &str,
    mut cond: impl FnMut() -> bool,
) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() >= deadline {
            panic!(
                "timed out after {deadline:?} waiting for {what}\n{}",
                root.describe()
            );
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// The daemon as a child process.

/// Sends signal `name` (`TERM`, `KILL`, `HUP`, …) to `pid`, as `kill -NAME`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// A running `stockdrop run`; killed if dropped while still running, so a
/// failing test leaves no daemon behind.
pub struct Daemon {
    pub child: Child,
    /// The file its log lines (stderr) go to.
    pub log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    /// Spawns `command` with stdout and stderr both going to a new file
    /// `log`.
    pub fn spawn_logged(mut command: Command, log: PathBuf) -> Daemon {
        let out = fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = command
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start stockdrop run");
        Daemon { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit by itself.
    #[track_caller]
    pub fn wait_exit(&mut self, root: &impl Describe, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if start.elapsed() >= deadline {
                panic!(
                    "stockdrop run (pid {}) did not exit within {deadline:?}\n{}",
                    self.pid(),
                    root.describe()
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until the daemon watches the inbox: its signal handlers are
    /// installed and it holds the lock by then (a SIGTERM before that kills
    /// it like any process).
    #[track_caller]
    pub fn wait_ready<R: Describe>(&self, root: &R) {
        wait_until(
            root,
            R::DEADLINE,
            "the daemon to log \"watching the inbox\"",
            || self.log().contains("watching the inbox"),
        );
    }

    /// Sends SIGTERM once the daemon is ready, and waits for its exit.
    #[track_caller]
    pub fn terminate<R: Describe>(&mut self, root: &R) -> ExitStatus {
        self.wait_ready(root);
        signal(self.pid(), "TERM");
        self.wait_exit(root, R::DEADLINE)
    }

    /// SIGKILL, as `kill -9`, and reaps the process.
    pub fn kill(&mut self) {
        signal(self.pid(), "KILL");
        let _ = self.child.wait();
    }
}
