//! File names as senders make them (docs/file-names.md): names that are not
//! UTF-8, names near the 255-byte limit, names with line breaks — through
//! the real daemon (claim, reports, archive, store, logs, systemd
//! notifications on a test-owned `NOTIFY_SOCKET`) and the real CLI; and
//! `notify.command` running at most a few at a time.

mod common;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::{Cursor, Write as _};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::daemon::{tree, wait_until, Daemon, DataRoot, Describe, BIN, FAST_WATCH};
use common::Listings;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);
/// The longest name Linux accepts.
const NAME_MAX: usize = 255;

// ---------------------------------------------------------------------------
// Helpers.

struct Root {
    root: DataRoot,
}

impl std::ops::Deref for Root {
    type Target = DataRoot;
    fn deref(&self) -> &DataRoot {
        &self.root
    }
}

/// One row of `imports`, read straight from the store.
#[derive(Debug)]
#[allow(dead_code)]
struct Import {
    id: i64,
    file: String,
    file_raw: Option<Vec<u8>>,
    status: String,
    archived_path: Option<String>,
}

impl Root {
    fn new(config: &str) -> Root {
        let root = Root {
            root: DataRoot::new("stockdrop-names-", &format!("{FAST_WATCH}{config}")),
        };
        fs::create_dir_all(root.inbox()).expect("create inbox");
        root
    }

    fn command(&self, vars: &[(&str, &str)]) -> Command {
        let mut command = self.stockdrop_command(&["run"]);
        command.envs(vars.iter().copied());
        command
    }

    /// Starts `stockdrop run`; its stdout and stderr go to `run-<n>.log`.
    fn start(&self, vars: &[(&str, &str)]) -> Daemon {
        self.spawn_run(self.command(vars))
    }

    /// Drops a file under a raw name: written under a hidden name, then
    /// renamed, as a careful uploader does.
    fn drop_raw(&self, name: &[u8], content: &[u8]) -> PathBuf {
        let tmp = self.inbox().join(".uploading");
        fs::write(&tmp, content).expect("write upload");
        let path = self.inbox().join(OsString::from_vec(name.to_vec()));
        fs::rename(&tmp, &path).expect("rename upload");
        path
    }

    fn imports(&self) -> Vec<Import> {
        self.rows(
            "SELECT id, file, file_raw, status, archived_path FROM imports ORDER BY id",
            |r| {
                Ok(Import {
                    id: r.get(0)?,
                    file: r.get(1)?,
                    file_raw: r.get(2)?,
                    status: r.get(3)?,
                    archived_path: r.get(4)?,
                })
            },
        )
    }

    /// Waits until `n` imports are finished and nothing is left in `work`
    /// (their originals archived).
    fn wait_done(&self, n: usize) {
        wait_until(self, DEADLINE, &format!("{n} finished imports"), || {
            let imports = self.imports();
            imports.len() == n
                && imports.iter().all(|i| i.status != "planned")
                && self.names(&self.work()).is_empty()
                && self.names(&self.inbox()).is_empty()
        });
    }

    /// The parsed `.json` reports in the outbox.
    fn reports(&self) -> Vec<Value> {
        self.names(&self.outbox())
            .into_iter()
            .filter(|n| n.ends_with(".json"))
            .map(|n| {
                let text = fs::read_to_string(self.outbox().join(&n)).expect("read report");
                serde_json::from_str(&text).expect("report JSON")
            })
            .collect()
    }

    /// Every name under `var/`, checked against NAME_MAX.
    fn assert_names_fit(&self) {
        fn walk(dir: &Path) {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let len = entry.file_name().as_bytes().len();
                assert!(len <= NAME_MAX, "{len} bytes: {:?}", entry.file_name());
                if entry.path().is_dir() {
                    walk(&entry.path());
                }
            }
        }
        walk(&self.var());
    }

    fn log(&self, n: usize) -> String {
        fs::read_to_string(self.run_log(n)).unwrap_or_default()
    }
}

impl Describe for Root {
    const DEADLINE: Duration = DEADLINE;

    fn describe(&self) -> String {
        let mut out = String::from("--- var/ ---\n");
        out.push_str(&tree(&self.var(), true));
        let _ = writeln!(out, "--- imports ---");
        for i in self.imports() {
            let _ = writeln!(out, "{i:?}");
        }
        self.write_logs(&mut out, 25);
        out
    }
}

/// A ZIP archive of `(name, content)` members, stored uncompressed.
fn zip(members: &[(String, String)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, content) in members {
        writer
            .start_file(name.as_str(), options)
            .expect("start member");
        writer.write_all(content.as_bytes()).expect("write member");
    }
    writer.finish().expect("finish zip").into_inner()
}

// ---------------------------------------------------------------------------
// Names that are not UTF-8.

