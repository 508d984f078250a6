//! Operating the store (SPEC §1 revert and history, §6; the issue
//! "Operating the store: revert, retention, backup, status and metrics"):
//! `revert`, `prune` and retention, `backup`, `status`, the metrics
//! textfile, the one-daemon lock, `retry` and `notify.command`, each through
//! the real binary (and `stockdrop run` as a child process where the daemon
//! is involved).
//!
//! Every wait polls with a deadline, and every one-shot command runs with a
//! deadline too, so a hang fails with the state of the data root instead of
//! blocking the suite. Data roots live in `/dev/shm` when it is usable.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::daemon::{
    csv, days_ago, temp_root, today, tree, wait_until, write_tail, Daemon, DataRoot, Describe, BIN,
    FAST_WATCH, POLL,
};
use common::{array, expect_quantities, quantities, Listings, Run};
use serde_json::Value;

/// How long any wait (a command, the daemon, a file appearing) may take.
const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers.

/// A temporary data root ([`DataRoot`]): `stockdrop.toml`, `var/`, command
/// outputs and the daemon's logs.
struct Root {
    root: DataRoot,
}

impl Deref for Root {
    type Target = DataRoot;

    fn deref(&self) -> &DataRoot {
        &self.root
    }
}

impl Root {
    fn new(config: &str) -> Root {
        Root {
            root: DataRoot::new("stockdrop-ops-", config),
        }
    }

    /// Writes a file into the root, creating its folder; returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent folder");
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// [`DataRoot::drop_file`], creating the inbox first (the daemon may
    /// not have run yet).
    fn drop_file(&self, name: &str, text: &str) {
        fs::create_dir_all(self.inbox()).expect("create inbox");
        self.root.drop_file(name, text);
    }

    /// `stockdrop --config <root>/stockdrop.toml ARGS`, in the root, with
    /// the caller's STOCKDROP* and RUST_LOG variables removed.
    fn command(&self, env: &[(&str, &str)], args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(self.path())
            .stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("STOCKDROP")
                || key == "RUST_LOG"
                || key == "NOTIFY_SOCKET"
                || key == "WATCHDOG_USEC"
                || key == "JOURNAL_STREAM"
            {
                command.env_remove(&*key);
            }
        }
        command.env("NO_COLOR", "1");
        command.envs(env.iter().copied());
        command
    }

    /// Starts a one-shot command in the background, its output going to
    /// files in the root.
    fn spawn(&self, env: &[(&str, &str)], args: &[&str]) -> (Child, PathBuf, PathBuf) {
        let n = self.next_run();
        let out = self.path().join(format!("cmd-{n}.out"));
        let err = self.path().join(format!("cmd-{n}.err"));
        let child = self
            .command(env, args)
            .stdout(fs::File::create(&out).expect("create stdout file"))
            .stderr(fs::File::create(&err).expect("create stderr file"))
            .spawn()
            .expect("start stockdrop");
        (child, out, err)
    }

    /// Waits for a background command and collects what it printed.
    #[track_caller]
    fn finish(
        &self,
        env: &[(&str, &str)],
        args: &[&str],
        spawned: (Child, PathBuf, PathBuf),
    ) -> Run {
        let (mut child, out, err) = spawned;
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() >= DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "stockdrop {} did not exit within {DEADLINE:?}\n{}",
                    args.join(" "),
                    self.describe()
                );
            }
            std::thread::sleep(POLL);
        };
        Run::new(
            env,
            args,
            status.code(),
            fs::read_to_string(out).unwrap_or_default(),
            fs::read_to_string(err).unwrap_or_default(),
        )
    }

    /// Runs a one-shot command to its end (or the deadline).
    #[track_caller]
    fn run_with(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let spawned = self.spawn(env, args);
        self.finish(env, args, spawned)
    }

    #[track_caller]
    fn stock(&self) -> Vec<Value> {
        array(self.listing(&["stock"]))
    }

    #[track_caller]
    fn status(&self) -> Value {
        self.listing(&["status"])
    }

    /// Writes `name` into the root and imports it (`import --json`),
    /// expecting `code`; returns its report.
    #[track_caller]
    fn import_with(&self, env: &[(&str, &str)], name: &str, text: &str, code: i32) -> Value {
        self.write(name, text);
        let run = self.run_with(env, &["import", "--json", name]);
        run.code(code);
        run.report()
    }

    #[track_caller]
    fn import(&self, name: &str, text: &str, code: i32) -> Value {
        self.import_with(&[], name, text, code)
    }

    /// A read-write connection to the store (for what no command can do:
    /// ageing jobs).
    fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.database()).expect("open the store");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn
    }

    /// Starts `stockdrop run`, its output going to a log in the root.
    fn start(&self) -> Daemon {
        let n = self.next_run();
        let log = self.path().join(format!("run-{n}.log"));
        Daemon::spawn_logged(self.command(&[], &["run"]), log)
    }

    /// Polls `cond` until it holds; fails after the deadline with the
    /// state of the root.
    #[track_caller]
    fn wait_for(&self, what: &str, cond: impl FnMut() -> bool) {
        wait_until(self, DEADLINE, what, cond);
    }

    /// Imports that have finished (not `planned`), read from the store
    /// directly so that polling does not start a process each time.
    fn finished_imports(&self) -> Vec<(i64, String, String)> {
        self.rows(
            "SELECT id, file, status FROM imports WHERE status NOT IN ('planned', 'failing') ORDER BY id",
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Every one of `files` has a finished import and has left the inbox
    /// and the work folder.
    fn all_done(&self, files: &[&str]) -> bool {
        let imports = self.finished_imports();
        let inbox = self.names(&self.inbox());
        self.names(&self.work()).is_empty()
            && files
                .iter()
                .all(|f| !inbox.iter().any(|n| n == f) && imports.iter().any(|i| i.1 == *f))
    }

    /// Waits until the daemon has processed `files`.
    #[track_caller]
    fn wait_done(&self, files: &[&str]) {
        self.wait_for(&format!("the daemon to process {files:?}"), || {
            self.all_done(files)
        });
    }
}

impl Listings for Root {
    /// Runs a one-shot command to its end (or the deadline).
    #[track_caller]
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(&[], args)
    }
}

