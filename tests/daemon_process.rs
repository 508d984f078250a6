//! The daemon as a real process (SPEC §2 crash safety and shutdown, §7):
//! `stockdrop run` started as a child, stopped with SIGTERM, killed with
//! SIGKILL at random moments, or aborted at named crash points
//! (`STOCKDROP_CRASH_AT`), then restarted; what it leaves behind must show
//! every file handled exactly once.
//!
//! Every wait polls with a deadline; a timeout prints the `var/` tree, the
//! store and the daemon's logs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::ops::Deref;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::daemon::{
    csv, signal, today, tree, wait_until, write_tail, Daemon, DataRoot, Describe, BIN, FAST_WATCH,
};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Helpers.

/// A temporary data root ([`DataRoot`]) with its inbox, and what this file
/// reads from its store.
struct Env {
    root: DataRoot,
}

impl Deref for Env {
    type Target = DataRoot;

    fn deref(&self) -> &DataRoot {
        &self.root
    }
}

#[derive(Debug, Clone)]
#[allow(dead_code)]
struct Import {
    id: i64,
    file: String,
    status: String,
    archived_path: Option<String>,
}

#[derive(Debug, Clone)]
struct Job {
    id: i64,
    import_id: i64,
    location: String,
    item_count: i64,
    status: String,
}

impl Env {
    fn new(config: &str) -> Env {
        let env = Env {
            root: DataRoot::new("stockdrop-test-", config),
        };
        fs::create_dir_all(env.inbox()).expect("create inbox");
        env
    }

    /// Starts `stockdrop run`, optionally aborting at a crash point; its
    /// output goes to `run-<n>.log`.
    fn start(&self, crash_at: Option<&str>) -> Daemon {
        let n = self.next_run();
        let log = self.path().join(format!("run-{n}.log"));
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(self.config_path())
            .arg("run")
            .env_remove("STOCKDROP_CRASH_AT")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null());
        if let Some(point) = crash_at {
            command.env("STOCKDROP_CRASH_AT", point);
        }
        Daemon::spawn_logged(command, log)
    }

    /// Runs a listing command of the binary and parses its JSON.
    fn cli_json(&self, args: &[&str]) -> Value {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("STOCKDROP_CRASH_AT")
            .output()
            .expect("run stockdrop");
        assert!(
            out.status.success(),
            "stockdrop {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    fn imports(&self) -> Vec<Import> {
        self.rows(
            "SELECT id, file, status, archived_path FROM imports ORDER BY id",
            |r| {
                Ok(Import {
                    id: r.get(0)?,
                    file: r.get(1)?,
                    status: r.get(2)?,
                    archived_path: r.get(3)?,
                })
            },
        )
    }

    fn jobs(&self) -> Vec<Job> {
        self.rows(
            "SELECT id, import_id, location, item_count, status FROM jobs ORDER BY id",
            |r| {
                Ok(Job {
                    id: r.get(0)?,
                    import_id: r.get(1)?,
                    location: r.get(2)?,
                    item_count: r.get(3)?,
                    status: r.get(4)?,
                })
            },
        )
    }

    /// (location, sku) → (record id, quantity).
    fn inventory(&self) -> BTreeMap<(String, String), (i64, i64)> {
        self.rows("SELECT l.name, i.sku, i.id, i.quantity FROM inventory i JOIN locations l ON l.id = i.location_id", |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
                (r.get(2)?, r.get(3)?),
            ))
        })
        .into_iter()
        .collect()
    }

    /// The JSON reports in the outbox whose name starts with `<stem>.`.
    fn json_reports_of(&self, stem: &str) -> Vec<String> {
        self.names(&self.outbox())
            .into_iter()
            .filter(|n| n.ends_with(".json"))
            .filter(|n| {
                n.strip_prefix(stem)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .and_then(|rest| rest.strip_suffix(".json"))
                    .is_some_and(|id| id.parse::<i64>().is_ok())
            })
            .collect()
    }

    /// Polls `cond` every 20 ms until it holds; fails after `deadline` with
    /// the state of the data root.
    #[track_caller]
    fn wait_for(&self, deadline: Duration, what: &str, cond: impl FnMut() -> bool) {
        wait_until(self, deadline, what, cond);
    }

    /// Every one of `files` has a finished import, its original has left
    /// the inbox and work, and it is in the archive or failed folder.
    fn all_done(&self, files: &[String]) -> bool {
        let imports = self.imports();
        let inbox = self.names(&self.inbox());
        let archived: BTreeSet<String> = self
            .names(&self.archive_today())
            .into_iter()
            .chain(self.names(&self.var().join("failed").join(today())))
            .collect();
        self.names(&self.work()).is_empty()
            && files.iter().all(|f| {
                !inbox.contains(f)
                    && imports.iter().any(|i| {
                        &i.file == f
                            && i.status != "planned"
                            && archived.contains(&format!("{}_{f}", i.id))
                    })
            })
    }
}

