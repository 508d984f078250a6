//! An outbox's `index.html` (SPEC §5): written by `stockdrop import` and by
//! the daemon, parsed back as XML (rows, order, links that resolve to files
//! of the outbox, a hostile name shown as text, only that outbox's
//! imports), kept true by `prune`, and rendered by a real browser (headless
//! Chromium) when one is installed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::daemon::{wait_until, Daemon, DataRoot, Describe, BIN, FAST_WATCH};
use quick_xml::events::Event;

/// A name an attacker might upload: markup, quotes, an ampersand, a
/// percent escape and something that reads as a URL scheme.
const HOSTILE: &str = "javascript:<b onclick=\"x\">'&%41 #?.csv";
/// Its displayable form (docs/file-names.md): `%` itself is escaped.
const HOSTILE_SHOWN: &str = "javascript:<b onclick=\"x\">'&%2541 #?.csv";

struct Root(DataRoot);

impl Describe for Root {
    const DEADLINE: Duration = Duration::from_secs(30);
    fn describe(&self) -> String {
        let mut out = common::daemon::tree(self.0.path(), false);
        if let Ok(index) = fs::read_to_string(self.0.outbox().join("index.html")) {
            out.push_str("\n--- index.html ---\n");
            out.push_str(&index);
        }
        out
    }
}

impl Root {
    fn new(config: &str) -> Root {
        let root = Root(DataRoot::new("stockdrop-index-", config));
        fs::create_dir_all(root.0.inbox()).expect("create inbox");
        root
    }

    /// `stockdrop ARGS`, which must succeed (exit 0, or 1 for a file with
    /// rejected rows).
    #[track_caller]
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(self.0.config_path())
            .args(args)
            .current_dir(self.0.path())
            .env_remove("STOCKDROP_CRASH_AT")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("run stockdrop");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "stockdrop {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `stockdrop run` on this root's config, as a daemon test starts it.
    fn run(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.0.config_path())
            .arg("run")
            .env_remove("STOCKDROP_CRASH_AT")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null());
        c
    }

    /// Writes `text` as `name` beside the config and imports it.
    fn import(&self, name: &str, text: &str, extra: &[&str]) {
        let path = self.0.path().join("drops").join(name);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create drops");
        fs::write(&path, text).expect("write file");
        let path = path.display().to_string();
        let mut args = vec!["import"];
        args.extend_from_slice(extra);
        args.push(&path);
        self.cli(&args);
    }
}

/// One row of the index, as parsed.
#[derive(Debug)]
struct Row {
    import_id: i64,
    class: String,
    /// The text of each cell.
    cells: Vec<String>,
    /// The hrefs of the links in the row.
    links: Vec<String>,
}

