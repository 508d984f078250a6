//! `stockdrop run` as a systemd service (SPEC §2 Shutdown, §7): the
//! `Type=notify` protocol seen from a test-bound `NOTIFY_SOCKET` (READY,
//! STATUS, RELOADING with MONOTONIC_USEC, WATCHDOG, STOPPING), SIGHUP with
//! an invalid config, JSON logs, the single-daemon lock and the
//! one-filesystem check.
//!
//! Every wait polls with a deadline; a timeout prints the notifications
//! received so far and the daemon's logs.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::ops::Deref;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{
    csv, shm_root, signal, wait_until, write_tail, Daemon, DataRoot, Describe, BIN, FAST_WATCH,
    POLL,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Helpers.

/// A temporary data root ([`DataRoot`]) with its inbox; the daemon's
/// stdout and stderr go to files of their own, and the notify socket lives
/// there too.
struct Env {
    root: DataRoot,
}

impl Deref for Env {
    type Target = DataRoot;

    fn deref(&self) -> &DataRoot {
        &self.root
    }
}

/// The test's end of `NOTIFY_SOCKET`: every datagram received, in order.
struct Notifications {
    socket: UnixDatagram,
    path: PathBuf,
    received: Vec<(Instant, String)>,
}

impl Env {
    fn new(config: &str) -> Env {
        let env = Env {
            root: DataRoot::new("stockdrop-test-", config),
        };
        fs::create_dir_all(env.inbox()).expect("create inbox");
        env
    }

    /// Binds the notify socket the daemon will be pointed at.
    fn notify_socket(&self) -> Notifications {
        let path = self.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(POLL))
            .expect("set a read timeout");
        Notifications {
            socket,
            path,
            received: Vec::new(),
        }
    }

    /// The import id of `name` once it is in the archive (`<id>_<name>`
    /// under a dated folder).
    fn archived_id(&self, name: &str) -> Option<i64> {
        let suffix = format!("_{name}");
        for day in fs::read_dir(self.var().join("archive")).ok()?.flatten() {
            for file in fs::read_dir(day.path()).into_iter().flatten().flatten() {
                let file_name = file.file_name().to_string_lossy().into_owned();
                if let Some(id) = file_name.strip_suffix(&suffix) {
                    if let Ok(id) = id.parse() {
                        return Some(id);
                    }
                }
            }
        }
        None
    }

    /// A `stockdrop --config <toml> run` command, its environment cleared of
    /// whatever the test runner's might carry into it.
    fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(self.config_path())
            .arg("run")
            .env_remove("STOCKDROP_CONFIG")
            .env_remove("STOCKDROP_CRASH_AT")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }

    /// Starts `stockdrop run` with extra environment variables; stdout and
    /// stderr go to files of their own (the daemon's log is its stderr).
    fn start(&self, vars: &[(&str, &str)]) -> Daemon {
        let n = self.next_run();
        let stdout = self.path().join(format!("run-{n}.stdout"));
        let stderr = self.path().join(format!("run-{n}.stderr"));
        let mut command = self.command();
        command
            .stdout(fs::File::create(&stdout).expect("create stdout log"))
            .stderr(fs::File::create(&stderr).expect("create stderr log"));
        for (key, value) in vars {
            command.env(key, value);
        }
        let child = command.spawn().expect("start stockdrop run");
        Daemon { child, log: stderr }
    }

    /// Starts `stockdrop run` talking to `notify`.
    fn start_notified(&self, notify: &Notifications, vars: &[(&str, &str)]) -> Daemon {
        let socket = notify.path.to_str().expect("UTF-8 socket path").to_string();
        let mut all = vec![("NOTIFY_SOCKET", socket.as_str())];
        all.extend_from_slice(vars);
        self.start(&all)
    }

    /// Polls `cond` until it holds; fails after `deadline` with the logs.
    #[track_caller]
    fn wait_for(&self, deadline: Duration, what: &str, cond: impl FnMut() -> bool) {
        wait_until(self, deadline, what, cond);
    }
}

impl Describe for Env {
    const DEADLINE: Duration = DEADLINE;

    /// The daemons' logs, for failure messages.
    fn describe(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.runs() {
            for stream in ["stdout", "stderr"] {
                let log = self.path().join(format!("run-{n}.{stream}"));
                write_tail(&mut out, &format!("run {n} {stream}"), &log, 25);
            }
        }
        out
    }
}