impl Describe for Env {
    const DEADLINE: Duration = DEADLINE;

    /// The `var/` tree, the store and the logs, for failure messages.
    fn describe(&self) -> String {
        let mut out = String::from("--- var/ ---\n");
        out.push_str(&tree(&self.var(), false));
        let _ = writeln!(out, "--- imports ---");
        for i in self.imports() {
            let _ = writeln!(out, "{i:?}");
        }
        let _ = writeln!(out, "--- jobs ---");
        for j in self.jobs() {
            let _ = writeln!(out, "{j:?}");
        }
        for n in 1..=self.runs() {
            let log = self.path().join(format!("run-{n}.log"));
            write_tail(&mut out, &format!("run {n} log"), &log, 25);
        }
        out
    }
}

/// What a file sets: (location, sku, quantity) per row.
type Rows = Vec<(String, String, i64)>;

/// A small xorshift generator: no dev-dependency, and the seed is printed
/// so a failing sequence can be replayed with `STOCKDROP_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("STOCKDROP_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("random kills: STOCKDROP_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------
// Shutdown.

#[test]
fn sigterm_stops_the_daemon_with_exit_code_0_after_processing() {
    let env = Env::new(FAST_WATCH);
    env.drop_file("before.csv", &csv(&[("11", "A", 4), ("11", "B", 5)]));
    let mut daemon = env.start(None);
    let files = ["before.csv".to_string()];
    env.wait_for(DEADLINE, "before.csv to be processed", || {
        env.all_done(&files)
    });
    let status = daemon.terminate(&env);
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM must exit 0, got {status:?}\n{}",
        env.describe()
    );

    let imports = env.cli_json(&["imports", "--json"]);
    let imports = imports.as_array().expect("imports array");
    assert_eq!(imports.len(), 1, "{imports:?}");
    assert_eq!(imports[0]["file"], "before.csv");
    assert_eq!(imports[0]["status"], "applied");
    let id = imports[0]["import_id"].as_i64().expect("import_id");
    assert!(env
        .archive_today()
        .join(format!("{id}_before.csv"))
        .is_file());
    let stock = env.cli_json(&["stock", "--json"]);
    let mut quantities: Vec<(String, i64)> = stock
        .as_array()
        .expect("stock array")
        .iter()
        .map(|r| {
            (
                r["sku"].as_str().unwrap_or_default().to_string(),
                r["quantity"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    quantities.sort();
    assert_eq!(quantities, [("A".to_string(), 4), ("B".to_string(), 5)]);
}

#[test]
fn sigterm_right_after_start_exits_0() {
    let env = Env::new(FAST_WATCH);
    let mut daemon = env.start(None);
    env.wait_for(DEADLINE, "the daemon to create its folders", || {
        env.work().is_dir() && env.var().join("stockdrop.db").exists()
    });
    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());
}

#[test]
fn sigint_stops_the_daemon_with_exit_code_0() {
    let env = Env::new(FAST_WATCH);
    let mut daemon = env.start(None);
    daemon.wait_ready(&env);
    signal(daemon.pid(), "INT");
    let status = daemon.wait_exit(&env, DEADLINE);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());
}

#[test]
fn sigterm_during_a_file_finishes_it_or_leaves_it_claimed_unapplied() {
    let env = Env::new(FAST_WATCH);
    let mut rows = String::from("location,sku,quantity\n");
    for i in 0..20_000 {
        let _ = writeln!(rows, "11,S{i},{}", i % 50);
    }
    env.drop_file("big.csv", &rows);
    let mut daemon = env.start(None);
    daemon.wait_ready(&env);
    let start = Instant::now();
    while env.names(&env.work()).is_empty() {
        assert!(
            start.elapsed() < DEADLINE,
            "big.csv never claimed\n{}",
            env.describe()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());
    let imports = env.imports();
    let files = ["big.csv".to_string()];
    if imports.is_empty() {
        // Left claimed, nothing of it applied.
        assert_eq!(env.names(&env.work()).len(), 1, "{}", env.describe());
        assert!(env.jobs().is_empty(), "{}", env.describe());
    } else {
        // Finished before stopping.
        assert!(env.all_done(&files), "{}", env.describe());
    }

    let mut daemon = env.start(None);
    env.wait_for(DEADLINE, "big.csv to be finished", || env.all_done(&files));
    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());
    let imports = env.imports();
    assert_eq!(imports.len(), 1, "{}", env.describe());
    assert_eq!(imports[0].status, "applied", "{}", env.describe());
    assert_eq!(
        env.history().len(),
        20_000,
        "every item applied once\n{}",
        env.describe()
    );
    assert_eq!(env.json_reports_of("big").len(), 1, "{}", env.describe());
}

#[test]
fn sighup_reloads_the_config_and_keeps_the_old_one_when_invalid() {
    let env = Env::new(FAST_WATCH);
    let mut daemon = env.start(None);
    daemon.wait_ready(&env);

    // Invalid: the old config stays, and the daemon keeps running.
    env.set_config(&format!("{FAST_WATCH}[import]\nitems_per_job = 0\n"));
    signal(daemon.pid(), "HUP");
    env.wait_for(DEADLINE, "the invalid config to be refused", || {
        daemon.log().contains("keeping the old one")
    });
    env.drop_file("a.csv", &csv(&[("11", "A", 1), ("11", "B", 2)]));
    let a = ["a.csv".to_string()];
    env.wait_for(DEADLINE, "a.csv to be finished", || env.all_done(&a));

    // Valid: one item per job from now on.
    env.set_config(&format!("{FAST_WATCH}[import]\nitems_per_job = 1\n"));
    signal(daemon.pid(), "HUP");
    env.wait_for(DEADLINE, "the new config to be loaded", || {
        daemon.log().contains("configuration reloaded")
    });
    env.drop_file("b.csv", &csv(&[("12", "A", 1), ("12", "B", 2)]));
    let b = ["b.csv".to_string()];
    env.wait_for(DEADLINE, "b.csv to be finished", || env.all_done(&b));
    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());

    let imports = env.imports();
    let jobs = env.jobs();
    let shape = |file: &str| -> Vec<i64> {
        let id = imports.iter().find(|i| i.file == file).expect("import").id;
        jobs.iter()
            .filter(|j| j.import_id == id)
            .map(|j| j.item_count)
            .collect()
    };
    assert_eq!(shape("a.csv"), [2], "{}", env.describe());
    assert_eq!(shape("b.csv"), [1, 1], "{}", env.describe());
}