/// Parses `index.html` as XML (it is written well-formed); the rows of its
/// table, in page order.
#[track_caller]
fn parse(path: &Path) -> Vec<Row> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut rows = Vec::new();
    let mut current: Option<Row> = None;
    let mut in_cell = false;
    let mut depth_ok = true;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("index.html is not well-formed: {e}\n{text}"));
        match event {
            Event::Start(e) if e.name().as_ref() == "tr" => {
                if let Some(id) = attr(&e, "data-import") {
                    current = Some(Row {
                        import_id: id.parse().expect("numeric data-import"),
                        class: attr(&e, "class").unwrap_or_default(),
                        cells: Vec::new(),
                        links: Vec::new(),
                    });
                }
            }
            Event::Start(e) if e.name().as_ref() == "td" => {
                if let Some(row) = current.as_mut() {
                    row.cells.push(String::new());
                    in_cell = true;
                }
            }
            Event::Start(e) if e.name().as_ref() == "a" => {
                match (current.as_mut(), attr(&e, "href")) {
                    (Some(row), Some(href)) => row.links.push(href),
                    _ => depth_ok = false,
                }
            }
            Event::Start(e) if e.name().as_ref() == "script" => {
                panic!("index.html holds a script\n{text}")
            }
            Event::Text(t) if in_cell => {
                if let Some(cell) = current.as_mut().and_then(|r| r.cells.last_mut()) {
                    cell.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if in_cell => {
                let c = match r.xml10_content().as_ref() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    other => r
                        .resolve_char_ref()
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| panic!("unknown entity &{other};")),
                };
                if let Some(cell) = current.as_mut().and_then(|r| r.cells.last_mut()) {
                    cell.push(c);
                }
            }
            Event::End(e) if e.name().as_ref() == "td" => in_cell = false,
            Event::End(e) if e.name().as_ref() == "tr" => {
                if let Some(row) = current.take() {
                    rows.push(row);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(depth_ok, "a link outside the table\n{text}");
    rows
}

/// An attribute's unescaped value.
fn attr(e: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name).expect("attribute").map(|a| {
        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .expect("attribute value")
            .into_owned()
    })
}

/// The outbox file a link of the index points at: it must be relative,
/// start with `./`, and name a file directly in the outbox.
#[track_caller]
fn target(outbox: &Path, href: &str) -> PathBuf {
    let rest = href
        .strip_prefix("./")
        .unwrap_or_else(|| panic!("link {href:?} is not ./-relative"));
    let bytes = rest.as_bytes();
    let mut name = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
            name.push(u8::from_str_radix(hex, 16).expect("percent escape"));
            i += 3;
        } else {
            assert!(
                bytes[i].is_ascii_alphanumeric() || b"-._~".contains(&bytes[i]),
                "link {href:?} has an unencoded {:?}",
                bytes[i] as char
            );
            name.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(name).expect("UTF-8 name");
    assert!(!name.contains('/'), "link {href:?} leaves the outbox");
    outbox.join(name)
}

const GOOD: &str = "location,sku,quantity\n11,S1,5\n11,S2,7\n";
const PARTIAL: &str = "location,sku,quantity\n11,S3,5\n11,S4,-3\n";

#[test]
fn the_index_lists_this_outboxs_imports_newest_first_with_working_links() {
    let root = Root::new("");
    let outbox = root.0.outbox();
    let other = root.0.path().join("elsewhere");
    root.import("good.csv", GOOD, &[]);
    root.import("partial.csv", PARTIAL, &[]);
    let other_arg = format!("--report-dir={}", other.display());
    root.import(
        "other.csv",
        GOOD.replace("S1", "S9").as_str(),
        &[&other_arg],
    );
    root.import(HOSTILE, "location,sku,quantity\n11,S5,1\n", &[]);
    // The same as the last import of its location: a duplicate.
    root.import("again.csv", "location,sku,quantity\n11,S5,1\n", &[]);

    let rows = parse(&outbox.join("index.html"));
    let ids: Vec<i64> = rows.iter().map(|r| r.import_id).collect();
    assert_eq!(ids, vec![5, 4, 2, 1], "{}", root.describe());
    let files: Vec<&str> = rows.iter().map(|r| r.cells[1].as_str()).collect();
    assert_eq!(
        files,
        vec!["again.csv", HOSTILE_SHOWN, "partial.csv", "good.csv"]
    );
    let statuses: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.cells[3].as_str(), r.class.as_str()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("duplicate", "st-dup"),
            ("applied", "st-ok"),
            ("partial", "st-warn"),
            ("applied", "st-ok")
        ]
    );
    // Rows total, applied, not applied; a duplicate applied nothing.
    assert_eq!(rows[0].cells[4..7], ["1", "0", "1"], "{rows:?}");
    assert_eq!(rows[2].cells[4..7], ["2", "1", "1"], "{rows:?}");
    assert_eq!(rows[3].cells[4..7], ["2", "2", "0"], "{rows:?}");
    assert!(rows.iter().all(|r| r.cells[2].ends_with('Z')), "{rows:?}");

    // Every link resolves to a report of that import in this outbox; each
    // import links its page and JSON, the partial one its errors CSV too.
    for row in &rows {
        let marker = format!(".{}.", row.import_id);
        for href in &row.links {
            let file = target(&outbox, href);
            assert!(file.is_file(), "{href} -> {} is missing", file.display());
            let name = file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            assert!(
                name.contains(&marker),
                "{href} is not import {}'s",
                row.import_id
            );
        }
        let expected = if row.import_id == 2 { 3 } else { 2 };
        assert_eq!(row.links.len(), expected, "{row:?}");
    }
    let text = fs::read_to_string(outbox.join("index.html")).expect("index");
    assert!(!text.contains("<b onclick"), "{text}");
    assert!(!text.contains("href=\"javascript"), "{text}");

    // The other outbox's index lists only the import reported there.
    let rows = parse(&other.join("index.html"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].import_id, rows[0].cells[1].as_str()),
        (3, "other.csv")
    );
    for href in &rows[0].links {
        assert!(target(&other, href).is_file(), "{href}");
    }
}

