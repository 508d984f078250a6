//! Real uploads against the daemon as a real process (SPEC §2 steps 3–4,
//! retries; §7): a real OpenSSH `sftp` upload whose client is stopped
//! mid-transfer, an idle daemon's CPU time, files swapped under a settled
//! name while the daemon is busy (a symlink to a secret, a FIFO, a link to
//! `/dev/zero`), a hard link kept in a subfolder, and a fault after the
//! plan is stored, with its cure.
//!
//! Every wait polls with a deadline; a timeout prints the `var/` tree, the
//! store and the daemon's logs.

mod common;

use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::ops::Deref;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::daemon::{csv, signal, tree, wait_until, Daemon, DataRoot, Describe, BIN, FAST_WATCH};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);
/// `FAST_WATCH`'s settle time.
const SETTLE: Duration = Duration::from_millis(200);

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
    rows_total: i64,
    sha256: String,
}

impl Describe for Env {
    const DEADLINE: Duration = DEADLINE;

    fn describe(&self) -> String {
        let mut out = String::from("--- var/ ---\n");
        out.push_str(&tree(&self.var(), true));
        let _ = writeln!(out, "--- imports ---");
        for i in self.imports() {
            let _ = writeln!(out, "{i:?}");
        }
        self.write_logs(&mut out, 30);
        out
    }
}

impl Env {
    /// A data root with `FAST_WATCH` and `extra` config, its inbox made.
    fn new(extra: &str) -> Env {
        let env = Env {
            root: DataRoot::new("stockdrop-uploads-", &format!("{FAST_WATCH}{extra}")),
        };
        fs::create_dir_all(env.inbox()).expect("create inbox");
        env
    }

    /// `stockdrop run`, logging at debug level for stockdrop itself (the
    /// swap tests wait for "ready; queued").
    fn start(&self) -> Daemon {
        self.start_notifying(None)
    }

    /// [`Env::start`], with systemd notifications going to `socket`.
    fn start_notifying(&self, socket: Option<&Path>) -> Daemon {
        let mut command = self.stockdrop_command(&["run"]);
        command.env("RUST_LOG", "info,stockdrop=debug");
        if let Some(socket) = socket {
            command.env("NOTIFY_SOCKET", socket);
        }
        let daemon = self.spawn_run(command);
        daemon.wait_ready(self);
        daemon
    }

    fn stockdrop(&self, args: &[&str]) -> Output {
        self.stockdrop_command(args)
            .output()
            .expect("run stockdrop")
    }

    fn imports(&self) -> Vec<Import> {
        self.rows(
            "SELECT id, file, status, rows_total, sha256 FROM imports ORDER BY id",
            |r| {
                Ok(Import {
                    id: r.get(0)?,
                    file: r.get(1)?,
                    status: r.get(2)?,
                    rows_total: r.get(3)?,
                    sha256: r.get(4)?,
                })
            },
        )
    }

    fn finished(&self) -> Vec<Import> {
        self.imports()
            .into_iter()
            .filter(|i| i.status != "planned" && i.status != "failing")
            .collect()
    }

    #[track_caller]
    fn wait_finished(&self, n: usize) {
        wait_until(self, DEADLINE, &format!("{n} finished import(s)"), || {
            self.finished().len() >= n
        });
    }

    fn report(&self, stem: &str, id: i64) -> Value {
        let path = self.outbox().join(format!("{stem}.{id}.json"));
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.describe()));
        serde_json::from_str(&text).expect("report is JSON")
    }

    fn only_import_of(&self, file: &str) -> Import {
        let imports: Vec<Import> = self
            .imports()
            .into_iter()
            .filter(|i| i.file == file)
            .collect();
        assert_eq!(
            imports.len(),
            1,
            "exactly one import of {file}\n{}",
            self.describe()
        );
        imports[0].clone()
    }

    /// Sets a file's modification time `secs` seconds in the past.
    fn age(&self, path: &Path, secs: u64) {
        let file = fs::File::options().write(true).open(path).expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .expect("set mtime");
    }

    /// Replaces the outbox folder by a plain file: reports cannot be
    /// written (tests run as root, so permissions would not stop them).
    fn break_outbox(&self) {
        fs::remove_dir_all(self.outbox()).expect("remove outbox");
        fs::write(self.outbox(), "not a folder").expect("outbox as a file");
    }

    fn mend_outbox(&self) {
        fs::remove_file(self.outbox()).expect("remove the file");
        fs::create_dir(self.outbox()).expect("outbox again");
    }
}