#[test]
fn run_once_processes_the_inbox_and_exits_0() {
    let env = Env::new(FAST_WATCH);
    env.drop_file("one.csv", &csv(&[("11", "A", 1)]));
    let out = Command::new(BIN)
        .arg("--config")
        .arg(env.config_path())
        .args(["run", "--once"])
        .env_remove("STOCKDROP_CRASH_AT")
        .stdin(Stdio::null())
        .output()
        .expect("run --once");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.all_done(&["one.csv".to_string()]), "{}", env.describe());
}

#[test]
fn run_once_leaves_a_file_still_being_written_and_exits() {
    let env = Env::new(FAST_WATCH);
    env.drop_file("one.csv", &csv(&[("11", "A", 1)]));
    // A writer that never finishes: the file stays open for writing (and
    // grows once) for as long as `run --once` runs.
    let held = env.inbox().join("held.csv");
    let mut writer = fs::File::create(&held).expect("create held.csv");
    writer
        .write_all(b"location,sku,quantity\n11,B,2\n")
        .expect("write held.csv");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(env.config_path())
        .args(["run", "--once", "--wait", "1"])
        .env_remove("STOCKDROP_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run --once");
    while child.try_wait().expect("wait for run --once").is_none() {
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!(
                "run --once still waits after {DEADLINE:?}\n{}",
                env.describe()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("run --once output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{:?}\n{stderr}", out.status);
    assert!(env.all_done(&["one.csv".to_string()]), "{}", env.describe());
    assert!(
        held.is_file(),
        "held.csv stays in the inbox\n{}",
        env.describe()
    );
    let left: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("left in the inbox for the next run"))
        .collect();
    assert!(
        left.len() == 1 && left[0].contains("held.csv"),
        "one line naming held.csv\n{stderr}"
    );
    drop(writer);
}

#[test]
fn a_second_daemon_never_imports_a_file_the_first_one_has_in_hand() {
    let env = Env::new(FAST_WATCH);
    let mut rows = String::from("location,sku,quantity\n");
    for i in 0..10_000 {
        let _ = writeln!(rows, "11,S{i},{}", i % 50);
    }
    env.drop_file("big.csv", &rows);
    let mut first = env.start(None);
    let start = Instant::now();
    while env.names(&env.work()).is_empty() {
        assert!(
            start.elapsed() < DEADLINE,
            "big.csv never claimed\n{}",
            env.describe()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // E.g. an operator's manual `stockdrop run` while the service runs.
    let mut second = env.start(None);
    let files = ["big.csv".to_string()];
    env.wait_for(DEADLINE, "big.csv to be finished", || env.all_done(&files));
    // Give the second daemon time to act on what it saw.
    std::thread::sleep(Duration::from_millis(1500));
    // (Refusing to start next to a running daemon would be fine too.)
    if second.child.try_wait().expect("try_wait").is_none() {
        second.terminate(&env);
    }
    let status = first.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());
    let imports = env.imports();
    assert_eq!(
        imports.len(),
        1,
        "big.csv was imported by both daemons\n{}",
        env.describe()
    );
    assert_eq!(imports[0].status, "applied", "{}", env.describe());
    assert_eq!(env.json_reports_of("big").len(), 1, "{}", env.describe());
    assert!(env.names(&env.work()).is_empty(), "{}", env.describe());
}

// ---------------------------------------------------------------------------
// Crash points.

/// Three locations, two items each: planned as three jobs of two items.
fn three_locations() -> String {
    csv(&[
        ("11", "A", 1),
        ("11", "B", 2),
        ("12", "A", 3),
        ("12", "B", 4),
        ("13", "A", 5),
        ("13", "B", 6),
    ])
}

/// Runs the daemon with `STOCKDROP_CRASH_AT=point` and checks it aborted
/// there (SIGABRT, and its log says the point was reached).
#[track_caller]
fn run_crashing_at(env: &Env, point: &str) {
    let mut daemon = env.start(Some(point));
    let status = daemon.wait_exit(env, DEADLINE);
    assert_eq!(
        status.signal(),
        Some(6),
        "expected an abort (SIGABRT) at {point}, got {status:?}\n{}",
        env.describe()
    );
    assert!(
        daemon
            .log()
            .contains(&format!("crash point {point} reached")),
        "the crash point {point} was not reached\n{}",
        env.describe()
    );
}

/// Aborts `run` at `point` with a three-location file in the inbox, checks
/// the point was reached, changes the config so a new plan would differ,
/// restarts without the crash point, and checks the file ended exactly
/// once, as first planned.
fn crash_and_recover(point: &str) {
    let env = Env::new(FAST_WATCH);
    env.drop_file("multi.csv", &three_locations());
    run_crashing_at(&env, point);
    // What the crash left, as a check that the point is where it says.
    let imports = env.imports();
    match point {
        "after-claim" => {
            assert!(imports.is_empty(), "{}", env.describe());
            assert_eq!(env.names(&env.work()).len(), 1, "{}", env.describe());
        }
        "after-plan" | "after-commit-1" | "after-reports" => {
            assert_eq!(imports.len(), 1, "{}", env.describe());
            assert_eq!(imports[0].status, "planned", "{}", env.describe());
            assert_eq!(env.names(&env.work()).len(), 1, "{}", env.describe());
            let done = env.jobs().iter().filter(|j| j.status == "success").count();
            let expected = match point {
                "after-plan" => 0,
                "after-commit-1" => 1,
                _ => 3,
            };
            assert_eq!(done, expected, "{}", env.describe());
        }
        "after-archive" => {
            assert_eq!(imports.len(), 1, "{}", env.describe());
            assert!(env.names(&env.work()).is_empty(), "{}", env.describe());
            assert_eq!(
                env.names(&env.archive_today()),
                [format!("{}_multi.csv", imports[0].id)],
                "{}",
                env.describe()
            );
        }
        _ => unreachable!(),
    }

    // A new plan would now be six jobs of one item.
    env.set_config(&format!(
        "{FAST_WATCH}[import]\nitems_per_job = 1\non_error = \"reject-file\"\n"
    ));
    let mut daemon = env.start(None);
    let files = ["multi.csv".to_string()];
    env.wait_for(
        DEADLINE,
        "multi.csv to be finished after the restart",
        || env.all_done(&files),
    );
    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());

    let imports = env.imports();
    assert_eq!(
        imports.len(),
        1,
        "one import of multi.csv\n{}",
        env.describe()
    );
    let import = &imports[0];
    assert_eq!(import.file, "multi.csv");
    assert_eq!(import.status, "applied", "{}", env.describe());

    let jobs: Vec<Job> = env
        .jobs()
        .into_iter()
        .filter(|j| j.import_id == import.id)
        .collect();
    assert_eq!(jobs.len(), env.jobs().len(), "{}", env.describe());
    let shape: Vec<(String, i64)> = jobs
        .iter()
        .map(|j| (j.location.clone(), j.item_count))
        .collect();
    let expected: Vec<(String, i64)> = if point == "after-claim" {
        // Nothing was planned before the crash: the new config plans it.
        ["11", "11", "12", "12", "13", "13"]
            .iter()
            .map(|l| (l.to_string(), 1))
            .collect()
    } else {
        // The stored plan is applied, whatever the config says now.
        ["11", "12", "13"]
            .iter()
            .map(|l| (l.to_string(), 2))
            .collect()
    };
    assert_eq!(shape, expected, "{}", env.describe());
    assert!(
        jobs.iter().all(|j| j.status == "success"),
        "{}",
        env.describe()
    );

    // Every record was written by exactly one of the import's jobs, once.
    let job_ids: BTreeSet<i64> = jobs.iter().map(|j| j.id).collect();
    let history = env.history();
    assert!(
        history.iter().all(|(job, _)| job_ids.contains(job)),
        "{history:?}"
    );
    let inventory = env.inventory();
    assert_eq!(inventory.len(), 6, "{inventory:?}");
    for ((location, sku), (record, _)) in &inventory {
        let rows = history.iter().filter(|(_, r)| r == record).count();
        assert_eq!(
            rows, 1,
            "record {location}/{sku} has {rows} history rows\n{history:?}"
        );
    }
    for job in &jobs {
        let rows = history.iter().filter(|(j, _)| *j == job.id).count();
        assert_eq!(rows as i64, job.item_count, "job {job:?}: {history:?}");
    }
    let quantities: Vec<(String, String, i64)> = inventory
        .iter()
        .map(|((l, s), (_, q))| (l.clone(), s.clone(), *q))
        .collect();
    let expected: Vec<(String, String, i64)> = [
        ("11", "A", 1),
        ("11", "B", 2),
        ("12", "A", 3),
        ("12", "B", 4),
        ("13", "A", 5),
        ("13", "B", 6),
    ]
    .iter()
    .map(|(l, s, q)| (l.to_string(), s.to_string(), *q))
    .collect();
    assert_eq!(quantities, expected);

    // One report, the original archived, nothing left behind.
    let reports = env.json_reports_of("multi");
    assert_eq!(
        reports,
        [format!("multi.{}.json", import.id)],
        "{}",
        env.describe()
    );
    let report: Value = serde_json::from_str(
        &fs::read_to_string(env.outbox().join(&reports[0])).expect("read report"),
    )
    .expect("report JSON");
    assert_eq!(report["status"], "applied");
    assert_eq!(report["jobs"].as_array().map(Vec::len), Some(jobs.len()));
    assert!(
        env.archive_today()
            .join(format!("{}_multi.csv", import.id))
            .is_file(),
        "{}",
        env.describe()
    );
    assert!(env.names(&env.work()).is_empty(), "{}", env.describe());
    assert!(env.names(&env.inbox()).is_empty(), "{}", env.describe());
}

#[test]
fn crash_after_claim_is_finished_at_the_next_start() {
    crash_and_recover("after-claim");
}

#[test]
fn crash_after_plan_is_finished_at_the_next_start() {
    crash_and_recover("after-plan");
}

#[test]
fn crash_after_the_first_commit_is_finished_at_the_next_start() {
    crash_and_recover("after-commit-1");
}

#[test]
fn crash_after_reports_is_finished_at_the_next_start() {
    crash_and_recover("after-reports");
}

#[test]
fn crash_after_archive_is_finished_at_the_next_start() {
    crash_and_recover("after-archive");
}

#[test]
fn a_done_marker_is_removed_even_when_the_claim_was_interrupted() {
    let config = format!("{FAST_WATCH}done_marker = \".done\"\n");
    let env = Env::new(&config);
    env.drop_file("m.csv", &csv(&[("11", "A", 1)]));
    fs::write(env.inbox().join("m.csv.done"), "").unwrap();
    let mut daemon = env.start(Some("after-claim"));
    let status = daemon.wait_exit(&env, DEADLINE);
    assert_eq!(status.signal(), Some(6), "{status:?}\n{}", env.describe());

    let mut daemon = env.start(None);
    let files = ["m.csv".to_string()];
    env.wait_for(DEADLINE, "m.csv to be finished after the restart", || {
        env.all_done(&files)
    });
    // Give a removal at the next scan a chance before judging.
    std::thread::sleep(Duration::from_millis(300));
    let marker_left = env.inbox().join("m.csv.done").exists();
    // The next upload of m.csv, its marker not written yet: it must wait.
    env.drop_file("m.csv", &csv(&[("11", "A", 2)]));
    std::thread::sleep(Duration::from_millis(800));
    let imports_of_m = env.imports().iter().filter(|i| i.file == "m.csv").count();
    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());
    assert!(
        !marker_left,
        "the done marker of a file that was processed is still in the inbox\n{}",
        env.describe()
    );
    assert_eq!(
        imports_of_m,
        1,
        "a new m.csv without its own marker was processed (stale marker)\n{}",
        env.describe()
    );
}

