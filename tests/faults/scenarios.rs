//! The fault scenarios of docs/reliability.md. Each builds its data roots,
//! runs the daemon through its faults, and returns its [`Figures`]; none
//! asserts, so a scenario that fails still prints what it measured.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::gen::{self, Rng};
use crate::harness::{log_lines, wait_for, Figures, Root, Scale, MEMORY_BOUND_KIB};

/// Settling and rescans short enough for many rounds.
const FAST: &str = "[watch]\nsettle_ms = 200\nrescan_interval_s = 1\n";

fn one_each(names: &[String]) -> BTreeMap<String, usize> {
    names.iter().map(|n| (n.clone(), 1)).collect()
}

/// Keeps a daemon running in `root` until `done` holds or `limit` passes,
/// restarting it (as systemd's `Restart=on-failure` would, at most
/// `restarts` times) when it dies by itself; every crash is counted in
/// `fig`. With `quarantine`, the file a crashed daemon had in hand is taken
/// out of `work/` before the restart (what an operator would do), kept in
/// `CARGO_TARGET_TMPDIR/faults-crashers/` to replay, and passed to `done`
/// among the names no longer expected. Returns the time it took, `None` on
/// a timeout.
fn supervise(
    root: &Root,
    fig: &mut Figures,
    limit: Duration,
    restarts: usize,
    quarantine: bool,
    mut done: impl FnMut(&BTreeSet<String>) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    let mut daemon = root.start();
    let mut left = restarts;
    let mut out = BTreeSet::new();
    let took = loop {
        if done(&out) {
            break Some(start.elapsed());
        }
        if start.elapsed() > limit {
            break None;
        }
        if daemon.exited() {
            fig.add_proc(&mut daemon);
            if left == 0 {
                fig.fail(format!(
                    "the daemon kept dying; gave up after {restarts} restarts"
                ));
                return None;
            }
            left -= 1;
            if quarantine {
                let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults-crashers");
                let _ = fs::create_dir_all(&keep);
                for claimed in root.left_in(&root.work()) {
                    let name = claimed.split_once('_').map_or(claimed.as_str(), |(_, n)| n);
                    let from = root.work().join(&claimed);
                    let to = keep.join(format!("{}-{name}", fig.scenario.replace('/', "-")));
                    let _ = fs::copy(&from, &to);
                    let _ = fs::remove_file(&from);
                    fig.fail(format!(
                        "{name} crashed the daemon; a copy is in {}",
                        to.display()
                    ));
                    out.insert(name.to_string());
                }
            }
            daemon = root.start();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // A SIGTERM before its handlers are installed would kill it outright.
    daemon.wait_ready();
    if !daemon.terminate(Duration::from_secs(30)) {
        fig.fail(format!(
            "SIGTERM did not stop the daemon cleanly: {:?}",
            daemon.status
        ));
    }
    fig.add_proc(&mut daemon);
    took
}

// ---------------------------------------------------------------------------
// Crash loop.

#[derive(Clone)]
enum Kind {
    Refresh,
    Adjust,
}

/// What a file says: refresh rows (the last row of an item wins, as
/// `duplicates = "last-wins"`) or adjust rows (one per item).
struct Sent {
    kind: Kind,
    rows: Vec<(String, String, i64)>,
}

/// Rounds of dropping files → `kill -9` at a random moment → restart; then
/// the store must equal applying each file once, in the order the store
/// says they were applied, computed here from the files themselves.
pub fn crash_loop(scale: &Scale) -> Figures {
    let seed = gen::seed();
    let mut fig = Figures::new("crash-loop");
    fig.note(format!(
        "{} rounds, {}-row export twice, seed {seed}",
        scale.crash_rounds, scale.big_rows
    ));
    let root = Root::new(&format!("{FAST}[import]\nduplicates = \"last-wins\"\n"));
    let adjust = adjust_supported();
    if !adjust {
        fig.note("this binary applies `_UPDATE_` files as refreshes (SPEC §1.1 not built): refresh files only");
    }
    let mut rng = Rng::new(seed);
    // Refresh quantities are multiples of 1000 and every one is new, and
    // adjustments are small, so every item of every job changes its record
    // (one history row per item).
    let mut counter = 0i64;
    let mut next_quantity = move || {
        counter += 1;
        counter * 1000
    };
    let mut sent: BTreeMap<String, Sent> = BTreeMap::new();
    let big_rounds = [0, scale.crash_rounds / 2];
    for round in 0..scale.crash_rounds {
        if big_rounds.contains(&round) {
            let rows = gen::export_rows(scale.big_rows, &mut rng, &mut next_quantity);
            let name = format!("r{round:03}_export.csv");
            root.drop_bytes(&name, &gen::export_csv(&rows));
            let rows = rows
                .iter()
                .map(|r| (gen::location(r.location), gen::sku(r.item), r.quantity))
                .collect();
            sent.insert(
                name,
                Sent {
                    kind: Kind::Refresh,
                    rows,
                },
            );
        }
        for k in 0..2 {
            let mut rows = Vec::new();
            for _ in 0..5 + rng.below(15) {
                let l = gen::location(rng.below(3) as usize);
                let s = gen::sku(rng.below(200) as usize);
                rows.push((l, s, next_quantity()));
            }
            let text: Vec<_> = rows
                .iter()
                .map(|(l, s, q)| (l.clone(), s.clone(), q.to_string()))
                .collect();
            let name = format!("r{round:03}_{k}.csv");
            root.drop_bytes(&name, &gen::small_csv(&text));
            sent.insert(
                name,
                Sent {
                    kind: Kind::Refresh,
                    rows,
                },
            );
        }
        if adjust {
            drop_adjust(&root, round, &mut rng, &mut sent);
        }

        let mut daemon = root.start();
        // Mostly short lives; one round in five long enough to plan the
        // big export.
        let max = if round % 5 == 4 { 9_000 } else { 2_500 };
        std::thread::sleep(Duration::from_millis(rng.below(max)));
        daemon.kill9();
        fig.faults += 1;
        fig.add_proc(&mut daemon);
    }
    let names: Vec<String> = sent.keys().cloned().collect();
    let expected = one_each(&names);
    fig.files = names.len();
    fig.drain = supervise(&root, &mut fig, Duration::from_secs(600), 3, false, |_| {
        root.drained(&expected)
    });
    if fig.drain.is_none() {
        fig.fail("not every file was finished after the last restart");
    }
    fig.add_tally(&root.tally(&expected, true));
    fig.integrity = Some(root.integrity_ok());

    // The store as applying each file once, in import order.
    let mut model: BTreeMap<(String, String), i64> = BTreeMap::new();
    for import in root.imports() {
        if !matches!(import.status.as_str(), "applied" | "partial") {
            continue;
        }
        let Some(file) = sent.get(&import.dropped) else {
            continue;
        };
        match file.kind {
            Kind::Refresh => {
                for (l, s, q) in &file.rows {
                    model.insert((l.clone(), s.clone()), *q);
                }
            }
            Kind::Adjust => {
                for (l, s, d) in &file.rows {
                    if let Some(q) = model.get_mut(&(l.clone(), s.clone())) {
                        *q += d;
                    }
                }
            }
        }
    }
    let store = root.stock();
    let mut diff = 0;
    for key in model.keys().chain(store.keys()) {
        if model.get(key) != store.get(key) {
            diff += 1;
            if diff <= 3 {
                fig.fail(format!(
                    "{key:?}: store {:?}, applying each file once {:?}",
                    store.get(key),
                    model.get(key)
                ));
            }
        }
    }
    fig.store_diff = Some(diff);
    let statuses = root.imports().iter().fold(BTreeMap::new(), |mut m, i| {
        *m.entry(i.status.clone()).or_insert(0) += 1;
        m
    });
    fig.note(format!("imports by status: {statuses:?}"));
    fig
}

/// Drops round `round`'s adjust file: five products of the first three
/// locations, each `+1` … `+9`.
fn drop_adjust(root: &Root, round: usize, rng: &mut Rng, sent: &mut BTreeMap<String, Sent>) {
    let mut rows: BTreeMap<(String, String), i64> = BTreeMap::new();
    for _ in 0..5 {
        let l = gen::location(rng.below(3) as usize);
        let s = gen::sku(rng.below(200) as usize);
        rows.insert((l, s), 1 + rng.below(9) as i64);
    }
    let rows: Vec<(String, String, i64)> = rows.into_iter().map(|((l, s), d)| (l, s, d)).collect();
    let text: Vec<_> = rows
        .iter()
        .map(|(l, s, d)| (l.clone(), s.clone(), format!("+{d}")))
        .collect();
    let name = format!("r{round:03}_UPDATE_adj.csv");
    root.drop_bytes(&name, &gen::small_csv(&text));
    sent.insert(
        name,
        Sent {
            kind: Kind::Adjust,
            rows,
        },
    );
}

/// Whether the binary applies `_UPDATE_` files as adjustments (SPEC §1.1):
/// a scratch import of `+6` onto 1000.
fn adjust_supported() -> bool {
    let root = Root::new("");
    fs::write(
        root.path().join("a.csv"),
        "location,sku,quantity\nA,S1,1000\n",
    )
    .expect("probe");
    fs::write(
        root.path().join("p_UPDATE_probe.csv"),
        "location,sku,quantity\nA,S1,+6\n",
    )
    .expect("probe");
    let a = root.path().join("a.csv").display().to_string();
    let p = root.path().join("p_UPDATE_probe.csv").display().to_string();
    let _ = root.cli(&["import", &a, &p], Duration::from_secs(30));
    root.stock().get(&("A".to_string(), "S1".to_string())) == Some(&1006)
}

// ---------------------------------------------------------------------------
// Burst and overflow.

/// Restores `/proc/sys/fs/inotify/max_queued_events` when dropped.
struct QueueLimit {
    old: String,
}

const MAX_QUEUED: &str = "/proc/sys/fs/inotify/max_queued_events";

impl QueueLimit {
    fn lower(to: u32) -> Result<QueueLimit, String> {
        let old = fs::read_to_string(MAX_QUEUED).map_err(|e| format!("read {MAX_QUEUED}: {e}"))?;
        fs::write(MAX_QUEUED, to.to_string()).map_err(|e| format!("write {MAX_QUEUED}: {e}"))?;
        Ok(QueueLimit {
            old: old.trim().to_string(),
        })
    }
}

impl Drop for QueueLimit {
    fn drop(&mut self) {
        let _ = fs::write(MAX_QUEUED, &self.old);
    }
}

/// `n` one-row files dropped at once into a running daemon on the
/// default watch settings; with `overflow`, its inotify queue holds 64
/// events, so most events are lost and the rescans must find the files.
pub fn burst(scale: &Scale, overflow: bool) -> Figures {
    let n = scale.burst_files;
    let mut fig = Figures::new(if overflow { "burst/overflow" } else { "burst" });
    fig.files = n;
    let root = Root::new("");
    let mut daemon;
    if overflow {
        let limit = match QueueLimit::lower(64) {
            Ok(limit) => limit,
            Err(e) => {
                fig.skipped = Some(format!("cannot lower the inotify queue: {e}"));
                return fig;
            }
        };
        daemon = root.start();
        let ready = daemon.wait_ready();
        // The limit applies to inotify instances made while it is low:
        // the daemon's own. Restored at once for everyone else.
        drop(limit);
        if !ready {
            fig.fail("the daemon did not start");
        }
    } else {
        daemon = root.start();
        if !daemon.wait_ready() {
            fig.fail("the daemon did not start");
        }
    }
    let start = Instant::now();
    let names: Vec<String> = (0..n).map(|i| format!("b{i:05}.csv")).collect();
    for (i, name) in names.iter().enumerate() {
        let text = format!("location,sku,quantity\nB{},BURST-{i},{}\n", i % 10, i + 1);
        root.drop_bytes(name, text.as_bytes());
    }
    let expected = one_each(&names);
    let dropped = start.elapsed();
    let limit = Duration::from_secs(60 + n as u64 / 10);
    fig.drain = wait_for(limit, || daemon.exited() || root.drained(&expected))
        .filter(|_| !daemon.exited())
        .map(|_| start.elapsed());
    if fig.drain.is_none() {
        fig.fail(format!(
            "not drained within {limit:?}: {} left in the inbox",
            root.left_in(&root.inbox()).len()
        ));
    }
    if !daemon.terminate(Duration::from_secs(30)) {
        fig.fail(format!(
            "SIGTERM did not stop the daemon cleanly: {:?}",
            daemon.status
        ));
    }
    fig.add_proc(&mut daemon);
    let overflowed = log_lines(&daemon.log(), "overflow", 1);
    fig.faults = if overflow { overflowed.len() } else { 0 };
    if overflow {
        fig.note(match overflowed.first() {
            Some(l) => format!("the daemon saw the overflow: {l}"),
            None => "the daemon logged no overflow".to_string(),
        });
    }
    fig.note(format!(
        "{n} files written in {:.1}s",
        dropped.as_secs_f64()
    ));
    fig.add_tally(&root.tally(&expected, true));
    let store = root.stock();
    let diff = (0..n)
        .filter(|i| {
            store.get(&(format!("B{}", i % 10), format!("BURST-{i}"))) != Some(&(*i as i64 + 1))
        })
        .count();
    fig.store_diff = Some(diff + store.len().saturating_sub(n));
    fig.integrity = Some(root.integrity_ok());
    fig
}

// ---------------------------------------------------------------------------
// Uploads.

/// Writes `lines` into `path` from a thread of this process, `pause`
/// between `chunks` pieces, holding the file open throughout.
fn write_slowly(path: PathBuf, lines: Vec<String>, chunks: usize, pause: Duration) {
    let mut file = fs::File::create(&path).expect("create an upload");
    let per = lines.len().div_ceil(chunks.max(1));
    for (i, piece) in lines.chunks(per.max(1)).enumerate() {
        if i > 0 {
            std::thread::sleep(pause);
        }
        file.write_all(piece.concat().as_bytes()).expect("write");
        file.flush().expect("flush");
    }
}

fn upload_lines(prefix: &str, location: &str, n: usize, quantity: i64) -> Vec<String> {
    let mut lines = vec!["location,sku,quantity\n".to_string()];
    lines.extend((0..n).map(|i| format!("{location},{prefix}{i},{quantity}\n")));
    lines
}

/// A real writer process: `sh` opens `dest`, copies `part` into it and
/// sleeps holding it open, until killed.
fn dying_writer(dest: &Path, part: &Path) -> std::process::Child {
    Command::new("sh")
        .arg("-c")
        .arg("exec 3>\"$1\"; cat \"$2\" >&3; exec sleep 1000")
        .arg("sh")
        .arg(dest)
        .arg(part)
        .spawn()
        .expect("start a writer")
}

/// Slow writers, a writer that stalls across several settle periods, one
/// that dies half way (in delta mode and in full mode, where the zeroing
/// guard must hold), and an upload truncated and rewritten under the same
/// name.
pub fn uploads() -> Figures {
    let mut fig = Figures::new("uploads");
    let settle = Duration::from_millis(1000);
    let root = Root::new("[watch]\nsettle_ms = 1000\nrescan_interval_s = 1\n");
    let mut daemon = root.start();
    if !daemon.wait_ready() {
        fig.fail("the daemon did not start");
    }
    let inbox = root.inbox();
    let mut expected_rows: BTreeMap<String, i64> = BTreeMap::new();
    let mut writers = Vec::new();
    // Three slow writers: a piece every 300 ms, well inside the settle time.
    for w in 0..3 {
        let name = format!("slow{w}.csv");
        let lines = upload_lines(&format!("SLOW{w}-"), "U1", 300, 7);
        expected_rows.insert(name.clone(), 300);
        let path = inbox.join(&name);
        writers.push(std::thread::spawn(move || {
            write_slowly(path, lines, 20, Duration::from_millis(300))
        }));
    }
    // The stall: half, then 3.5 settle periods with the file open, then the
    // rest (issue 8 §1).
    {
        let stall_lines = upload_lines("STALL-", "U1", 3000, 9);
        expected_rows.insert("stall.csv".into(), 3000);
        let path = inbox.join("stall.csv");
        writers.push(std::thread::spawn(move || {
            write_slowly(path, stall_lines, 2, settle * 7 / 2)
        }));
        fig.faults += 1;
    }
    // Truncated and rewritten: 500 rows of a first attempt, then the
    // client starts over with 200 rows under the same name.
    let path = inbox.join("rewrite.csv");
    expected_rows.insert("rewrite.csv".into(), 200);
    writers.push(std::thread::spawn(move || {
        write_slowly(
            path.clone(),
            upload_lines("RW-", "U2", 500, 1),
            2,
            Duration::from_millis(200),
        );
        std::thread::sleep(Duration::from_millis(200));
        write_slowly(
            path,
            upload_lines("RW-", "U2", 200, 2),
            4,
            Duration::from_millis(200),
        );
    }));
    // A writer that dies half way through and never comes back.
    let whole = upload_lines("DIED-", "U3", 2000, 5).concat();
    let part = root.path().join("died.part");
    let cut = whole.len() / 2;
    fs::write(&part, &whole.as_bytes()[..cut]).expect("write the half");
    let complete_rows = whole[..cut].matches('\n').count() as i64 - 1;
    let mut writer = dying_writer(&inbox.join("died.csv"), &part);
    std::thread::sleep(Duration::from_millis(500));
    let _ = writer.kill();
    let _ = writer.wait();
    fig.faults += 1;
    for w in writers {
        let _ = w.join();
    }
    fig.faults += 1; // the rewrite
    let mut names: Vec<String> = expected_rows.keys().cloned().collect();
    names.push("died.csv".into());
    let expected = one_each(&names);
    fig.files = names.len();
    let start = Instant::now();
    fig.drain = wait_for(Duration::from_secs(60), || root.drained(&expected));
    if fig.drain.is_none() {
        fig.fail("not every upload was reported");
    }
    let _ = start;
    if !daemon.terminate(Duration::from_secs(30)) {
        fig.fail(format!(
            "SIGTERM did not stop the daemon cleanly: {:?}",
            daemon.status
        ));
    }
    fig.add_proc(&mut daemon);
    fig.add_tally(&root.tally(&expected, false));
    let imports = root.imports();
    for (name, rows) in &expected_rows {
        let got: Vec<i64> = imports
            .iter()
            .filter(|i| &i.dropped == name)
            .map(|i| i.rows_accepted)
            .collect();
        if got != [*rows] {
            fig.part += 1;
            fig.fail(format!(
                "{name}: {rows} rows written, imports applied {got:?} rows"
            ));
        }
    }
    let died: Vec<String> = imports
        .iter()
        .filter(|i| i.dropped == "died.csv")
        .map(|i| format!("{} ({} rows)", i.status, i.rows_accepted))
        .collect();
    fig.note(format!(
        "died.csv ({complete_rows} whole rows when the writer died): {died:?}"
    ));
    let stock = root.stock();
    let stale = stock
        .iter()
        .filter(|((l, s), q)| {
            let index = s.strip_prefix("RW-").and_then(|i| i.parse::<usize>().ok());
            l == "U2" && (**q != 2 || index.is_none_or(|i| i >= 200))
        })
        .count();
    if stale > 0 {
        fig.fail(format!(
            "rewrite.csv: {stale} records from the abandoned first attempt"
        ));
    }
    fig.store_diff = Some(stale);

    // Full mode: a writer dies after 30 of 100 rows of a location's full
    // stock; zeroing the other 70 would be 70% > 50%: the guard must hold.
    let full = Root::new(
        "[watch]\nsettle_ms = 1000\nrescan_interval_s = 1\n[import]\nrefresh_mode = \"full\"\n",
    );
    let mut daemon = full.start();
    let _ = daemon.wait_ready();
    full.drop_bytes(
        "seed.csv",
        upload_lines("F-", "FULL", 100, 10).concat().as_bytes(),
    );
    let seeded = one_each(&["seed.csv".to_string()]);
    let _ = wait_for(Duration::from_secs(20), || full.drained(&seeded));
    let lines = upload_lines("F-", "FULL", 100, 11);
    let part = full.path().join("full.part");
    fs::write(&part, lines[..31].concat()).expect("write the part");
    let mut writer = dying_writer(&full.inbox().join("full-died.csv"), &part);
    std::thread::sleep(Duration::from_millis(500));
    let _ = writer.kill();
    let _ = writer.wait();
    fig.faults += 1;
    fig.files += 2;
    let both = one_each(&["seed.csv".to_string(), "full-died.csv".to_string()]);
    if wait_for(Duration::from_secs(30), || full.drained(&both)).is_none() {
        fig.fail("full mode: the dead upload was never reported");
    }
    if !daemon.terminate(Duration::from_secs(30)) {
        fig.fail(format!(
            "SIGTERM did not stop the daemon cleanly: {:?}",
            daemon.status
        ));
    }
    fig.add_proc(&mut daemon);
    fig.add_tally(&full.tally(&both, false));
    let zeroed = full.stock().values().filter(|q| **q == 0).count();
    let status: Vec<String> = full
        .imports()
        .iter()
        .filter(|i| i.dropped == "full-died.csv")
        .map(|i| i.status.clone())
        .collect();
    fig.note(format!(
        "full mode, dead upload of 30/100 rows: {status:?}, {zeroed} record(s) zeroed"
    ));
    if zeroed > 0 {
        fig.fail(format!(
            "full mode: the zeroing guard let {zeroed} records be zeroed"
        ));
    }
    fig
}

// ---------------------------------------------------------------------------
// Hostile files.

/// The samples the mutations start from: `samples/` and `tests/fixtures/`.
fn samples() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for sub in ["samples", "tests/fixtures"] {
        let Ok(rd) = fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default()
                .to_string();
            if matches!(
                ext.as_str(),
                "csv" | "xlsx" | "xls" | "ods" | "json" | "zip"
            ) {
                if let Ok(bytes) = fs::read(&p) {
                    out.push((ext, bytes));
                }
            }
        }
    }
    out
}

