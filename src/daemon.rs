//! The daemon (`stockdrop run`): watch → settle → claim → the import
//! pipeline → archive, one file at a time, until the shutdown future
//! completes (SPEC §2, §7).
//!
//! Exactly once: a file is processed only after it has been claimed into
//! the work folder, and its import row (found again by its claimed path)
//! records how far it got. At start-up every claimed file is finished
//! first: a file without an import is processed from scratch (nothing of
//! it was committed), a planned one is finished from its stored plan, a
//! reported one is only moved. So a `kill -9` between any two steps loses
//! nothing and applies nothing twice.
//!
//! Only the very file that settled is read: the scan records each file's
//! device and inode, a file a writer still holds open is not ready (see
//! `open::writers`), and after the claim the file is opened without
//! following links and checked again; anything else found under its name
//! is reported once and moved to `failed/` unread (see [`Daemon::refuse`]).
//!
//! An operational failure before a file's plan is stored is retried
//! `import.max_attempts` times; once the plan is stored the file is
//! retried, backoff capped at a minute, until it is finished. A retrying
//! fault is published for `status`, `STATUS=`, the metrics and
//! `notify.command` (see [`Fault`]).
//!
//! Processing runs on the runtime's thread through `block_in_place`, so
//! `run` needs the multi-threaded tokio runtime; a SIGTERM that arrives
//! meanwhile is acted on once the file in hand is finished.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{info, info_span, warn};

use crate::config::{Config, Inbox};
use crate::dirs::DirError;
use crate::issue::{Code, Issue};
use crate::open::{Identity, LeaseSupport, Refusal, Trust, Writers};
use crate::pipeline::{self, ImportOptions, Outcome, PipelineError, Stamp};
use crate::report::index;
use crate::store::queries;
use crate::store::{Reader as _, Store, StoreError};
use crate::watch::scan::{Entry, Filter};
use crate::watch::settle::Settler;
use crate::{archive, claim, hook, metrics, names, retention, systemd, watch};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Dirs(#[from] DirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot watch the inbox {path}: {source}")]
    Watch {
        path: PathBuf,
        source: notify::Error,
    },
    #[error("cannot list {path}: {source}")]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("watch.ignore: {0}")]
    Ignore(#[from] globset::Error),
    #[error("cannot install a signal handler: {0}")]
    Signal(std::io::Error),
    #[error(
        "another `stockdrop run` is already running on this data (it holds {path}); stop it first"
    )]
    Running { path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The name of the lock file in the work folder.
pub const LOCK_FILE: &str = ".stockdrop.lock";

/// Where a running daemon publishes the fault it is retrying, in the work
/// folder (hidden, so never taken for a claimed file).
pub const FAULT_FILE: &str = ".stockdrop.fault";

/// An operational failure the daemon is retrying: what `status` shows as
/// its last error, and what the metrics and `notify.command` are told.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fault {
    /// The name the file was dropped as.
    pub file: String,
    /// Its import, once its plan is stored.
    pub import_id: Option<i64>,
    pub error: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the first of them failed (RFC 3339, UTC).
    pub since: String,
    /// Once the plan is stored the file is retried until it is finished.
    pub plan_stored: bool,
    /// The inbox the file came from (absent in a fault file written by an
    /// older stockdrop: the one inbox there was).
    #[serde(default = "default_inbox")]
    pub inbox: String,
}

fn default_inbox() -> String {
    crate::config::DEFAULT_INBOX.to_string()
}

/// Room kept in the work folder for the fault file. A disk that fills up
/// is itself a fault `status` must show, and the file that says so needs a
/// few blocks: this file holds them, is deleted when the fault file cannot
/// be written for want of space, and is made again once the fault clears.
pub const RESERVE_FILE: &str = ".stockdrop.reserve";
const RESERVE_BYTES: usize = 64 * 1024;

/// Makes the work folder's reserve if it is missing or short (a power
/// cut while it was written; best effort: a disk too full for it is
/// retried at the next cleared fault).
fn keep_reserve(work: &Path) {
    use std::io::Write as _;
    let path = work.join(RESERVE_FILE);
    match path.symlink_metadata() {
        Ok(m) if m.is_file() && m.len() >= RESERVE_BYTES as u64 => return,
        Ok(_) => {
            let _ = std::fs::remove_file(&path);
        }
        Err(_) => {}
    }
    let made = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| f.write_all(&[0; RESERVE_BYTES]));
    if made.is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

/// Publishes `fault` for `stockdrop status` in `work`'s fault file. It
/// means something only while the daemon runs, so it is never fsynced;
/// when the disk is full, the reserve is given up for it.
fn write_fault_file(work: &Path, fault: &Fault) {
    let Ok(json) = serde_json::to_vec_pretty(fault) else {
        return;
    };
    let path = work.join(FAULT_FILE);
    let write =
        || crate::durable::replace_with_bytes(&path, crate::durable::Durability::Volatile, &json);
    let full = |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
    let written = match write() {
        Err(e) if full(&e) && std::fs::remove_file(work.join(RESERVE_FILE)).is_ok() => {
            warn!("the disk is full: the work folder's reserve is given up so that `stockdrop status` shows the fault");
            write()
        }
        other => other,
    };
    if let Err(e) = written {
        tracing::debug!(error = %e, "cannot publish the fault for `stockdrop status`");
    }
}

