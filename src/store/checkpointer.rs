//! Checkpointing the WAL on the other core while a file is applied.
//!
//! SQLite's automatic checkpoint runs on the committing thread, right after
//! the commit: each location's transaction waited while its pages were
//! copied from the WAL into the database file and that file was synced
//! (over a quarter of the writes of a fresh import). While a file is applied, the
//! writing connection's automatic checkpoint is off and this thread, on a
//! connection of its own, checkpoints instead (`PASSIVE`: it never blocks
//! the writer nor waits for readers). What it has not copied when the apply
//! ends stays in the WAL, which is as durable as the database file; the
//! next commit's automatic checkpoint, back on, takes it from there.
//!
//! A checkpoint copies only committed transactions, and the writer begins
//! its next one at once, so the WAL is never wholly copied when a
//! transaction begins — which is when SQLite starts the WAL over from its
//! beginning. Left so, it grew by every location (1.5 GB for a 5M-row
//! file, each new page of it zeroed by the filesystem as it was written).
//! So once it is past [`WAL_BOUND`], the writer waits between two
//! locations for the thread to copy the rest, and the next transaction
//! writes the WAL from its start again. How long the WAL is comes from the
//! thread's own checkpoints (SQLite reports the frames the WAL holds), not
//! from the file's size: a file once grown (by a large plan) keeps its
//! size when the WAL starts over.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

/// How often the WAL is checkpointed while a file is applied.
const EVERY: Duration = Duration::from_millis(50);

/// The WAL's size past which the writer waits, between two locations, for
/// it to be copied whole (a few location transactions of a large file).
const WAL_BOUND: u64 = 128 * 1024 * 1024;

enum Ask {
    /// Checkpoint now and say when done.
    Now,
    Stop,
}

/// A running checkpoint thread; stopped (and joined) when dropped.
pub struct Background {
    /// The frames the WAL held at the thread's latest checkpoint.
    wal_frames: Arc<AtomicU64>,
    frame_bytes: u64,
    wal_bound: u64,
    ask: SyncSender<Ask>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts checkpointing the store at `path`; `None` (and the caller
    /// keeps SQLite's own checkpoints) when no connection can be opened.
    pub fn start(path: &Path) -> Option<Background> {
        Background::bounded(path, WAL_BOUND)
    }

    fn bounded(path: &Path, wal_bound: u64) -> Option<Background> {
        let conn = Connection::open(path).ok()?;
        // Only its own checkpoints: never waits for a lock.
        conn.busy_handler(None).ok()?;
        let page: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).ok()?;
        let (ask, asked) = mpsc::sync_channel::<Ask>(1);
        let (tell, done) = mpsc::sync_channel::<()>(1);
        let wal_frames = Arc::new(AtomicU64::new(0));
        let frames = Arc::clone(&wal_frames);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || loop {
                let now = match asked.recv_timeout(EVERY) {
                    Err(RecvTimeoutError::Timeout) => false,
                    Ok(Ask::Now) => true,
                    Ok(Ask::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                };
                // (busy, frames in the WAL, frames copied)
                match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(log) => frames.store(u64::try_from(log).unwrap_or(0), Ordering::Relaxed),
                    Err(e) => tracing::debug!(error = %e, "background checkpoint"),
                }
                if now && tell.send(()).is_err() {
                    return;
                }
            })
            .ok()?;
        Some(Background {
            wal_frames,
            // A frame is a page and its 24-byte header.
            frame_bytes: page + 24,
            wal_bound,
            ask,
            done,
            thread: Some(thread),
        })
    }

    /// Called between two transactions: once the WAL is past its bound,
    /// waits for the thread to copy what it holds, so that the next
    /// transaction starts the WAL over.
    pub fn keep_wal_bounded(&self) {
        // As of the thread's latest checkpoint, at most 50 ms ago.
        let size = self.wal_frames.load(Ordering::Relaxed) * self.frame_bytes;
        if size < self.wal_bound {
            return;
        }
        if self.ask.send(Ask::Now).is_ok() {
            // The thread answers each `Now` (or is gone, and so is this).
            let _ = self.done.recv();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.ask.send(Ask::Stop);
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

    #[test]
    fn a_wait_past_the_bound_starts_the_wal_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let mut store = Store::open(&path).unwrap();
        store.set_auto_checkpoint(false).unwrap();
        store
            .conn
            .execute_batch("CREATE TABLE filler (x BLOB)")
            .unwrap();
        // Bound 0: the writer waits after every transaction.
        let background = Background::bounded(&path, 0).expect("a checkpoint thread");
        let wal = dir.path().join("store.db-wal");
        let (mut largest_file, mut most_frames) = (0, 0);
        for _ in 0..30 {
            let write = store.write().unwrap();
            write
                .tx
                .execute_batch(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
                     INSERT INTO filler SELECT randomblob(1000) FROM n;",
                )
                .unwrap();
            write.commit().unwrap();
            largest_file = largest_file.max(std::fs::metadata(&wal).unwrap().len());
            background.keep_wal_bounded();
            most_frames = most_frames.max(background.wal_frames.load(Ordering::Relaxed));
        }
        drop(background);
        // 30 transactions of about 0.6 MB (some 150 pages) each: the WAL
        // holds one at a time, and the thread counts one's frames.
        assert!(
            largest_file < 1_500_000,
            "the WAL grew to {largest_file} bytes"
        );
        assert!((100..400).contains(&most_frames), "{most_frames} frames");
        let rows: i64 = store
            .conn
            .query_row("SELECT count(*) FROM filler", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 15_000);
    }
}