// ---------------------------------------------------------------------------
// kill -9 at random moments.

#[test]
fn kill_9_at_random_moments_loses_nothing_and_applies_nothing_twice() {
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 4;
    const SKUS: usize = 100;
    let env = Env::new("[watch]\nsettle_ms = 50\nrescan_interval_s = 1\n");
    let mut rng = Rng::new();
    // What each file sets: name → [(location, sku, quantity)].
    let mut dropped: Vec<(String, Rows)> = Vec::new();
    let mut quantity = 0;
    let mut drop_round = |round: usize, dropped: &mut Vec<_>| {
        for k in 0..PER_ROUND {
            let name = format!("r{round:02}_{k}.csv");
            let mut rows = Vec::new();
            for location in ["L1", "L2"] {
                for sku in 0..SKUS {
                    // Every quantity is new, so every item changes its record.
                    quantity += 1;
                    rows.push((location.to_string(), format!("S{sku}"), quantity));
                }
            }
            let borrowed: Vec<(&str, &str, i64)> = rows
                .iter()
                .map(|(l, s, q)| (l.as_str(), s.as_str(), *q))
                .collect();
            env.drop_file(&name, &csv(&borrowed));
            dropped.push((name, rows));
        }
    };

    for round in 0..ROUNDS {
        drop_round(round, &mut dropped);
        let mut daemon = env.start(None);
        let delay = rng.below(300);
        std::thread::sleep(Duration::from_millis(delay));
        daemon.kill();
    }
    let files: Vec<String> = dropped.iter().map(|(n, _)| n.clone()).collect();
    let mut daemon = env.start(None);
    env.wait_for(
        Duration::from_secs(30),
        "every file to be finished after the kills",
        || env.all_done(&files),
    );
    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());

    let imports = env.imports();
    let jobs = env.jobs();
    let history = env.history();
    assert_eq!(
        imports.len(),
        files.len(),
        "one import per file\n{}",
        env.describe()
    );
    for file in &files {
        let mine: Vec<&Import> = imports.iter().filter(|i| &i.file == file).collect();
        assert_eq!(mine.len(), 1, "imports of {file}\n{}", env.describe());
        let import = mine[0];
        assert_eq!(import.status, "applied", "{}", env.describe());
        let stem = file.trim_end_matches(".csv");
        assert_eq!(
            env.json_reports_of(stem),
            [format!("{stem}.{}.json", import.id)],
            "one report for {file}\n{}",
            env.describe()
        );
        assert!(
            env.archive_today()
                .join(format!("{}_{file}", import.id))
                .is_file(),
            "{}",
            env.describe()
        );
        let my_jobs: Vec<&Job> = jobs.iter().filter(|j| j.import_id == import.id).collect();
        assert_eq!(my_jobs.len(), 2, "{}", env.describe());
        for job in my_jobs {
            assert_eq!(job.status, "success", "{job:?}");
            let rows: Vec<i64> = history
                .iter()
                .filter(|(j, _)| *j == job.id)
                .map(|(_, r)| *r)
                .collect();
            let distinct: BTreeSet<i64> = rows.iter().copied().collect();
            assert_eq!(
                rows.len() as i64,
                job.item_count,
                "job {job:?} has history {rows:?}"
            );
            assert_eq!(
                distinct.len(),
                rows.len(),
                "job {job:?} changed a record twice"
            );
        }
    }
    assert_eq!(
        env.names(&env.archive_today()).len(),
        files.len(),
        "{}",
        env.describe()
    );
    assert!(env.names(&env.work()).is_empty(), "{}", env.describe());
    assert!(env.names(&env.inbox()).is_empty(), "{}", env.describe());

    // The stock is what the last applied file of each location said.
    let order: BTreeMap<&str, i64> = imports.iter().map(|i| (i.file.as_str(), i.id)).collect();
    let mut expected: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for (name, rows) in &dropped {
        let id = order[name.as_str()];
        for (l, s, q) in rows {
            let entry = expected.entry((l.clone(), s.clone())).or_insert((id, *q));
            if id >= entry.0 {
                *entry = (id, *q);
            }
        }
    }
    let actual: BTreeMap<(String, String), i64> = env
        .inventory()
        .into_iter()
        .map(|(k, (_, q))| (k, q))
        .collect();
    let expected: BTreeMap<(String, String), i64> =
        expected.into_iter().map(|(k, (_, q))| (k, q)).collect();
    assert_eq!(actual, expected, "{}", env.describe());
}