impl Describe for Root {
    const DEADLINE: Duration = DEADLINE;

    /// The root's tree, the imports and every log and command output, for
    /// failure messages.
    fn describe(&self) -> String {
        let mut out = String::from("--- root ---\n");
        out.push_str(&tree(self.path(), false));
        if self.database().exists() {
            let _ = writeln!(out, "--- imports ---");
            let rows = self.rows(
                "SELECT id, file, status, archived_path FROM imports ORDER BY id",
                |r| {
                    Ok(format!(
                        "{} {} {} {:?}",
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?
                    ))
                },
            );
            for row in rows {
                let _ = writeln!(out, "{row}");
            }
        }
        let mut logs: Vec<PathBuf> = fs::read_dir(self.path())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        let name = p.file_name().unwrap_or_default().to_string_lossy();
                        name.starts_with("run-") || name.starts_with("cmd-")
                    })
                    .collect()
            })
            .unwrap_or_default();
        logs.sort();
        for log in logs {
            let name = log.file_name().unwrap_or_default().to_string_lossy();
            write_tail(&mut out, &name, &log, 30);
        }
        out
    }
}

/// The stock records without what a revert legitimately changes (when and
/// by which job a record was last written), so that values can be compared.
fn values(stock: &[Value]) -> Vec<Value> {
    stock
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let map = r.as_object_mut().expect("stock record is an object");
            map.remove("updated_at");
            map.remove("job_id");
            r
        })
        .collect()
}

/// The single job id of an import report.
#[track_caller]
fn only_job(report: &Value) -> i64 {
    let ids = common::job_ids(report);
    assert_eq!(ids.len(), 1, "expected one job in {report:#}");
    ids[0]
}

/// The revert job (`type` = `revert`) entries of `jobs --json`.
fn revert_jobs(jobs: &[Value]) -> Vec<&Value> {
    jobs.iter().filter(|j| j["type"] == "revert").collect()
}

// ---------------------------------------------------------------------------
// Revert.

#[test]
fn revert_restores_quantities_and_optional_fields_exactly() {
    let root = Root::new("");
    let seed = root.import(
        "seed.csv",
        "location,sku,quantity,bin,retailprice,floor,attributes\n\
         11,A,10,3,9.99,,red\n\
         11,B,20,,,2,\n\
         11,C,30,5,,,\n",
        0,
    );
    let seed_job = only_job(&seed);
    let before = root.stock();

    let change = root.import(
        "change.csv",
        "location,sku,quantity,bin,ltd,floor,safetystock,currencyid,retailprice,attributes\n\
         11,A,11,4,1.5,1,2,840,10.49,blue;green\n\
         11,B,21,7,,5,,,,big\n",
        0,
    );
    let change_job = only_job(&change);
    let changed = root.stock();
    assert_ne!(
        values(&changed),
        values(&before),
        "the second file must change something"
    );
    let a = common::record(&changed, "11", "A");
    assert_eq!(a["quantity"], 11);
    assert_eq!(a["ltd"], 1.5);
    assert_eq!(a["attributes"], serde_json::json!(["red", "blue", "green"]));

    let run = root.run(&["revert", &change_job.to_string(), "--json"]);
    run.code(0);
    let done = run.json();
    assert_eq!(done["job_id"], change_job, "{run}");
    assert_eq!(done["status"], "reverted", "{run}");
    let revert_job = done["revert_job_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("revert --json without revert_job_id\n{run}"));

    let after = root.stock();
    assert_eq!(
        values(&after),
        values(&before),
        "revert must restore every value the job replaced, and nothing else"
    );
    // C was not in the job: not even rewritten.
    assert_eq!(common::record(&after, "11", "C")["job_id"], seed_job);
    assert_eq!(common::record(&after, "11", "A")["job_id"], revert_job);

    let original = root.job(change_job);
    assert_eq!(original["status"], "reverted", "{original:#}");
    assert_eq!(root.job(seed_job)["status"], "success");

    let jobs = root.jobs();
    let reverts = revert_jobs(&jobs);
    assert_eq!(reverts.len(), 1, "one job of type revert in {jobs:#?}");
    assert_eq!(reverts[0]["job_id"], revert_job);
    assert_eq!(reverts[0]["status"], "success");
    assert_eq!(reverts[0]["location"], "11");
    // The revert is history like any other change.
    let detail = root.job(revert_job);
    assert_eq!(detail["type"], "revert");
    let changes = common::changes(&detail);
    let skus: BTreeSet<&str> = changes.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(skus, BTreeSet::from(["A", "B"]), "{detail:#}");
    let a_change = changes.iter().find(|c| c.0 == "A").expect("A changed");
    assert_eq!(a_change.1["quantity"], 11, "{detail:#}");
    assert_eq!(a_change.2["quantity"], 10, "{detail:#}");

    // Twice: refused, nothing changes.
    let again = root.run(&["revert", &change_job.to_string()]);
    again.code(1);
    assert!(
        again.stderr.contains(&change_job.to_string()) && again.stderr.contains("reverted"),
        "the refusal must say the job is already reverted\n{again}"
    );
    assert_eq!(values(&root.stock()), values(&before));
    assert_eq!(revert_jobs(&root.jobs()).len(), 1);

    // An unknown job is a usage error.
    root.run(&["revert", "999"]).code(2);
}

#[test]
fn revert_is_refused_when_a_later_job_changed_the_same_items() {
    let setup = || {
        let root = Root::new("");
        let seed = only_job(&root.import(
            "seed.csv",
            &csv(&[("11", "A", 1), ("11", "B", 2), ("11", "C", 3)]),
            0,
        ));
        let first =
            only_job(&root.import("first.csv", &csv(&[("11", "A", 10), ("11", "B", 20)]), 0));
        let second =
            only_job(&root.import("second.csv", &csv(&[("11", "A", 100), ("11", "C", 300)]), 0));
        (root, seed, first, second)
    };

    let (root, _seed, first, second) = setup();
    let before = root.stock();
    let refused = root.run(&["revert", &first.to_string()]);
    refused.code(1);
    assert!(
        refused.stderr.contains(&format!("job {second}")),
        "the refusal must name the later job {second}\n{refused}"
    );
    assert!(
        refused.stderr.contains("--force"),
        "the refusal should say how to override\n{refused}"
    );
    assert_eq!(root.stock(), before, "a refused revert changes nothing");
    assert_eq!(root.job(first)["status"], "success");
    assert!(revert_jobs(&root.jobs()).is_empty());

    let forced = root.run(&["revert", &first.to_string(), "--force"]);
    forced.code(0);
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[("11", "A", 1), ("11", "B", 2), ("11", "C", 300)]),
        "--force restores the first job's before values, over the later job's"
    );
    assert_eq!(root.job(first)["status"], "reverted");

    // Newest first needs no --force.
    let (root, _seed, first, second) = setup();
    root.run(&["revert", &second.to_string()]).code(0);
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[("11", "A", 10), ("11", "B", 20), ("11", "C", 3)])
    );
    let run = root.run(&["revert", &first.to_string()]);
    run.code(0);
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[("11", "A", 1), ("11", "B", 2), ("11", "C", 3)])
    );
    assert_eq!(root.job(first)["status"], "reverted");
    assert_eq!(root.job(second)["status"], "reverted");
    assert_eq!(revert_jobs(&root.jobs()).len(), 2);
}

