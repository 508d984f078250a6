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
//! Processing runs on the runtime's thread through `block_in_place`, so
//! `run` needs the multi-threaded tokio runtime; a SIGTERM that arrives
//! meanwhile is acted on once the file in hand is finished.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{info, info_span, warn};

use crate::config::Config;
use crate::dirs::DirError;
use crate::pipeline::{self, ImportOptions, Outcome, PipelineError, Stamp};
use crate::store::queries;
use crate::store::{Store, StoreError};
use crate::watch::scan::{Entry, Filter};
use crate::watch::settle::Settler;
use crate::{archive, claim, hook, metrics, retention, systemd, watch};

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
    /// Reload the configuration from here on SIGHUP.
    pub reload_from: Option<Option<PathBuf>>,
}

/// Counts for systemd's status line.
#[derive(Debug, Default)]
struct Stats {
    day: Option<chrono::NaiveDate>,
    done_today: u64,
    last: Option<String>,
}

/// A claimed file whose processing failed for an operational reason,
/// waiting for its next attempt. Files behind it wait too.
struct Retry {
    path: PathBuf,
    attempts: u32,
    at: Instant,
}

struct Daemon {
    config: Config,
    store: Store,
    filter: Filter,
    settler: Settler,
    /// Files found in the work folder at start-up, finished before any new one.
    backlog: VecDeque<PathBuf>,
    queue: VecDeque<Entry>,
    retry: Option<Retry>,
    stats: Stats,
}