impl Notifications {
    /// Receives what has arrived, waiting at most one read timeout.
    fn receive(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.socket.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    self.received.push((Instant::now(), text));
                    // Drain without waiting once something came.
                    self.socket
                        .set_nonblocking(true)
                        .expect("set the socket non-blocking");
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("cannot read the notify socket: {e}"),
            }
        }
        self.socket
            .set_nonblocking(false)
            .expect("set the socket blocking");
    }

    /// The index of the first datagram at or after `from` that satisfies
    /// `pred`, receiving until one does; fails after [`DEADLINE`].
    #[track_caller]
    fn wait_for(
        &mut self,
        env: &Env,
        from: usize,
        what: &str,
        pred: impl Fn(&Message<'_>) -> bool,
    ) -> usize {
        let start = Instant::now();
        loop {
            if let Some(i) = self
                .received
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, (_, text))| pred(&Message::parse(text)))
                .map(|(i, _)| i)
            {
                return i;
            }
            if start.elapsed() >= DEADLINE {
                panic!(
                    "timed out after {DEADLINE:?} waiting for a notification: {what}\n{}\n{}",
                    self.describe(),
                    env.describe()
                );
            }
            self.receive();
        }
    }

    fn message(&self, i: usize) -> Message<'_> {
        Message::parse(&self.received[i].1)
    }

    fn describe(&self) -> String {
        let mut out = format!("--- {} notifications ---\n", self.received.len());
        for (i, (_, text)) in self.received.iter().enumerate() {
            let _ = writeln!(out, "{i}: {text:?}");
        }
        out
    }
}

/// One datagram: newline-separated `KEY=value` assignments.
#[derive(Debug)]
struct Message<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Message<'a> {
    fn parse(text: &'a str) -> Message<'a> {
        Message(
            text.lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.split_once('=').unwrap_or((l, "")))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn is(&self, key: &str, value: &str) -> bool {
        self.get(key) == Some(value)
    }
}

// ---------------------------------------------------------------------------
// The notify protocol.

#[test]
fn notifies_ready_status_reloading_and_stopping() {
    let env = Env::new(FAST_WATCH);
    let mut notify = env.notify_socket();
    let mut daemon = env.start_notified(&notify, &[]);

    // READY=1 after the start-up scan, with a status line in the same datagram.
    let ready = notify.wait_for(&env, 0, "READY=1", |m| m.is("READY", "1"));
    let status = notify.message(ready).get("STATUS");
    assert!(
        status.is_some_and(|s| s.contains("0 files today")),
        "READY=1 without a STATUS= line of counts: {:?}\n{}",
        notify.message(ready),
        notify.describe()
    );

    // A processed file shows in the status: count and last outcome.
    env.drop_file("x.csv", &csv(&[("11", "A", 4), ("11", "B", 5)]));
    let processed = notify.wait_for(&env, ready + 1, "STATUS= with x.csv applied", |m| {
        m.get("STATUS")
            .is_some_and(|s| s.contains("1 file today") && s.contains("applied x.csv"))
    });
    assert!(
        env.archived_id("x.csv").is_some(),
        "x.csv reported as applied but not archived\n{}",
        env.describe()
    );

    // SIGHUP: RELOADING=1 with MONOTONIC_USEC in one datagram, then READY=1.
    signal(daemon.pid(), "HUP");
    let reloading = notify.wait_for(&env, processed + 1, "RELOADING=1", |m| {
        m.is("RELOADING", "1")
    });
    let usec = notify.message(reloading).get("MONOTONIC_USEC");
    assert!(
        usec.is_some_and(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit())),
        "RELOADING=1 without MONOTONIC_USEC=<digits>: {:?}",
        notify.message(reloading)
    );
    let usec: u64 = usec.unwrap_or_default().parse().expect("MONOTONIC_USEC");
    assert!(usec > 0, "MONOTONIC_USEC=0");
    let ready_again = notify.wait_for(&env, reloading + 1, "READY=1 after the reload", |m| {
        m.is("READY", "1")
    });
    assert!(
        notify.message(ready_again).get("STATUS").is_some(),
        "READY=1 after the reload without STATUS=: {:?}",
        notify.message(ready_again)
    );
    env.wait_for(DEADLINE, "the reload to be logged", || {
        daemon.log().contains("configuration reloaded")
    });

    // SIGTERM: STOPPING=1, exit 0.
    signal(daemon.pid(), "TERM");
    let exit = daemon.wait_exit(&env, DEADLINE);
    notify.wait_for(&env, ready_again + 1, "STOPPING=1", |m| {
        m.is("STOPPING", "1")
    });
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", env.describe());

    // No watchdog without WATCHDOG_USEC; every datagram is KEY=value lines.
    notify.receive();
    for (_, text) in &notify.received {
        let m = Message::parse(text);
        assert!(m.get("WATCHDOG").is_none(), "{}", notify.describe());
        assert!(
            text.lines().all(|l| l.is_empty() || l.contains('=')),
            "not KEY=value lines: {text:?}"
        );
    }
}

