//! The daemon in process (SPEC §2): `stockdrop::daemon::run` on a temporary
//! data root, files dropped into its inbox, and what it leaves behind
//! (store, outbox, archive, failed, work) checked once it is done.
//!
//! Every wait polls with a deadline; a timeout prints the whole `var/` tree
//! and the imports table.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::ops::Deref;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::daemon::{csv, tree, DataRoot, POLL};
use serde_json::Value;
use stockdrop::config::Config;
use stockdrop::daemon::{self, DaemonError, RunOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(15);
const SETTLE_MS: u64 = 200;

// ---------------------------------------------------------------------------
// Helpers.

/// A temporary data root ([`DataRoot`]): `stockdrop.toml` and everything
/// under `var/`.
struct Env {
    root: DataRoot,
}

impl Deref for Env {
    type Target = DataRoot;

    fn deref(&self) -> &DataRoot {
        &self.root
    }
}

/// One row of the `imports` table.
#[derive(Debug, Clone)]
struct Import {
    id: i64,
    file: String,
    status: String,
    duplicate_of: Option<i64>,
    rows_total: i64,
    archived_path: Option<String>,
}

impl Env {
    /// `watch` is added to the `[watch]` table; `rest` after it.
    fn new(watch: &str, rest: &str) -> Env {
        let env = Env {
            root: DataRoot::new(
                "stockdrop-test-",
                &format!(
                    "[watch]\nsettle_ms = {SETTLE_MS}\nrescan_interval_s = 1\n{watch}\n{rest}\n"
                ),
            ),
        };
        fs::create_dir_all(env.inbox()).expect("create inbox");
        env
    }

    fn plain() -> Env {
        Env::new("", "")
    }

    fn config(&self) -> Config {
        Config::load(Some(&self.config_path()), None).expect("config loads")
    }

    fn work_is_empty(&self) -> bool {
        self.names(&self.work()).is_empty()
    }

    /// The imports table, oldest first; empty before the store exists.
    fn imports(&self) -> Vec<Import> {
        self.rows(
            "SELECT id, file, status, duplicate_of, rows_total, archived_path \
             FROM imports ORDER BY id",
            |r| {
                Ok(Import {
                    id: r.get(0)?,
                    file: r.get(1)?,
                    status: r.get(2)?,
                    duplicate_of: r.get(3)?,
                    rows_total: r.get(4)?,
                    archived_path: r.get(5)?,
                })
            },
        )
    }

    /// The single integer a query returns (0 before the store exists).
    fn count(&self, sql: &str) -> i64 {
        self.read_store()
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)).ok())
            .unwrap_or(0)
    }

    fn imports_of(&self, file: &str) -> Vec<Import> {
        self.imports()
            .into_iter()
            .filter(|i| i.file == file)
            .collect()
    }

    /// Imports that are finished and whose original has been moved.
    fn finished(&self) -> usize {
        self.imports()
            .iter()
            .filter(|i| i.status != "planned" && i.archived_path.is_some())
            .count()
    }

    /// The JSON report `<stem>.<id>.json`.
    fn report(&self, stem: &str, id: i64) -> Value {
        let path = self.outbox().join(format!("{stem}.{id}.json"));
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.describe()));
        serde_json::from_str(&text).expect("report is JSON")
    }

    /// The `var/` tree (or, past 60 files, a count per folder) and the
    /// imports table, for failure messages.
    fn describe(&self) -> String {
        let mut out = String::from("--- var/ ---\n");
        let var = self.var();
        let files = [self.inbox(), self.work(), self.outbox()]
            .iter()
            .map(|d| self.names(d).len())
            .sum::<usize>();
        if files > 60 {
            for dir in ["inbox", "work", "outbox", "archive", "failed"] {
                let _ = writeln!(out, "{dir}: {} entries", self.names(&var.join(dir)).len());
            }
        } else {
            out.push_str(&tree(&var, true));
        }
        let imports = self.imports();
        let _ = writeln!(out, "--- imports ({}) ---", imports.len());
        for i in imports.iter().take(40) {
            let _ = writeln!(out, "{i:?}");
        }
        out
    }

    /// Polls `cond` every 20 ms until it holds; fails after 15 s with the
    /// state of the data root.
    async fn wait_for(&self, what: &str, cond: impl FnMut() -> bool) {
        self.wait_for_within(DEADLINE, what, cond).await
    }

    async fn wait_for_within(
        &self,
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
                    self.describe()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `n` imports are finished and archived and work is empty.
    async fn wait_finished(&self, n: usize) {
        self.wait_finished_within(DEADLINE, n).await
    }

    async fn wait_finished_within(&self, deadline: Duration, n: usize) {
        self.wait_for_within(
            deadline,
            &format!("{n} finished imports and an empty work folder"),
            || self.finished() >= n && self.work_is_empty(),
        )
        .await;
    }

    /// Starts the daemon on this data root.
    fn start(&self) -> Running {
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(daemon::run(
            self.config(),
            RunOptions {
                once: false,
                reload_from: None,
                ..RunOptions::default()
            },
            async move {
                let _ = rx.await;
            },
        ));
        Running {
            stop: Some(tx),
            handle,
        }
    }
}