#[test]
fn revert_of_a_full_mode_job_restores_the_zeroed_records() {
    let root = Root::new("");
    root.import(
        "seed.csv",
        &csv(&[
            ("11", "A", 5),
            ("11", "B", 6),
            ("11", "C", 7),
            ("11", "D", 8),
            ("12", "X", 9),
        ]),
        0,
    );
    let full = root.import_with(
        &[("STOCKDROP__IMPORT__REFRESH_MODE", "full")],
        "full.csv",
        &csv(&[("11", "A", 10), ("11", "B", 11), ("11", "C", 12)]),
        0,
    );
    assert_eq!(
        common::report_jobs(&full),
        [("11".to_string(), 3, 1, "success".to_string())],
        "{full:#}"
    );
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[
            ("11", "A", 10),
            ("11", "B", 11),
            ("11", "C", 12),
            ("11", "D", 0),
            ("12", "X", 9),
        ])
    );
    let job = only_job(&full);
    root.run(&["revert", &job.to_string()]).code(0);
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[
            ("11", "A", 5),
            ("11", "B", 6),
            ("11", "C", 7),
            ("11", "D", 8),
            ("12", "X", 9),
        ]),
        "reverting a full-mode job must restore the records it zeroed too"
    );
    assert_eq!(root.job(job)["status"], "reverted");
}

#[test]
fn revert_of_a_job_that_created_records_sets_their_quantity_to_0() {
    let root = Root::new("");
    root.import("seed.csv", &csv(&[("11", "OLD", 4)]), 0);
    let job = only_job(&root.import(
        "new.csv",
        "location,sku,quantity,bin\n11,NEW,5,2\n11,OLD,6,\n",
        0,
    ));
    root.run(&["revert", &job.to_string()]).code(0);
    let stock = root.stock();
    assert_eq!(
        quantities(&stock),
        expect_quantities(&[("11", "NEW", 0), ("11", "OLD", 4)]),
        "a record the job created stays, with quantity 0 (documented)"
    );
    assert_eq!(root.job(job)["status"], "reverted");
}

#[test]
fn history_written_as_json_by_an_earlier_version_still_shows_and_reverts() {
    // Stores written before history was kept per job hold a row per record
    // in `history`, with JSON text in `before`/`after`; move this job's
    // entries there in that form and read them.
    let root = Root::new("");
    root.import("seed.csv", "location,sku,quantity,bin\n11,A,4,3\n", 0);
    let job = only_job(&root.import(
        "change.csv",
        "location,sku,quantity,bin,attributes\n11,A,5,,red\n11,B,6,2,\n",
        0,
    ));
    let shown = root.job(job);
    let db = rusqlite::Connection::open(root.database()).expect("open the store");
    let entries = stockdrop::store::history::of_job(&db, job).expect("the job's history");
    assert!(!entries.is_empty());
    db.execute("DELETE FROM job_history WHERE job_id = ?1", [job])
        .expect("drop the chunks");
    for entry in &entries {
        db.execute(
            "INSERT INTO history (job_id, record_id, action, before, after, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, '2026-01-01T00:00:00Z')",
            rusqlite::params![
                job,
                entry.record_id,
                entry.action,
                Value::Object(entry.before.clone()).to_string(),
                Value::Object(entry.after.clone()).to_string()
            ],
        )
        .expect("write a row as an earlier version did");
    }
    drop(db);
    assert_eq!(root.job(job), shown, "the same changes, read from JSON");
    root.run(&["revert", &job.to_string()]).code(0);
    let stock = root.stock();
    assert_eq!(
        quantities(&stock),
        expect_quantities(&[("11", "A", 4), ("11", "B", 0)])
    );
    let a = common::record(&stock, "11", "A");
    assert_eq!(a["attributes"], serde_json::json!([]), "{a:#}");
    assert_eq!(a["binID"], 3, "{a:#}");
}

#[test]
fn revert_that_would_give_a_record_an_identifier_another_record_holds_is_refused_cleanly() {
    let root = Root::new("");
    root.import("seed.csv", &csv(&[("11", "A", 1)]), 0);
    // Adds a UPC to A (matched by its SKU).
    let added = only_job(&root.import(
        "upc.csv",
        "location,sku,upc,quantity\n11,A,036000291452,2\n",
        0,
    ));
    let run = root.run(&["revert", &added.to_string(), "--json"]);
    run.code(0);
    let undo = run.json()["revert_job_id"].as_i64().expect("revert_job_id");
    // The UPC is free again: another product takes it.
    root.import(
        "other.csv",
        "location,sku,upc,quantity\n11,C,036000291452,3\n",
        0,
    );
    let before = root.stock();
    // Undoing the undo would give A the UPC that C now has.
    let refused = root.run(&["revert", &undo.to_string()]);
    refused.code(1);
    assert!(
        refused.stderr.contains("036000291452") && !refused.stderr.contains("UNIQUE"),
        "the refusal names the identifier in plain words\n{refused}"
    );
    assert_eq!(root.stock(), before, "a refused revert changes nothing");
}