/// Sets a file's modification time `days` ago.
fn age(path: &Path, days: u64) {
    let file = fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .expect("set mtime");
}

#[test]
fn prune_keeps_the_index_and_it_no_longer_links_deleted_reports() {
    let root = Root::new("[retention]\noutbox_days = 10\n");
    let outbox = root.0.outbox();
    root.import("old.csv", GOOD, &[]);
    root.import("new.csv", PARTIAL, &[]);
    for name in ["old.1.html", "old.1.json", "index.html"] {
        age(&outbox.join(name), 30);
    }
    root.cli(&["prune"]);
    assert!(!outbox.join("old.1.json").exists(), "{}", root.describe());
    let rows = parse(&outbox.join("index.html"));
    let ids: Vec<i64> = rows.iter().map(|r| r.import_id).collect();
    assert_eq!(ids, vec![2, 1], "{}", root.describe());
    assert!(rows[1].links.is_empty(), "{rows:?}");
    assert_eq!(rows[0].links.len(), 3, "{rows:?}");
    for href in &rows[0].links {
        assert!(target(&outbox, href).is_file(), "{href}");
    }
}

#[test]
fn the_daemon_rewrites_the_index_after_every_file() {
    let root = Root::new(FAST_WATCH);
    let outbox = root.0.outbox();
    let mut daemon = Daemon::spawn_logged(root.run(), root.0.path().join("run-1.log"));
    daemon.wait_ready(&root);
    let index = outbox.join("index.html");
    let count = || std::panic::catch_unwind(|| parse(&index).len()).unwrap_or(0);
    root.0.drop_file("first.csv", GOOD);
    wait_until(&root, Root::DEADLINE, "index.html to list 1 import", || {
        count() == 1
    });
    root.0.drop_file("second.csv", PARTIAL);
    wait_until(
        &root,
        Root::DEADLINE,
        "index.html to list 2 imports",
        || count() == 2,
    );
    let rows = parse(&index);
    assert_eq!(rows[0].cells[1], "second.csv", "{rows:?}");
    assert_eq!(rows[1].cells[1], "first.csv", "{rows:?}");
    daemon.terminate(&root);
}