/// Every row a stock file of `n` rows sets, with a note column that makes
/// the file large enough for a throttled upload to take a few seconds.
fn stock_rows(n: usize) -> String {
    let mut text = String::from("location,sku,quantity,note\n");
    for i in 0..n {
        let _ = writeln!(text, "11,SKU-{i:06},{},{}", i % 97, "x".repeat(60));
    }
    text
}

/// utime + stime of a process, in seconds (`/proc/PID/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name, which is in parentheses: state is
    // field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 / hz as f64
}

// ---------------------------------------------------------------------------
// Idle.

/// Issue 8 §2: listing the inbox (and probing a file) opens it, and those
/// events must not wake the next scan. A resource bound over a few idle
/// seconds, not a timing test: before the fix this was ~2 s of CPU.
#[test]
fn an_idle_daemon_uses_almost_no_cpu() {
    let env = Env::new("");
    let mut daemon = env.start();
    env.drop_file("first.csv", &csv(&[("11", "A", 1)]));
    env.wait_finished(1);
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(daemon.pid());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(daemon.pid()) - before;
    assert!(
        used < 0.15,
        "an idle daemon used {used:.2} s of CPU in 3 s\n{}",
        env.describe()
    );
    assert!(daemon.terminate(&env).success());
}

// ---------------------------------------------------------------------------
// Swapped files.

