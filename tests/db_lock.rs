//! A database another process holds locked (issue 8 §5, environment): the
//! daemon and `stockdrop import` wait for it as before, but say so — one
//! log line after about a second, the wait as the daemon's current fault in
//! `status` — and apply the file once when the lock is released.
//!
//! The other process is this test: a second SQLite connection holding
//! `BEGIN EXCLUSIVE` on the daemon's database file (what an operator's
//! `sqlite3` shell or a backup tool does), while the daemon and the CLI run
//! as real child processes.

mod common;

use std::ops::Deref;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::daemon::{csv, tree, wait_until, Daemon, DataRoot, Describe, FAST_WATCH};

const DEADLINE: Duration = Duration::from_secs(20);
/// How long the lock is held: well past the 1 s after which a wait is
/// announced, well inside the 30 s bound after which it fails.
const HOLD: Duration = Duration::from_secs(5);
const LOCKED: &str = "the database is locked by another process (waiting since ";

struct Env {
    root: DataRoot,
}

impl Deref for Env {
    type Target = DataRoot;

    fn deref(&self) -> &DataRoot {
        &self.root
    }
}

impl Describe for Env {
    const DEADLINE: Duration = DEADLINE;

    fn describe(&self) -> String {
        let mut out = String::from("--- var/ ---\n");
        out.push_str(&tree(&self.var(), false));
        self.write_logs(&mut out, 40);
        out
    }
}

impl Env {
    fn new() -> Env {
        let root = DataRoot::new("stockdrop-lock-", FAST_WATCH);
        std::fs::create_dir_all(root.inbox()).expect("create inbox");
        Env { root }
    }

    fn stockdrop(&self) -> Command {
        self.stockdrop_command(&[])
    }

    fn start(&self) -> Daemon {
        self.spawn_run(self.stockdrop_command(&["run"]))
    }

    fn status(&self) -> String {
        let out = self.stockdrop().arg("status").output().expect("run status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `file` is applied and nothing is left claimed.
    fn wait_applied(&self, file: &str) {
        wait_until(self, DEADLINE, &format!("{file} to be applied"), || {
            self.imports_of(file)
                .first()
                .is_some_and(|(s, _)| s == "applied")
                && self.names(&self.work()).is_empty()
        });
    }

    /// (status, rows_total) of every import of `file`.
    fn imports_of(&self, file: &str) -> Vec<(String, i64)> {
        self.rows(
            "SELECT file, status, rows_total FROM imports ORDER BY id",
            |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)),
        )
        .into_iter()
        .filter(|(name, _, _)| name == file)
        .map(|(_, status, rows)| (status, rows))
        .collect()
    }
}

/// Whether the metrics textfile at `path` says `stockdrop_retrying n`.
fn shows_retrying(path: &std::path::Path, n: u8) -> bool {
    std::fs::read_to_string(path)
        .is_ok_and(|text| text.lines().any(|l| l == format!("stockdrop_retrying {n}")))
}

/// Holds `BEGIN EXCLUSIVE` on `db` from another connection until the
/// returned sender is used (or dropped); returns once the lock is held.
fn hold_lock(db: &std::path::Path) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (held, is_held) = mpsc::channel();
    let db = db.to_path_buf();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).expect("open the store");
        let locked = conn.execute_batch("BEGIN EXCLUSIVE");
        let _ = held.send(locked.map_err(|e| e.to_string()));
        let _ = released.recv_timeout(DEADLINE);
        let _ = conn.execute_batch("ROLLBACK");
    });
    is_held
        .recv()
        .expect("the lock holder answers")
        .expect("BEGIN EXCLUSIVE");
    (release, holder)
}

#[test]
fn daemon_says_the_database_is_locked_and_applies_the_file_once_released() {
    let env = Env::new();
    let metrics = env.path().join("stockdrop.prom");
    env.set_config(&format!(
        "{FAST_WATCH}[metrics]\ntextfile = \"{}\"\n",
        metrics.display()
    ));
    let retrying = |n: u8| shows_retrying(&metrics, n);
    let mut daemon = env.start();
    daemon.wait_ready(&env);
    let (release, holder) = hold_lock(&env.database());
    let locked_at = Instant::now();
    env.drop_file("locked.csv", &csv(&[("s1", "A-1", 7), ("s1", "A-2", 8)]));

    wait_until(
        &env,
        DEADLINE,
        "the daemon to log that the database is locked",
        || daemon.log().contains(LOCKED),
    );
    let status = env.status();
    assert!(
        status.contains(LOCKED) && status.contains("retrying locked.csv"),
        "status during the wait should name the lock:\n{status}\n{}",
        env.describe()
    );
    assert!(retrying(1), "the metrics show the wait\n{}", env.describe());
    assert!(
        env.imports_of("locked.csv").is_empty(),
        "nothing can be stored while the lock is held\n{}",
        env.describe()
    );
    // Hold the lock several seconds in all, then let go.
    std::thread::sleep(HOLD.saturating_sub(locked_at.elapsed()));
    let _ = release.send(());
    let _ = holder.join();

    env.wait_applied("locked.csv");
    assert_eq!(
        env.imports_of("locked.csv"),
        vec![("applied".to_string(), 2)],
        "{}",
        env.describe()
    );
    let log = daemon.log();
    assert_eq!(
        log.matches(LOCKED).count(),
        1,
        "the wait is logged once, one line\n{}",
        env.describe()
    );
    assert!(
        !log.contains("retried") && !log.contains("processing failed"),
        "a wait inside the bound is no failed attempt\n{}",
        env.describe()
    );
    wait_until(
        &env,
        DEADLINE,
        "status and metrics to drop the lock fault",
        || env.status().contains("last error:    none") && retrying(0),
    );
    daemon.terminate(&env);
}