// ---------------------------------------------------------------------------
// Retention.

/// Sets a file's modification time `days` days back.
fn age(path: &Path, days: u64) {
    let file = fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .expect("set the modification time");
}

/// The `prune --json` paths of `key`, as sorted strings relative to the root.
fn pruned_paths(root: &Root, pruned: &Value, key: &str) -> Vec<String> {
    let mut paths: Vec<String> = pruned[key]
        .as_array()
        .unwrap_or_else(|| panic!("prune --json without {key}: {pruned:#}"))
        .iter()
        .map(|p| {
            let p = Path::new(p.as_str().expect("path string"));
            p.strip_prefix(root.path())
                .unwrap_or(p)
                .display()
                .to_string()
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn prune_removes_old_originals_and_reports_and_dry_run_only_lists_them() {
    let root = Root::new("");
    // A real import, so the store and a fresh report exist.
    let seed = root.import("seed.csv", &csv(&[("11", "A", 1)]), 0);
    let seed_job = only_job(&seed);

    let old_archive = root.write("var/archive/2020-01-01/1_x.csv", "x");
    let old_failed = root.write("var/failed/2020-01-02/2_y.csv", "y");
    let recent_archive = root.write(&format!("var/archive/{}/3_z.csv", days_ago(10)), "z");
    let recent_failed = root.write(&format!("var/failed/{}/4_w.csv", today()), "w");
    let month_old = root.write(&format!("var/archive/{}/5_v.csv", days_ago(40)), "v");
    let not_a_date = root.write("var/archive/notes/readme.txt", "keep me");
    let old_json = root.write("var/outbox/old.7.json", "{}");
    let old_html = root.write("var/outbox/old.7.html", "<p>");
    let fresh = root.write("var/outbox/fresh.8.json", "{}");
    let two_months = root.write("var/outbox/older.9.json", "{}");
    age(&old_json, 200);
    age(&old_html, 200);
    age(&two_months, 70);
    // History is kept forever by default, however old the job.
    root.db()
        .execute(
            "UPDATE jobs SET finished = '2020-01-01T00:00:00Z' WHERE id = ?1",
            [seed_job],
        )
        .expect("age the job");
    let outbox_before = root.names(&root.outbox());

    let dry = root.run(&["prune", "--dry-run", "--json"]);
    dry.code(0);
    let listed = dry.json();
    assert_eq!(listed["dry_run"], true, "{dry}");
    assert_eq!(
        pruned_paths(&root, &listed, "folders"),
        ["var/archive/2020-01-01", "var/failed/2020-01-02"],
        "{dry}"
    );
    assert_eq!(
        pruned_paths(&root, &listed, "reports"),
        ["var/outbox/old.7.html", "var/outbox/old.7.json"],
        "{dry}"
    );
    assert_eq!(listed["history_jobs"], 0, "{dry}");
    for path in [&old_archive, &old_failed, &old_json, &old_html] {
        assert!(path.exists(), "--dry-run deleted {}", path.display());
    }
    let text = root.run(&["prune", "--dry-run"]);
    text.code(0);
    assert!(
        text.stdout.contains("would remove") && text.stdout.contains("2020-01-01"),
        "the dry run lists what it would remove\n{text}"
    );
    assert!(old_archive.exists());

    let run = root.run(&["prune", "--json"]);
    run.code(0);
    let removed = run.json();
    assert_eq!(removed["dry_run"], false);
    assert_eq!(
        pruned_paths(&root, &removed, "folders"),
        ["var/archive/2020-01-01", "var/failed/2020-01-02"],
        "{run}"
    );
    assert!(!root.var().join("archive/2020-01-01").exists());
    assert!(!root.var().join("failed/2020-01-02").exists());
    assert!(!old_json.exists() && !old_html.exists());
    for path in [
        &recent_archive,
        &recent_failed,
        &month_old,
        &not_a_date,
        &fresh,
        &two_months,
    ] {
        assert!(path.exists(), "prune deleted {}", path.display());
    }
    let mut expected_outbox: Vec<String> = outbox_before
        .into_iter()
        .filter(|n| !n.starts_with("old.7."))
        .collect();
    expected_outbox.sort();
    assert_eq!(root.names(&root.outbox()), expected_outbox);
    // The history of the aged job is still there: it can be reverted.
    assert_eq!(
        root.job(seed_job)["changes"].as_array().map(Vec::len),
        Some(1)
    );

    // Nothing left to do.
    let again = root.run(&["prune", "--json"]);
    again.code(0);
    assert!(pruned_paths(&root, &again.json(), "folders").is_empty());

    // Shorter retention through the config keys.
    root.set_config("[retention]\narchive_days = 30\noutbox_days = 60\n");
    let run = root.run(&["prune", "--json"]);
    run.code(0);
    let removed = run.json();
    assert_eq!(
        pruned_paths(&root, &removed, "folders"),
        [format!("var/archive/{}", days_ago(40))],
        "{run}"
    );
    assert_eq!(
        pruned_paths(&root, &removed, "reports"),
        ["var/outbox/older.9.json"],
        "{run}"
    );
    assert!(!month_old.exists() && !two_months.exists());
    assert!(recent_archive.exists() && fresh.exists() && not_a_date.exists());

    root.run(&["revert", &seed_job.to_string()]).code(0);
}

#[test]
fn pruned_history_makes_revert_refuse_with_a_clear_message() {
    let root = Root::new("[retention]\nhistory_days = 1\n");
    let seed = only_job(&root.import("seed.csv", &csv(&[("11", "A", 1), ("11", "B", 2)]), 0));
    let old = only_job(&root.import("old.csv", &csv(&[("11", "A", 5)]), 0));
    let recent = only_job(&root.import("recent.csv", &csv(&[("11", "B", 7)]), 0));
    let history = |job: i64| -> usize {
        stockdrop::store::history::records_of_job(&root.db(), job)
            .expect("count history")
            .len()
    };
    root.db()
        .execute(
            "UPDATE jobs SET finished = '2020-01-01T00:00:00Z' WHERE id IN (?1, ?2)",
            [seed, old],
        )
        .expect("age the jobs");

    let dry = root.run(&["prune", "--dry-run", "--json"]);
    dry.code(0);
    assert_eq!(dry.json()["history_jobs"], 2, "{dry}");
    assert_eq!(history(old), 1, "--dry-run must not delete history");

    let run = root.run(&["prune", "--json"]);
    run.code(0);
    assert_eq!(run.json()["history_jobs"], 2, "{run}");
    assert_eq!(history(seed), 0);
    assert_eq!(history(old), 0);
    assert_eq!(history(recent), 1, "recent history is kept");

    let before = root.stock();
    let refused = root.run(&["revert", &old.to_string()]);
    refused.code(1);
    assert!(
        refused.stderr.contains("pruned"),
        "the refusal must say the history was pruned\n{refused}"
    );
    assert_eq!(root.stock(), before);
    assert_eq!(root.job(old)["status"], "success", "the job itself is kept");

    // A job inside the retention period still reverts.
    root.run(&["revert", &recent.to_string()]).code(0);
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[("11", "A", 5), ("11", "B", 2)])
    );
}

// ---------------------------------------------------------------------------
// Backup.

/// Opens a backup copy and checks it: integrity, the tables, and that it
/// is one consistent state (every applied job's records are there).
#[track_caller]
fn check_copy(path: &Path) -> (i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open the copy {}: {e}", path.display()));
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok", "the copy {} is damaged", path.display());
    let tables: BTreeSet<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("list tables");
    for table in ["imports", "jobs", "inventory", "history"] {
        assert!(tables.contains(table), "the copy lacks {table}: {tables:?}");
    }
    let applied: i64 = conn
        .query_row(
            "SELECT coalesce(sum(item_count), 0) FROM jobs WHERE type = 'refresh' AND status = 'success'",
            [],
            |r| r.get(0),
        )
        .expect("count applied items");
    let records: i64 = conn
        .query_row("SELECT count(*) FROM inventory", [], |r| r.get(0))
        .expect("count records");
    (applied, records)
}

#[test]
fn backup_while_an_import_runs_is_a_consistent_copy() {
    let root = Root::new("");
    root.run(&["backup", "copy.db"]).code(2);

    let rows = 60_000;
    let mut text = String::with_capacity(rows * 20);
    text.push_str("location,sku,quantity\n");
    for i in 0..rows {
        let _ = writeln!(text, "11,SKU{i},{}", i % 50);
    }
    root.write("big.csv", &text);
    let args = ["import", "big.csv"];
    let mut import = root.spawn(&[], &args);

    // Wait until the import has planned (its jobs are in the store) and is
    // applying them, then copy.
    let planned = || -> bool {
        let Ok(conn) = rusqlite::Connection::open_with_flags(
            root.database(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) else {
            return false;
        };
        let _ = conn.busy_timeout(Duration::from_secs(5));
        conn.query_row("SELECT count(*) FROM jobs", [], |r| r.get::<_, i64>(0))
            .is_ok_and(|n| n > 0)
    };
    root.wait_for("the import to plan its jobs", || {
        planned() || import.0.try_wait().ok().flatten().is_some()
    });
    assert!(
        import.0.try_wait().expect("try_wait").is_none(),
        "the import finished before the backup could start; make the file larger\n{}",
        root.describe()
    );
    let backup = root.run(&["backup", "copy.db"]);
    let still_running = import.0.try_wait().expect("try_wait").is_none();
    backup.code(0);
    assert!(backup.stdout.contains("copy.db"), "{backup}");
    let finished = root.finish(&[], &args, (import.0, import.1, import.2));
    finished.code(0);

    let (applied, records) = check_copy(&root.path().join("copy.db"));
    assert_eq!(
        applied, records,
        "the copy must hold whole jobs only (applied items = records)"
    );
    assert!(
        applied == 0 || applied == rows as i64,
        "the import applies in one transaction: the copy has all or nothing, got {applied}"
    );
    eprintln!(
        "backup taken while the import ran: {still_running}; the copy holds {records} records"
    );
    assert!(
        !root.path().join("copy.db-wal").exists(),
        "the copy is one self-contained file"
    );

    // Into a folder: stockdrop-<time>.db, and nothing else left there.
    fs::create_dir_all(root.path().join("backups")).expect("create backups folder");
    root.run(&["backup", "backups"]).code(0);
    let names = root.names(&root.path().join("backups"));
    let all: Vec<String> = fs::read_dir(root.path().join("backups"))
        .expect("list backups")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "one backup file: {all:?}");
    assert_eq!(all.len(), 1, "no temporary files left: {all:?}");
    let name = &names[0];
    assert!(
        name.starts_with("stockdrop-")
            && name.ends_with(".db")
            && name.len() > "stockdrop-.db".len(),
        "backup into a folder is named stockdrop-<time>.db, got {name}"
    );
    let (applied, records) = check_copy(&root.path().join("backups").join(name));
    assert_eq!((applied, records), (rows as i64, rows as i64));
}

// ---------------------------------------------------------------------------
// Status, metrics, the lock.

#[test]
fn status_reports_the_daemon_the_queue_the_last_day_and_the_last_error() {
    let root = Root::new(FAST_WATCH);
    let status = root.status();
    assert_eq!(status["daemon_running"], false, "{status:#}");
    assert_eq!(status["inbox_waiting"], 0, "{status:#}");
    assert_eq!(status["work_claimed"], 0, "{status:#}");
    assert_eq!(status["last_error"], Value::Null, "{status:#}");
    for key in ["imports_24h", "jobs_24h"] {
        assert!(
            status[key].as_object().is_some_and(|m| m.is_empty()),
            "{key} is empty before anything: {status:#}"
        );
    }

    root.drop_file("good.csv", &csv(&[("11", "A", 1), ("11", "B", 2)]));
    root.drop_file("bad.csv", &csv(&[("11", "C", -3)]));
    fs::write(root.inbox().join("upload.csv.part"), "location").expect("write a partial upload");
    let status = root.status();
    assert_eq!(status["inbox_waiting"], 2, "{status:#}");
    assert_eq!(status["daemon_running"], false, "{status:#}");
    let text = root.run(&["status"]);
    text.code(0);
    assert!(
        text.stdout.contains("not running") && text.stdout.contains("2 files waiting"),
        "{text}"
    );

    let mut daemon = root.start();
    daemon.wait_ready(&root);
    root.wait_done(&["good.csv", "bad.csv"]);
    let status = root.status();
    assert_eq!(status["daemon_running"], true, "{status:#}");
    assert_eq!(status["inbox_waiting"], 0, "{status:#}");
    assert_eq!(status["work_claimed"], 0, "{status:#}");
    assert_eq!(
        status["imports_24h"],
        serde_json::json!({"applied": 1, "rejected": 1}),
        "{status:#}"
    );
    assert_eq!(status["jobs_24h"]["success"], 1, "{status:#}");
    let last = &status["last_error"];
    assert_eq!(last["file"], "bad.csv", "{status:#}");
    assert_eq!(last["status"], "rejected", "{status:#}");
    assert_eq!(last["code"], "out-of-range", "{status:#}");
    let text = root.run(&["status"]);
    assert!(
        text.stdout.contains("running") && !text.stdout.contains("not running"),
        "{text}"
    );
    assert!(text.stdout.contains("bad.csv"), "{text}");

    let exit = daemon.terminate(&root);
    assert_eq!(exit.code(), Some(0), "{}", root.describe());
    let status = root.status();
    assert_eq!(
        status["daemon_running"], false,
        "a stopped daemon releases the lock: {status:#}"
    );
}

/// The samples of a Prometheus text file: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {l}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|e| panic!("not a sample value in {l}: {e}"));
            (name.to_string(), value)
        })
        .collect()
}