#[test]
fn pings_the_watchdog_when_watchdog_usec_is_set() {
    let env = Env::new(FAST_WATCH);
    let mut notify = env.notify_socket();
    // WATCHDOG_PID stays unset: it would have to be the child's own pid.
    let mut daemon = env.start_notified(&notify, &[("WATCHDOG_USEC", "200000")]);
    notify.wait_for(&env, 0, "READY=1", |m| m.is("READY", "1"));
    let first = notify.wait_for(&env, 0, "WATCHDOG=1", |m| m.is("WATCHDOG", "1"));
    let second = notify.wait_for(&env, first + 1, "a second WATCHDOG=1", |m| {
        m.is("WATCHDOG", "1")
    });
    let third = notify.wait_for(&env, second + 1, "a third WATCHDOG=1", |m| {
        m.is("WATCHDOG", "1")
    });
    let span = notify.received[third].0 - notify.received[first].0;
    assert!(
        span <= Duration::from_secs(1),
        "three WATCHDOG=1 took {span:?} with WATCHDOG_USEC=200000 (a ping every 100 ms expected)\n{}",
        notify.describe()
    );

    signal(daemon.pid(), "TERM");
    let exit = daemon.wait_exit(&env, DEADLINE);
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", env.describe());
}

#[test]
fn sighup_with_an_invalid_config_keeps_the_old_one_and_reports_ready() {
    let env = Env::new(FAST_WATCH);
    let mut notify = env.notify_socket();
    let mut daemon = env.start_notified(&notify, &[]);
    let ready = notify.wait_for(&env, 0, "READY=1", |m| m.is("READY", "1"));

    env.set_config(&format!("{FAST_WATCH}[import]\non_error = \"bogus\"\n"));
    signal(daemon.pid(), "HUP");
    let reloading = notify.wait_for(&env, ready + 1, "RELOADING=1", |m| m.is("RELOADING", "1"));
    assert!(
        notify.message(reloading).get("MONOTONIC_USEC").is_some(),
        "{:?}",
        notify.message(reloading)
    );
    let ready_again = notify.wait_for(
        &env,
        reloading + 1,
        "READY=1 after the refused reload",
        |m| m.is("READY", "1"),
    );
    env.wait_for(DEADLINE, "the invalid config to be refused", || {
        daemon.log().contains("keeping the old one")
    });
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("keeping the old one"))
        .unwrap_or_default();
    assert!(
        line.contains("invalid") && line.contains("import.on_error"),
        "the log line does not name the invalid key import.on_error: {line:?}\n{}",
        env.describe()
    );
    assert!(
        !log.contains("configuration reloaded"),
        "an invalid config was reloaded\n{}",
        env.describe()
    );

    // Still running with the old config: a new file is processed.
    env.drop_file("y.csv", &csv(&[("11", "A", 1), ("11", "B", 2)]));
    notify.wait_for(&env, ready_again + 1, "STATUS= with y.csv applied", |m| {
        m.get("STATUS")
            .is_some_and(|s| s.contains("1 file today") && s.contains("applied y.csv"))
    });
    env.wait_for(DEADLINE, "y.csv to be archived", || {
        env.archived_id("y.csv").is_some()
    });

    signal(daemon.pid(), "TERM");
    let exit = daemon.wait_exit(&env, DEADLINE);
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", env.describe());
}

// ---------------------------------------------------------------------------
// Logs.

/// Every string value anywhere in a JSON value, with its key.
fn fields_of<'a>(value: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                fields_of(v, k, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                fields_of(v, key, out);
            }
        }
        other => out.push((key, other)),
    }
}

fn has_field(line: &Value, key: &str, expected: &Value) -> bool {
    let mut fields = Vec::new();
    fields_of(line, "", &mut fields);
    fields.iter().any(|(k, v)| *k == key && *v == expected)
}