// ---------------------------------------------------------------------------
// Adjust files (issue 11): crash recovery must hold for them exactly as for
// refresh jobs, since an adjustment applied twice shows in the stock.

const UPDATE_FILE: &str = "KIBO_UPDATE_261201120000.csv";

/// The signed changes of [`UPDATE_FILE`], one per item of
/// [`three_locations`], and the counts after applying them once.
fn three_location_moves() -> (String, Vec<(String, String, i64)>) {
    let moves = [
        ("11", "A", "+10"),
        ("11", "B", "-1"),
        ("12", "A", "+20"),
        ("12", "B", "-2"),
        ("13", "A", "+30"),
        ("13", "B", "-3"),
    ];
    let after = [
        ("11", "A", 11),
        ("11", "B", 1),
        ("12", "A", 23),
        ("12", "B", 2),
        ("13", "A", 35),
        ("13", "B", 3),
    ]
    .iter()
    .map(|(l, s, q)| (l.to_string(), s.to_string(), *q))
    .collect();
    (csv(&moves), after)
}

/// Starts a daemon, waits for `files` to be finished, stops it with SIGTERM.
fn run_until_done(env: &Env, files: &[&str]) {
    let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    let mut daemon = env.start(None);
    env.wait_for(DEADLINE, &format!("{files:?} to be finished"), || {
        env.all_done(&files)
    });
    let status = daemon.terminate(env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());
}