/// `count` seeded mutations of the samples, dropped at once.
pub fn mutations(scale: &Scale) -> Figures {
    // `cargo test` mutates with one fixed seed; the script with a new one
    // each run (printed, to replay).
    let seed = match scale.fresh_seed {
        true => gen::seed(),
        false => gen::seed_or(20_261_201),
    };
    let mut fig = Figures::new("hostile/mutations");
    fig.note(format!("seed {seed}"));
    let mut rng = Rng::new(seed);
    let samples = samples();
    let root = Root::new(FAST);
    let mut names = Vec::new();
    for i in 0..scale.mutations {
        let (ext, bytes) = &samples[rng.below(samples.len() as u64) as usize];
        let mutated = if matches!(ext.as_str(), "xlsx" | "ods" | "zip") && rng.chance(60) {
            gen::mutate_zip_member(bytes, &mut rng)
                .unwrap_or_else(|| gen::mutate_bytes(bytes, &mut rng))
        } else {
            gen::mutate_bytes(bytes, &mut rng)
        };
        let name = format!("m{i:04}.{ext}");
        root.drop_bytes(&name, &mutated);
        names.push(name);
    }
    fig.files = names.len();
    fig.faults = names.len();
    let expected = one_each(&names);
    let limit = Duration::from_secs(60 + scale.mutations as u64 / 4);
    fig.drain = supervise(&root, &mut fig, limit, 20, true, |out| {
        let mut left = expected.clone();
        left.retain(|name, _| !out.contains(name));
        root.drained(&left)
    });
    if fig.drain.is_none() {
        fig.fail("not every mutated file was reported");
    }
    fig.add_tally(&root.tally(&expected, false));
    fig.integrity = Some(root.integrity_ok());
    if fig.peak_kib > MEMORY_BOUND_KIB {
        let peak = fig.peak_kib.div_ceil(1024);
        fig.fail(format!("peak {peak} MiB, over SPEC §4.5's 256 MiB"));
    }
    fig
}