#[test]
fn a_latin1_name_is_imported_reported_and_kept_byte_for_byte() {
    let root = Root::new("");
    root.drop_raw(b"Caf\xe9.csv", b"location,sku,quantity\n1,CAFE,7\n");
    let mut daemon = root.start(&[]);
    root.wait_done(1);
    // Let a few more scans pass: nothing more may be said about the file.
    std::thread::sleep(Duration::from_millis(1500));
    daemon.terminate(&root);

    let imports = root.imports();
    assert_eq!(imports[0].file, "Caf%E9.csv", "{imports:?}");
    assert_eq!(imports[0].file_raw.as_deref(), Some(&b"Caf\xe9.csv"[..]));
    assert_eq!(imports[0].status, "applied");
    let id = imports[0].id;
    assert_eq!(
        root.names(&root.archive_today()),
        [format!("{id}_Caf%E9.csv")]
    );
    let outbox = root.names(&root.outbox());
    assert!(
        outbox.contains(&format!("Caf%E9.{id}.json")),
        "{outbox:?}\n{}",
        root.describe()
    );
    let reports = root.reports();
    assert_eq!(reports[0]["file"], "Caf%E9.csv");
    assert_eq!(reports[0]["status"], "applied");
    let log = root.log(1);
    assert!(!log.contains("not UTF-8"), "{log}");
    let about = log.lines().filter(|l| l.contains("Caf%E9")).count();
    assert!(
        (1..=8).contains(&about),
        "{about} lines about the file:\n{log}"
    );
}

