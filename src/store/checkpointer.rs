//! Checkpointing the WAL on the other core while a file is applied.
//!
//! SQLite's automatic checkpoint runs on the committing thread, right after
//! the commit: each location's transaction waited while its pages were
//! copied from the WAL into the database file and that file was synced
//! (a third of the writes of a fresh import). While a file is applied, the
//! writing connection's automatic checkpoint is off and this thread, on a
//! connection of its own, checkpoints instead (`PASSIVE`: it never blocks
//! the writer nor waits for readers). What it has not copied when the apply
//! ends stays in the WAL, which is as durable as the database file; the
//! next commit's automatic checkpoint, back on, takes it from there.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is checkpointed while a file is applied: often enough
/// that the WAL stays a few location transactions long.
const EVERY: Duration = Duration::from_millis(50);

/// A running checkpoint thread; stopped (and joined) when dropped.
pub struct Background {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts checkpointing the store at `path`; `None` (and the caller
    /// keeps SQLite's own checkpoints) when no connection can be opened.
    pub fn start(path: &Path) -> Option<Background> {
        let conn = Connection::open(path).ok()?;
        // Only its own checkpoints: never waits for a lock.
        conn.busy_handler(None).ok()?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || loop {
                match stopped.recv_timeout(EVERY) {
                    Err(RecvTimeoutError::Timeout) => {
                        if let Err(e) =
                            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        {
                            tracing::debug!(error = %e, "background checkpoint");
                        }
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .ok()?;
        Some(Background {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn the_thread_copies_committed_pages_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let mut store = Store::open(&path).unwrap();
        store.set_auto_checkpoint(false).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let background = Background::start(&path).expect("a checkpoint thread");
        let write = store.write().unwrap();
        write
            .tx
            .execute_batch(
                "CREATE TABLE filler (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO filler SELECT randomblob(1000) FROM n;",
            )
            .unwrap();
        write.commit().unwrap();
        // Only a checkpoint writes the database file itself (SQLite's own
        // is off): it grows once the thread has copied the WAL into it.
        let grown = (0..400).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            std::fs::metadata(&path).unwrap().len() > before + 1_000_000
        });
        drop(background);
        assert!(grown, "the database file was not written");
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2000);
    }
}