/// One hostile file in a root of its own: its name, what to drop (a
/// closure making it in the inbox), and whether it is a regular file that
/// must get a report (links, FIFOs and devices are skipped, never read).
struct Special {
    name: &'static str,
    regular: bool,
    make: Box<dyn Fn(&Root)>,
}

fn special(name: &'static str, regular: bool, make: impl Fn(&Root) + 'static) -> Special {
    Special {
        name,
        regular,
        make: Box::new(make),
    }
}

fn bytes_file(name: &'static str, bytes: impl Fn() -> Vec<u8> + 'static) -> Special {
    special(name, true, move |r: &Root| r.drop_bytes(name, &bytes()))
}

const SECRET: &str = "api_token = hunter2-do-not-leak\n";

fn outside_secret(root: &Root) -> PathBuf {
    let dir = root.path().join("outside");
    fs::create_dir_all(&dir).expect("outside folder");
    let path = dir.join("secret.txt");
    fs::write(&path, SECRET).expect("secret");
    path
}

/// The named hostile files of issues 8 and 9, each in its own data root
/// (so one that stops the daemon does not hide the others), with a
/// normal file dropped after it that must still be processed.
pub fn specials(scale: &Scale) -> Figures {
    let mut fig = Figures::new("hostile/specials");
    let line = scale.single_line_bytes;
    let mut list = vec![
        bytes_file("bomb-ratio.zip", || {
            gen::zip_repeated(
                "stock.csv",
                b"location,sku,quantity\n",
                b"11,S1,1\n",
                64 << 20,
                b"",
            )
        }),
        bytes_file("bomb-many.zip", || {
            gen::zip_many(
                &gen::zip_repeated(
                    "m.csv",
                    b"location,sku,quantity\n",
                    b"11,S1,1\n",
                    9 << 20,
                    b"",
                ),
                150,
            )
        }),
        bytes_file("bomb-sheet.xlsx", || gen::xlsx_bomb(64 << 20)),
        bytes_file("bomb-small-sheet.xlsx", || gen::xlsx_bomb(9 << 20)),
        bytes_file("single-line.csv", move || vec![b'x'; line]),
        bytes_file("columns-10000.csv", || {
            let mut s = String::from("location,sku,quantity");
            for c in 3..10_000 {
                s.push_str(&format!(",c{c}"));
            }
            s.push('\n');
            for r in 0..50 {
                s.push_str(&format!("11,COL{r},{r}"));
                for _ in 3..10_000 {
                    s.push_str(",v");
                }
                s.push('\n');
            }
            s.into_bytes()
        }),
        bytes_file("nul-bytes.csv", || {
            b"location,s\0ku,quantity\n11,S\x001,5\n\0\0\0,\0,\0\n12,S2,6\0\n".to_vec()
        }),
        bytes_file("bad-utf8-header.csv", || {
            b"loc\xff\xfeation,sk\xc3\x28u,quan\xa0tity\n11,S1,5\n12,S2,6\n".to_vec()
        }),
        bytes_file("dotdot-members.zip", || {
            let csv = b"location,sku,quantity\n11,DOT1,1\n";
            gen::zip_of(&[
                ("../../escape1.csv", csv),
                ("../escape2.csv", csv),
                ("/tmp/escape3.csv", csv),
                ("sub/../../escape4.csv", csv),
            ])
        }),
        special("fifo.csv", false, |r: &Root| {
            let status = Command::new("mkfifo")
                .arg(r.inbox().join("fifo.csv"))
                .status();
            assert!(status.is_ok_and(|s| s.success()), "mkfifo");
        }),
        special("device.csv", false, |r: &Root| {
            // /dev/zero's numbers; needs root (CAP_MKNOD).
            let _ = Command::new("mknod")
                .arg(r.inbox().join("device.csv"))
                .args(["c", "1", "5"])
                .status();
        }),
        special("symlink.csv", false, |r: &Root| {
            let secret = outside_secret(r);
            symlink(secret, r.inbox().join("symlink.csv")).expect("symlink");
        }),
    ];
    {
        list.push(special("hardlink.csv", true, |r: &Root| {
            let secret = outside_secret(r);
            fs::hard_link(secret, r.inbox().join("hardlink.csv")).expect("hard link");
        }));
        // Issue 9 §2 and §3: these aborted or exhausted earlier binaries.
        list.push(bytes_file("huge-dims.xlsx", || {
            let sheet = format!(
                r#"{}<row r="1"><c r="A1" t="inlineStr"><is><t>location</t></is></c></row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row>{}"#,
                gen::SHEET_HEAD,
                gen::SHEET_TAIL
            );
            gen::xlsx_with_sheet(sheet.as_bytes())
        }));
        list.push(bytes_file("bomb-json.zip", || {
            gen::zip_repeated(
                "body.json",
                br#"{"locationName":"1","items":["#,
                b"{},",
                10 << 20,
                b"{}]}",
            )
        }));
    }
    let mut results = Vec::new();
    for s in &list {
        fig.files += 1;
        fig.faults += 1;
        let root = Root::new(FAST);
        (s.make)(&root);
        // A normal file behind it must still go through.
        root.drop_bytes("zz-after.csv", b"location,sku,quantity\n11,AFTER,1\n");
        let mut expected = one_each(&["zz-after.csv".to_string()]);
        if s.regular {
            expected.insert(s.name.to_string(), 1);
        }
        let mut sub = Figures::new(s.name);
        let start = Instant::now();
        let took = supervise(&root, &mut sub, Duration::from_secs(120), 2, false, |_| {
            root.drained(&expected)
        });
        let tally = root.tally(&expected, false);
        sub.add_tally(&tally);
        let statuses: Vec<String> = root
            .imports()
            .iter()
            .filter(|i| i.dropped == s.name)
            .map(|i| format!("{}:{}", i.file, i.status))
            .collect();
        let leaks = root
            .files_under(&root.outbox())
            .iter()
            .filter(|p| fs::read_to_string(p).is_ok_and(|t| t.contains("hunter2")))
            .count();
        let escaped: Vec<PathBuf> = root
            .files_under(root.path())
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("escape"))
            })
            .filter(|p| !p.starts_with(root.outbox()) && !p.starts_with(root.var().join("archive")))
            .collect();
        let mentions = root.logs().lines().filter(|l| l.contains(s.name)).count();
        let mut text = format!(
            "{}: {} in {:.1}s, peak {} MiB, {} log line(s) naming it",
            s.name,
            if statuses.is_empty() {
                "no import".to_string()
            } else {
                statuses.join(" ")
            },
            took.unwrap_or(start.elapsed()).as_secs_f64(),
            sub.peak_kib.div_ceil(1024),
            mentions
        );
        if leaks > 0 {
            text.push_str(&format!(", SECRET IN {leaks} REPORT(S)"));
            sub.fail(format!(
                "{}: the outside file's content reached the outbox",
                s.name
            ));
        }
        if !escaped.is_empty() {
            sub.fail(format!(
                "{}: files written outside the outbox: {escaped:?}",
                s.name
            ));
        }
        if sub.peak_kib > MEMORY_BOUND_KIB {
            sub.fail(format!(
                "{}: peak {} MiB, over SPEC §4.5's 256 MiB",
                s.name,
                sub.peak_kib.div_ceil(1024)
            ));
        }
        if mentions > 20 {
            sub.fail(format!("{}: {mentions} log lines about one file", s.name));
        }
        if took.is_none() {
            sub.fail(format!(
                "{}: not finished, or the file behind it was not",
                s.name
            ));
        }
        results.push(text);
        fig.lost += sub.lost;
        fig.twice += sub.twice;
        fig.part += sub.part;
        fig.extra += sub.extra;
        fig.panics += sub.panics;
        fig.peak_kib = fig.peak_kib.max(sub.peak_kib);
        fig.failures.extend(sub.failures);
        fig.drain = Some(fig.drain.unwrap_or_default() + took.unwrap_or(start.elapsed()));
    }
    fig.notes.extend(results);
    fig
}