#[test]
fn a_one_shot_import_of_a_latin1_name_keeps_its_bytes() {
    let env = common::Env::new();
    let path = env
        .root()
        .join(OsString::from_vec(b"Stock \xc4pfel 100%.csv".to_vec()));
    fs::write(&path, "location,sku,quantity\n1,APFEL,3\n").expect("write");
    // The path is not UTF-8: passed as bytes.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(env.config_path())
        .arg("import")
        .arg("--json")
        .arg(&path)
        .env_remove("STOCKDROP_CONFIG")
        .output()
        .expect("run import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["file"], "Stock %C4pfel 100%25.csv");
    let id = report["import_id"].as_i64().expect("import id");
    assert!(env
        .outbox_files()
        .contains(&format!("Stock %C4pfel 100%25.{id}.json")));
    let conn = rusqlite::Connection::open(env.database()).expect("open store");
    let raw: Vec<u8> = conn
        .query_row("SELECT file_raw FROM imports WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .expect("file_raw");
    assert_eq!(raw, b"Stock \xc4pfel 100%.csv");
}

// ---------------------------------------------------------------------------
// Long names.

/// A 244-byte name, as Windows allows.
fn long_name(tag: &str) -> String {
    let name = format!("{tag}-{}.csv", "x".repeat(244 - tag.len() - 5));
    assert_eq!(name.len(), 244);
    name
}

#[test]
fn a_244_byte_name_is_claimed_reported_and_archived() {
    let root = Root::new("");
    let name = long_name("long");
    root.drop_raw(
        name.as_bytes(),
        b"location,sku,quantity\n1,LONG,5\n1,BAD,x\n",
    );
    let mut daemon = root.start(&[]);
    root.wait_done(1);
    daemon.terminate(&root);

    root.assert_names_fit();
    let imports = root.imports();
    assert_eq!(imports[0].file, name);
    assert_eq!(imports[0].status, "partial", "{imports:?}");
    let reports = root.reports();
    assert_eq!(reports.len(), 1, "{}", root.describe());
    assert_eq!(reports[0]["file"], name.as_str());
    let outbox = root.names(&root.outbox());
    assert!(
        outbox.iter().any(|n| n.ends_with(".errors.csv")),
        "{outbox:?}"
    );
    assert!(
        outbox
            .iter()
            .filter(|n| *n != "index.html")
            .all(|n| n.starts_with("long-xxx")),
        "{outbox:?}"
    );
    let archived = root.names(&root.archive_today());
    assert_eq!(archived.len(), 1);
    assert!(archived[0].ends_with(".csv"), "{archived:?}");
    // The sidecar went with the file.
    let work: Vec<_> = fs::read_dir(root.work())
        .expect("work")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".stockdrop.lock" && n != ".stockdrop.reserve")
        .collect();
    assert!(work.is_empty(), "{work:?}");
    let log = root.log(1);
    assert!(!log.contains("too long"), "{log}");
}

#[test]
fn a_long_name_survives_a_kill_right_after_the_claim() {
    let root = Root::new("");
    let name = long_name("crash");
    root.drop_raw(name.as_bytes(), b"location,sku,quantity\n1,CRASH,9\n");
    let mut first = root.start(&[("STOCKDROP_CRASH_AT", "after-claim")]);
    let status = first.wait_exit(&root, DEADLINE);
    assert!(!status.success(), "the daemon should have aborted");
    assert!(root.names(&root.inbox()).is_empty(), "{}", root.describe());
    assert_eq!(root.names(&root.work()).len(), 1, "{}", root.describe());
    // The claimed name had to be shortened, so the whole name is on disk
    // beside it, written before the claim.
    let sidecars: Vec<Vec<u8>> = fs::read_dir(root.work())
        .expect("work")
        .flatten()
        .filter(|e| e.file_name().as_bytes().ends_with(b".name"))
        .map(|e| fs::read(e.path()).expect("read sidecar"))
        .collect();
    assert_eq!(sidecars, [name.as_bytes().to_vec()], "{}", root.describe());

    let mut second = root.start(&[]);
    root.wait_done(1);
    second.terminate(&root);
    let imports = root.imports();
    assert_eq!(imports[0].file, name, "{imports:?}");
    assert_eq!(imports[0].status, "applied");
    assert_eq!(root.reports()[0]["file"], name.as_str());
    let hidden: Vec<_> = fs::read_dir(root.work())
        .expect("work")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".stockdrop.lock" && n != ".stockdrop.reserve")
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn a_zip_member_with_a_240_byte_name_finishes_its_import() {
    let env = common::Env::new();
    let member = format!("{}.csv", "L".repeat(236));
    assert_eq!(member.len(), 240);
    let archive = env.write_bytes(
        "long.zip",
        &zip(&[(
            member.clone(),
            "location,sku,quantity\n1,LONG1,42\n1,BAD,x\n".into(),
        )]),
    );
    // A rejected row: the errors CSV, the longest report name, is written.
    let run = env.run(&["import", "--json", archive.to_str().expect("UTF-8 path")]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["file"], member.as_str());
    assert_eq!(report["status"], "partial");

    let stock = env.stock(&[]);
    assert_eq!(common::record(&stock, "1", "LONG1")["quantity"], 42);
    let outbox = env.outbox_files();
    for ending in [".json", ".html", ".errors.csv"] {
        assert!(outbox.iter().any(|n| n.ends_with(ending)), "{outbox:?}");
    }
    assert!(outbox.iter().all(|n| n.len() <= NAME_MAX), "{outbox:?}");
    let imports = env.imports();
    assert_eq!(imports.len(), 1, "{imports:?}");
    assert_eq!(imports[0]["status"], "partial", "{imports:?}");

    // Nothing is left stuck: the next import runs normally, and the first
    // import's stock was applied once.
    let next = env.write("next.csv", "location,sku,quantity\n1,NEXT,1\n");
    env.run(&["import", next.to_str().expect("UTF-8 path")])
        .code(0);
    let stock = env.stock(&[]);
    assert_eq!(common::record(&stock, "1", "LONG1")["quantity"], 42);
    assert_eq!(common::record(&stock, "1", "NEXT")["quantity"], 1);
    assert_eq!(env.imports().len(), 2);
}

#[test]
fn the_daemon_finishes_a_zip_whose_member_has_a_240_byte_name() {
    let root = Root::new("");
    let member = format!("{}.csv", "M".repeat(236));
    root.drop_raw(
        b"long.zip",
        &zip(&[(
            member.clone(),
            "location,sku,quantity\n1,LONG1,42\n1,BAD,x\n".into(),
        )]),
    );
    let mut daemon = root.start(&[]);
    root.wait_done(1);
    daemon.terminate(&root);
    let imports = root.imports();
    assert_eq!(imports[0].file, member);
    assert_eq!(imports[0].status, "partial", "{}", root.describe());
    let quantity: Vec<i64> = root.rows("SELECT quantity FROM inventory WHERE sku = 'LONG1'", |r| {
        r.get(0)
    });
    assert_eq!(quantity, [42]);
    assert_eq!(
        root.names(&root.archive_today()),
        [format!("{}_long.zip", imports[0].id)]
    );
    assert!(root.names(&root.failed_today()).is_empty());
    assert_eq!(root.reports()[0]["file"], member.as_str());
    let outbox = root.names(&root.outbox());
    assert!(
        outbox.iter().any(|n| n.ends_with(".errors.csv")),
        "{outbox:?}"
    );
    root.assert_names_fit();
}

// ---------------------------------------------------------------------------
// Line breaks in names: logs and notifications.

const INJECTING: &[u8] = b"x\nWATCHDOG_USEC=1\nERRNO=12\ny.csv";

#[test]
fn a_name_with_line_breaks_forges_no_notification_and_no_log_line() {
    let root = Root::new("");
    let socket_path = root.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    root.drop_raw(INJECTING, b"location,sku,quantity\n1,INJ,1\n");
    let socket_var = socket_path.to_str().expect("UTF-8 socket path").to_string();
    let mut daemon = root.start(&[("NOTIFY_SOCKET", &socket_var)]);

    let mut received: Vec<String> = Vec::new();
    let mut buffer = vec![0u8; 65536];
    wait_until(&root, DEADLINE, "a STATUS= naming the file", || {
        while let Ok(n) = socket.recv(&mut buffer) {
            received.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
        received.iter().any(|d| d.contains("x%0AWATCHDOG_USEC"))
    });
    daemon.terminate(&root);
    while let Ok(n) = socket.recv(&mut buffer) {
        received.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    for datagram in &received {
        for line in datagram.lines() {
            assert!(
                !line.starts_with("WATCHDOG_USEC") && !line.starts_with("ERRNO"),
                "an injected line in {datagram:?}"
            );
        }
    }
    root.wait_done(1);
    assert_eq!(
        root.imports()[0].file_raw.as_deref(),
        Some(INJECTING),
        "{}",
        root.describe()
    );
    let log = root.log(1);
    assert!(
        log.contains("x%0AWATCHDOG_USEC=1%0AERRNO=12%0Ay.csv"),
        "{log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("WATCHDOG_USEC") && !line.starts_with("ERRNO") && line != "y.csv",
            "a forged log line: {line:?}\n{log}"
        );
    }
}

#[test]
fn json_logs_stay_one_object_a_line_with_such_a_name() {
    let root = Root::new("[log]\nformat = \"json\"\n");
    root.drop_raw(INJECTING, b"location,sku,quantity\n1,INJ,1\n");
    root.drop_raw(b"Caf\xe9\x1b[2J.csv", b"location,sku,quantity\n1,CAFE,1\n");
    let mut daemon = root.start(&[]);
    root.wait_done(2);
    daemon.terminate(&root);
    let log = root.log(1);
    let mut about = 0;
    for line in log.lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object: {e}: {line:?}\n{log}"));
        if value.to_string().contains("x%0AWATCHDOG") {
            about += 1;
        }
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
    assert!(about > 0, "{log}");
}

// ---------------------------------------------------------------------------
// notify.command.

#[test]
fn notify_command_runs_at_most_four_at_a_time() {
    const MEMBERS: usize = 16;
    let root = Root::new("");
    let record = root.path().join("hooks.log");
    let command = format!(
        "echo start >> '{0}'; sleep 0.3; echo end >> '{0}'",
        record.display()
    );
    root.set_config(&format!(
        "{FAST_WATCH}[notify]\ncommand = \"{}\"\n",
        command.replace('\\', "\\\\").replace('"', "\\\"")
    ));
    let members: Vec<(String, String)> = (0..MEMBERS)
        .map(|i| {
            (
                format!("store{i}.csv"),
                format!("location,sku,quantity\n{i},S{i},{i}\n"),
            )
        })
        .collect();
    root.drop_raw(b"many.zip", &zip(&members));
    let mut daemon = root.start(&[]);
    root.wait_done(MEMBERS);
    let lines = || -> Vec<String> {
        fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    wait_until(&root, DEADLINE, "every notify.command to end", || {
        lines().iter().filter(|l| *l == "end").count() == MEMBERS
    });
    daemon.terminate(&root);
    let (mut running, mut most) = (0i32, 0i32);
    for line in lines() {
        running += if line == "start" { 1 } else { -1 };
        most = most.max(running);
    }
    let starts = lines().iter().filter(|l| *l == "start").count();
    assert_eq!(starts, MEMBERS);
    assert!(most <= 4, "{most} commands ran at once");
    assert!(most >= 2, "the commands ran one at a time ({most})");
}

// ---------------------------------------------------------------------------
// Said once.

#[test]
fn a_file_that_cannot_be_claimed_is_logged_once_not_at_every_scan() {
    let root = Root::new("");
    let mut daemon = root.start(&[]);
    daemon.wait_ready(&root);
    // Make every claim fail (the work folder is not a folder for a while;
    // the daemon keeps its lock file open through the rename).
    let away = root.var().join("work.away");
    fs::rename(root.work(), &away).expect("move work away");
    fs::write(root.work(), b"").expect("a file in work's place");
    root.drop_raw(b"stuck.csv", b"location,sku,quantity\n1,STUCK,2\n");
    wait_until(&root, DEADLINE, "the claim failure in the log", || {
        root.log(1).contains("cannot claim")
    });
    // Ten settle periods, each ending in another failed claim.
    std::thread::sleep(Duration::from_millis(2000));
    let said = root
        .log(1)
        .lines()
        .filter(|l| l.contains("stuck.csv"))
        .count();
    fs::remove_file(root.work()).expect("remove the stand-in");
    fs::rename(&away, root.work()).expect("move work back");
    root.wait_done(1);
    daemon.terminate(&root);
    assert_eq!(said, 1, "{}", root.log(1));
    assert_eq!(root.imports()[0].status, "applied");
}