#[test]
fn after_a_reload_a_lock_wait_is_reported_to_the_new_metrics_file() {
    let env = Env::new();
    let (before, after) = (
        env.path().join("before.prom"),
        env.path().join("after.prom"),
    );
    let config = |metrics: &std::path::Path| {
        format!(
            "{FAST_WATCH}[metrics]\ntextfile = \"{}\"\n",
            metrics.display()
        )
    };
    env.set_config(&config(&before));
    let mut daemon = env.start();
    daemon.wait_ready(&env);
    env.set_config(&config(&after));
    common::daemon::signal(daemon.pid(), "HUP");
    wait_until(&env, DEADLINE, "the reload", || {
        daemon.log().contains("configuration reloaded")
    });
    let (release, holder) = hold_lock(&env.database());
    env.drop_file("locked.csv", &csv(&[("s1", "A-1", 7)]));
    wait_until(
        &env,
        DEADLINE,
        "the new metrics file to show the wait",
        || shows_retrying(&after, 1),
    );
    let _ = release.send(());
    let _ = holder.join();
    env.wait_applied("locked.csv");
    daemon.terminate(&env);
}

#[test]
fn import_says_once_on_stderr_that_it_waits_for_the_lock() {
    let env = Env::new();
    // Create the store first (the lock needs a database file to hold).
    let first = env.path().join("first.csv");
    std::fs::write(&first, csv(&[("s1", "A-1", 1)])).expect("write first.csv");
    let out = env
        .stockdrop()
        .arg("import")
        .arg(&first)
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (release, holder) = hold_lock(&env.database());
    let file = env.path().join("second.csv");
    std::fs::write(&file, csv(&[("s1", "A-1", 2), ("s1", "A-3", 3)])).expect("write second.csv");
    let child = env
        .stockdrop()
        .arg("import")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start import");
    std::thread::sleep(HOLD);
    let _ = release.send(());
    let _ = holder.join();
    let out = child.wait_with_output().expect("import finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import after the lock: {stderr}");
    assert_eq!(stderr.matches(LOCKED).count(), 1, "stderr:\n{stderr}");
    assert_eq!(
        env.imports_of("second.csv"),
        vec![("applied".to_string(), 2)],
        "{}",
        env.describe()
    );
}

/// The database file removed while the daemon runs, for longer than
/// `import.max_attempts` retries: the file must not be given up into the
/// unlinked database (its record would vanish when the file is put back);
/// it is kept claimed and applied once into the database put back.
#[test]
fn a_removed_database_never_swallows_a_given_up_file() {
    let env = Env::new();
    env.set_config(&format!("{FAST_WATCH}[import]\nmax_attempts = 2\n"));
    let mut daemon = env.start();
    daemon.wait_ready(&env);
    let db = env.database();
    {
        let conn = rusqlite::Connection::open(&db).expect("open the store");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
    let saved = std::fs::read(&db).expect("read the store");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    env.drop_file("gone.csv", &csv(&[("s1", "G-1", 3)]));
    // Attempts 1 and 2 fail (2 s apart); the give-up after the second must
    // not happen while the database is gone.
    wait_until(&env, DEADLINE, "two failed attempts", || {
        daemon
            .log()
            .matches("was removed while stockdrop runs")
            .count()
            >= 2
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        env.names(&env.var().join("failed")).is_empty(),
        "nothing goes to failed/ while the store is gone\n{}",
        env.describe()
    );
    std::fs::write(&db, saved).expect("put the store back");
    wait_until(
        &env,
        Duration::from_secs(30),
        "gone.csv to be applied",
        || {
            env.imports_of("gone.csv")
                .first()
                .is_some_and(|(s, _)| s == "applied")
                && env.names(&env.work()).is_empty()
        },
    );
    daemon.terminate(&env);
    assert_eq!(
        env.imports_of("gone.csv"),
        vec![("applied".to_string(), 1)],
        "{}",
        env.describe()
    );
}