/// The fault a running daemon published in `work`, if any.
pub fn read_fault(work: &Path) -> Option<Fault> {
    let text = std::fs::read(work.join(FAULT_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// What a database lock wait is published with (see [`crate::store::busy`]):
/// the wait happens deep inside a statement, on the thread processing a
/// file, so the daemon leaves here which file that is and the fault it had
/// published, and the listener publishes the wait in its place and puts the
/// old one back when the wait is over.
struct LockWatch {
    work: PathBuf,
    database: PathBuf,
    metrics: Option<PathBuf>,
    notify: Option<String>,
    /// The metrics' inbox labels (see `Daemon::write_metrics`).
    inboxes: Vec<String>,
    file: String,
    inbox: String,
    previous: Option<Fault>,
}

/// A read-only connection without the busy handler, for the metrics
/// written while the daemon's own connection waits (a WAL reader is not
/// blocked by another process's write lock; if it is, only the retry
/// gauges are written).
struct RawReader(rusqlite::Connection);

impl crate::store::Reader for RawReader {
    fn conn(&self) -> &rusqlite::Connection {
        &self.0
    }
}

fn publish_lock_wait(watch: &LockWatch, wait: &crate::store::busy::Wait) {
    use crate::store::busy::Wait;
    let fault = match wait {
        Wait::Began { message, since } => Some(Fault {
            file: watch.file.clone(),
            import_id: watch.previous.as_ref().and_then(|f| f.import_id),
            error: message.clone(),
            // The attempt that waits, not one that failed: `status` says
            // "attempt 1" for a first wait.
            attempts: watch.previous.as_ref().map_or(0, |f| f.attempts) + 1,
            since: since.clone(),
            plan_stored: watch.previous.as_ref().is_some_and(|f| f.plan_stored),
            inbox: watch.inbox.clone(),
        }),
        Wait::Ended => watch.previous.clone(),
    };
    match &fault {
        Some(fault) => write_fault_file(&watch.work, fault),
        None => {
            let _ = std::fs::remove_file(watch.work.join(FAULT_FILE));
        }
    }
    if let (Wait::Began { .. }, Some(fault)) = (wait, &fault) {
        if let Some(command) = &watch.notify {
            hook::fault(command, fault);
        }
        systemd::status(&format!("waiting: {}", fault.error));
    }
    if let Some(metrics_path) = &watch.metrics {
        let opened = rusqlite::Connection::open_with_flags(
            &watch.database,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        );
        if let Ok(conn) = opened {
            let inboxes: Vec<&str> = watch.inboxes.iter().map(String::as_str).collect();
            let _ = metrics::write(&RawReader(conn), metrics_path, fault.as_ref(), &inboxes);
        }
    }
}

/// Only one daemon may own a work folder: a second one would take the
/// first one's claimed files for its own leftovers. An `flock` on a file
/// in the work folder is released by the kernel when the process dies, so a
/// `kill -9` never leaves it stale. One-shot commands do not take it.
fn lock_work_folder(work: &Path) -> Result<std::fs::File, DaemonError> {
    let path = work.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| DaemonError::Lock {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => {
            // The holder's pid, for `stockdrop status` (which reads it rather
            // than probing the lock, so it can never stop a daemon starting).
            use std::io::Write as _;
            let mut holder = &file;
            let _ = file.set_len(0);
            let _ = write!(holder, "{}", std::process::id());
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(DaemonError::Running { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(DaemonError::Lock { path, source }),
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Process what is in the inbox once it has settled, then exit.
    pub once: bool,
    /// With `once`: how long past `settle_ms` to wait for files still
    /// being written before leaving them for the next run.
    pub once_wait: Duration,
    /// Reload the configuration from here on SIGHUP.
    pub reload_from: Option<Option<PathBuf>>,
}

/// Counts for systemd's status line.
#[derive(Debug, Default)]
struct Stats {
    day: Option<chrono::NaiveDate>,
    done_today: u64,
    /// `done_today` by inbox name (shown with several inboxes).
    by_inbox: std::collections::BTreeMap<String, u64>,
    last: Option<String>,
}

/// A claimed file whose processing failed for an operational reason,
/// waiting for its next attempt. Files behind it wait too.
struct Retry {
    path: PathBuf,
    identity: Option<Identity>,
    attempts: u32,
    at: Instant,
    /// Sticky: once seen stored, the plan stays stored.
    plan_stored: bool,
}

/// One inbox the daemon watches (SPEC §2.1). Its folder is fixed for the
/// run (a moved or new inbox path takes effect at the next start); its
/// rules are looked up in the current config for each file, so SIGHUP
/// changes them.
struct Watched {
    name: String,
    path: PathBuf,
    /// Whether claimed files carry the inbox's name (declared `[[inbox]]`).
    tagged: bool,
    settler: Settler,
    /// File names whose claim failed, so the failure is logged once, not
    /// at every scan.
    unclaimable: HashSet<OsString>,
    /// Names written since the last scan: their settle clocks restart.
    written: HashSet<OsString>,
}

struct Daemon {
    config: Config,
    store: Store,
    /// Device and inode of the database file the store has open.
    store_file: Option<(u64, u64)>,
    filter: Filter,
    inboxes: Vec<Watched>,
    /// Files found in the work folder at start-up, finished before any new one.
    backlog: VecDeque<PathBuf>,
    /// Ready files of every inbox (by index into `inboxes`), in the order
    /// they became ready: one queue, one file at a time.
    queue: VecDeque<(usize, Entry)>,
    retry: Option<Retry>,
    stats: Stats,
    /// Whether the kernel can tell that a writer holds a file open.
    leases: LeaseSupport,
    /// Probe errors already logged (once each, not once per scan).
    probe_errors: HashSet<i32>,
    /// The operational failure being retried, published while it lasts.
    fault: Option<Fault>,
    /// Shared with the database lock-wait listener.
    lock_watch: Arc<std::sync::Mutex<LockWatch>>,
    /// Outbox indexes owed a rewrite: paid once the queue is empty, or
    /// every `index::MAX_LAG` while a burst drains.
    owed: index::Owed,
    /// The metrics file is owed a rewrite, paid with the indexes: each
    /// rewrite is a new file, two fsyncs and the day's counts queried.
    metrics_owed: bool,
}

/// Runs the daemon until `shutdown` completes (or, with `once`, until the
/// inbox is done). Needs the multi-threaded tokio runtime.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    crate::dirs::prepare(&config.paths, &config.inboxes)?;
    let _lock = lock_work_folder(&config.paths.work)?;
    let store = Store::open(&config.paths.database)?;
    let filter = Filter::new(&config.ignore, config.done_marker.as_deref())?;
    let store_file = file_identity(&config.paths.database);
    let lock_watch = Arc::new(std::sync::Mutex::new(LockWatch {
        work: config.paths.work.clone(),
        database: config.paths.database.clone(),
        metrics: config.metrics_textfile.clone(),
        notify: config.notify_command.clone(),
        inboxes: if config.has_inbox_tables() {
            config
                .inbox_names()
                .into_iter()
                .map(str::to_string)
                .collect()
        } else {
            Vec::new()
        },
        file: String::new(),
        inbox: String::new(),
        previous: None,
    }));
    {
        let lock_watch = lock_watch.clone();
        crate::store::busy::set_listener(move |wait| {
            if let Ok(watch) = lock_watch.lock() {
                publish_lock_wait(&watch, wait);
            }
        });
    }
    let inboxes = config
        .inboxes
        .iter()
        .map(|inbox| Watched {
            name: inbox.name.clone(),
            path: inbox.path.clone(),
            tagged: inbox.declared,
            settler: Settler::default(),
            unclaimable: HashSet::new(),
            written: HashSet::new(),
        })
        .collect();
    let mut daemon = Daemon {
        config,
        store,
        store_file,
        filter,
        inboxes,
        backlog: VecDeque::new(),
        queue: VecDeque::new(),
        retry: None,
        stats: Stats::default(),
        leases: LeaseSupport::Unavailable(String::new()),
        probe_errors: HashSet::new(),
        fault: None,
        lock_watch,
        owed: index::Owed::default(),
        metrics_owed: false,
    };
    let _ = std::fs::remove_file(daemon.config.paths.work.join(FAULT_FILE));
    keep_reserve(&daemon.config.paths.work);

    let stop = Arc::new(AtomicBool::new(false));
    let woken = Arc::new(Notify::new());
    {
        let (stop, woken) = (stop.clone(), woken.clone());
        tokio::spawn(async move {
            shutdown.await;
            stop.store(true, Ordering::SeqCst);
            woken.notify_one();
        });
    }
    if let Some(period) = systemd::watchdog_interval() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                systemd::ping_watchdog();
            }
        });
    }
    let mut hangups = match &options.reload_from {
        Some(_) => Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(DaemonError::Signal)?,
        ),
        None => None,
    };

    // Files a previous run claimed come first (see `step`); then imports a
    // one-shot `import` left unfinished.
    if let Err(e) = claim::remove_orphan_sidecars(&daemon.config.paths.work) {
        warn!(error = %e, "cannot tidy the name records in the work folder");
    }
    daemon.backlog = claim::claimed_files(&daemon.config.paths.work)
        .map_err(|source| DaemonError::List {
            path: daemon.config.paths.work.clone(),
            source,
        })?
        .into();
    // Every outbox's index is rewritten at start: one owed when the last
    // run stopped (or was killed) is paid now.
    for inbox in &daemon.config.inboxes {
        daemon.owed.add(&inbox.outbox.display().to_string());
    }
    tokio::task::block_in_place(|| match pipeline::recover(&mut daemon.store) {
        Ok(results) => {
            for (import_id, result) in results {
                match result {
                    Ok(outcome) => pipeline::index_owed(&mut daemon.owed, [&outcome]),
                    Err(e) => {
                        warn!(import_id, error = %e, "cannot finish an interrupted import; will retry at the next start")
                    }
                }
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot look for interrupted imports; will retry at the next start")
        }
    });

    let poll_interval = daemon
        .config
        .settle
        .clamp(Duration::from_millis(500), Duration::from_secs(5));
    // One watch per inbox, their wakeups merged into one channel tagged
    // with the inbox's index.
    let (wake_tx, mut wakeups) = tokio::sync::mpsc::unbounded_channel();
    let mut watches = Vec::new();
    let mut polling = false;
    for (index, inbox) in daemon.inboxes.iter().enumerate() {
        let mut watch =
            watch::start(&inbox.path, daemon.config.poll, poll_interval).map_err(|source| {
                DaemonError::Watch {
                    path: inbox.path.clone(),
                    source,
                }
            })?;
        polling |= watch.polling;
        let (_, closed) = tokio::sync::mpsc::unbounded_channel();
        let mut rx = std::mem::replace(&mut watch.wakeups, closed);
        let tx = wake_tx.clone();
        tokio::spawn(async move {
            while let Some(wakeup) = rx.recv().await {
                if tx.send((index, wakeup)).is_err() {
                    break;
                }
            }
        });
        watches.push(watch);
    }
    drop(wake_tx);
    daemon.leases = LeaseSupport::probe(&daemon.config.paths.work);
    info!(
        settle_ms = daemon.config.settle.as_millis() as u64,
        close_after_write = if polling {
            "off (polling): no events tell when a writer closes"
        } else {
            "on (inotify)"
        },
        open_for_writing = %daemon.leases.describe(),
        "upload checks in force: a file is ready once unchanged for settle_ms{}",
        match (&daemon.leases, polling) {
            (LeaseSupport::Unavailable(_), true) => {
                "; settling is all there is here, so senders should upload under a temporary name and rename, or send a done marker"
            }
            _ => " and no process holds it open for writing",
        }
    );
    for inbox in &daemon.inboxes {
        info!(
            inbox = %inbox.name,
            path = %inbox.path.display(),
            polling,
            settle_ms = daemon.config.settle.as_millis() as u64,
            "watching the inbox"
        );
    }
    daemon.scan()?;
    systemd::ready(&daemon.status_line());
    let mut next_rescan = Instant::now() + daemon.config.rescan_interval;
    let mut next_prune = Instant::now();
    let run_started = Instant::now();

    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next_prune {
            tokio::task::block_in_place(|| daemon.prune());
            next_prune = Instant::now() + Duration::from_secs(24 * 3600);
        }
        if daemon.step() {
            daemon.pay_owed(false);
            systemd::status(&daemon.status_line());
            continue;
        }
        daemon.pay_owed(true);
        if options.once && daemon.idle() {
            break;
        }
        // `run --once` from cron must end: a file that keeps changing, or
        // that a writer holds open, is left where it is for the next run.
        let once_ends = run_started + options.once_wait + daemon.config.settle;
        if options.once && daemon.only_settling() && Instant::now() >= once_ends {
            daemon.leave_unsettled(options.once_wait + daemon.config.settle);
            break;
        }
        let mut deadline = next_rescan;
        if options.once {
            deadline = deadline.min(once_ends);
        }
        for inbox in &daemon.inboxes {
            if let Some(at) = inbox.settler.next_deadline(daemon.config.settle) {
                deadline = deadline.min(at);
            }
        }
        if let Some(retry) = &daemon.retry {
            deadline = deadline.min(retry.at);
        }
        tokio::select! {
            _ = woken.notified() => {}
            Some((index, wakeup)) = wakeups.recv() => {
                daemon.inboxes[index].written.extend(wakeup.written);
                while let Ok((index, wakeup)) = wakeups.try_recv() {
                    daemon.inboxes[index].written.extend(wakeup.written);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
            Some(()) = async {
                match hangups.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(path) = &options.reload_from {
                    daemon.reload(path.as_deref());
                }
            }
        }
        if Instant::now() >= next_rescan {
            next_rescan = Instant::now() + daemon.config.rescan_interval;
        }
        // An inbox that cannot be listed for a moment (a network filesystem
        // away) is tried again at the next rescan; the daemon keeps running.
        if let Err(e) = daemon.scan() {
            warn!(error = %e, "cannot list the inbox; trying again at the next rescan");
        }
    }
    daemon.pay_owed(true);
    drop(watches);
    systemd::stopping();
    tokio::task::block_in_place(|| hook::finish(hook::STOP_WAIT));
    info!("stopped");
    Ok(())
}

impl Daemon {
    /// Lists every inbox and queues what has settled. An inbox that cannot
    /// be listed does not hold up the others; its error is returned after
    /// they are scanned.
    fn scan(&mut self) -> Result<(), DaemonError> {
        let mut failed = None;
        for index in 0..self.inboxes.len() {
            if let Err(e) = self.scan_inbox(index) {
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn scan_inbox(&mut self, index: usize) -> Result<(), DaemonError> {
        let inbox = self.inboxes[index].path.clone();
        let entries = self
            .filter
            .scan(&inbox)
            .map_err(|source| DaemonError::List {
                path: inbox.clone(),
                source,
            })?;
        let now = Instant::now();
        let watched = &mut self.inboxes[index];
        if !watched.written.is_empty() {
            for entry in &entries {
                if entry
                    .path
                    .file_name()
                    .is_some_and(|n| watched.written.contains(n))
                {
                    watched.settler.restart(entry, now);
                }
            }
            watched.written.clear();
        }
        let ready = watched.settler.observe(entries, now, self.config.settle);
        for entry in ready {
            if self
                .queue
                .iter()
                .any(|(i, q)| *i == index && q.name == entry.name)
            {
                continue;
            }
            if self.held_open(&entry) {
                // Not ready however long it stalls: wait a whole settle
                // period after the writer is gone.
                self.inboxes[index].settler.restart(&entry, now);
                continue;
            }
            tracing::debug!(inbox = %self.inboxes[index].name, file = %names::display_os(&entry.name), "ready; queued");
            self.queue.push_back((index, entry));
        }
        Ok(())
    }

    /// Whether a settled file is still open for writing, or is no longer
    /// the file that settled (then it settles again as the new one).
    /// Where the kernel cannot tell, settling alone decides (said once).
    fn held_open(&mut self, entry: &Entry) -> bool {
        match crate::open::writers_of(&entry.path, Trust::Claimed(Some(entry.identity))) {
            Ok(Writers::None) => false,
            Ok(Writers::Open) => {
                tracing::debug!(file = %names::display_os(&entry.name), "still open for writing; not ready");
                true
            }
            Ok(Writers::Unknown(errno)) => {
                if self.probe_errors.insert(errno) {
                    warn!(
                        file = %names::display_os(&entry.name),
                        error = %std::io::Error::from_raw_os_error(errno),
                        "cannot ask the kernel whether a writer holds this file open (it needs \
                         the file's owner or CAP_LEASE, and a filesystem with leases); such \
                         files are ready on settling alone (said once)"
                    );
                }
                false
            }
            // Swapped since the scan: a link, a FIFO… stays in the inbox
            // and is skipped by the next scan; a new regular file settles
            // again. Several links: claimed, then refused with a report.
            Err(e) => !matches!(crate::open::refusal(&e), Some(Refusal::Links(_))),
        }
    }

    fn idle(&self) -> bool {
        self.only_settling() && self.inboxes.iter().all(|i| i.settler.waiting() == 0)
    }

    /// Nothing to do but wait for files to settle.
    fn only_settling(&self) -> bool {
        self.queue.is_empty() && self.backlog.is_empty() && self.retry.is_none()
    }

    /// `run --once` gives up on files still settling: each is named once,
    /// and stays in its inbox, untouched, for the next run.
    fn leave_unsettled(&self, waited: Duration) {
        for inbox in &self.inboxes {
            for name in inbox.settler.names() {
                warn!(
                    inbox = %inbox.name,
                    file = %crate::names::display_os(name),
                    "still being written after {} s; left in the inbox for the next run",
                    waited.as_secs()
                );
            }
        }
    }

    /// Does one piece of work — a due retry, a file claimed before the
    /// last stop, or the next ready file — and returns false when there was
    /// nothing to do now.
    fn step(&mut self) -> bool {
        if let Some(retry) = &self.retry {
            if Instant::now() < retry.at {
                return false;
            }
            let (path, identity) = (retry.path.clone(), retry.identity);
            tokio::task::block_in_place(|| self.process(&path, identity));
            return true;
        }
        if let Some(path) = self.backlog.pop_front() {
            let inbox = claim::inbox_of(&path);
            if self.inbox_of(&path).is_none() {
                // Its rules and outbox are unknown: reporting it anywhere
                // else could show one account's file to another.
                warn!(file = %claim::original_name(&path), inbox = %inbox, path = %path.display(),
                    "a file claimed before the last stop came from an inbox the config no longer has; it stays in the work folder until that [[inbox]] is back");
                return true;
            }
            info!(file = %claim::original_name(&path), inbox = %inbox, "finishing a file claimed before the last stop");
            // What the scan saw is gone with the last run; the work
            // folder is stockdrop's own, and the other checks still hold.
            tokio::task::block_in_place(|| self.process(&path, None));
            return true;
        }
        let Some((index, entry)) = self.queue.pop_front() else {
            return false;
        };
        tokio::task::block_in_place(|| {
            let work = self.config.paths.work.clone();
            let inbox = &mut self.inboxes[index];
            let shown = names::display_os(&entry.name);
            let tag = inbox.tagged.then_some(inbox.name.as_str());
            match claim::claim(&inbox.path, &work, &entry.name, tag) {
                Ok(Some(claimed)) => {
                    inbox.unclaimable.remove(&entry.name);
                    if let Some(marker) = self.filter.marker_for(&inbox.path, &entry.name) {
                        let _ = std::fs::remove_file(marker);
                    }
                    self.process(&claimed, Some(entry.identity));
                }
                Ok(None) => {
                    inbox.unclaimable.remove(&entry.name);
                    info!(file = %shown, "the file vanished before it was claimed")
                }
                Err(e) => {
                    if inbox.unclaimable.insert(entry.name.clone()) {
                        warn!(file = %shown, error = %e, "cannot claim the file; it stays in the inbox and is tried again as it settles (said once)")
                    } else {
                        tracing::debug!(file = %shown, error = %e, "still cannot claim the file")
                    }
                }
            }
        });
        true
    }

    /// Takes a claimed file as far as it can go: import (or finish its
    /// stored plan), reports, archive. An operational failure schedules a
    /// retry with backoff; before the plan is stored, after
    /// `import.max_attempts` the file fails; once it is stored, the file is
    /// retried until its plan is finished (SPEC §2).
    fn process(&mut self, claimed: &Path, identity: Option<Identity>) {
        let name = claim::original_name(claimed);
        let span = info_span!("file", file = %name, import_id = tracing::field::Empty);
        let _guard = span.enter();
        let (attempts, was_stored) = match &self.retry {
            Some(r) if r.path == claimed => (r.attempts, r.plan_stored),
            _ => (0, false),
        };
        if let Ok(mut watch) = self.lock_watch.lock() {
            watch.file = name.clone();
            watch.inbox = claim::inbox_of(claimed);
            watch.previous = self.fault.clone();
        }
        let result = self.try_process(claimed, identity, &name, &span);
        // A wait announced by a statement that never reached a write
        // transaction (a read, a failure) is over too.
        crate::store::busy::settled();
        match result {
            Ok(Some((import_id, status, outcomes))) => {
                self.retry = None;
                self.clear_fault();
                self.remove_stale_marker(claimed, &name);
                self.count(claimed, &name, &status);
                info!(import_id, status = %status, "done");
                self.after_file(claimed, &outcomes);
            }
            Ok(None) => {
                self.retry = None;
                self.clear_fault();
            }
            Err(e) => {
                let attempts = attempts + 1;
                let import_id = self.stored_import(claimed);
                let mut plan_stored = was_stored || import_id.is_some();
                let max_attempts = self
                    .inbox_of(claimed)
                    .map_or(self.config.rules.max_attempts, |i| i.rules.max_attempts);
                if !plan_stored && attempts >= max_attempts {
                    warn!(error = %e, attempts, path = %claimed.display(), "giving up on the file; it goes to failed/");
                    match self.give_up(claimed, &name, &e.to_string()) {
                        Ok(None) => plan_stored = true,
                        Ok(Some(outcome)) => {
                            self.retry = None;
                            self.clear_fault();
                            self.count(claimed, &name, "failed");
                            self.after_file(claimed, &[outcome]);
                            return;
                        }
                        Err(e) => {
                            warn!(error = %e, path = %claimed.display(), "cannot record the failure either; retrying")
                        }
                    }
                }
                let delay =
                    Duration::from_secs(1u64 << attempts.min(6)).min(Duration::from_secs(60));
                if plan_stored {
                    warn!(error = %e, attempts, retry_in_s = delay.as_secs(), path = %claimed.display(), "finishing the stored plan failed; the file stays claimed and is retried until the cause is gone");
                } else {
                    warn!(error = %e, attempts, retry_in_s = delay.as_secs(), path = %claimed.display(), "processing failed; the file stays claimed and is retried");
                }
                self.retry = Some(Retry {
                    path: claimed.to_path_buf(),
                    identity,
                    attempts,
                    at: Instant::now() + delay,
                    plan_stored,
                });
                self.publish_fault(Fault {
                    file: name.clone(),
                    import_id,
                    error: e.to_string(),
                    attempts,
                    since: String::new(),
                    plan_stored,
                    inbox: claim::inbox_of(claimed),
                });
            }
        }
    }

    /// The inbox a claimed file came from, with its current rules; `None`
    /// when the config no longer has it.
    fn inbox_of(&self, claimed: &Path) -> Option<Inbox> {
        self.config.inbox(&claim::inbox_of(claimed)).cloned()
    }

    /// The import of a claimed file (or of the first member of a claimed
    /// archive) whose plan is stored, if any. `None` also when the store
    /// cannot be read: then the stickiness in [`Retry`] remembers.
    fn stored_import(&self, claimed: &Path) -> Option<i64> {
        let source = claimed.display().to_string();
        self.store
            .read()
            .conn()
            .query_row(
                "SELECT id FROM imports WHERE source_path = ?1 \
                 OR substr(source_path, 1, length(?1) + 1) = ?1 || '#' ORDER BY id LIMIT 1",
                [&source],
                |row| row.get(0),
            )
            .ok()
    }

    /// Publishes a fault being retried: the work folder's fault file (for
    /// `status`), `STATUS=` (through the status line), the metrics file,
    /// and `notify.command` when the fault is new or its cause changed.
    fn publish_fault(&mut self, mut fault: Fault) {
        let previous = self.fault.take();
        let same_file = previous.as_ref().is_some_and(|p| p.file == fault.file);
        fault.since = match &previous {
            Some(p) if same_file => p.since.clone(),
            _ => crate::apply::now(),
        };
        let news = !same_file || previous.as_ref().is_some_and(|p| p.error != fault.error);
        write_fault_file(&self.config.paths.work, &fault);
        if news {
            if let Some(command) = &self.config.notify_command {
                hook::fault(command, &fault);
            }
        }
        self.fault = Some(fault);
        self.write_metrics();
        systemd::status(&self.status_line());
    }

    fn clear_fault(&mut self) {
        if self.fault.take().is_some() {
            let _ = std::fs::remove_file(self.config.paths.work.join(FAULT_FILE));
            keep_reserve(&self.config.paths.work);
            self.write_metrics();
        }
    }

    fn write_metrics(&self) {
        if let Some(path) = &self.config.metrics_textfile {
            // Labelled per inbox only with [[inbox]] tables (see `metrics`).
            let inboxes: Vec<&str> = if self.config.has_inbox_tables() {
                self.config.inbox_names()
            } else {
                Vec::new()
            };
            if let Err(e) = metrics::write(&self.store.read(), path, self.fault.as_ref(), &inboxes)
            {
                warn!(error = %e, "cannot write the metrics file");
            }
        }
    }

    /// `Ok(None)`: the file went back to the inbox (still being written).
    /// The store must still be the database file at `paths.database`. A
    /// removed file is a fault (writing on into the unlinked file would
    /// lose every import made meanwhile); a file put back or replaced is
    /// opened afresh, and so is the store after any failed attempt (a
    /// connection can keep failing after its file was repaired).
    fn check_store(&mut self) -> Result<(), PipelineError> {
        let path = self.config.paths.database.clone();
        let now = file_identity(&path);
        if now.is_none() {
            return Err(StoreError::Removed { path }.into());
        }
        if now != self.store_file || self.retry.is_some() {
            if now != self.store_file {
                warn!(path = %path.display(), "the database file was replaced while stockdrop runs; opening it again");
            }
            self.store = Store::open(&path)?;
            self.store_file = now;
        }
        Ok(())
    }

    fn try_process(
        &mut self,
        claimed: &Path,
        identity: Option<Identity>,
        name: &str,
        span: &tracing::Span,
    ) -> Result<Option<(i64, String, Vec<Outcome>)>, PipelineError> {
        self.check_store()?;
        let Some(inbox) = self.inbox_of(claimed) else {
            warn!(inbox = %claim::inbox_of(claimed), "the file came from an inbox the config no longer has; it stays in the work folder");
            return Ok(None);
        };
        let trust = Trust::Claimed(identity);
        let stamp = match Stamp::of(claimed, trust) {
            Ok(stamp) => stamp,
            Err(source) => {
                if let Some(refusal) = crate::open::refusal(&source) {
                    return self
                        .refuse(&inbox, claimed, name, refusal.clone(), span)
                        .map(Some);
                }
                return Err(PipelineError::Read {
                    path: claimed.to_path_buf(),
                    source,
                });
            }
        };
        let options = ImportOptions {
            name: Some(name.to_string()),
            unchanged: Some(stamp),
            resume: true,
            trust: Trust::Claimed(Some(stamp.identity)),
            progress: Some(pipeline::operator_progress(&self.config.paths.work, name)),
            ..ImportOptions::default()
        };
        let result = pipeline::import_path(&mut self.store, &inbox, claimed, &options);
        let _ = std::fs::remove_file(pipeline::progress_file(&self.config.paths.work));
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(PipelineError::Changed) => {
                warn!("the file changed after it was claimed; it goes back to settling");
                let released =
                    claim::release(claimed, &inbox.path).map_err(|source| PipelineError::Move {
                        path: claimed.to_path_buf(),
                        source,
                    })?;
                if released {
                    if let Some(watched) = self.inboxes.iter_mut().find(|w| w.name == inbox.name) {
                        watched.settler.forget(&names::raw_os(name));
                    }
                    return Ok(None);
                }
                return Err(PipelineError::Changed);
            }
            Err(e) => return Err(e),
        };
        // One outcome per file; one per member for a ZIP archive, which is
        // archived under its first member's import id and goes to failed/
        // only when nothing of it was applied.
        let import_id = outcomes
            .first()
            .and_then(|o| o.report.import_id)
            .unwrap_or_default();
        let status = if outcomes.len() == 1 {
            outcomes[0].report.status.clone()
        } else if outcomes.iter().any(|o| {
            matches!(
                o.report.status.as_str(),
                "applied" | "partial" | "duplicate"
            )
        }) {
            "applied".to_string()
        } else {
            "rejected".to_string()
        };
        span.record("import_id", import_id);
        self.archive(&inbox.name, claimed, name, import_id, &status)?;
        Ok(Some((import_id, status, outcomes)))
    }

    fn archive(
        &mut self,
        inbox: &str,
        claimed: &Path,
        name: &str,
        import_id: i64,
        status: &str,
    ) -> Result<(), PipelineError> {
        let root = archive::destination_root(&self.config, inbox, status);
        let today = chrono::Utc::now().date_naive();
        // Recorded first: after a crash before the move the claimed file is
        // still in `work`, is found again, and this runs once more.
        let target = archive::target(&root, import_id, name, today);
        let write = self.store.write()?;
        queries::set_archived(&write, import_id, &target.display().to_string())?;
        write.commit()?;
        archive::archive(claimed, &target).map_err(|source| PipelineError::Move {
            path: claimed.to_path_buf(),
            source,
        })?;
        crate::crashpoint::hit("after-archive");
        Ok(())
    }

    /// Something other than the file that settled was claimed under its
    /// name (a link, a FIFO, a device, a file with several names, another
    /// file): it is never read. One import records it, `rejected`, with a
    /// report saying what it was and what to do, and it moves to
    /// `failed/` by rename (which moves a link, never what it points to).
    /// Done again after a crash, the recorded import is finished instead.
    fn refuse(
        &mut self,
        inbox: &Inbox,
        claimed: &Path,
        name: &str,
        refusal: Refusal,
        span: &tracing::Span,
    ) -> Result<(i64, String, Vec<Outcome>), PipelineError> {
        warn!(what = %refusal.what(), "refusing what was claimed: it is not the file that finished uploading, and is not read");
        let source = claimed.display().to_string();
        let import_id = match queries::import_by_source(&self.store.read(), &source)? {
            Some((id, _)) => id,
            None => {
                let mut draft = crate::plan::Draft::default();
                draft.push_error(
                    Issue::new(Code::UnreadableFile, refusal.to_string()),
                    inbox.rules.max_errors,
                );
                let write = self.store.write()?;
                // Never read, so no checksum: it is no one's duplicate.
                let id = pipeline::record_unread(
                    &write,
                    inbox,
                    name,
                    &source,
                    "",
                    inbox.rules.job_type,
                    &draft,
                )?;
                write.commit()?;
                id
            }
        };
        span.record("import_id", import_id);
        let outcome = pipeline::finish(&mut self.store, import_id, None)?;
        let status = outcome.report.status.clone();
        self.archive(&inbox.name, claimed, name, import_id, &status)?;
        Ok((import_id, status, vec![outcome]))
    }

    /// Ends a claimed file whose plan was never stored as `failed`:
    /// report, then `failed/`. `Ok(None)` when its import turns out to be
    /// stored after all (the store could not be read at the failure): a
    /// stored plan is never given up, only finished.
    fn give_up(
        &mut self,
        claimed: &Path,
        name: &str,
        message: &str,
    ) -> Result<Option<Outcome>, PipelineError> {
        // The failure is recorded in the store at `paths.database` or not at
        // all: with the file removed, the connection still writes into the
        // unlinked one, and the file would go to failed/ with its record
        // lost once the database is put back (a removed store is never the
        // file's fault; it is retried until the store is back).
        self.check_store()?;
        if self.stored_import(claimed).is_some() {
            return Ok(None);
        }
        let Some(inbox) = self.inbox_of(claimed) else {
            return Ok(None);
        };
        let outcome = pipeline::fail(&mut self.store, &inbox, claimed, name, None, message)?;
        let import_id = outcome.report.import_id.unwrap_or_default();
        self.archive(&inbox.name, claimed, name, import_id, "failed")?;
        Ok(Some(outcome))
    }

    /// Rewrites the owed outbox indexes when they are due: before the
    /// daemon waits or stops (`force`), when no other file is ready, or
    /// once the oldest has been owed `index::MAX_LAG`.
    fn pay_owed(&mut self, force: bool) {
        let more_waiting = !force && (!self.queue.is_empty() || !self.backlog.is_empty());
        let due = self.owed.due(more_waiting) || (self.metrics_owed && !more_waiting);
        if due {
            tokio::task::block_in_place(|| {
                self.owed.pay(&self.store.read());
                if std::mem::take(&mut self.metrics_owed) {
                    self.write_metrics();
                }
            });
        }
    }

    /// After a file: its outbox's index and the metrics file are owed a
    /// rewrite, and the operator's `notify.command` runs for each report.
    /// None of them can hold up the queue.
    fn after_file(&mut self, claimed: &Path, outcomes: &[Outcome]) {
        pipeline::index_owed(&mut self.owed, outcomes);
        self.metrics_owed = true;
        if let Some(command) = &self.config.notify_command {
            for outcome in outcomes {
                hook::run(command, outcome, &claim::inbox_of(claimed));
            }
        }
    }

    /// Retention, once a day (and at start-up).
    fn prune(&mut self) {
        let today = chrono::Utc::now().date_naive();
        match retention::prune(&self.config, Some(&mut self.store), today, false) {
            Ok(p) if p.folders.is_empty() && p.reports.is_empty() && p.history_jobs == 0 => {}
            Ok(p) => info!(
                folders = p.folders.len(),
                reports = p.reports.len(),
                history_jobs = p.history_jobs,
                "pruned what is past retention"
            ),
            Err(e) => warn!(error = %e, "pruning failed; will try again tomorrow"),
        }
    }

    /// A file claimed before a crash may have left its done marker in the
    /// inbox; it goes once the file is finished, unless a new upload of
    /// the same name is waiting (then the marker may be the new one's).
    fn remove_stale_marker(&self, claimed: &Path, name: &str) {
        let from = claim::inbox_of(claimed);
        let Some(watched) = self.inboxes.iter().find(|w| w.name == from) else {
            return;
        };
        let inbox = &watched.path;
        let raw = names::raw_os(name);
        if let Some(marker) = self.filter.marker_for(inbox, &raw) {
            if !inbox.join(&raw).exists() && marker.exists() {
                let _ = std::fs::remove_file(marker);
            }
        }
    }

    fn count(&mut self, claimed: &Path, name: &str, status: &str) {
        let today = chrono::Utc::now().date_naive();
        if self.stats.day != Some(today) {
            self.stats.day = Some(today);
            self.stats.done_today = 0;
            self.stats.by_inbox.clear();
        }
        self.stats.done_today += 1;
        *self
            .stats
            .by_inbox
            .entry(claim::inbox_of(claimed))
            .or_default() += 1;
        self.stats.last = Some(format!("{status} {name}"));
    }

    fn status_line(&self) -> String {
        let waiting = self.queue.len()
            + self.backlog.len()
            + self
                .inboxes
                .iter()
                .map(|i| i.settler.waiting())
                .sum::<usize>()
            + usize::from(self.retry.is_some());
        // With several inboxes, each one's share: `3 files today (boston 2,
        // chicago 1), 1 waiting (boston 1)`.
        let (done_each, waiting_each) = if self.inboxes.len() > 1 {
            let done: Vec<String> = self
                .inboxes
                .iter()
                .map(|i| {
                    let n = self.stats.by_inbox.get(&i.name).copied().unwrap_or(0);
                    format!("{} {n}", i.name)
                })
                .collect();
            let waiting: Vec<String> = self
                .inboxes
                .iter()
                .enumerate()
                .map(|(index, i)| {
                    let queued = self.queue.iter().filter(|(q, _)| *q == index).count();
                    format!("{} {}", i.name, queued + i.settler.waiting())
                })
                .collect();
            (
                format!(" ({})", done.join(", ")),
                format!(" ({})", waiting.join(", ")),
            )
        } else {
            (String::new(), String::new())
        };
        format!(
            "{} today{done_each}, {} waiting{waiting_each}{}{}",
            crate::issue::count(self.stats.done_today, "file", "files"),
            waiting,
            self.stats
                .last
                .as_ref()
                .map_or(String::new(), |last| format!("; last: {last}")),
            self.fault.as_ref().map_or(String::new(), |f| format!(
                "; retrying {} (attempt {}): {}",
                f.file, f.attempts, f.error
            ))
        )
    }

    /// SIGHUP: load the config again; keep the old one if the new is bad.
    /// Directory changes take effect at the next start.
    fn reload(&mut self, path: Option<&Path>) {
        systemd::reloading();
        match Config::load(path, None) {
            Ok(new) => {
                match Filter::new(&new.ignore, new.done_marker.as_deref()) {
                    Ok(filter) => self.filter = filter,
                    Err(e) => {
                        warn!(error = %e, "watch.ignore in the new config is invalid; keeping the old patterns")
                    }
                }
                if new.paths.inbox != self.config.paths.inbox
                    || new.paths.database != self.config.paths.database
                {
                    warn!("paths changed in the config; they take effect at the next start");
                }
                let paths = self.config.paths.clone();
                let inboxes = self.reloaded_inboxes(&new);
                self.config = Config {
                    paths,
                    inboxes,
                    ..new
                };
                // The lock-wait listener reports through the same metrics
                // file and notify.command as the rest of the daemon.
                if let Ok(mut watch) = self.lock_watch.lock() {
                    watch.metrics = self.config.metrics_textfile.clone();
                    watch.notify = self.config.notify_command.clone();
                }
                info!(inboxes = %self.config.inbox_names().join(", "), "configuration reloaded");
            }
            Err(e) => warn!(error = %e, "the new configuration is invalid; keeping the old one"),
        }
        systemd::ready(&self.status_line());
    }
}

impl Daemon {
    /// The inboxes after a reload: each watched inbox keeps its folder and
    /// outbox for this run and takes its new rules (or keeps its old ones
    /// if the new config dropped it: its claimed files still need them);
    /// an inbox the new config adds, or whose folder or outbox moved, is
    /// logged as waiting for the next start (SPEC §2.1).
    fn reloaded_inboxes(&self, new: &Config) -> Vec<Inbox> {
        let mut inboxes = Vec::new();
        for watched in &self.inboxes {
            let old = self.config.inbox(&watched.name);
            match (new.inbox(&watched.name), old) {
                (Some(fresh), Some(old)) => {
                    if fresh.path != old.path || fresh.outbox != old.outbox {
                        warn!(inbox = %watched.name, "the inbox's path or outbox changed in the config; that takes effect at the next start (its new rules apply now)");
                    }
                    inboxes.push(Inbox {
                        path: old.path.clone(),
                        outbox: old.outbox.clone(),
                        declared: old.declared,
                        ..fresh.clone()
                    });
                }
                (None, Some(old)) => {
                    warn!(inbox = %watched.name, "the new config has no such inbox; it is watched, with its old rules, until the next start");
                    inboxes.push(old.clone());
                }
                (_, None) => {}
            }
        }
        for fresh in &new.inboxes {
            if !self.inboxes.iter().any(|w| w.name == fresh.name) {
                warn!(inbox = %fresh.name, path = %fresh.path.display(), "a new inbox in the config; it is watched from the next start");
            }
        }
        inboxes
    }
}

/// Device and inode of `path`, if it exists.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The work folder's reserve is made whole, and made again when a
    /// power cut left it short; a fault is written beside it.
    #[test]
    fn the_reserve_is_kept_whole_beside_the_fault_file() {
        let work = tempfile::tempdir().expect("work");
        let reserve = work.path().join(RESERVE_FILE);
        keep_reserve(work.path());
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
        assert_eq!(size(&reserve), Some(RESERVE_BYTES as u64));
        std::fs::write(&reserve, b"short").expect("shorten");
        keep_reserve(work.path());
        assert_eq!(size(&reserve), Some(RESERVE_BYTES as u64));
        let fault = Fault {
            file: "a.csv".into(),
            import_id: Some(3),
            error: "disk full".into(),
            attempts: 2,
            since: "2026-12-07T00:00:00Z".into(),
            plan_stored: true,
            inbox: "default".into(),
        };
        write_fault_file(work.path(), &fault);
        assert_eq!(read_fault(work.path()), Some(fault));
        assert_eq!(size(&reserve), Some(RESERVE_BYTES as u64));
    }
}
