//! A second connection that reads the store at the very snapshot of a
//! first one, so that a helper thread can read records for a plan while
//! the planning thread goes on reading identifiers — and both see one
//! store, as if one connection read it all (SPEC §2: a plan is made from
//! one consistent view).
//!
//! SQLite's snapshot interface (`sqlite3_snapshot_get`/`_open`, compiled in
//! with `SQLITE_ENABLE_SNAPSHOT`, `.cargo/config.toml`) gives exactly that
//! in WAL mode: the twin opens its read transaction on the first
//! connection's snapshot, which the first one's open read transaction keeps
//! from being checkpointed away. Where that cannot be had (a store in
//! memory, a store not in WAL mode, a connection in a write transaction)
//! there is no twin, and the caller reads on its own connection.

use std::ffi::CStr;
use std::path::Path;

use rusqlite::{ffi, Connection, OpenFlags};

use super::Reader;

const MAIN: &CStr = c"main";

/// A connection whose read transaction is `r`'s snapshot, or `None`. `r`
/// must be in a read transaction (a [`super::Snapshot`]) and must keep it
/// open while the twin reads.
pub fn at_same_snapshot(r: &impl Reader) -> Option<Connection> {
    let conn = r.conn();
    if conn.is_autocommit() {
        return None;
    }
    let path = conn.path().filter(|p| !p.is_empty())?.to_string();
    // The read transaction starts at the first read: make it so the
    // snapshot exists.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .ok()?;
    let snapshot = Snapshot::of(conn)?;
    let twin = Connection::open_with_flags(
        Path::new(&path),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    super::busy::install(&twin).ok()?;
    // A connection learns that the file is in WAL mode (and opens the
    // WAL, which the snapshot lives in) at its first read.
    twin.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .ok()?;
    twin.execute_batch("BEGIN DEFERRED").ok()?;
    // SAFETY: both handles are open connections owned by this thread for
    // the call; the snapshot is live (freed by its Drop after this).
    let opened = unsafe { ffi::sqlite3_snapshot_open(twin.handle(), MAIN.as_ptr(), snapshot.0) };
    if opened != ffi::SQLITE_OK {
        tracing::debug!(
            code = opened,
            "no twin reader: the snapshot could not be opened"
        );
        return None;
    }
    Some(twin)
}

/// An `sqlite3_snapshot`, freed when dropped.
struct Snapshot(*mut ffi::sqlite3_snapshot);

impl Snapshot {
    fn of(conn: &Connection) -> Option<Snapshot> {
        let mut snapshot: *mut ffi::sqlite3_snapshot = std::ptr::null_mut();
        // SAFETY: `conn` is an open connection; SQLite writes the pointer.
        let got = unsafe { ffi::sqlite3_snapshot_get(conn.handle(), MAIN.as_ptr(), &mut snapshot) };
        if got != ffi::SQLITE_OK || snapshot.is_null() {
            tracing::debug!(code = got, "no twin reader: no snapshot to share");
            return None;
        }
        Some(Snapshot(snapshot))
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // SAFETY: obtained from sqlite3_snapshot_get, freed once.
        unsafe { ffi::sqlite3_snapshot_free(self.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{snapshot, Store};

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn the_twin_reads_what_the_first_connection_reads_whatever_commits_since() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = Store::open(&path).unwrap();
        store
            .conn
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let writer = Connection::open(&path).unwrap();

        let read = store.read();
        let held = snapshot(&read).unwrap();
        assert_eq!(count(read.conn()), 1);
        // Committed after the first connection's read began: neither sees
        // it, though the twin opens after it.
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        let twin = at_same_snapshot(&read).expect("a twin in WAL mode");
        assert_eq!(count(&twin), 1);
        assert_eq!(count(read.conn()), 1);
        writer.execute("INSERT INTO t VALUES (3)", []).unwrap();
        assert_eq!(count(&twin), 1);
        drop(twin);
        drop(held);
        assert_eq!(count(read.conn()), 3);
        // Outside a read transaction there is nothing to share.
        assert!(at_same_snapshot(&read).is_none());
    }

    #[test]
    fn a_store_opened_afresh_has_a_twin() {
        // Closing the last connection removes the WAL; the next opening
        // starts a new one, where no snapshot can be shared until a
        // transaction is written (`Store::prime_wal`).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        let read = store.read();
        let _held = snapshot(&read).unwrap();
        assert!(at_same_snapshot(&read).is_some());
    }

    #[test]
    fn a_store_in_memory_has_no_twin() {
        let store = Store::in_memory().unwrap();
        let read = store.read();
        let _held = snapshot(&read).unwrap();
        assert!(at_same_snapshot(&read).is_none());
    }
}
