//! One inbox per uploading account (SPEC §2.1), with the real daemon as a
//! child process: every inbox is watched and claimed, a file's reports go
//! only to its own inbox's outbox, its original to a folder of its inbox,
//! an inbox's `locations` fence its files in, the inbox survives `kill -9`
//! after the claim, SIGHUP changes an inbox's rules, and no uploaded name
//! can make a file pass for another inbox's. The one-shot commands take
//! `--inbox`.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::daemon::{
    csv, signal, today, tree, wait_until, write_tail, Daemon, DataRoot, Describe, BIN, FAST_WATCH,
};
use common::{array, Listings, Run};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

/// Two accounts: `boston` may only touch location `B1`; `chicago_2` (an
/// underscore, which the claim key must carry) may touch any.
fn two_inboxes(boston_import: &str) -> String {
    format!(
        "{FAST_WATCH}\
         [[inbox]]\nname = \"boston\"\npath = \"sftp/boston/upload\"\noutbox = \"sftp/boston/reports\"\n\
         [inbox.import]\nlocations = [\"B1\"]\n{boston_import}\
         [[inbox]]\nname = \"chicago_2\"\npath = \"sftp/chicago/upload\"\noutbox = \"sftp/chicago/reports\"\n"
    )
}

struct Env {
    root: DataRoot,
}

impl Deref for Env {
    type Target = DataRoot;

    fn deref(&self) -> &DataRoot {
        &self.root
    }
}

#[derive(Debug)]
#[allow(dead_code)]
struct Import {
    id: i64,
    file: String,
    status: String,
    inbox: String,
    report_dir: String,
    archived_path: Option<String>,
}

impl Env {
    fn new(config: &str) -> Env {
        Env::with_root(DataRoot::new("stockdrop-inboxes-", config))
    }

    fn with_root(root: DataRoot) -> Env {
        let env = Env { root };
        for account in ["boston", "chicago"] {
            fs::create_dir_all(env.upload(account)).expect("create upload folder");
        }
        env
    }

    fn upload(&self, account: &str) -> PathBuf {
        self.path().join("sftp").join(account).join("upload")
    }

    fn reports(&self, account: &str) -> PathBuf {
        self.path().join("sftp").join(account).join("reports")
    }

    /// Drops `name` into an account's upload folder as a careful uploader
    /// does (hidden name, then rename).
    fn drop_into(&self, account: &str, name: &str, content: &str) {
        let dir = self.upload(account);
        let tmp = dir.join(format!(".{name}.part"));
        fs::write(&tmp, content).expect("write upload");
        fs::rename(&tmp, dir.join(name)).expect("rename upload");
    }

    fn start(&self, crash_at: Option<&str>) -> Daemon {
        self.start_notifying(crash_at, None)
    }

    /// As [`Env::start`], telling systemd's notify socket at `notify`.
    fn start_notifying(&self, crash_at: Option<&str>, notify: Option<&Path>) -> Daemon {
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
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        if let Some(point) = crash_at {
            command.env("STOCKDROP_CRASH_AT", point);
        }
        if let Some(socket) = notify {
            command.env("NOTIFY_SOCKET", socket);
        }
        Daemon::spawn_logged(command, log)
    }

    fn imports_in_store(&self) -> Vec<Import> {
        self.rows(
            "SELECT id, file, status, inbox, report_dir, archived_path FROM imports ORDER BY id",
            |r| {
                Ok(Import {
                    id: r.get(0)?,
                    file: r.get(1)?,
                    status: r.get(2)?,
                    inbox: r.get(3)?,
                    report_dir: r.get(4)?,
                    archived_path: r.get(5)?,
                })
            },
        )
    }

    /// The import of `file`, once it is finished and its original moved.
    fn finished(&self, file: &str) -> Option<Import> {
        self.imports_in_store()
            .into_iter()
            .find(|i| i.file == file && i.status != "planned" && i.archived_path.is_some())
            .filter(|i| {
                i.archived_path
                    .as_deref()
                    .is_some_and(|p| Path::new(p).exists())
            })
    }