// ---------------------------------------------------------------------------
// Environment.

/// What `stockdrop status` said about the last error, or why it said
/// nothing.
fn status_error(root: &Root) -> String {
    match root.cli(&["status"], Duration::from_secs(10)) {
        None => "status hung for 10 s".to_string(),
        Some((code, text)) => {
            let line = text
                .lines()
                .find(|l| l.starts_with("last error"))
                .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| format!("exit {code:?}: {}", text.trim().replace('\n', " | ")));
            line
        }
    }
}

/// A file of `rows` rows for location `E`, every row a new record.
fn env_file(prefix: &str, rows: usize) -> Vec<u8> {
    let text: Vec<(String, String, String)> = (0..rows)
        .map(|i| ("E".to_string(), format!("{prefix}{i}"), (i + 1).to_string()))
        .collect();
    gen::small_csv(&text)
}

/// Runs one environment fault in its own root: `inject` breaks something
/// while the daemon runs and a file arrives, `repair` puts it right after
/// `fault`; the file must then be applied exactly once.
fn env_case(
    name: &str,
    fault: Duration,
    root: Root,
    rows: usize,
    inject: impl FnOnce(&Root) -> Result<(), String>,
    repair: impl FnOnce(&Root),
) -> Figures {
    let mut fig = Figures::new(name);
    fig.files = 1;
    fig.faults = 1;
    let mut daemon = root.start();
    if !daemon.wait_ready() {
        fig.fail(format!("the daemon did not start: {}", daemon.log().trim()));
        fig.add_proc(&mut daemon);
        return fig;
    }
    if let Err(why) = inject(&root) {
        fig.skipped = Some(why);
        return fig;
    }
    let log_before = daemon.log().len();
    root.drop_bytes("env.csv", &env_file("ENV-", rows));
    std::thread::sleep(fault / 2);
    let status_during = status_error(&root);
    std::thread::sleep(fault - fault / 2);
    let fault_log: String = daemon
        .log()
        .get(log_before..)
        .unwrap_or_default()
        .to_string();
    repair(&root);
    let repaired = Instant::now();
    let expected = one_each(&["env.csv".to_string()]);
    fig.drain = wait_for(Duration::from_secs(90), || {
        daemon.exited() || root.drained(&expected)
    })
    .map(|_| repaired.elapsed());
    let status_after = status_error(&root);
    if !daemon.terminate(Duration::from_secs(30)) {
        fig.fail(format!(
            "SIGTERM did not stop the daemon cleanly: {:?}",
            daemon.status
        ));
    }
    fig.add_proc(&mut daemon);
    if fig.drain.is_none() {
        // Not recovered while running: does a restart recover it?
        let mut again = root.start();
        let took = wait_for(Duration::from_secs(30), || root.drained(&expected));
        fig.note(match took {
            Some(t) => format!("recovered only after a restart ({:.1}s)", t.as_secs_f64()),
            None => "not recovered after a restart either".to_string(),
        });
        again.wait_ready();
        again.terminate(Duration::from_secs(30));
        fig.add_proc(&mut again);
    }
    let warnings: Vec<String> = fault_log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .map(|l| l.split_once(' ').map_or(l, |(_, r)| r).trim().to_string())
        .collect();
    match warnings.first() {
        Some(w) => fig.note(format!(
            "log during the fault ({} warning(s)): {w}",
            warnings.len()
        )),
        None => fig
            .unclear
            .push("nothing in the log during the fault".into()),
    }
    fig.note(format!("status during the fault: {status_during}"));
    if status_during == "none" {
        fig.unclear
            .push("status said \"last error: none\" during the fault".into());
    }
    fig.note(format!("status after recovery: {status_after}"));
    let imports = root.imports();
    let outcome: Vec<String> = imports
        .iter()
        .filter(|i| i.dropped == "env.csv")
        .map(|i| format!("import {} {} ({} rows)", i.id, i.status, i.rows_accepted))
        .collect();
    let kept: Vec<String> = root.kept().into_iter().collect();
    let left = root.left_in(&root.work());
    fig.note(format!(
        "after recovery: {outcome:?}; originals kept {kept:?}, in work {left:?}"
    ));
    if fig.drain.is_none() {
        fig.fail("not finished within 90 s of the repair");
    }
    let tally = root.tally(&expected, true);
    fig.add_tally(&tally);
    let stock = root.stock();
    let diff = (0..rows)
        .filter(|i| stock.get(&("E".to_string(), format!("ENV-{i}"))) != Some(&(*i as i64 + 1)))
        .count();
    fig.store_diff = Some(diff);
    if !imports
        .iter()
        .any(|i| i.dropped == "env.csv" && i.status == "applied")
    {
        fig.fail(format!("env.csv did not end applied: {outcome:?}"));
    }
    fig.integrity = Some(root.integrity_ok());
    if !fig.ok() {
        // The whole data root (logs, store, folders) is kept to look into.
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("faults-failed")
            .join(name.replace('/', "-"));
        let _ = fs::remove_dir_all(&keep);
        if let Some(parent) = keep.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let copied = Command::new("cp")
            .arg("-a")
            .arg(root.path())
            .arg(&keep)
            .status();
        if copied.is_ok_and(|s| s.success()) {
            fig.note(format!("data root kept in {}", keep.display()));
        }
        let log = root.logs();
        let lines: Vec<&str> = log.lines().collect();
        for l in &lines[lines.len().saturating_sub(4)..] {
            fig.note(format!(
                "log: {}",
                l.split_once(' ').map_or(*l, |(_, r)| r).trim()
            ));
        }
    }
    fig
}

