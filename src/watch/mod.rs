//! Seeing files in the inbox. Filesystem events (inotify through `notify`,
//! or polling for network filesystems) only wake the daemon up; what is in
//! the inbox is always decided by listing it ([`scan`]) and settling
//! ([`settle`]), so a missed or coalesced event, or a queue overflow, costs
//! nothing but the wait for the next rescan.

pub mod scan;
pub mod settle;

use std::path::Path;
use std::time::Duration;

use notify::{
    Config as NotifyConfig, ErrorKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// A running watch on the inbox. Dropping it stops the watch.
pub struct InboxWatch {
    _watcher: Box<dyn Watcher + Send>,
    /// A message arrives whenever the inbox may have changed.
    pub wakeups: UnboundedReceiver<()>,
    /// True when polling instead of inotify.
    pub polling: bool,
}

/// Watches `inbox` (not its subfolders). Falls back to polling, with a
/// clear log line, when inotify cannot be used (watch limit reached).
pub fn start(inbox: &Path, poll: bool, poll_interval: Duration) -> notify::Result<InboxWatch> {
    let (tx, rx) = unbounded_channel();
    let handler = move |event: notify::Result<notify::Event>| {
        match &event {
            Ok(e) if e.need_rescan() => {
                tracing::warn!("inotify queue overflowed; rescanning the inbox")
            }
            Err(e) => tracing::warn!(error = %e, "watch error; rescanning the inbox"),
            Ok(_) => {}
        }
        let _ = tx.send(());
    };
    let poll_config = NotifyConfig::default().with_poll_interval(poll_interval);
    if !poll {
        let attempt =
            RecommendedWatcher::new(handler.clone(), NotifyConfig::default()).and_then(|mut w| {
                w.watch(inbox, RecursiveMode::NonRecursive)?;
                Ok(w)
            });
        match attempt {
            Ok(watcher) => {
                return Ok(InboxWatch {
                    _watcher: Box::new(watcher),
                    wakeups: rx,
                    polling: false,
                })
            }
            Err(e) if matches!(e.kind, ErrorKind::MaxFilesWatch) || is_limit(&e) => {
                tracing::warn!(
                    error = %e,
                    "the kernel's inotify watch limit is reached (raise fs.inotify.max_user_watches \
                     or max_user_instances); falling back to polling the inbox every {}s",
                    poll_interval.as_secs()
                );
            }
            Err(e) => return Err(e),
        }
    }
    let mut watcher = PollWatcher::new(handler, poll_config)?;
    watcher.watch(inbox, RecursiveMode::NonRecursive)?;
    Ok(InboxWatch {
        _watcher: Box::new(watcher),
        wakeups: rx,
        polling: true,
    })
}

/// inotify reports its limits as ENOSPC (watches) or EMFILE (instances).
fn is_limit(e: &notify::Error) -> bool {
    match &e.kind {
        ErrorKind::Io(io) => matches!(io.raw_os_error(), Some(28) | Some(24)),
        _ => false,
    }
}