    #[track_caller]
    fn wait_finished(&self, file: &str) -> Import {
        wait_until(self, DEADLINE, &format!("{file} to be finished"), || {
            self.finished(file).is_some()
        });
        self.finished(file).expect("finished import")
    }

    /// The names in an account's reports folder that belong to `stem`'s
    /// reports.
    fn reports_of(&self, account: &str, stem: &str) -> Vec<String> {
        self.names(&self.reports(account))
            .into_iter()
            .filter(|n| n.contains(stem))
            .collect()
    }

    /// The JSON report of an import in an account's reports folder.
    fn report(&self, account: &str, stem: &str) -> Value {
        let name = self
            .reports_of(account, stem)
            .into_iter()
            .find(|n| n.ends_with(".json"))
            .unwrap_or_else(|| {
                panic!(
                    "no JSON report of {stem} for {account}\n{}",
                    self.describe()
                )
            });
        let text = fs::read_to_string(self.reports(account).join(name)).expect("read report");
        serde_json::from_str(&text).expect("report JSON")
    }
}

impl Listings for Env {
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(self.path())
            .env_remove("STOCKDROP_CRASH_AT")
            .env_remove("STOCKDROP_CONFIG")
            .env_remove("RUST_LOG")
            .output()
            .expect("run stockdrop");
        Run::new(
            &[],
            args,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Describe for Env {
    const DEADLINE: Duration = DEADLINE;

    fn describe(&self) -> String {
        let mut out = String::from("--- data root ---\n");
        out.push_str(&tree(self.path(), true));
        let _ = writeln!(out, "--- imports ---");
        for i in self.imports_in_store() {
            let _ = writeln!(out, "{i:?}");
        }
        for n in 1..=self.runs() {
            let log = self.path().join(format!("run-{n}.log"));
            write_tail(&mut out, &format!("run {n} log"), &log, 30);
        }
        out
    }
}

fn stock_of(env: &Env, location: &str) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = array(env.listing(&["stock", "--location", location]))
        .iter()
        .map(|r| {
            (
                r["sku"].as_str().unwrap_or_default().to_string(),
                r["quantity"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn each_inbox_reports_only_to_its_own_outbox_and_archives_in_its_own_folder() {
    let root = DataRoot::new("stockdrop-inboxes-", "");
    let notified = root.path().join("notified");
    root.set_config(&format!(
        "[metrics]\ntextfile = \"metrics.prom\"\n\
         [notify]\ncommand = 'echo \"$STOCKDROP_FILE $STOCKDROP_INBOX\" >> \"{}\"'\n{}",
        notified.display(),
        two_inboxes("")
    ));
    let env = Env::with_root(root);
    let mut daemon = env.start(None);
    daemon.wait_ready(&env);
    env.drop_into("boston", "boston-stock.csv", &csv(&[("B1", "A", 5)]));
    env.drop_into("chicago", "chicago-stock.csv", &csv(&[("C1", "A", 7)]));
    let boston = env.wait_finished("boston-stock.csv");
    let chicago = env.wait_finished("chicago-stock.csv");
    // notify.command runs in the background after the file: waited for
    // before the daemon is stopped.
    wait_until(&env, DEADLINE, "notify.command for both files", || {
        fs::read_to_string(&notified).is_ok_and(|t| t.lines().count() == 2)
    });
    let mut lines: Vec<String> = fs::read_to_string(&notified)
        .expect("notified")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        ["boston-stock.csv boston", "chicago-stock.csv chicago_2"]
    );

    let status = daemon.terminate(&env);
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", env.describe());

    assert_eq!(
        (boston.status.as_str(), boston.inbox.as_str()),
        ("applied", "boston")
    );
    assert_eq!(
        (chicago.status.as_str(), chicago.inbox.as_str()),
        ("applied", "chicago_2")
    );
    // Reports: each in its own outbox, nothing of it in the other.
    assert!(
        !env.reports_of("boston", "boston-stock").is_empty(),
        "{}",
        env.describe()
    );
    assert!(
        !env.reports_of("chicago", "chicago-stock").is_empty(),
        "{}",
        env.describe()
    );
    assert!(
        env.reports_of("boston", "chicago-stock").is_empty(),
        "{}",
        env.describe()
    );
    assert!(
        env.reports_of("chicago", "boston-stock").is_empty(),
        "{}",
        env.describe()
    );
    // Each report names the inbox its file came from, for scripts and people.
    assert_eq!(env.report("boston", "boston-stock")["inbox"], "boston");
    assert_eq!(env.report("chicago", "chicago-stock")["inbox"], "chicago_2");
    let page = env
        .reports_of("boston", "boston-stock")
        .into_iter()
        .find(|n| n.ends_with(".html"))
        .expect("an HTML report");
    let html = fs::read_to_string(env.reports("boston").join(page)).expect("read the page");
    assert!(html.contains("<dt>Inbox</dt><dd>boston</dd>"), "{html}");
    assert!(
        !env.outbox().exists(),
        "paths.outbox is no inbox's outbox here"
    );
    // Originals: under a folder per inbox name.
    let archive = env.var().join("archive");
    assert_eq!(
        env.names(&archive.join("boston").join(today())),
        [format!("{}_boston-stock.csv", boston.id)]
    );
    assert_eq!(
        env.names(&archive.join("chicago_2").join(today())),
        [format!("{}_chicago-stock.csv", chicago.id)]
    );
    assert!(env.names(&env.upload("boston")).is_empty());
    assert!(env.names(&env.work()).is_empty(), "{}", env.describe());

    // The metrics count per inbox.
    let metrics = fs::read_to_string(env.path().join("metrics.prom")).expect("metrics file");
    for line in [
        "stockdrop_files_total{inbox=\"boston\",status=\"applied\"} 1",
        "stockdrop_files_total{inbox=\"chicago_2\",status=\"applied\"} 1",
        "stockdrop_files_total{inbox=\"chicago_2\",status=\"rejected\"} 0",
        "stockdrop_rows_total{inbox=\"boston\",result=\"accepted\"} 1",
        "stockdrop_jobs_total{inbox=\"chicago_2\",status=\"success\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    // The read commands, per inbox.
    let listed = |args: &[&str]| -> Vec<String> {
        array(env.listing(args))
            .iter()
            .map(|i| i["file"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        listed(&["imports", "--inbox", "boston"]),
        ["boston-stock.csv"]
    );
    assert_eq!(
        listed(&["imports", "--inbox", "chicago_2"]),
        ["chicago-stock.csv"]
    );
    assert_eq!(listed(&["imports"]).len(), 2);
    let keys = array(env.listing(&["imports", "--inbox", "boston"]));
    assert_eq!(keys[0]["inbox"], "boston", "{keys:?}");
    assert_eq!(keys[0]["job_type"], "refresh", "{keys:?}");
    let jobs = array(env.listing(&["jobs", "--inbox", "chicago_2"]));
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["location"], "C1");
    let status = env.listing(&["status", "--inbox", "boston"]);
    assert_eq!(status["imports_24h"]["applied"], 1, "{status:#}");
    assert_eq!(
        status["inboxes"].as_object().map(|o| o.len()),
        Some(1),
        "{status:#}"
    );
    for args in [
        &["imports", "--inbox", "denver"][..],
        &["jobs", "--inbox", "denver"],
        &["status", "--inbox", "denver"],
    ] {
        let run = env.run(args);
        run.code(2);
        assert!(
            run.stderr.contains("boston") && run.stderr.contains("chicago_2"),
            "{run}"
        );
    }
}

#[test]
fn an_inbox_with_locations_cannot_change_stock_elsewhere() {
    let env = Env::new(&two_inboxes(""));
    // Chicago's stock at C1, before Boston tries to change it.
    env.drop_into("chicago", "c1.csv", &csv(&[("C1", "A", 7)]));
    let mut daemon = env.start(None);
    daemon.wait_ready(&env);
    env.wait_finished("c1.csv");
    env.drop_into(
        "boston",
        "sneaky.csv",
        &csv(&[("C1", "A", 0), ("C1", "B", 99)]),
    );
    let sneaky = env.wait_finished("sneaky.csv");
    daemon.terminate(&env);

    assert_eq!(sneaky.status, "rejected", "{}", env.describe());
    let report = env.report("boston", "sneaky");
    assert_eq!(report["error_counts"]["unknown-location"], 2, "{report:#}");
    assert_eq!(stock_of(&env, "C1"), [("A".to_string(), 7)]);
    let failed = env.var().join("failed").join("boston").join(today());
    assert_eq!(env.names(&failed), [format!("{}_sneaky.csv", sneaky.id)]);
    assert!(env.reports_of("chicago", "sneaky").is_empty());
}

#[test]
fn import_takes_the_rules_and_the_outbox_of_the_inbox_it_is_told() {
    let env = Env::new(&two_inboxes(""));
    fs::write(env.path().join("x.csv"), csv(&[("B1", "A", 3)])).expect("write x.csv");

    // Several inboxes, none named default: which one must be said.
    let run = env.run(&["import", "--json", "x.csv"]);
    run.code(2);
    assert!(
        run.stderr.contains("--inbox") && run.stderr.contains("boston, chicago_2"),
        "{run}"
    );
    let run = env.run(&["import", "--json", "--inbox", "denver", "x.csv"]);
    run.code(2);
    assert!(
        run.stderr.contains("\"denver\"") && run.stderr.contains("boston, chicago_2"),
        "{run}"
    );

    // Chicago may write B1; its report goes to Chicago's outbox only.
    let run = env.run(&["import", "--json", "--inbox", "chicago_2", "x.csv"]);
    run.code(0);
    assert_eq!(run.report()["status"], "applied", "{run}");
    assert!(!env.reports_of("chicago", "x").is_empty());
    assert!(env.reports_of("boston", "x").is_empty());

    // The same bytes from Boston are Boston's first such file, not a
    // duplicate of Chicago's: one account cannot make another's file a
    // duplicate (nor learn of its import).
    let run = env.run(&["import", "--json", "--inbox", "boston", "x.csv"]);
    run.code(0);
    assert_eq!(run.report()["status"], "applied", "{run}");
    assert_eq!(run.report()["duplicate_of"], Value::Null, "{run}");
    let run = env.run(&["import", "--json", "--inbox", "boston", "x.csv"]);
    assert_eq!(run.report()["status"], "duplicate", "{run}");

    // Boston's rules: another location is unknown there, and nothing moves.
    fs::write(env.path().join("y.csv"), csv(&[("C9", "A", 1)])).expect("write y.csv");
    let run = env.run(&["import", "--json", "--inbox", "boston", "y.csv"]);
    assert_eq!(run.report()["error_counts"]["unknown-location"], 1, "{run}");
    assert!(stock_of(&env, "C9").is_empty());

    let inboxes: Vec<(String, String)> = array(env.listing(&["imports"]))
        .iter()
        .map(|i| {
            (
                i["file"].as_str().unwrap_or_default().to_string(),
                i["inbox"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        inboxes,
        [
            ("y.csv".to_string(), "boston".to_string()),
            ("x.csv".to_string(), "boston".to_string()),
            ("x.csv".to_string(), "boston".to_string()),
            ("x.csv".to_string(), "chicago_2".to_string()),
        ]
    );
}

#[test]
fn a_file_claimed_from_an_inbox_before_a_kill_is_reported_to_that_inbox() {
    let env = Env::new(&two_inboxes(""));
    let mut daemon = env.start(Some("after-claim"));
    daemon.wait_ready(&env);
    env.drop_into("chicago", "late.csv", &csv(&[("C1", "A", 4)]));
    let status = daemon.wait_exit(&env, DEADLINE);
    assert!(!status.success(), "the crash point aborts: {status:?}");
    let claimed = env.names(&env.work());
    assert_eq!(claimed.len(), 1, "{}", env.describe());
    assert!(env.names(&env.upload("chicago")).is_empty());

    let mut daemon = env.start(None);
    let late = env.wait_finished("late.csv");
    daemon.terminate(&env);
    assert_eq!(
        (late.status.as_str(), late.inbox.as_str()),
        ("applied", "chicago_2")
    );
    assert!(
        !env.reports_of("chicago", "late").is_empty(),
        "{}",
        env.describe()
    );
    assert!(
        env.reports_of("boston", "late").is_empty(),
        "{}",
        env.describe()
    );
    let archived = env.var().join("archive").join("chicago_2").join(today());
    assert_eq!(env.names(&archived), [format!("{}_late.csv", late.id)]);
}

#[test]
fn no_uploaded_name_can_pass_a_file_off_as_another_inboxs() {
    let env = Env::new(&two_inboxes(""));
    let mut daemon = env.start(Some("after-claim"));
    daemon.wait_ready(&env);
    // Named like a claimed file of Chicago's, and like a claim tag.
    let forged = "20260101T000000.000000-0001@chicago.2_x.csv";
    env.drop_into("boston", forged, &csv(&[("C1", "A", 1)]));
    let status = daemon.wait_exit(&env, DEADLINE);
    assert!(!status.success(), "the crash point aborts: {status:?}");
    assert_eq!(env.names(&env.work()).len(), 1, "{}", env.describe());

    let mut daemon = env.start(None);
    let import = env.wait_finished(forged);
    env.drop_into("boston", "@chicago_2_y.csv", &csv(&[("C1", "A", 2)]));
    let second = env.wait_finished("@chicago_2_y.csv");
    daemon.terminate(&env);
    for import in [&import, &second] {
        assert_eq!(import.inbox, "boston", "{}", env.describe());
        // Boston's rules held: C1 is not Boston's.
        assert_eq!(import.status, "rejected", "{}", env.describe());
        assert!(Path::new(&import.report_dir).ends_with("sftp/boston/reports"));
    }
    assert!(
        env.names(&env.reports("chicago")).is_empty(),
        "{}",
        env.describe()
    );
    assert!(stock_of(&env, "C1").is_empty());
}

#[test]
fn sighup_changes_an_inboxs_rules_and_a_new_inbox_waits_for_the_next_start() {
    let env = Env::new(&two_inboxes(""));
    let mut daemon = env.start(None);
    daemon.wait_ready(&env);
    env.drop_into("boston", "first.csv", &csv(&[("B2", "A", 1)]));
    let first = env.wait_finished("first.csv");
    assert_eq!(first.status, "rejected", "B2 is not Boston's yet");

    // Boston may now also write B2; and a third account appears.
    let mut config = two_inboxes("").replace("[\"B1\"]", "[\"B1\", \"B2\"]");
    config.push_str(
        "[[inbox]]\nname = \"denver\"\npath = \"sftp/denver/upload\"\noutbox = \"sftp/denver/reports\"\n",
    );
    env.set_config(&config);
    signal(daemon.pid(), "HUP");
    wait_until(&env, DEADLINE, "the reload", || {
        daemon.log().contains("configuration reloaded")
    });
    assert!(
        daemon
            .log()
            .contains("a new inbox in the config; it is watched from the next start"),
        "{}",
        env.describe()
    );
    env.drop_into("boston", "second.csv", &csv(&[("B2", "A", 1)]));
    let second = env.wait_finished("second.csv");
    daemon.terminate(&env);
    assert_eq!(second.status, "applied", "{}", env.describe());
    assert_eq!(stock_of(&env, "B2"), [("A".to_string(), 1)]);
    assert!(
        !env.path().join("sftp/denver").exists(),
        "not made until the next start"
    );
}

#[test]
fn retention_prunes_every_inboxs_folders_and_outbox() {
    let env = Env::new(&two_inboxes(""));
    let old_folder = env.var().join("archive/chicago_2/2020-01-01");
    let kept_folder = env.var().join("failed/boston").join(today());
    let old_report = env.reports("boston").join("old.json");
    let new_report = env.reports("chicago").join("new.json");
    for dir in [&old_folder, &kept_folder] {
        fs::create_dir_all(dir).expect("create dated folder");
        fs::write(dir.join("1_x.csv"), "x").expect("write original");
    }
    for report in [&old_report, &new_report] {
        fs::create_dir_all(report.parent().expect("outbox")).expect("create outbox");
        fs::write(report, "{}").expect("write report");
    }
    let touched = Command::new("touch")
        .args(["-d", "2020-01-01"])
        .arg(&old_report)
        .status()
        .expect("run touch");
    assert!(touched.success());
    env.run(&["prune"]).code(0);
    assert!(
        !old_folder.exists() && !old_report.exists(),
        "{}",
        env.describe()
    );
    assert!(
        kept_folder.exists() && new_report.exists(),
        "{}",
        env.describe()
    );
}

#[test]
fn an_inbox_on_another_filesystem_than_the_work_folder_is_refused_by_name() {
    use std::os::unix::fs::MetadataExt as _;
    let env = Env::new(FAST_WATCH);
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let device = |p: &Path| fs::metadata(p).expect("stat").dev();
    if device(elsewhere.path()) == device(env.path()) {
        eprintln!("note: no second filesystem here; skipping the cross-filesystem check");
        return;
    }
    let upload = elsewhere.path().join("upload");
    env.set_config(&format!(
        "{FAST_WATCH}[[inbox]]\nname = \"far\"\npath = {:?}\noutbox = \"sftp/far/reports\"\n",
        upload.to_str().expect("UTF-8 temp path")
    ));
    for args in [&["check-config"][..], &["run", "--once"]] {
        let run = env.run(args);
        run.code(2);
        assert!(
            run.stderr.contains("inbox.far.path") && run.stderr.contains("different filesystem"),
            "{run}"
        );
    }
}

#[test]
fn systemd_status_counts_per_inbox() {
    let env = Env::new(&two_inboxes(""));
    let path = env.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the notify socket");
    socket.set_nonblocking(true).expect("non-blocking socket");
    let mut daemon = env.start_notifying(None, Some(&path));
    daemon.wait_ready(&env);
    env.drop_into("boston", "b.csv", &csv(&[("B1", "A", 1)]));
    env.wait_finished("b.csv");
    env.drop_into("chicago", "c.csv", &csv(&[("C1", "A", 1)]));
    env.wait_finished("c.csv");
    let mut statuses = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let wanted = "2 files today (boston 1, chicago_2 1), 0 waiting (boston 0, chicago_2 0)";
    wait_until(&env, DEADLINE, "a STATUS= with each inbox's counts", || {
        while let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            statuses.extend(
                text.lines()
                    .filter_map(|l| l.strip_prefix("STATUS="))
                    .map(str::to_string),
            );
        }
        statuses.iter().any(|s| s.starts_with(wanted))
    });
    daemon.terminate(&env);
}

#[test]
fn two_inboxes_that_are_one_folder_through_a_link_are_refused() {
    let env = Env::new(FAST_WATCH);
    std::os::unix::fs::symlink(env.upload("boston"), env.path().join("alias"))
        .expect("make a link");
    env.set_config(&format!(
        "{FAST_WATCH}[[inbox]]\nname = \"a\"\npath = \"sftp/boston/upload\"\noutbox = \"out/a\"\n\
         [[inbox]]\nname = \"b\"\npath = \"alias\"\noutbox = \"out/b\"\n"
    ));
    for args in [&["check-config"][..], &["run", "--once"]] {
        let run = env.run(args);
        run.code(2);
        assert!(
            run.stderr.contains("inbox.a.path") && run.stderr.contains("inbox.b.path"),
            "{run}"
        );
    }
}