#[test]
fn json_logs_are_json_lines_and_carry_the_file_and_import_id() {
    let env = Env::new(&format!("{FAST_WATCH}[log]\nformat = \"json\"\n"));
    let mut daemon = env.start(&[]);
    daemon.wait_ready(&env);
    env.drop_file("j.csv", &csv(&[("11", "A", 1), ("12", "B", 2)]));
    env.wait_for(DEADLINE, "j.csv to be archived", || {
        env.archived_id("j.csv").is_some()
    });
    env.wait_for(DEADLINE, "the \"done\" line", || {
        daemon.log().contains("\"done\"")
    });
    signal(daemon.pid(), "TERM");
    let exit = daemon.wait_exit(&env, DEADLINE);
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", env.describe());
    let id = env.archived_id("j.csv").expect("j.csv archived");

    let log = daemon.log();
    let mut lines = Vec::new();
    for line in log.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) => lines.push(v),
            _ => panic!("a stderr line is not a JSON object: {line:?}\n{log}"),
        }
    }
    assert!(!lines.is_empty(), "no log lines");
    let file = Value::from("j.csv");
    let import_id = Value::from(id);

    let done: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "done")
        .collect();
    assert_eq!(done.len(), 1, "one \"done\" line expected\n{log}");
    let done = done[0];
    assert!(
        has_field(done, "file", &file),
        "the done line does not carry file=j.csv: {done}"
    );
    assert!(
        has_field(done, "import_id", &import_id),
        "the done line does not carry import_id={id}: {done}"
    );
    // The file span itself records the import id once it is known.
    assert_eq!(done["span"]["name"], "file", "{done}");
    assert_eq!(done["span"]["file"], file, "{done}");
    assert_eq!(done["span"]["import_id"], import_id, "{done}");

    // Every line about the file (inside its span) carries its name and,
    // the file being read without trouble, its import id (SPEC §7).
    let about: Vec<&Value> = lines
        .iter()
        .filter(|l| l["span"]["name"] == "file")
        .collect();
    assert!(about.len() >= 2, "too few lines about j.csv\n{log}");
    for line in about {
        assert!(has_field(line, "file", &file), "no file=j.csv: {line}");
        assert!(
            has_field(line, "import_id", &import_id),
            "no import_id={id}: {line}"
        );
    }
}

// ---------------------------------------------------------------------------
// Start-up refusals.

#[test]
fn a_second_run_on_the_same_data_exits_3() {
    let env = Env::new(FAST_WATCH);
    let mut first = env.start(&[]);
    first.wait_ready(&env);

    let out = env.command().output().expect("run a second stockdrop run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{:?}\n{stderr}\n{}",
        out.status,
        env.describe()
    );
    assert!(
        stderr.contains("another `stockdrop run` is already running"),
        "{stderr}"
    );

    // The first one is unaffected.
    assert!(
        first.child.try_wait().expect("try_wait").is_none(),
        "the first daemon stopped\n{}",
        env.describe()
    );
    signal(first.pid(), "TERM");
    let exit = first.wait_exit(&env, DEADLINE);
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", env.describe());
}

#[test]
fn work_on_another_filesystem_than_the_inbox_exits_2() {
    let Some(shm) = shm_root("stockdrop-test-") else {
        eprintln!("note: /dev/shm is not usable; cannot put two paths on different filesystems");
        return;
    };
    let other = tempfile::tempdir().expect("temp dir");
    let shm_dev = fs::metadata(shm.path()).expect("stat /dev/shm").dev();
    let other_dev = fs::metadata(other.path()).expect("stat temp dir").dev();
    if shm_dev == other_dev {
        eprintln!(
            "note: {} and {} are on the same device; skipping the cross-filesystem check",
            shm.path().display(),
            other.path().display()
        );
        return;
    }
    let work = other.path().join("work");
    let toml = shm.path().join("stockdrop.toml");
    fs::write(
        &toml,
        format!(
            "[paths]\nwork = {:?}\n{FAST_WATCH}",
            work.to_str().expect("UTF-8 temp path")
        ),
    )
    .expect("write stockdrop.toml");

    let out = Command::new(BIN)
        .arg("--config")
        .arg(&toml)
        .arg("run")
        .env_remove("STOCKDROP_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run stockdrop run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{:?}\n{stderr}", out.status);
    assert!(
        stderr.contains("paths.work") && stderr.contains("different filesystem"),
        "{stderr}"
    );
    assert!(
        !work.join(".stockdrop.lock").exists(),
        "the daemon went on after the check"
    );
}