#[test]
fn the_daemon_writes_metrics_for_the_textfile_collector() {
    let root = Root::new(&format!(
        "{FAST_WATCH}[metrics]\ntextfile = \"textfile/stockdrop.prom\"\n"
    ));
    fs::create_dir_all(root.path().join("textfile")).expect("create the collector folder");
    let metrics = root.path().join("textfile/stockdrop.prom");
    let started = chrono::Utc::now().timestamp();

    let mut daemon = root.start();
    daemon.wait_ready(&root);
    root.drop_file(
        "good.csv",
        &csv(&[("11", "A", 1), ("11", "B", 2), ("11", "C", 3)]),
    );
    root.wait_done(&["good.csv"]);
    root.drop_file("bad.csv", &csv(&[("11", "D", -1), ("11", "E", -2)]));
    root.wait_done(&["bad.csv"]);
    root.wait_for("the metrics to count the rejected file", || {
        fs::read_to_string(&metrics)
            .is_ok_and(|t| t.contains("stockdrop_files_total{status=\"rejected\"} 1"))
    });
    let text = fs::read_to_string(&metrics).expect("read the metrics");
    let s = samples(&text);
    let get = |name: &str| -> f64 {
        *s.get(name)
            .unwrap_or_else(|| panic!("no sample {name} in\n{text}"))
    };
    assert_eq!(
        get("stockdrop_files_total{status=\"applied\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        get("stockdrop_files_total{status=\"rejected\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        get("stockdrop_files_total{status=\"partial\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(
        get("stockdrop_rows_total{result=\"accepted\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        get("stockdrop_rows_total{result=\"rejected\"}"),
        2.0,
        "{text}"
    );
    assert_eq!(
        get("stockdrop_jobs_total{status=\"success\"}"),
        1.0,
        "{text}"
    );
    let last_success = get("stockdrop_last_success_timestamp_seconds");
    assert!(
        last_success >= (started - 5) as f64
            && last_success <= (chrono::Utc::now().timestamp() + 5) as f64,
        "the last success is now-ish, got {last_success}\n{text}"
    );
    assert!(get("stockdrop_last_processing_seconds") >= 0.0, "{text}");
    assert!(
        text.contains("# TYPE stockdrop_files_total counter"),
        "the file has TYPE lines\n{text}"
    );
    let all: Vec<String> = fs::read_dir(root.path().join("textfile"))
        .expect("list the collector folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(all, ["stockdrop.prom"], "no temporary files beside it");
    assert_eq!(daemon.terminate(&root).code(), Some(0));
}

#[test]
fn only_one_daemon_per_store_while_one_shot_commands_work_beside_it() {
    let root = Root::new(FAST_WATCH);
    // Originals past retention: the daemon prunes them at start-up.
    let old = root.write("var/archive/2020-01-01/1_old.csv", "old");
    root.import("seed.csv", &csv(&[("11", "A", 1)]), 0);

    let mut daemon = root.start();
    daemon.wait_ready(&root);
    root.wait_for("the daemon to prune archive/2020-01-01 at start-up", || {
        !old.exists()
    });
    assert!(
        daemon.log().contains("pruned"),
        "pruning is reported in the log\n{}",
        daemon.log()
    );

    let second = root.run(&["run"]);
    second.code(3);
    assert!(
        second.stderr.contains("already running"),
        "the second daemon says why it stops\n{second}"
    );
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "the first daemon keeps running\n{}",
        root.describe()
    );

    // One-shot commands work beside it.
    let jobs = root.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    root.import("more.csv", &csv(&[("11", "B", 2)]), 0);
    root.run(&["backup", "beside.db"]).code(0);
    check_copy(&root.path().join("beside.db"));
    assert_eq!(root.status()["daemon_running"], true);
    root.drop_file("dropped.csv", &csv(&[("11", "C", 3)]));
    root.wait_done(&["dropped.csv"]);
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[("11", "A", 1), ("11", "B", 2), ("11", "C", 3)])
    );
    assert_eq!(daemon.terminate(&root).code(), Some(0));

    // Once it stopped, a new daemon may start.
    let mut next = root.start();
    next.wait_ready(&root);
    assert_eq!(next.terminate(&root).code(), Some(0));
}

// ---------------------------------------------------------------------------
// Retry.

#[test]
fn retry_puts_a_failed_file_back_through_the_pipeline() {
    let strict =
        format!("{FAST_WATCH}[import]\nlocations = [\"11\"]\non_error = \"reject-file\"\n");
    let root = Root::new(&strict);
    let mut daemon = root.start();
    daemon.wait_ready(&root);
    root.drop_file("store99.csv", &csv(&[("99", "A", 5), ("99", "B", 6)]));
    root.wait_done(&["store99.csv"]);
    let first = root.imports()[0].clone();
    assert_eq!(first["status"], "rejected", "{first:#}");
    let first_id = first["import_id"].as_i64().expect("import_id");
    let failed = root.failed_today().join(format!("{first_id}_store99.csv"));
    assert!(failed.is_file(), "{}", root.describe());
    assert_eq!(daemon.terminate(&root).code(), Some(0));

    // Retried before the cause is fixed: rejected again, under a new id.
    let again = root.run(&["retry", &first_id.to_string(), "--json"]);
    again.code(1);
    let report = again.report();
    assert_eq!(report["status"], "rejected", "{again}");
    let second_id = common::import_id(&report);
    assert!(second_id > first_id, "{again}");
    assert!(
        !failed.exists(),
        "the original moved on\n{}",
        root.describe()
    );
    let failed_again = root.failed_today().join(format!("{second_id}_store99.csv"));
    assert!(failed_again.is_file(), "{}", root.describe());

    // Fixed: applied, the original to the archive under the newest id.
    root.set_config(&format!(
        "{FAST_WATCH}[import]\nlocations = [\"11\", \"99\"]\non_error = \"reject-file\"\n"
    ));
    let run = root.run(&["retry", &second_id.to_string(), "--json"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["status"], "applied", "{run}");
    assert_eq!(report["file"], "store99.csv", "{run}");
    let third_id = common::import_id(&report);
    assert!(third_id > second_id, "{run}");
    assert!(!failed_again.exists(), "{}", root.describe());
    assert!(
        root.archive_today()
            .join(format!("{third_id}_store99.csv"))
            .is_file(),
        "{}",
        root.describe()
    );
    let reports = root.names(&root.outbox());
    assert!(
        reports.contains(&format!("store99.{third_id}.json"))
            && reports.contains(&format!("store99.{third_id}.html")),
        "a new report in the outbox: {reports:?}"
    );
    let stored: Value = serde_json::from_str(
        &fs::read_to_string(root.outbox().join(format!("store99.{third_id}.json")))
            .expect("read the report"),
    )
    .expect("report JSON");
    assert_eq!(stored["status"], "applied");
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[("99", "A", 5), ("99", "B", 6)])
    );
    let imports = root.imports();
    assert_eq!(imports.len(), 3, "{imports:#?}");
    assert_eq!(imports[0]["import_id"], third_id);
    assert_eq!(imports[0]["status"], "applied");

    // An unknown id; an import whose original is not in failed/ (anymore,
    // or never: a one-shot import leaves the original where it was).
    root.run(&["retry", "999"]).code(2);
    let moved = root.run(&["retry", &first_id.to_string()]);
    moved.code(2);
    root.run(&["retry", &third_id.to_string()]).code(2);
    let one_shot = common::import_id(&root.import("x.csv", &csv(&[("11", "X", 1)]), 0));
    root.run(&["retry", &one_shot.to_string()]).code(2);
    assert_eq!(root.imports().len(), 4, "refused retries import nothing");
}

// ---------------------------------------------------------------------------
// notify.command.

/// `KEY=value` lines as a map.
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn notify_command_runs_after_each_file_with_the_outcome_in_its_environment() {
    let probe = temp_root("stockdrop-ops-");
    let notified = probe.path().join("notified");
    let root = Root::new(&format!(
        "{FAST_WATCH}[notify]\ncommand = 'env | grep ^STOCKDROP_ | sort > \"{dir}/env-$STOCKDROP_IMPORT_ID.tmp\" && mv \"{dir}/env-$STOCKDROP_IMPORT_ID.tmp\" \"{dir}/env-$STOCKDROP_IMPORT_ID\"; printenv STOCKDROP_STATUS >> \"{notified}\"'\n",
        dir = probe.path().display(),
        notified = notified.display(),
    ));
    let mut daemon = root.start();
    daemon.wait_ready(&root);
    root.drop_file("good.csv", &csv(&[("11", "A", 1), ("11", "B", 2)]));
    root.wait_done(&["good.csv"]);
    root.drop_file("part.csv", &csv(&[("11", "C", 3), ("11", "D", -4)]));
    root.wait_done(&["part.csv"]);
    let imports = root.finished_imports();
    let id_of = |file: &str| {
        imports
            .iter()
            .find(|i| i.1 == file)
            .map(|i| i.0)
            .expect("import")
    };
    let (good, part) = (id_of("good.csv"), id_of("part.csv"));
    for id in [good, part] {
        root.wait_for(&format!("notify.command for import {id}"), || {
            probe.path().join(format!("env-{id}")).is_file()
        });
    }
    let read = |id: i64| {
        env_file(&fs::read_to_string(probe.path().join(format!("env-{id}"))).expect("read env"))
    };

    let env = read(good);
    assert_eq!(env["STOCKDROP_STATUS"], "applied", "{env:#?}");
    assert_eq!(env["STOCKDROP_FILE"], "good.csv", "{env:#?}");
    assert_eq!(env["STOCKDROP_IMPORT_ID"], good.to_string(), "{env:#?}");
    assert_eq!(env["STOCKDROP_ROWS_TOTAL"], "2", "{env:#?}");
    assert_eq!(env["STOCKDROP_ROWS_ACCEPTED"], "2", "{env:#?}");
    assert_eq!(env["STOCKDROP_ROWS_REJECTED"], "0", "{env:#?}");
    let json = PathBuf::from(&env["STOCKDROP_REPORT_JSON"]);
    assert!(
        json.ends_with(format!("good.{good}.json")) && json.is_file(),
        "{env:#?}"
    );
    let html = PathBuf::from(&env["STOCKDROP_REPORT_HTML"]);
    assert!(
        html.ends_with(format!("good.{good}.html")) && html.is_file(),
        "{env:#?}"
    );
    assert_eq!(
        env.get("STOCKDROP_ERRORS_CSV").map(String::as_str),
        Some(""),
        "no errors CSV for a clean file: {env:#?}"
    );

    let env = read(part);
    assert_eq!(env["STOCKDROP_STATUS"], "partial", "{env:#?}");
    assert_eq!(env["STOCKDROP_FILE"], "part.csv", "{env:#?}");
    assert_eq!(env["STOCKDROP_ROWS_ACCEPTED"], "1", "{env:#?}");
    assert_eq!(env["STOCKDROP_ROWS_REJECTED"], "1", "{env:#?}");
    let errors = PathBuf::from(&env["STOCKDROP_ERRORS_CSV"]);
    assert!(
        errors.ends_with(format!("part.{part}.errors.csv")) && errors.is_file(),
        "{env:#?}"
    );

    root.wait_for("two status lines in the notified file", || {
        fs::read_to_string(&notified).is_ok_and(|t| t.lines().count() == 2)
    });
    let lines: Vec<String> = fs::read_to_string(&notified)
        .expect("read notified")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines, ["applied", "partial"]);
    assert_eq!(daemon.terminate(&root).code(), Some(0));
}