/// Runs the daemon until `shutdown` completes (or, with `once`, until the
/// inbox is done). Needs the multi-threaded tokio runtime.
pub async fn run(
    config: Config,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    crate::dirs::prepare(&config.paths)?;
    let _lock = lock_work_folder(&config.paths.work)?;
    let store = Store::open(&config.paths.database)?;
    let filter = Filter::new(&config.ignore, config.done_marker.as_deref())?;
    let mut daemon = Daemon {
        config,
        store,
        filter,
        settler: Settler::default(),
        backlog: VecDeque::new(),
        queue: VecDeque::new(),
        retry: None,
        stats: Stats::default(),
    };

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
    daemon.backlog = claim::claimed_files(&daemon.config.paths.work)
        .map_err(|source| DaemonError::List {
            path: daemon.config.paths.work.clone(),
            source,
        })?
        .into();
    tokio::task::block_in_place(|| match pipeline::recover(&mut daemon.store) {
        Ok(results) => {
            for (import_id, result) in results {
                if let Err(e) = result {
                    warn!(import_id, error = %e, "cannot finish an interrupted import; will retry at the next start");
                }
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot look for interrupted imports; will retry at the next start")
        }
    });

    let inbox = daemon.config.paths.inbox.clone();
    let poll_interval = daemon
        .config
        .settle
        .clamp(Duration::from_millis(500), Duration::from_secs(5));
    let mut watch = watch::start(&inbox, daemon.config.poll, poll_interval).map_err(|source| {
        DaemonError::Watch {
            path: inbox.clone(),
            source,
        }
    })?;
    info!(
        inbox = %inbox.display(),
        polling = watch.polling,
        settle_ms = daemon.config.settle.as_millis() as u64,
        "watching the inbox"
    );
    daemon.scan()?;
    systemd::ready(&daemon.status_line());
    let mut next_rescan = Instant::now() + daemon.config.rescan_interval;
    let mut next_prune = Instant::now();

    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next_prune {
            tokio::task::block_in_place(|| daemon.prune());
            next_prune = Instant::now() + Duration::from_secs(24 * 3600);
        }
        if daemon.step() {
            systemd::status(&daemon.status_line());
            continue;
        }
        if options.once && daemon.idle() {
            break;
        }
        let mut deadline = next_rescan;
        if let Some(at) = daemon.settler.next_deadline(daemon.config.settle) {
            deadline = deadline.min(at);
        }
        if let Some(retry) = &daemon.retry {
            deadline = deadline.min(retry.at);
        }
        tokio::select! {
            _ = woken.notified() => {}
            Some(()) = watch.wakeups.recv() => {
                while watch.wakeups.try_recv().is_ok() {}
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
    systemd::stopping();
    info!("stopped");
    Ok(())
}

impl Daemon {
    /// Lists the inbox and queues what has settled.
    fn scan(&mut self) -> Result<(), DaemonError> {
        let inbox = &self.config.paths.inbox;
        let entries = self
            .filter
            .scan(inbox)
            .map_err(|source| DaemonError::List {
                path: inbox.clone(),
                source,
            })?;
        let ready = self
            .settler
            .observe(entries, Instant::now(), self.config.settle);
        for entry in ready {
            if !self.queue.iter().any(|q| q.name == entry.name) {
                self.queue.push_back(entry);
            }
        }
        Ok(())
    }

    fn idle(&self) -> bool {
        self.queue.is_empty()
            && self.backlog.is_empty()
            && self.retry.is_none()
            && self.settler.waiting() == 0
    }

    /// Does one piece of work — a due retry, a file claimed before the
    /// last stop, or the next ready file — and returns false when there was
    /// nothing to do now.
    fn step(&mut self) -> bool {
        if let Some(retry) = &self.retry {
            if Instant::now() < retry.at {
                return false;
            }
            let path = retry.path.clone();
            tokio::task::block_in_place(|| self.process(&path));
            return true;
        }
        if let Some(path) = self.backlog.pop_front() {
            info!(file = %claim::original_name(&path), "finishing a file claimed before the last stop");
            tokio::task::block_in_place(|| self.process(&path));
            return true;
        }
        let Some(entry) = self.queue.pop_front() else {
            return false;
        };
        tokio::task::block_in_place(|| {
            let paths = &self.config.paths;
            match claim::claim(&paths.inbox, &paths.work, &entry.name) {
                Ok(Some(claimed)) => {
                    if let Some(marker) = self.filter.marker_for(&paths.inbox, &entry.name) {
                        let _ = std::fs::remove_file(marker);
                    }
                    self.process(&claimed);
                }
                Ok(None) => info!(file = %entry.name, "the file vanished before it was claimed"),
                Err(e) => {
                    warn!(file = %entry.name, error = %e, "cannot claim the file; it stays in the inbox")
                }
            }
        });
        true
    }

    /// Takes a claimed file as far as it can go: import (or finish its
    /// stored plan), reports, archive. An operational failure schedules a
    /// retry with backoff; after `import.max_attempts` the file fails.
    fn process(&mut self, claimed: &Path) {
        let name = claim::original_name(claimed);
        let span = info_span!("file", file = %name, import_id = tracing::field::Empty);
        let _guard = span.enter();
        let attempts = match &self.retry {
            Some(r) if r.path == claimed => r.attempts,
            _ => 0,
        };
        match self.try_process(claimed, &name, &span) {
            Ok(Some((import_id, status, outcomes))) => {
                self.retry = None;
                self.remove_stale_marker(&name);
                self.count(&name, &status);
                info!(import_id, status = %status, "done");
                self.after_file(&outcomes);
            }
            Ok(None) => self.retry = None,
            Err(e) => {
                let attempts = attempts + 1;
                if attempts >= self.config.rules.max_attempts {
                    warn!(error = %e, attempts, path = %claimed.display(), "giving up on the file; it goes to failed/");
                    match self.give_up(claimed, &name, &e.to_string()) {
                        Ok(outcome) => {
                            self.retry = None;
                            self.count(&name, "failed");
                            self.after_file(&[outcome]);
                            return;
                        }
                        Err(e) => {
                            warn!(error = %e, path = %claimed.display(), "cannot record the failure either; retrying")
                        }
                    }
                }
                let delay =
                    Duration::from_secs(1u64 << attempts.min(6)).min(Duration::from_secs(60));
                warn!(error = %e, attempts, retry_in_s = delay.as_secs(), path = %claimed.display(), "processing failed; the file stays claimed and is retried");
                self.retry = Some(Retry {
                    path: claimed.to_path_buf(),
                    attempts,
                    at: Instant::now() + delay,
                });
            }
        }
    }

    /// `Ok(None)`: the file went back to the inbox (still being written).
    fn try_process(
        &mut self,
        claimed: &Path,
        name: &str,
        span: &tracing::Span,
    ) -> Result<Option<(i64, String, Vec<Outcome>)>, PipelineError> {
        let stamp = Stamp::of(claimed).map_err(|source| PipelineError::Read {
            path: claimed.to_path_buf(),
            source,
        })?;
        let options = ImportOptions {
            name: Some(name.to_string()),
            unchanged: Some(stamp),
            resume: true,
            progress: Some(pipeline::operator_progress(&self.config.paths.work, name)),
            ..ImportOptions::default()
        };
        let result = pipeline::import_path(&mut self.store, &self.config, claimed, &options);
        let _ = std::fs::remove_file(pipeline::progress_file(&self.config.paths.work));
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(PipelineError::Changed) => {
                warn!("the file changed after it was claimed; it goes back to settling");
                let released =
                    claim::release(claimed, &self.config.paths.inbox).map_err(|source| {
                        PipelineError::Move {
                            path: claimed.to_path_buf(),
                            source,
                        }
                    })?;
                if released {
                    self.settler.forget(name);
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
        self.archive(claimed, name, import_id, &status)?;
        Ok(Some((import_id, status, outcomes)))
    }

    fn archive(
        &mut self,
        claimed: &Path,
        name: &str,
        import_id: i64,
        status: &str,
    ) -> Result<(), PipelineError> {
        let root = archive::destination_root(&self.config.paths, status);
        let today = chrono::Utc::now().date_naive();
        // Recorded first: after a crash before the move the claimed file is
        // still in `work`, is found again, and this runs once more.
        let target = archive::target(root, import_id, name, today);
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

    /// Ends a claimed file as `failed`: report, then `failed/`.
    fn give_up(
        &mut self,
        claimed: &Path,
        name: &str,
        message: &str,
    ) -> Result<Outcome, PipelineError> {
        let source = claimed.display().to_string();
        let existing = queries::import_by_source(&self.store.read(), &source)?.map(|(id, _)| id);
        let outcome = pipeline::fail(
            &mut self.store,
            &self.config,
            claimed,
            name,
            existing,
            message,
        )?;
        let import_id = outcome.report.import_id.unwrap_or_default();
        self.archive(claimed, name, import_id, "failed")?;
        Ok(outcome)
    }

    /// After a file: the operator's `notify.command` for each report, and
    /// the metrics file. Neither can hold up the queue.
    fn after_file(&self, outcomes: &[Outcome]) {
        if let Some(command) = &self.config.notify_command {
            for outcome in outcomes {
                hook::run(command, outcome);
            }
        }
        if let Some(path) = &self.config.metrics_textfile {
            if let Err(e) = metrics::write(&self.store.read(), path) {
                warn!(error = %e, "cannot write the metrics file");
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
    fn remove_stale_marker(&self, name: &str) {
        let inbox = &self.config.paths.inbox;
        if let Some(marker) = self.filter.marker_for(inbox, name) {
            if !inbox.join(name).exists() && marker.exists() {
                let _ = std::fs::remove_file(marker);
            }
        }
    }

    fn count(&mut self, name: &str, status: &str) {
        let today = chrono::Utc::now().date_naive();
        if self.stats.day != Some(today) {
            self.stats.day = Some(today);
            self.stats.done_today = 0;
        }
        self.stats.done_today += 1;
        self.stats.last = Some(format!("{status} {name}"));
    }

    fn status_line(&self) -> String {
        let waiting = self.queue.len()
            + self.backlog.len()
            + self.settler.waiting()
            + usize::from(self.retry.is_some());
        format!(
            "{} files today, {} waiting{}",
            self.stats.done_today,
            waiting,
            self.stats
                .last
                .as_ref()
                .map_or(String::new(), |last| format!("; last: {last}"))
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
                self.config = Config { paths, ..new };
                info!("configuration reloaded");
            }
            Err(e) => warn!(error = %e, "the new configuration is invalid; keeping the old one"),
        }
        systemd::ready(&self.status_line());
    }
}