fn quantities_of(env: &Env) -> Vec<(String, String, i64)> {
    env.inventory()
        .into_iter()
        .map(|((l, s), (_, q))| (l, s, q))
        .collect()
}

/// The stock is counted by a refresh, then an adjust file is aborted at
/// `point` and the daemon restarted on a config that would plan it
/// differently: the stored plan is finished, and every count moves once.
fn crash_and_recover_adjust(point: &str) {
    let env = Env::new(FAST_WATCH);
    env.drop_file("stock.csv", &three_locations());
    run_until_done(&env, &["stock.csv"]);

    let (moves, after) = three_location_moves();
    env.drop_file(UPDATE_FILE, &moves);
    run_crashing_at(&env, point);
    // Where the crash left the adjustments: none, one location, or all.
    let applied_before = quantities_of(&env)
        .iter()
        .zip(&after)
        .filter(|(now, once)| now == once)
        .count();
    let expected_before = match point {
        "after-claim" | "after-plan" => 0,
        "after-commit-1" => 2,
        "after-commit-2" => 4,
        _ => 6,
    };
    assert_eq!(
        applied_before,
        expected_before,
        "counts moved before the restart\n{}",
        env.describe()
    );

    env.set_config(&format!(
        "{FAST_WATCH}[import]\nitems_per_job = 1\non_error = \"reject-file\"\n"
    ));
    run_until_done(&env, &["stock.csv", UPDATE_FILE]);

    let imports: Vec<Import> = env
        .imports()
        .into_iter()
        .filter(|i| i.file == UPDATE_FILE)
        .collect();
    assert_eq!(
        imports.len(),
        1,
        "one import of the update\n{}",
        env.describe()
    );
    let import = &imports[0];
    assert_eq!(import.status, "applied", "{}", env.describe());
    let kind: Vec<String> = env.rows("SELECT job_type FROM imports ORDER BY id", |r| r.get(0));
    assert_eq!(kind, ["refresh", "adjust"], "{}", env.describe());
    assert_eq!(quantities_of(&env), after, "{point}\n{}", env.describe());

    let jobs: Vec<Job> = env
        .jobs()
        .into_iter()
        .filter(|j| j.import_id == import.id)
        .collect();
    let expected_jobs = if point == "after-claim" { 6 } else { 3 };
    assert_eq!(jobs.len(), expected_jobs, "{}", env.describe());
    assert!(
        jobs.iter().all(|j| j.status == "success"),
        "{}",
        env.describe()
    );
    // One history row per item of each job, and per record one from the
    // refresh and one from the update.
    let history = env.history();
    for job in &jobs {
        let rows = history.iter().filter(|(j, _)| *j == job.id).count();
        assert_eq!(rows as i64, job.item_count, "job {job:?}: {history:?}");
    }
    for ((location, sku), (record, _)) in env.inventory() {
        let rows = history.iter().filter(|(_, r)| *r == record).count();
        assert_eq!(rows, 2, "record {location}/{sku}: {history:?}");
    }
    let stem = UPDATE_FILE.trim_end_matches(".csv");
    assert_eq!(
        env.json_reports_of(stem),
        [format!("{stem}.{}.json", import.id)],
        "{}",
        env.describe()
    );
    assert!(
        env.archive_today()
            .join(format!("{}_{UPDATE_FILE}", import.id))
            .is_file(),
        "{}",
        env.describe()
    );
}