/// A daemon running in this process.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), DaemonError>>,
}

impl Running {
    /// Asks it to stop and waits until it has returned Ok.
    async fn stop(mut self, env: &Env) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(DEADLINE, &mut self.handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("the daemon failed: {e}\n{}", env.describe()),
            Ok(Err(e)) => panic!("the daemon panicked: {e}\n{}", env.describe()),
            Err(_) => panic!(
                "the daemon did not stop within {DEADLINE:?}\n{}",
                env.describe()
            ),
        }
    }
}

/// Asserts the one import of `file` was applied, its original archived as
/// `archive/<today>/<id>_<file>`, its reports written; returns it.
#[track_caller]
fn assert_applied_once(env: &Env, file: &str) -> Import {
    let imports = env.imports_of(file);
    assert_eq!(imports.len(), 1, "one import of {file}\n{}", env.describe());
    let import = imports[0].clone();
    assert_eq!(import.status, "applied", "{}", env.describe());
    let archived = env.archive_today().join(format!("{}_{file}", import.id));
    assert!(
        archived.is_file(),
        "{} should exist\n{}",
        archived.display(),
        env.describe()
    );
    assert_eq!(
        import.archived_path.as_deref(),
        Some(archived.to_string_lossy().as_ref()),
        "{}",
        env.describe()
    );
    assert!(
        !env.inbox().join(file).exists(),
        "{file} is still in the inbox\n{}",
        env.describe()
    );
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    for ext in ["json", "html"] {
        let report = env.outbox().join(format!("{stem}.{}.{ext}", import.id));
        assert!(
            report.is_file(),
            "{} should exist\n{}",
            report.display(),
            env.describe()
        );
    }
    assert_eq!(env.report(stem, import.id)["status"], "applied");
    import
}

fn set_mtime(path: &Path, ago: Duration) {
    let file = fs::File::options()
        .write(true)
        .open(path)
        .expect("open for mtime");
    file.set_modified(SystemTime::now() - ago)
        .expect("set mtime");
}