/// Issue 9 #1: keep the daemon busy with one file (its reports cannot be
/// written, so its stored plan is retried), let the next files settle and
/// be queued, then rename a symlink to a secret outside the inbox, a FIFO
/// and a symlink to `/dev/zero` over them. None is read; each gets one
/// report and goes to `failed/` as it is; the daemon never blocks and
/// still stops on SIGTERM.
#[test]
fn a_file_swapped_after_it_settled_is_never_read_and_is_reported_once() {
    let env = Env::new("");
    let secret = env.path().join("secret.txt");
    let secret_text = "api_token = SECRET-7d1e0c55aa\n";
    fs::write(&secret, secret_text).unwrap();
    let mut daemon = env.start();
    env.break_outbox();

    // The busy file first (oldest), then three that will be swapped.
    let busy = env.drop_file("busy.csv", &csv(&[("11", "A", 1)]));
    env.age(&busy, 60);
    let swapped = ["link-to-secret.csv", "fifo.csv", "link-to-zero.csv"];
    for name in swapped {
        // Valid stock files, so only a swap can make them fail.
        env.drop_file(name, &csv(&[("12", name, 5)]));
    }
    wait_until(&env, DEADLINE, "busy.csv's plan to be stored", || {
        env.imports()
            .iter()
            .any(|i| i.file == "busy.csv" && i.status == "planned")
    });
    wait_until(&env, DEADLINE, "the three files to be queued", || {
        let log = daemon.log();
        swapped.iter().all(|name| {
            log.lines()
                .any(|l| l.contains("ready; queued") && l.contains(name))
        })
    });
    let inbox = env.inbox();
    let swap = |name: &str, make: &dyn Fn(&Path)| {
        let tmp = inbox.join(format!(".{name}.swap"));
        make(&tmp);
        fs::rename(&tmp, inbox.join(name)).expect("swap");
    };
    swap("link-to-secret.csv", &|p| {
        std::os::unix::fs::symlink(&secret, p).unwrap()
    });
    swap("fifo.csv", &|p| {
        let made = Command::new("mkfifo").arg(p).status().unwrap();
        assert!(made.success());
    });
    swap("link-to-zero.csv", &|p| {
        std::os::unix::fs::symlink("/dev/zero", p).unwrap()
    });
    env.mend_outbox();
    env.wait_finished(4);
    // Nothing more comes of them.
    std::thread::sleep(3 * SETTLE);
    assert!(
        daemon.terminate(&env).success(),
        "SIGTERM\n{}",
        env.describe()
    );

    assert_eq!(env.only_import_of("busy.csv").status, "applied");
    let secret_sha = {
        use sha2::{Digest, Sha256};
        Sha256::digest(secret_text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for (name, what) in [
        ("link-to-secret.csv", "symbolic link"),
        ("fifo.csv", "named pipe"),
        ("link-to-zero.csv", "symbolic link"),
    ] {
        let import = env.only_import_of(name);
        assert_eq!(import.status, "rejected", "{name}\n{}", env.describe());
        assert_ne!(import.sha256, secret_sha, "{name}: the secret was hashed");
        let stem = name.trim_end_matches(".csv");
        let report = env.report(stem, import.id);
        assert_eq!(report["status"], "rejected");
        let errors = report["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{report:#}");
        assert_eq!(errors[0]["code"], "unreadable-file", "{report:#}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(message.contains(what), "{name}: {message}");
        // What was swapped in went to failed/ as it was: a link stays a
        // link (its target untouched), a FIFO a FIFO.
        let kept = env.failed_today().join(format!("{}_{name}", import.id));
        let meta = fs::symlink_metadata(&kept)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", kept.display(), env.describe()));
        if name == "fifo.csv" {
            assert!(meta.file_type().is_fifo());
        } else {
            assert!(meta.file_type().is_symlink());
        }
    }
    assert_eq!(fs::read_to_string(&secret).unwrap(), secret_text);
    // An operator retrying the refused link does not follow it either.
    let link = env.only_import_of("link-to-secret.csv");
    let out = env.stockdrop(&["retry", &link.id.to_string()]);
    assert!(!out.status.success(), "retry of a link: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
        "{out:?}"
    );
    // The uploader reads the outbox: the secret is in none of its files.
    for entry in fs::read_dir(env.outbox()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("SECRET-7d1e0c55aa") && !text.contains(&secret_sha),
            "{} holds the secret",
            path.display()
        );
    }
    assert!(env.names(&env.work()).is_empty(), "{}", env.describe());
}

/// Issue 9 #8: a hard link kept in `inbox/sub/` would let the uploader
/// rewrite the original after it was read. A file with several names is
/// refused with a report, nothing of it reaches the archive, and `retry`
/// refuses it too.
#[test]
fn a_hard_linked_file_is_refused_and_the_archive_cannot_be_rewritten_through_it() {
    let env = Env::new("");
    let mut daemon = env.start();
    let sub = env.inbox().join("sub");
    fs::create_dir(&sub).unwrap();
    let kept = sub.join("h.csv");
    fs::write(&kept, csv(&[("11", "H", 7)])).unwrap();
    fs::hard_link(&kept, env.inbox().join("h.csv")).unwrap();
    env.wait_finished(1);
    std::thread::sleep(3 * SETTLE);
    assert!(daemon.terminate(&env).success());

    let import = env.only_import_of("h.csv");
    assert_eq!(import.status, "rejected", "{}", env.describe());
    let report = env.report("h", import.id);
    let message = report["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("2 hard links"), "{report:#}");
    assert_eq!(
        env.count_rows("SELECT COUNT(*) FROM inventory"),
        0,
        "nothing applied"
    );
    // Nothing in the archive shares the uploader's inode.
    let ino = fs::metadata(&kept).unwrap().ino();
    let mut archived = Vec::new();
    collect_files(&env.var().join("archive"), &mut archived);
    assert!(
        archived
            .iter()
            .all(|p| fs::metadata(p).map(|m| m.ino()).ok() != Some(ino)),
        "{}",
        env.describe()
    );
    // Rewritten through the link, the copy in failed/ is not retried.
    fs::write(&kept, csv(&[("11", "H", 9999)])).unwrap();
    let out = env.stockdrop(&["retry", &import.id.to_string()]);
    assert!(
        !out.status.success(),
        "retry of a hard-linked file: {out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hard links"), "{stderr}");
    assert_eq!(env.count_rows("SELECT COUNT(*) FROM inventory"), 0);
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

impl Env {
    fn count_rows(&self, sql: &str) -> i64 {
        self.rows(sql, |r| r.get::<_, i64>(0))
            .first()
            .copied()
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------
// A stored plan is finished, never abandoned.

/// Issue 8 §5: once its plan is stored, a file is retried (past
/// `import.max_attempts`) until the cause is gone, and meanwhile the fault
/// shows in `status`, the metrics and `notify.command`.
#[test]
fn a_fault_after_the_plan_is_stored_is_retried_until_cured_and_shown_meanwhile() {
    let env = Env::new("");
    let metrics = env.path().join("stockdrop.prom");
    let hook_log = env.path().join("hook.log");
    env.set_config(&format!(
        "{FAST_WATCH}[import]\nmax_attempts = 1\n[metrics]\ntextfile = \"{}\"\n[notify]\ncommand = 'echo \"$STOCKDROP_STATUS $STOCKDROP_FILE $STOCKDROP_ERROR\" >> {}'\n",
        metrics.display(),
        hook_log.display()
    ));
    // systemd's side of NOTIFY_SOCKET, owned by the test.
    let socket_path = env.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let mut datagrams = String::new();
    let notified = |datagrams: &mut String| {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buffer) {
            datagrams.push_str(&String::from_utf8_lossy(&buffer[..n]));
            datagrams.push('\n');
        }
        datagrams.clone()
    };
    let mut daemon = env.start_notifying(Some(&socket_path));
    env.break_outbox();
    env.drop_file("x.csv", &csv(&[("11", "A", 1), ("11", "B", 2)]));
    // max_attempts = 1: a second attempt shows the stored plan is kept.
    wait_until(
        &env,
        DEADLINE,
        "a second attempt at the stored plan",
        || {
            daemon
                .log()
                .matches("retried until the cause is gone")
                .count()
                >= 2
        },
    );
    let imports = env.imports();
    assert_eq!(imports.len(), 1, "{}", env.describe());
    assert_eq!(imports[0].status, "planned", "{}", env.describe());
    assert!(env.failed_today().read_dir().is_err() || env.names(&env.failed_today()).is_empty());

    let out = env.stockdrop(&["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["last_error"]["status"], "retrying", "{status:#}");
    assert_eq!(status["last_error"]["file"], "x.csv", "{status:#}");
    assert_eq!(status["retrying"]["plan_stored"], true, "{status:#}");
    assert_eq!(status["retrying"]["import_id"], imports[0].id, "{status:#}");
    let error = status["retrying"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("outbox"), "{status:#}");
    let text = env.stockdrop(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("last error:    retrying x.csv"), "{text}");
    let said = notified(&mut datagrams);
    assert!(
        said.lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("retrying x.csv (attempt")),
        "STATUS= shows the fault: {said}"
    );
    let prom = fs::read_to_string(&metrics).unwrap_or_default();
    assert!(prom.contains("stockdrop_retrying 1"), "{prom}");
    wait_until(
        &env,
        DEADLINE,
        "notify.command to hear of the fault",
        || fs::read_to_string(&hook_log).is_ok_and(|t| t.contains("retrying x.csv cannot write")),
    );
    let said = fs::read_to_string(&hook_log).unwrap();
    assert_eq!(
        said.lines().count(),
        1,
        "told once, not per attempt: {said}"
    );

    env.mend_outbox();
    env.wait_finished(1);
    let import = env.only_import_of("x.csv");
    assert_eq!(import.status, "applied", "{}", env.describe());
    assert_eq!(env.history().len(), 2);
    assert_eq!(env.report("x", import.id)["status"], "applied");
    wait_until(&env, DEADLINE, "the metrics to show the fault gone", || {
        fs::read_to_string(&metrics).is_ok_and(|t| t.contains("stockdrop_retrying 0"))
    });
    let status: Value =
        serde_json::from_slice(&env.stockdrop(&["status", "--json"]).stdout).unwrap();
    assert!(status["retrying"].is_null(), "{status:#}");
    assert!(daemon.terminate(&env).success());
    assert!(env.names(&env.work()).is_empty(), "{}", env.describe());
    assert_eq!(env.names(&env.archive_today()).len(), 1);
}

// ---------------------------------------------------------------------------
// A real SFTP upload, stalled.

/// A test-owned `sshd` on 127.0.0.1 with its own host key and one
/// authorized key, run as the current user; killed when dropped.
struct Sshd {
    child: std::process::Child,
    port: u16,
    client_key: PathBuf,
    log: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SSHD: &str = "/usr/sbin/sshd";

impl Sshd {
    /// `None` (said loudly) where OpenSSH's server or client is missing.
    fn start(dir: &Path) -> Option<Sshd> {
        for tool in [SSHD, "sftp", "ssh-keygen"] {
            let found = if tool.starts_with('/') {
                Path::new(tool).is_file()
            } else {
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .stdout(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !found {
                eprintln!(
                    "!!! SKIPPED: the real SFTP upload test needs OpenSSH ({tool} is not \
                     installed; apt-get install openssh-server openssh-client — .ci/run does)"
                );
                return None;
            }
        }
        fs::create_dir_all(dir).unwrap();
        for key in ["host_key", "client_key"] {
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .status()
                .unwrap();
            assert!(made.success(), "ssh-keygen");
        }
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd's privilege-separation folder.
        let _ = fs::create_dir_all("/run/sshd");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nPermitRootLogin prohibit-password\n\
                 Subsystem sftp internal-sftp\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let log = dir.join("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .args(["-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sshd");
        let sshd = Sshd {
            child,
            port,
            client_key: dir.join("client_key"),
            log,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < DEADLINE,
                "sshd did not listen on {port}:\n{}",
                fs::read_to_string(&sshd.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(sshd)
    }

    /// `sftp -b batch`, throttled to `kbit` Kbit/s in small writes.
    fn sftp(&self, batch: &Path, kbit: u32) -> std::process::Child {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        Command::new("sftp")
            .args(["-q", "-F", "/dev/null", "-B", "4096", "-R", "1"])
            .args(["-l", &kbit.to_string(), "-P", &self.port.to_string(), "-i"])
            .arg(&self.client_key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-b",
            ])
            .arg(batch)
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sftp")
    }
}

/// Issue 8 §1 with a real client and server: an OpenSSH `sftp` upload to
/// `sshd` whose client is stopped (SIGSTOP) mid-transfer for several
/// settle periods, then resumed. The SFTP server holds the file open the
/// whole time: exactly one import, with every row.
#[test]
fn a_stalled_sftp_upload_is_imported_once_whole() {
    const ROWS: usize = 3_000;
    let env = Env::new("");
    let Some(sshd) = Sshd::start(&env.path().join("ssh")) else {
        return;
    };
    let source = env.path().join("stall.csv");
    let text = stock_rows(ROWS);
    fs::write(&source, &text).unwrap();
    let target = env.inbox().join("stall.csv");
    let batch = env.path().join("batch");
    fs::write(
        &batch,
        format!("put {} {}\n", source.display(), target.display()),
    )
    .unwrap();
    let mut daemon = env.start();
    // ~250 KB at 800 Kbit/s: about 2.5 s of upload, in 4 KiB writes.
    let mut client = sshd.sftp(&batch, 800);
    wait_until(&env, DEADLINE, "the upload to be under way", || {
        fs::metadata(&target).is_ok_and(|m| m.len() > 0)
    });
    signal(client.id(), "STOP");
    let at_stop = fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    std::thread::sleep(8 * SETTLE);
    let stalled = fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    let imports_while_stalled = env.imports();
    signal(client.id(), "CONT");
    let status = client.wait().expect("sftp");
    let mut stderr = String::new();
    if let Some(mut pipe) = client.stderr.take() {
        use std::io::Read as _;
        let _ = pipe.read_to_string(&mut stderr);
    }
    assert!(
        status.success(),
        "sftp failed: {status:?} {stderr}\n{}",
        fs::read_to_string(&sshd.log).unwrap_or_default()
    );
    assert!(
        at_stop < text.len() as u64 && stalled < text.len() as u64,
        "the upload finished before it could be stopped ({stalled} of {} bytes)",
        text.len()
    );
    assert!(
        imports_while_stalled.is_empty(),
        "a stalled upload was imported: {imports_while_stalled:?}\n{}",
        env.describe()
    );
    env.wait_finished(1);
    std::thread::sleep(5 * SETTLE);
    assert!(daemon.terminate(&env).success());
    let import = env.only_import_of("stall.csv");
    assert_eq!(import.status, "applied", "{}", env.describe());
    assert_eq!(import.rows_total as usize, ROWS, "{}", env.describe());
    let report = env.report("stall", import.id);
    assert_eq!(report["rows"]["accepted"], ROWS);
    let archived = env.archive_today().join(format!("{}_stall.csv", import.id));
    assert_eq!(fs::read_to_string(archived).unwrap(), text);
}

// ---------------------------------------------------------------------------
// A path the operator names.

/// `stockdrop import FILE` follows a symbolic link the operator names (it
/// is their own path), but reads only a regular file: a FIFO is refused at
/// once rather than waited on, and a link to a device is never read.
#[test]
fn import_follows_a_link_the_operator_names_but_never_blocks_or_reads_a_device() {
    let env = Env::new("");
    let real = env.path().join("real.csv");
    fs::write(&real, csv(&[("11", "A", 3)])).unwrap();
    let named = env.path().join("named.csv");
    std::os::unix::fs::symlink(&real, &named).unwrap();
    let out = env.stockdrop(&["import", named.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let fifo = env.path().join("pipe.csv");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let zero = env.path().join("zero.csv");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for (path, what) in [(&fifo, "named pipe"), (&zero, "device node")] {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(env.config_path())
            .arg("import")
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("`stockdrop import {}` blocked", path.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        use std::io::Read as _;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(3), "{}: {stderr}", path.display());
        assert!(stderr.contains(what), "{}: {stderr}", path.display());
    }
    assert_eq!(env.imports().len(), 1, "{}", env.describe());
}

/// The unit gives the open-for-writing check what it needs and nothing
/// more, and caps what one bad file can take from the host (SPEC §7).
#[test]
fn the_unit_grants_cap_lease_alone_and_caps_memory_and_tasks() {
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/stockdrop.service"
    ))
    .unwrap();
    let values = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(values("AmbientCapabilities"), ["CAP_LEASE"]);
    assert_eq!(values("CapabilityBoundingSet"), ["CAP_LEASE"]);
    assert_eq!(values("NoNewPrivileges"), ["yes"]);
    for key in ["MemoryMax", "TasksMax"] {
        let set = values(key);
        assert_eq!(set.len(), 1, "{key}: {set:?}");
        assert!(
            set[0]
                .trim_end_matches(['K', 'M', 'G'])
                .parse::<u64>()
                .is_ok(),
            "{key}={}",
            set[0]
        );
    }
}
