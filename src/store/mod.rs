//! The SQLite store: imports, jobs (with their plans), inventory and history.
//!
//! Reads go through [`Read`], writes through [`Write`], a `BEGIN IMMEDIATE`
//! transaction; both implement [`Reader`], so a query is written once and a
//! read-only command cannot write. rusqlite's errors stop at this module's
//! boundary as [`StoreError`].

pub mod busy;
pub mod checkpointer;
pub mod history;
pub mod queries;
pub mod records;
mod schema;
pub mod stage;
pub mod twin;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database {path} has schema version {found}, newer than this stockdrop ({known}); upgrade stockdrop")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error("writing output: {0}")]
    Output(std::io::Error),
    /// The database file is gone from its path while the daemon holds it
    /// open: writes would go to a file nobody can see again.
    #[error("database {path} was removed while stockdrop runs; put it back (from a backup) and the file in hand is retried")]
    Removed { path: PathBuf },
    #[error("database holds an unreadable {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
}

/// SQLite's default: checkpoint once the WAL holds 1,000 pages.
const DEFAULT_AUTO_CHECKPOINT: i64 = 1000;

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
}

/// A read view of the store.
pub struct Read<'a> {
    conn: &'a Connection,
}

/// A write transaction. Dropped without [`Write::commit`], it rolls back.
pub struct Write<'a> {
    tx: Transaction<'a>,
}

/// Queries shared by reads and writes.
pub trait Reader {
    fn conn(&self) -> &Connection;
}

/// A connection of its own (a test's, or a tool's reading a store file).
impl Reader for Connection {
    fn conn(&self) -> &Connection {
        self
    }
}

impl Reader for Read<'_> {
    fn conn(&self) -> &Connection {
        self.conn
    }
}

impl Reader for Write<'_> {
    fn conn(&self) -> &Connection {
        &self.tx
    }
}

/// A read transaction held while it lives, when `r` is not in one already
/// (a [`Write`] is). Resolving a file makes several lookups per row; as
/// separate statements each took and dropped SQLite's read lock (`fcntl`
/// calls) and re-validated the page cache. One snapshot also gives the
/// whole plan one consistent view of the store.
pub struct Snapshot<'a> {
    conn: Option<&'a Connection>,
}

pub fn snapshot(r: &impl Reader) -> Result<Snapshot<'_>> {
    let conn = r.conn();
    if !conn.is_autocommit() {
        return Ok(Snapshot { conn: None });
    }
    conn.execute_batch("BEGIN DEFERRED")?;
    Ok(Snapshot { conn: Some(conn) })
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn {
            // Nothing was written: ending it cannot lose anything.
            let _ = conn.execute_batch("COMMIT");
        }
    }
}

impl Write<'_> {
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        Ok(())
    }

    /// Commits without SQLite's automatic checkpoint after the commit,
    /// which would copy the whole transaction into the database file on
    /// this thread: for a large plan, applied next with the checkpoint on
    /// the other core ([`checkpointer`]). The checkpoint stays off for the
    /// connection until [`Store::set_auto_checkpoint`] turns it back on.
    pub fn commit_leaving_checkpoint(self) -> Result<()> {
        self.tx.pragma_update(None, "wal_autocheckpoint", 0)?;
        self.tx.commit()?;
        Ok(())
    }
}

impl Store {
    /// Opens (creating if needed) the store and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let store = Store::configure(conn, path)?;
        store.migrate(path)?;
        store.prime_wal()?;
        Ok(store)
    }

    /// Writes one frame to the WAL: SQLite shares a read snapshot between
    /// connections (`twin`) only once the WAL holds a transaction, and a
    /// WAL is new (empty) whenever the store is opened with no other
    /// connection open. Rewriting `user_version` as it is changes nothing
    /// else. Only speed depends on it, so it does not wait for a lock
    /// someone else holds, and a failure is no error: planning then reads
    /// on one connection.
    fn prime_wal(&self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        self.conn.busy_handler(None)?;
        if let Err(e) = self.conn.pragma_update(None, "user_version", version) {
            tracing::debug!(error = %e, "the WAL was not primed");
        }
        busy::install(&self.conn)?;
        Ok(())
    }

    /// An empty store in memory: what `validate` resolves against when no
    /// database exists yet, so nothing is created on disk.
    pub fn in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        let store = Store { conn };
        store.migrate(Path::new(":memory:"))?;
        Ok(store)
    }

    /// Opens an existing store for reading; `None` when there is none yet,
    /// so read-only commands never create one.
    pub fn open_existing(path: &Path) -> Result<Option<Store>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        busy::install(&conn)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > schema::MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known: schema::MIGRATIONS.len(),
            });
        }
        if version < schema::MIGRATIONS.len() as i64 {
            // An older or empty file: open it writable once to migrate.
            drop(conn);
            return Store::open(path).map(Some);
        }
        Ok(Some(Store { conn }))
    }

    fn configure(conn: Connection, path: &Path) -> Result<Store> {
        let fail = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        busy::install(&conn).map_err(fail)?;
        // Room for every statement one file's way through the pipeline
        // prepares (some 40): with rusqlite's 16, the cache evicted and
        // SQLite parsed them again for each file, 12% of the daemon's
        // time while it drained small files.
        conn.set_prepared_statement_cache_capacity(128);
        // WAL with synchronous=FULL: a committed job survives a power cut.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(fail)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(fail)?;
        Ok(Store { conn })
    }

    fn migrate(&self, path: &Path) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > schema::MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known: schema::MIGRATIONS.len(),
            });
        }
        for (index, sql) in schema::MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            // Each migration and its version bump commit together.
            let tx = self.conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index as i64 + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The store's file; `None` for a store in memory.
    pub fn path(&self) -> Option<PathBuf> {
        self.conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    }

    pub fn read(&self) -> Read<'_> {
        Read { conn: &self.conn }
    }

    /// Sets the connection's page cache, in KiB (SQLite's default is
    /// 2,000).
    pub fn set_cache_kib(&self, kib: i64) -> Result<()> {
        self.conn.pragma_update(None, "cache_size", -kib)?;
        Ok(())
    }

    /// Turns SQLite's automatic checkpoint after each commit on or off.
    pub fn set_auto_checkpoint(&self, on: bool) -> Result<()> {
        let pages = if on { DEFAULT_AUTO_CHECKPOINT } else { 0 };
        self.conn.pragma_update(None, "wal_autocheckpoint", pages)?;
        Ok(())
    }

    /// Starts a write transaction, taking SQLite's write lock at once so two
    /// writers queue instead of failing half way.
    pub fn write(&mut self) -> Result<Write<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate);
        // The lock is ours (or the wait gave up): a wait announced is over.
        busy::settled();
        Ok(Write { tx: tx? })
    }
}