// ---------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_upload_is_applied_archived_and_reported() {
    let env = Env::plain();
    let daemon = env.start();
    env.drop_file("x.csv", &csv(&[("11", "A", 5), ("11", "B", 7)]));
    env.wait_finished(1).await;
    daemon.stop(&env).await;

    let import = assert_applied_once(&env, "x.csv");
    assert!(env.work_is_empty(), "{}", env.describe());
    assert!(env.names(&env.inbox()).is_empty(), "{}", env.describe());
    let report = env.report("x", import.id);
    assert_eq!(report["file"], "x.csv");
    assert_eq!(report["rows"]["total"], 2);
    assert_eq!(report["jobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["jobs"][0]["status"], "success");
    assert_eq!(
        env.names(&env.outbox()),
        [
            "index.html".to_string(),
            format!("x.{}.html", import.id),
            format!("x.{}.json", import.id)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_writer_is_processed_only_once_complete() {
    let env = Env::plain();
    let daemon = env.start();
    // Let the daemon's start-up scan happen before the upload begins.
    env.wait_for("the work folder to exist", || env.work().is_dir())
        .await;
    let path = env.inbox().join("slow.csv");
    let mut file = fs::File::create(&path).expect("create slow.csv");
    file.write_all(b"location,sku,quantity\n").unwrap();
    let chunks = 5;
    let per_chunk = 4;
    for chunk in 0..chunks {
        // Each pause is well below settle_ms (200 ms).
        tokio::time::sleep(Duration::from_millis(80)).await;
        let mut text = String::new();
        for row in 0..per_chunk {
            let _ = writeln!(text, "11,S{chunk}-{row},{row}");
        }
        file.write_all(text.as_bytes()).unwrap();
        file.flush().unwrap();
        assert!(
            env.imports().is_empty(),
            "processed while still being written (after chunk {chunk})\n{}",
            env.describe()
        );
    }
    drop(file);
    env.wait_finished(1).await;
    daemon.stop(&env).await;

    let import = assert_applied_once(&env, "slow.csv");
    assert_eq!(import.rows_total, chunks * per_chunk, "{}", env.describe());
    let report = env.report("slow", import.id);
    assert_eq!(report["rows"]["total"], chunks * per_chunk);
    assert_eq!(report["rows"]["accepted"], chunks * per_chunk);
    assert_eq!(env.imports().len(), 1, "{}", env.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filepart_upload_counts_once_after_its_rename() {
    let env = Env::plain();
    let daemon = env.start();
    let part = env.inbox().join("up.csv.filepart");
    fs::write(&part, csv(&[("11", "A", 1), ("11", "B", 2)])).unwrap();
    // Well past settling: the .filepart must still be left alone.
    tokio::time::sleep(Duration::from_millis(3 * SETTLE_MS)).await;
    assert!(part.exists(), "{}", env.describe());
    assert!(env.imports().is_empty(), "{}", env.describe());
    fs::rename(&part, env.inbox().join("up.csv")).unwrap();
    env.wait_finished(1).await;
    daemon.stop(&env).await;

    assert_applied_once(&env, "up.csv");
    assert_eq!(env.imports().len(), 1, "{}", env.describe());
    assert!(env.imports_of("up.csv.filepart").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_files_links_and_fifos_are_ignored() {
    let env = Env::plain();
    let elsewhere = env.dir.path().join("elsewhere.csv");
    fs::write(&elsewhere, csv(&[("21", "L", 1)])).unwrap();
    let hidden = env.inbox().join(".x.csv");
    fs::write(&hidden, csv(&[("22", "H", 1)])).unwrap();
    let link = env.inbox().join("link.csv");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let fifo = env.inbox().join("pipe.csv");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");
    let sub = env.inbox().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("inner.csv"), csv(&[("23", "S", 1)])).unwrap();

    let daemon = env.start();
    env.drop_file("real.csv", &csv(&[("11", "A", 3)]));
    env.wait_finished(1).await;
    // One more settle period and rescan for the ignored ones to be (not) picked.
    tokio::time::sleep(Duration::from_millis(3 * SETTLE_MS)).await;
    daemon.stop(&env).await;

    assert_applied_once(&env, "real.csv");
    assert_eq!(env.imports().len(), 1, "{}", env.describe());
    assert!(hidden.is_file(), "{}", env.describe());
    assert!(
        fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
        "{}",
        env.describe()
    );
    assert!(elsewhere.is_file(), "the link's target must not move");
    assert!(fs::symlink_metadata(&fifo).is_ok(), "{}", env.describe());
    assert!(sub.join("inner.csv").is_file(), "{}", env.describe());
    assert_eq!(
        env.names(&env.inbox()),
        ["link.csv", "pipe.csv", "sub"],
        "{}",
        env.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_present_at_start_go_oldest_first() {
    let env = Env::plain();
    // By name a.csv comes first; by modification time b.csv is older.
    let a = env.drop_file("a.csv", &csv(&[("11", "A", 1)]));
    let b = env.drop_file("b.csv", &csv(&[("12", "B", 2)]));
    let c = env.drop_file("c.csv", &csv(&[("13", "C", 3)]));
    set_mtime(&a, Duration::from_secs(3600));
    set_mtime(&b, Duration::from_secs(7200));
    set_mtime(&c, Duration::from_secs(60));

    let daemon = env.start();
    env.wait_finished(3).await;
    daemon.stop(&env).await;

    let ids: Vec<i64> = ["b.csv", "a.csv", "c.csv"]
        .iter()
        .map(|f| assert_applied_once(&env, f).id)
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "expected b.csv, a.csv, c.csv in that order (oldest mtime first), got ids {ids:?}\n{}",
        env.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_modification_time_does_not_skip_settling() {
    let env = Env::plain();
    let daemon = env.start();
    env.wait_for("the work folder to exist", || env.work().is_dir())
        .await;
    // As an SFTP client that preserves the source's time would leave it.
    let tmp = env.inbox().join(".old.csv.uploading");
    fs::write(&tmp, csv(&[("11", "A", 1)])).unwrap();
    set_mtime(&tmp, Duration::from_secs(86_400));
    let dropped = Instant::now();
    fs::rename(&tmp, env.inbox().join("old.csv")).unwrap();
    env.wait_for("old.csv to be claimed", || {
        !env.inbox().join("old.csv").exists()
    })
    .await;
    let waited = dropped.elapsed();
    env.wait_finished(1).await;
    daemon.stop(&env).await;
    assert!(
        waited >= Duration::from_millis(SETTLE_MS),
        "claimed {waited:?} after it appeared, before settle_ms = {SETTLE_MS}"
    );
    assert_applied_once(&env, "old.csv");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_files_is_processed_each_exactly_once() {
    const N: usize = 500;
    let env = Env::plain();
    let daemon = env.start();
    for i in 0..N {
        env.drop_file(&format!("f{i:03}.csv"), &csv(&[(&format!("L{i}"), "A", 1)]));
    }
    // A file takes a few ms in RAM, ~50 ms on a disk (fsyncs).
    env.wait_finished_within(Duration::from_secs(60), N).await;
    daemon.stop(&env).await;

    let imports = env.imports();
    assert_eq!(imports.len(), N, "{}", env.describe());
    let mut files: Vec<&str> = imports.iter().map(|i| i.file.as_str()).collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), N, "a file was imported twice");
    assert!(
        imports.iter().all(|i| i.status == "applied"),
        "{}",
        env.describe()
    );
    assert_eq!(env.names(&env.archive_today()).len(), N);
    let json: Vec<String> = env
        .names(&env.outbox())
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(json.len(), N, "one JSON report per file");
    for import in &imports {
        let stem = import.file.trim_end_matches(".csv");
        assert!(json.contains(&format!("{stem}.{}.json", import.id)));
        assert!(env
            .archive_today()
            .join(format!("{}_{}", import.id, import.file))
            .is_file());
    }
    assert!(env.work_is_empty(), "{}", env.describe());
    assert!(env.names(&env.inbox()).is_empty(), "{}", env.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_marker_gates_the_file_and_goes_with_it() {
    let env = Env::new("done_marker = \".done\"", "");
    let daemon = env.start();
    env.drop_file("x.csv", &csv(&[("11", "A", 1)]));
    env.drop_file("y.csv", &csv(&[("12", "B", 2)]));
    fs::write(env.inbox().join("y.csv.done"), "").unwrap();
    env.wait_finished(1).await;
    assert_applied_once(&env, "y.csv");
    assert!(
        !env.inbox().join("y.csv.done").exists(),
        "y's marker should be removed\n{}",
        env.describe()
    );
    // x.csv has had time to settle twice over, but has no marker.
    tokio::time::sleep(Duration::from_millis(3 * SETTLE_MS)).await;
    assert!(env.imports_of("x.csv").is_empty(), "{}", env.describe());
    assert!(env.inbox().join("x.csv").is_file(), "{}", env.describe());

    fs::write(env.inbox().join("x.csv.done"), "").unwrap();
    env.wait_finished(2).await;
    daemon.stop(&env).await;
    assert_applied_once(&env, "x.csv");
    assert!(
        env.names(&env.inbox()).is_empty(),
        "markers should be removed\n{}",
        env.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_is_rejected_once_settled() {
    let env = Env::plain();
    let daemon = env.start();
    fs::write(env.inbox().join("empty.csv"), "").unwrap();
    env.wait_finished(1).await;
    daemon.stop(&env).await;

    let imports = env.imports_of("empty.csv");
    assert_eq!(imports.len(), 1, "{}", env.describe());
    let import = &imports[0];
    assert_eq!(import.status, "rejected", "{}", env.describe());
    let report = env.report("empty", import.id);
    assert_eq!(report["status"], "rejected");
    let codes: Vec<&str> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["code"].as_str())
        .collect();
    assert!(codes.contains(&"unreadable-file"), "{report:#}");
    assert!(
        env.failed_today()
            .join(format!("{}_empty.csv", import.id))
            .is_file(),
        "{}",
        env.describe()
    );
    assert!(env.names(&env.archive_today()).is_empty());
    assert!(env.work_is_empty(), "{}", env.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_content_twice_is_a_duplicate_and_archived() {
    let env = Env::plain();
    let content = csv(&[("11", "A", 5), ("11", "B", 6)]);
    let daemon = env.start();
    env.drop_file("first.csv", &content);
    env.wait_finished(1).await;
    env.drop_file("second.csv", &content);
    env.wait_finished(2).await;
    daemon.stop(&env).await;

    let first = assert_applied_once(&env, "first.csv");
    let second = env.imports_of("second.csv");
    assert_eq!(second.len(), 1, "{}", env.describe());
    let second = &second[0];
    assert_eq!(second.status, "duplicate", "{}", env.describe());
    assert_eq!(second.duplicate_of, Some(first.id));
    let report = env.report("second", second.id);
    assert_eq!(report["status"], "duplicate");
    assert_eq!(report["duplicate_of"], first.id);
    assert!(
        env.archive_today()
            .join(format!("{}_second.csv", second.id))
            .is_file(),
        "{}",
        env.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_name_dropped_again_is_a_new_import() {
    let env = Env::plain();
    let daemon = env.start();
    env.drop_file("x.csv", &csv(&[("11", "A", 1)]));
    env.wait_finished(1).await;
    env.drop_file("x.csv", &csv(&[("11", "A", 2)]));
    env.wait_finished(2).await;
    daemon.stop(&env).await;

    let imports = env.imports_of("x.csv");
    assert_eq!(imports.len(), 2, "{}", env.describe());
    assert!(imports.iter().all(|i| i.status == "applied"));
    let mut expected: Vec<String> = imports.iter().map(|i| format!("{}_x.csv", i.id)).collect();
    expected.sort();
    assert_eq!(env.names(&env.archive_today()), expected);
    for import in &imports {
        assert_eq!(env.report("x", import.id)["status"], "applied");
    }
    assert_eq!(
        env.count(
            "SELECT i.quantity FROM inventory i JOIN locations l ON l.id = i.location_id \
             WHERE l.name = '11' AND i.sku = 'A'"
        ),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operational_failure_is_retried_and_files_behind_it_wait() {
    let env = Env::plain();
    let daemon = env.start();
    env.wait_for("the outbox to exist", || env.outbox().is_dir())
        .await;
    // A plain file where the outbox should be: reports cannot be written.
    fs::remove_dir(env.outbox()).unwrap();
    fs::write(env.outbox(), "not a directory").unwrap();

    env.drop_file("x.csv", &csv(&[("11", "A", 1), ("11", "B", 2)]));
    env.wait_for("x.csv to be applied with its reports failing", || {
        env.count("SELECT COUNT(*) FROM jobs WHERE status = 'success'") == 1
    })
    .await;
    env.drop_file("y.csv", &csv(&[("12", "A", 3)]));
    // y.csv settles while x.csv waits for its retry: it must wait too.
    tokio::time::sleep(Duration::from_millis(3 * SETTLE_MS)).await;
    let imports = env.imports();
    assert_eq!(imports.len(), 1, "{}", env.describe());
    assert_eq!(imports[0].status, "planned", "{}", env.describe());
    assert_eq!(env.names(&env.work()).len(), 1, "{}", env.describe());
    assert!(env.inbox().join("y.csv").is_file(), "{}", env.describe());

    // The cause is fixed: x.csv is finished (not applied again), then y.csv.
    fs::remove_file(env.outbox()).unwrap();
    fs::create_dir(env.outbox()).unwrap();
    env.wait_finished(2).await;
    daemon.stop(&env).await;

    let x = assert_applied_once(&env, "x.csv");
    let y = assert_applied_once(&env, "y.csv");
    assert!(x.id < y.id);
    assert_eq!(
        env.history().len(),
        3,
        "each item applied once\n{}",
        env.describe()
    );
    assert_eq!(
        env.names(&env.outbox())
            .iter()
            .filter(|n| n.ends_with(".json"))
            .count(),
        2,
        "{}",
        env.describe()
    );
}

/// A file that fails before its plan is stored, `import.max_attempts`
/// times, is given up: an import is recorded for it with no rows
/// (`pipeline::record_unread`), nothing is applied, and once its report can
/// be written it ends in failed/ with an `operational-error` report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_failing_before_its_plan_is_given_up_with_a_report() {
    let env = Env::new("", "[import]\nmax_attempts = 1\n");
    let daemon = env.start();
    env.wait_for("the outbox to exist", || env.outbox().is_dir())
        .await;
    // A plain file where the outbox should be: the errors CSV, written
    // before the plan is stored, cannot be.
    fs::remove_dir(env.outbox()).unwrap();
    fs::write(env.outbox(), "not a directory").unwrap();
    // The second row has no identifier: the file owes an errors CSV.
    env.drop_file("x.csv", &csv(&[("11", "A", 1), ("11", "", 2)]));
    env.wait_for("x.csv to be given up", || {
        env.imports_of("x.csv").len() == 1
    })
    .await;
    assert_eq!(
        env.count("SELECT COUNT(*) FROM jobs"),
        0,
        "{}",
        env.describe()
    );

    fs::remove_file(env.outbox()).unwrap();
    fs::create_dir(env.outbox()).unwrap();
    env.wait_finished(1).await;
    daemon.stop(&env).await;

    let imports = env.imports_of("x.csv");
    assert_eq!(imports[0].status, "failed", "{}", env.describe());
    assert_eq!(imports[0].rows_total, 0);
    let report = env.report("x", imports[0].id);
    assert_eq!(report["status"], "failed", "{report:#}");
    assert_eq!(report["job_type"], "refresh", "{report:#}");
    assert_eq!(
        report["errors"][0]["code"], "operational-error",
        "{report:#}"
    );
    assert_eq!(
        env.names(&env.failed_today()),
        vec![format!("{}_x.csv", imports[0].id)]
    );
    assert_eq!(env.count("SELECT COUNT(*) FROM inventory"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_processes_what_is_there_and_returns() {
    let env = Env::plain();
    env.drop_file("one.csv", &csv(&[("11", "A", 1)]));
    env.drop_file("two.csv", &csv(&[("12", "B", 2)]));
    let run = daemon::run(
        env.config(),
        RunOptions {
            once: true,
            once_wait: Duration::from_secs(60),
            reload_from: None,
        },
        std::future::pending::<()>(),
    );
    match tokio::time::timeout(DEADLINE, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("run --once failed: {e}\n{}", env.describe()),
        Err(_) => panic!("run --once did not return\n{}", env.describe()),
    }
    assert_applied_once(&env, "one.csv");
    assert_applied_once(&env, "two.csv");
    assert!(env.work_is_empty(), "{}", env.describe());
}

/// Issue 8 §1: a client writes half its file, stalls with the file still
/// open (as an SFTP server does while its client's connection stalls) for
/// several settle periods, then writes the rest and closes. The file is
/// never ready while a writer holds it: one import, with every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_stalls_with_the_file_open_gets_one_whole_import() {
    const ROWS: usize = 3_000;
    let env = Env::plain();
    let daemon = env.start();
    let path = env.inbox().join("stall.csv");
    let mut file = fs::File::create(&path).expect("create stall.csv");
    let mut first = String::from("location,sku,quantity\n");
    for i in 0..ROWS / 2 {
        let _ = writeln!(first, "11,S{i},{}", i % 100);
    }
    file.write_all(first.as_bytes()).unwrap();
    file.flush().unwrap();
    // Stalled, open, for five settle periods.
    tokio::time::sleep(Duration::from_millis(5 * SETTLE_MS)).await;
    assert!(
        path.is_file() && env.imports().is_empty(),
        "a file open for writing was taken\n{}",
        env.describe()
    );
    let mut rest = String::new();
    for i in ROWS / 2..ROWS {
        let _ = writeln!(rest, "11,S{i},{}", i % 100);
    }
    file.write_all(rest.as_bytes()).unwrap();
    drop(file);

    env.wait_finished(1).await;
    daemon.stop(&env).await;
    assert_eq!(env.imports().len(), 1, "{}", env.describe());
    let import = assert_applied_once(&env, "stall.csv");
    assert_eq!(import.rows_total as usize, ROWS, "{}", env.describe());
    let report = env.report("stall", import.id);
    assert_eq!(report["rows"]["accepted"], ROWS);
}