#[test]
fn a_failing_notify_command_is_logged_and_does_not_hold_up_the_queue() {
    let probe = temp_root("stockdrop-ops-");
    let ran = probe.path().join("ran");
    let root = Root::new(&format!(
        "{FAST_WATCH}[notify]\ncommand = 'echo \"$STOCKDROP_FILE\" >> \"{}\"; exit 3'\n",
        ran.display()
    ));
    let mut daemon = root.start();
    daemon.wait_ready(&root);
    root.drop_file("one.csv", &csv(&[("11", "A", 1)]));
    root.drop_file("two.csv", &csv(&[("12", "B", 2)]));
    root.wait_done(&["one.csv", "two.csv"]);
    root.wait_for("the command to run for both files", || {
        fs::read_to_string(&ran).is_ok_and(|t| t.lines().count() == 2)
    });
    root.wait_for("the failure to be logged", || {
        daemon.log().matches("notify.command failed").count() >= 2
    });
    root.drop_file("three.csv", &csv(&[("13", "C", 3)]));
    root.wait_done(&["three.csv"]);
    assert_eq!(
        quantities(&root.stock()),
        expect_quantities(&[("11", "A", 1), ("12", "B", 2), ("13", "C", 3)])
    );
    let statuses: Vec<String> = root.finished_imports().into_iter().map(|i| i.2).collect();
    assert_eq!(statuses, ["applied", "applied", "applied"]);
    assert_eq!(daemon.terminate(&root).code(), Some(0));
}