/// A burst: files dropped together are imported one after another and the
/// index, rewritten once nothing else waits (or within a second), lists
/// every one of them once the burst is drained. A daemon that stops with
/// its page stale (here: removed) rewrites it as it starts, before any
/// new file comes.
#[test]
fn a_burst_ends_with_every_file_in_the_index_and_a_start_rewrites_it() {
    // The metrics file is written with the index: it too counts every
    // file once the burst is over.
    let root = Root::new(&format!(
        "{FAST_WATCH}[metrics]\ntextfile = \"metrics.prom\"\n"
    ));
    let outbox = root.0.outbox();
    let mut daemon = Daemon::spawn_logged(root.run(), root.0.path().join("run-1.log"));
    daemon.wait_ready(&root);
    const FILES: usize = 40;
    let staging = root.0.inbox().join(".burst");
    fs::create_dir_all(&staging).expect("create staging");
    for n in 0..FILES {
        let text = format!("locationName,sku,quantity\nBurst,B-{n},{n}\n");
        fs::write(staging.join(format!("burst-{n:02}.csv")), text).expect("write burst file");
    }
    for n in 0..FILES {
        let name = format!("burst-{n:02}.csv");
        fs::rename(staging.join(&name), root.0.inbox().join(&name)).expect("rename burst file");
    }
    let index = outbox.join("index.html");
    let reports = || {
        fs::read_dir(&outbox)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    };
    wait_until(&root, Root::DEADLINE, "a report for every file", || {
        reports() == FILES
    });
    let count = || std::panic::catch_unwind(|| parse(&index).len()).unwrap_or(0);
    wait_until(
        &root,
        Root::DEADLINE,
        "index.html to list every file",
        || count() == FILES,
    );
    let rows = parse(&index);
    let mut files: Vec<&str> = rows.iter().map(|r| r.cells[1].as_str()).collect();
    files.sort_unstable();
    let expected: Vec<String> = (0..FILES).map(|n| format!("burst-{n:02}.csv")).collect();
    assert_eq!(files, expected, "{}", root.describe());
    for row in &rows {
        assert_eq!(row.links.len(), 2, "{row:?}");
    }
    let metrics = root.0.path().join("metrics.prom");
    let applied = format!("stockdrop_files_total{{status=\"applied\"}} {FILES}\n");
    wait_until(
        &root,
        Root::DEADLINE,
        "the metrics to count every file",
        || fs::read_to_string(&metrics).is_ok_and(|m| m.contains(&applied)),
    );
    daemon.terminate(&root);

    fs::remove_file(&index).expect("remove index.html");
    let mut daemon = Daemon::spawn_logged(root.run(), root.0.path().join("run-2.log"));
    daemon.wait_ready(&root);
    wait_until(
        &root,
        Root::DEADLINE,
        "the start to rewrite index.html",
        || count() == FILES,
    );
    daemon.terminate(&root);
}

/// The page as a browser sees it: headless Chromium loads it from disk and
/// dumps its DOM; the rows and the hostile name (as text) must be there.
#[test]
fn chromium_renders_the_rows() {
    let Some(chromium) = ["chromium", "chromium-browser"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }) else {
        println!("SKIPPED: no chromium installed (Debian package `chromium`)");
        return;
    };
    let root = Root::new("");
    root.import("good.csv", GOOD, &[]);
    root.import(HOSTILE, PARTIAL, &[]);
    let index = root.0.outbox().join("index.html");
    let profile = root.0.path().join("chromium-profile");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", index.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "chromium: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(dom.matches("<tr class=\"st-").count(), 2, "{dom}");
    assert!(dom.contains("data-import=\"2\""), "{dom}");
    assert!(dom.contains("data-import=\"1\""), "{dom}");
    assert!(
        dom.find("data-import=\"2\"") < dom.find("data-import=\"1\""),
        "{dom}"
    );
    // The browser kept the name as text: no element was made of it.
    assert!(!dom.contains("<b onclick"), "{dom}");
    assert!(
        dom.contains("javascript:&lt;b onclick=\"x\"&gt;'&amp;%2541 #?.csv"),
        "{dom}"
    );
    assert!(dom.contains(">partial<"), "{dom}");
}

#[test]
fn an_index_that_cannot_be_written_does_not_fail_the_import() {
    let root = Root::new("");
    let outbox = root.0.outbox();
    // A directory where the index goes: renaming the new page over it fails.
    fs::create_dir_all(outbox.join("index.html")).expect("block index.html");
    let path = root.0.path().join("good.csv");
    fs::write(&path, GOOD).expect("write file");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(root.0.config_path())
        .args(["import", &path.display().to_string()])
        .env_remove("STOCKDROP_CRASH_AT")
        .stdin(Stdio::null())
        .output()
        .expect("run stockdrop");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(outbox.join("good.1.json").is_file(), "{}", root.describe());
    assert!(
        stderr.contains("could not rewrite the outbox index"),
        "{stderr}"
    );
    // Once the way is clear, the next import writes it, listing both.
    fs::remove_dir(outbox.join("index.html")).expect("unblock");
    root.import("next.csv", PARTIAL, &[]);
    let ids: Vec<i64> = parse(&outbox.join("index.html"))
        .iter()
        .map(|r| r.import_id)
        .collect();
    assert_eq!(ids, vec![2, 1]);
}