#[test]
fn adjust_crash_after_claim_moves_each_count_once() {
    crash_and_recover_adjust("after-claim");
}

#[test]
fn adjust_crash_after_plan_moves_each_count_once() {
    crash_and_recover_adjust("after-plan");
}

#[test]
fn adjust_crash_after_the_first_commit_moves_each_count_once() {
    crash_and_recover_adjust("after-commit-1");
}

#[test]
fn adjust_crash_after_the_second_commit_moves_each_count_once() {
    crash_and_recover_adjust("after-commit-2");
}

#[test]
fn adjust_crash_after_reports_moves_each_count_once() {
    crash_and_recover_adjust("after-reports");
}

#[test]
fn adjust_crash_after_archive_moves_each_count_once() {
    crash_and_recover_adjust("after-archive");
}

/// An `_UPDATE_` file dropped into the inbox is applied as adjustments;
/// its errors CSV, fixed and dropped back, is an adjust file again and
/// applies only its own rows, once.
#[test]
fn an_update_file_and_its_errors_csv_dropped_back_are_each_applied_once() {
    let env = Env::new(FAST_WATCH);
    env.drop_file("stock.csv", &three_locations());
    run_until_done(&env, &["stock.csv"]);

    env.drop_file(
        UPDATE_FILE,
        &csv(&[
            ("11", "A", "+1"),
            ("11", "B", "x"),
            ("12", "A", "1.5"),
            ("13", "B", "-6"),
        ]),
    );
    run_until_done(&env, &["stock.csv", UPDATE_FILE]);
    let first = env
        .imports()
        .into_iter()
        .find(|i| i.file == UPDATE_FILE)
        .expect("the update's import");
    assert_eq!(first.status, "partial", "{}", env.describe());
    let expected = |rows: &[(&str, &str, i64)]| -> Vec<(String, String, i64)> {
        rows.iter()
            .map(|(l, s, q)| (l.to_string(), s.to_string(), *q))
            .collect()
    };
    let once = expected(&[
        ("11", "A", 2),
        ("11", "B", 2),
        ("12", "A", 3),
        ("12", "B", 4),
        ("13", "A", 5),
        ("13", "B", 0),
    ]);
    assert_eq!(quantities_of(&env), once, "{}", env.describe());

    let errors: Vec<String> = env
        .names(&env.outbox())
        .into_iter()
        .filter(|n| n.ends_with(".errors.csv"))
        .collect();
    assert_eq!(errors.len(), 1, "one errors CSV\n{}", env.describe());
    let errors_name = errors[0].clone();
    let text = fs::read_to_string(env.outbox().join(&errors_name)).expect("read the errors CSV");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| {
            r.expect("errors CSV row")
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3, "the header and the two bad rows: {rows:?}");
    let quantity = rows[0]
        .iter()
        .position(|h| h == "quantity")
        .expect("a quantity column");
    rows[1][quantity] = "+2".into();
    rows[2][quantity] = "+3".into();
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in &rows {
        writer.write_record(row).expect("write a row");
    }
    let fixed = String::from_utf8(writer.into_inner().expect("flush")).expect("UTF-8");

    // Dropped back into the inbox under the name stockdrop gave it.
    env.drop_file(&errors_name, &fixed);
    run_until_done(&env, &[errors_name.as_str()]);
    let back: Vec<Import> = env
        .imports()
        .into_iter()
        .filter(|i| i.file == errors_name)
        .collect();
    assert_eq!(back.len(), 1, "{}", env.describe());
    assert_eq!(back[0].status, "applied", "{}", env.describe());
    let kinds: Vec<(String, String, i64)> = env.rows(
        "SELECT file, job_type, rows_total FROM imports ORDER BY id",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    );
    assert_eq!(
        kinds.last(),
        Some(&(errors_name.clone(), "adjust".to_string(), 2)),
        "only the two fixed rows, as adjustments\n{}",
        env.describe()
    );
    let fixed_once = expected(&[
        ("11", "A", 2),
        ("11", "B", 4),
        ("12", "A", 6),
        ("12", "B", 4),
        ("13", "A", 5),
        ("13", "B", 0),
    ]);
    assert_eq!(quantities_of(&env), fixed_once, "{}", env.describe());

    // The same fixed file sent again is a duplicate: nothing moves.
    env.drop_file(&errors_name, &fixed);
    let mut daemon = env.start(None);
    env.wait_for(DEADLINE, "the resent errors CSV to be finished", || {
        env.imports()
            .iter()
            .filter(|i| i.file == errors_name)
            .count()
            == 2
            && env.names(&env.work()).is_empty()
            && env.names(&env.inbox()).is_empty()
    });
    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());
    let statuses: Vec<String> = env
        .imports()
        .into_iter()
        .filter(|i| i.file == errors_name)
        .map(|i| i.status)
        .collect();
    assert_eq!(statuses, ["applied", "duplicate"], "{}", env.describe());
    assert_eq!(quantities_of(&env), fixed_once, "{}", env.describe());
}