/// Moves everything in the WAL into the database file (the daemon is
/// idle between files), so the file alone holds the store.
fn checkpoint(root: &Root) -> Result<(), String> {
    let conn = rusqlite::Connection::open(root.database()).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(|e| e.to_string())
}

/// Replaces folder `var/<dir>` by a regular file (root ignores
/// permissions, a file in its place cannot be written into).
fn block_dir(root: &Root, dir: &str) -> Result<(), String> {
    let path = root.var().join(dir);
    fs::rename(&path, root.var().join(format!(".{dir}.away"))).map_err(|e| e.to_string())?;
    fs::write(&path, b"not a folder").map_err(|e| e.to_string())
}

fn unblock_dir(root: &Root, dir: &str) {
    let path = root.var().join(dir);
    let _ = fs::remove_file(&path);
    let _ = fs::rename(root.var().join(format!(".{dir}.away")), &path);
}

/// Unmounts a tmpfs when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The outbox, the archive, the disk, the database (locked, removed,
/// corrupted): each fault in its own root, all at once.
pub fn environment(scale: &Scale) -> Vec<Figures> {
    let fault = scale.env_fault;
    let mut threads = Vec::new();
    threads.push(std::thread::spawn(move || {
        env_case(
            "env/outbox-unwritable",
            fault,
            Root::new(FAST),
            50,
            |r| block_dir(r, "outbox"),
            |r| unblock_dir(r, "outbox"),
        )
    }));
    threads.push(std::thread::spawn(move || {
        env_case(
            "env/archive-unwritable",
            fault,
            Root::new(FAST),
            50,
            |r| block_dir(r, "archive"),
            |r| unblock_dir(r, "archive"),
        )
    }));
    threads.push(std::thread::spawn(move || {
        // The data root on a 6 MB tmpfs; a 40,000-row file fills it while
        // it is applied. Repaired by growing the tmpfs.
        let root = Root::new(FAST);
        let var = root.var();
        let _ = fs::remove_dir_all(&var);
        fs::create_dir_all(&var).expect("var");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
            .arg(&var)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let mut fig = Figures::new("env/disk-full");
            fig.skipped = Some("cannot mount a tmpfs here (needs root)".into());
            return fig;
        }
        let _mount = Mount(var.clone());
        fs::create_dir_all(root.inbox()).expect("inbox");
        let grow = var.clone();
        env_case(
            "env/disk-full",
            fault,
            root,
            40_000,
            |_| Ok(()),
            move |_| {
                let _ = Command::new("mount")
                    .args(["-o", "remount,size=256m"])
                    .arg(&grow)
                    .status();
            },
        )
    }));
    threads.push(std::thread::spawn(move || {
        // Another process holds BEGIN EXCLUSIVE for 10 s (this test
        // process, through its own SQLite connection).
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let mut holder = None;
        let fig = env_case(
            "env/db-locked",
            Duration::from_secs(10),
            Root::new(FAST),
            50,
            |r| {
                let path = r.database();
                let (ready_tx, ready_rx) = std::sync::mpsc::channel();
                holder = Some(std::thread::spawn(move || {
                    let conn = rusqlite::Connection::open(&path).expect("open the store");
                    let locked = conn.execute_batch("BEGIN EXCLUSIVE");
                    let _ = ready_tx.send(locked.map_err(|e| e.to_string()));
                    let _ = rx.recv();
                    let _ = conn.execute_batch("ROLLBACK");
                }));
                ready_rx.recv().map_err(|e| e.to_string())?
            },
            |_| {
                let _ = tx.send(());
            },
        );
        if let Some(h) = holder {
            let _ = h.join();
        }
        fig
    }));
    threads.push(std::thread::spawn(move || {
        // The database file removed while the daemon runs; repaired by
        // restoring it from a copy taken before.
        let saved = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = saved.clone();
        env_case(
            "env/db-removed",
            fault,
            Root::new(FAST),
            50,
            move |r| {
                checkpoint(r)?;
                let db = r.database();
                *keep.lock().unwrap() = fs::read(&db).map_err(|e| e.to_string())?;
                for suffix in ["", "-wal", "-shm"] {
                    let _ = fs::remove_file(format!("{}{suffix}", db.display()));
                }
                Ok(())
            },
            move |r| {
                let bytes = saved.lock().unwrap().clone();
                if !r.database().exists() {
                    let _ = fs::write(r.database(), bytes);
                }
            },
        )
    }));
    threads.push(std::thread::spawn(move || {
        // Every page after the first overwritten with garbage; repaired by
        // writing the saved bytes back into the same file.
        let saved = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = saved.clone();
        env_case(
            "env/db-corrupted",
            fault,
            Root::new(FAST),
            50,
            move |r| {
                checkpoint(r)?;
                let db = r.database();
                let bytes = fs::read(&db).map_err(|e| e.to_string())?;
                let mut bad = bytes.clone();
                for b in bad.iter_mut().skip(4096) {
                    *b = 0x55;
                }
                bad[..16].copy_from_slice(b"garbage garbage!");
                *keep.lock().unwrap() = bytes;
                fs::OpenOptions::new()
                    .write(true)
                    .open(&db)
                    .and_then(|mut f| f.write_all(&bad))
                    .map_err(|e| e.to_string())
            },
            move |r| {
                let bytes = saved.lock().unwrap().clone();
                let _ = fs::OpenOptions::new()
                    .write(true)
                    .open(r.database())
                    .and_then(|mut f| f.write_all(&bytes));
            },
        )
    }));
    threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Figures::new("env/(panicked)")))
        .collect()
}
