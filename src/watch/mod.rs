//! Seeing files in the inbox. Filesystem events (inotify through `notify`,
//! or polling for network filesystems) only wake the daemon up; what is in
//! the inbox is always decided by listing it ([`scan`]) and settling
//! ([`settle`]), so a missed or coalesced event, or a queue overflow, costs
//! nothing but the wait for the next rescan.
//!
//! Only events that can mean a new or changed file wake the daemon
//! (create, modify, close-after-write, moved in or out, delete, overflow):
//! listing the inbox and probing a file open them, and an open that woke
//! the next scan would keep an idle daemon listing its inbox for ever.
//! The names written or closed after writing come along, so their settle
//! clocks start again even when size and time look the same.

pub mod scan;
pub mod settle;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{
    Config as NotifyConfig, ErrorKind, EventKind, PollWatcher, RecommendedWatcher, RecursiveMode,
    Watcher,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// The inbox may have changed.
#[derive(Debug, Default)]
pub struct Wakeup {
    /// Names of files created, written or closed after writing.
    pub written: Vec<OsString>,
}

/// What an event means for the inbox: `None` when it cannot mean a new or
/// changed file (an open, a read, a close without writing).
fn wakeup(event: &notify::Result<notify::Event>) -> Option<Wakeup> {
    let event = match event {
        Ok(e) if e.need_rescan() => {
            tracing::warn!("inotify queue overflowed; rescanning the inbox");
            return Some(Wakeup::default());
        }
        Err(e) => {
            tracing::warn!(error = %e, "watch error; rescanning the inbox");
            return Some(Wakeup::default());
        }
        Ok(e) => e,
    };
    let names = || Wakeup {
        written: event
            .paths
            .iter()
            .filter_map(|p| p.file_name().map(OsString::from))
            .collect(),
    };
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(names()),
        EventKind::Access(_) => None,
        EventKind::Create(_) | EventKind::Modify(_) => Some(names()),
        EventKind::Remove(_) | EventKind::Any | EventKind::Other => Some(Wakeup::default()),
    }
}

/// A running watch on the inbox. Dropping it stops the watch.
pub struct InboxWatch {
    _watcher: Box<dyn Watcher + Send>,
    /// A message arrives whenever the inbox may have changed.
    pub wakeups: UnboundedReceiver<Wakeup>,
    /// True when polling instead of inotify.
    pub polling: bool,
}

/// Watches `inbox` (not its subfolders). Falls back to polling, with a
/// clear log line, when inotify cannot be used (watch limit reached).
pub fn start(inbox: &Path, poll: bool, poll_interval: Duration) -> notify::Result<InboxWatch> {
    let (tx, rx) = unbounded_channel();
    let handler = move |event: notify::Result<notify::Event>| {
        if let Some(wakeup) = wakeup(&event) {
            let _ = tx.send(wakeup);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, ModifyKind};

    fn event(kind: EventKind) -> notify::Result<notify::Event> {
        Ok(notify::Event::new(kind).add_path("/inbox/a.csv".into()))
    }

    #[test]
    fn opens_and_reads_do_not_wake_the_daemon() {
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Access(AccessKind::Read),
        ] {
            assert!(wakeup(&event(kind)).is_none(), "{kind:?}");
        }
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
        ] {
            let w = wakeup(&event(kind)).expect("wakes");
            assert_eq!(w.written, [OsString::from("a.csv")], "{kind:?}");
        }
        let overflow =
            Ok(notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan));
        assert!(wakeup(&overflow).is_some());
    }
}