#[test]
fn a_stopping_daemon_waits_for_the_notify_command_of_its_last_file() {
    let probe = temp_root("stockdrop-ops-");
    let done = probe.path().join("done");
    // The command takes a second: a SIGTERM right after the file must not
    // leave it unfinished (systemd would then kill it with the unit).
    let root = Root::new(&format!(
        "{FAST_WATCH}[notify]\ncommand = 'sleep 1; echo \"$STOCKDROP_FILE\" > \"{}\"'\n",
        done.display()
    ));
    let mut daemon = root.start();
    daemon.wait_ready(&root);
    root.drop_file("last.csv", &csv(&[("11", "A", 1)]));
    root.wait_done(&["last.csv"]);
    assert_eq!(daemon.terminate(&root).code(), Some(0));
    assert_eq!(
        fs::read_to_string(&done).ok().as_deref(),
        Some("last.csv\n"),
        "the daemon exited before its notify.command finished\n{}",
        daemon.log()
    );
}

// ---------------------------------------------------------------------------
// `run --once` answers with the exit-code table, as `import` does.

#[test]
fn run_once_exits_with_the_worst_file_it_processed() {
    let root = Root::new(FAST_WATCH);
    // Imports before this run do not count.
    root.import_with(&[], "old.csv", "location,sku,qty\n11,A,-1\n", 1); // rejected
    root.drop_file("good.csv", "location,sku,qty\n11,G,1\n");
    root.run_with(&[], &["run", "--once"]).code(0);
    root.drop_file("good2.csv", "location,sku,qty\n11,H,1\n");
    root.drop_file("bad.csv", "location,sku,qty\n11,B,1\n11,C,-1\n");
    let run = root.run_with(&[], &["run", "--once"]);
    run.code(1);
    let mut statuses: Vec<String> = array(root.listing(&["imports"]))
        .iter()
        .map(|i| i["status"].as_str().unwrap_or_default().to_string())
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        ["applied", "applied", "partial", "rejected"],
        "{run}"
    );
}

#[test]
fn a_job_whose_history_spans_several_chunks_shows_and_reverts_whole() {
    // Full mode zeroes 1,200 records on the location's one job: its history
    // (1 update + 1,199 zeroes) takes two chunks of at most 1,000 entries.
    let root = Root::new("[import]\nfull_max_zero_pct = 100\n");
    let mut seed = String::from("location,sku,quantity\n");
    for n in 0..1200 {
        seed.push_str(&format!("11,S{n:04},{}\n", n + 1));
    }
    root.import("seed.csv", &seed, 0);
    let before = root.stock();
    let full = only_job(&root.import_with(
        &[("STOCKDROP__IMPORT__REFRESH_MODE", "full")],
        "full.csv",
        "location,sku,quantity\n11,S0000,50\n",
        0,
    ));
    let detail = root.job(full);
    let changes = common::changes(&detail);
    assert_eq!(changes.len(), 1200, "every change is shown");
    assert_eq!(changes[0].0, "S0000");
    assert_eq!(
        (
            changes[0].1["quantity"].clone(),
            changes[0].2["quantity"].clone()
        ),
        (1.into(), 50.into())
    );
    let last = changes.last().expect("a last change");
    assert_eq!(
        (last.0.as_str(), last.2["quantity"].as_i64()),
        ("S1199", Some(0))
    );
    root.run(&["revert", &full.to_string()]).code(0);
    assert_eq!(quantities(&root.stock()), quantities(&before));
}
