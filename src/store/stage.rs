//! The staging area of one file: its validated rows, the jobs planned from
//! them and the rows left out, in a private temporary SQLite database on
//! disk (SQLite deletes it when it is closed). A file's rows flow from
//! validation into it instead of into memory; resolving reads them back one
//! location at a time, and the plan is copied from it into the store.
//!
//! It is scratch space, not the record: nothing here needs to survive a
//! crash (journal off, no syncs), because nothing is applied before the
//! plan is committed to the store.

use rusqlite::{params, Connection};

use super::Result;
use crate::issue::Issue;
use crate::plan::LeftOutRow;
use crate::validate::{CheckedRow, RowSink};

pub struct Stage {
    conn: Scratch,
    rows: u64,
    /// Rows with validation errors.
    errored: u64,
    /// Rows with validation errors or warnings (their seqs are in
    /// `flagged`).
    flagged: u64,
    /// (rows, bytes staged) per location index.
    per_location: Vec<(u64, u64)>,
    /// The first write that failed; reported by [`Stage::finish_rows`].
    failed: Option<rusqlite::Error>,
    jobs: u64,
}

/// One location's staged rows, as resolving needs them.
#[derive(Default)]
pub struct LocationRows {
    /// The rows that carry an identifier or are valid, in file order,
    /// and their seqs.
    pub seqs: Vec<u64>,
    pub rows: Vec<CheckedRow>,
    /// (seq, row number) of the first row left out above: it has errors
    /// and no identifier.
    pub first_idless_error: Option<(u64, u64)>,
}

/// What resolving found about a row: (errors, warnings).
pub type Findings = (Vec<Issue>, Vec<Issue>);

/// A job as staged: location index, manufacturer, item count, records it
/// zeroes, and its plan (postcard).
pub struct StagedJob {
    pub location: u32,
    pub manufacturer_id: Option<u32>,
    pub item_count: u64,
    pub zero_count: u64,
    pub plan: Vec<u8>,
}

/// A staged row: what the stage holds most.
fn decode(bytes: &[u8]) -> Result<CheckedRow> {
    decode_as("staged row", bytes)
}

fn decode_as<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| super::StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

/// The connection of a stage: taken back, emptied, for the next file's
/// stage when it stayed small ([`Stage`]'s `Drop`).
struct Scratch(Option<Connection>);

impl std::ops::Deref for Scratch {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // Taken only by `Stage::drop`, after the last use.
        self.0
            .as_ref()
            .expect("a stage's connection is there until it is dropped")
    }
}

/// The last small stage's connection, emptied, its schema made: opening a
/// stage and creating its tables was 8% of the daemon's time while it
/// drained small files, one after another.
static SPARE: std::sync::Mutex<Option<Connection>> = std::sync::Mutex::new(None);

/// A stage whose temporary database grew past this many pages (of 4 KiB;
/// its page cache holds 2,048) is closed, so its file goes, rather than
/// kept as the spare.
const SPARE_MAX_PAGES: i64 = 2048;

/// What a stage leaves behind, emptied so a spare starts as a new one did:
/// every table's rows and the index made while resolving.
const EMPTY: &str = "DROP INDEX IF EXISTS rows_seq; DELETE FROM rows; DELETE FROM flagged; \
     DELETE FROM found; DELETE FROM keys; DELETE FROM pairs; DELETE FROM skip; \
     DELETE FROM verdicts; DELETE FROM listed; DELETE FROM left_out; DELETE FROM jobs;";

impl Drop for Stage {
    fn drop(&mut self) {
        let Some(conn) = self.conn.0.take() else {
            return;
        };
        if self.failed.is_some() {
            return;
        }
        if let Some(conn) = emptied(conn) {
            if let Ok(mut spare) = SPARE.lock() {
                *spare = Some(conn);
            }
        }
    }
}

/// A stage's connection emptied to be the spare, or `None` (then closed)
/// when it grew large or cannot be emptied.
fn emptied(conn: Connection) -> Option<Connection> {
    let small = conn
        .query_row("PRAGMA page_count", [], |row| row.get::<_, i64>(0))
        .is_ok_and(|pages| pages <= SPARE_MAX_PAGES);
    (small && conn.execute_batch(EMPTY).is_ok()).then_some(conn)
}

impl Stage {
    pub fn new() -> Result<Stage> {
        let spare = SPARE.lock().ok().and_then(|mut spare| spare.take());
        match spare {
            Some(conn) => Stage::with(conn),
            None => Stage::with(Stage::open()?),
        }
    }

    fn with(conn: Connection) -> Result<Stage> {
        // A statement that failed may have ended the transaction the
        // stage runs in.
        if conn.is_autocommit() {
            conn.execute_batch("BEGIN;")?;
        }
        Ok(Stage {
            conn: Scratch(Some(conn)),
            rows: 0,
            errored: 0,
            flagged: 0,
            per_location: Vec::new(),
            failed: None,
            jobs: 0,
        })
    }

    /// A new stage's connection, its schema made, in a transaction.
    fn open() -> Result<Connection> {
        // "": a private, temporary database on disk; its page cache is the
        // only part in memory.
        let conn = Connection::open("")?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA cache_size = -8192;
             -- Clustered by location (-1: none), so resolving reads one
             -- location's rows from adjacent pages even when the file
             -- interleaves its locations.
             CREATE TABLE rows (location INTEGER NOT NULL, seq INTEGER NOT NULL,
                                data BLOB NOT NULL, PRIMARY KEY (location, seq)) WITHOUT ROWID;
             -- Rows with validation errors or warnings: what the report's
             -- draft must visit even when resolving found nothing.
             CREATE TABLE flagged (seq INTEGER PRIMARY KEY, location INTEGER NOT NULL);
             -- What resolving found about rows (errors and warnings,
             -- postcard), for the draft: never held for the whole file.
             CREATE TABLE found (seq INTEGER PRIMARY KEY, location INTEGER NOT NULL,
                                 data BLOB NOT NULL);
             -- Per location being resolved (a large one): each identifier
             -- of each row that can be a duplicate (valid, no error found),
             -- and the record it names; rows that share one are
             -- duplicates (`duplicate_pairs`).
             CREATE TABLE keys (k BLOB NOT NULL, seq INTEGER NOT NULL);
             -- Rows that share a key, each with the latest earlier one.
             CREATE TABLE pairs (prev INTEGER NOT NULL, seq INTEGER NOT NULL);
             -- Per location being resolved (a large one): rows that make
             -- no item (an error found, or superseded by a later row).
             CREATE TABLE skip (seq INTEGER PRIMARY KEY);
             -- Per location being resolved: the record each row names and
             -- whether it is unchanged; the records the rows list (full mode).
             CREATE TABLE verdicts (seq INTEGER PRIMARY KEY, record INTEGER NOT NULL,
                                    unchanged INTEGER NOT NULL);
             CREATE TABLE listed (id INTEGER PRIMARY KEY);
             CREATE TABLE left_out (seq INTEGER PRIMARY KEY, tbl INTEGER NOT NULL,
                                    number INTEGER NOT NULL, location TEXT, error TEXT NOT NULL);
             CREATE TABLE jobs (seq INTEGER PRIMARY KEY, location INTEGER NOT NULL,
                                manufacturer_id INTEGER, item_count INTEGER NOT NULL,
                                zero_count INTEGER NOT NULL, plan BLOB NOT NULL);
             BEGIN;",
        )?;
        Ok(conn)
    }

    /// Ends the rows' bulk insert; reports a write that failed on the way.
    pub fn finish_rows(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e.into());
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether any row has a validation error.
    pub fn any_row_error(&self) -> bool {
        self.errored > 0
    }

    /// The rows of one location, in file order.
    pub fn location_rows(&self, location: u32) -> Result<LocationRows> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, data FROM rows WHERE location = ?1 ORDER BY seq")?;
        // Sized up front: a location's rows are held at once (some 300
        // bytes each), and growing the vector copied them, into fresh
        // pages, as many times as it doubled.
        let count = usize::try_from(self.rows_at(location).0).unwrap_or(0);
        let mut out = LocationRows {
            seqs: Vec::with_capacity(count),
            rows: Vec::with_capacity(count),
            first_idless_error: None,
        };
        let mut rows = stmt.query([location])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            let row = decode(data)?;
            // A row with errors and no identifier can match, list, conflict
            // with or duplicate nothing: resolving needs only that it exists.
            // Not holding such rows keeps a file of millions of empty items
            // (`{"items":[{},{},…]}`) from costing memory per row.
            if !row.errors.is_empty() && row.ids().is_empty() {
                if out.first_idless_error.is_none() {
                    out.first_idless_error = Some((seq as u64, row.number));
                }
                continue;
            }
            out.seqs.push(seq as u64);
            out.rows.push(row);
        }
        Ok(out)
    }

    /// How many rows a location has, and how many bytes they take staged
    /// (encoded; decoded, they take up to ten times that).
    pub fn rows_at(&self, location: u32) -> (u64, u64) {
        self.per_location
            .get(location as usize)
            .copied()
            .unwrap_or((0, 0))
    }

    /// Stages the keys ([`row_keys`], [`record_key`]) of rows of the
    /// location being resolved that can be duplicates, each with its row's
    /// seq.
    pub fn push_keys(&self, keys: &[(Vec<u8>, u64)]) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO keys (k, seq) VALUES (?1, ?2)")?;
        for (k, seq) in keys {
            stmt.execute(params![k, *seq as i64])?;
        }
        Ok(())
    }

    /// Up to `limit` rows of one location after `after` (`None`: from its
    /// first), in file order.
    pub fn location_window(
        &self,
        location: u32,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, CheckedRow)>> {
        self.window(
            "SELECT seq, data FROM rows WHERE location = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            location,
            after,
            limit,
            |seq, row, _| Ok((seq, row)),
        )
    }

    /// Runs a window query (`?1` location, `?2` after, `?3` limit; seq and
    /// data first) and makes each row with `f`.
    fn window<T>(
        &self,
        sql: &str,
        location: u32,
        after: Option<u64>,
        limit: usize,
        mut f: impl FnMut(u64, CheckedRow, &rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let after = after.map_or(-1, |s| s as i64);
        let mut rows = stmt.query(params![location, after, limit as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            out.push(f(seq as u64, decode(data)?, row)?);
        }
        Ok(out)
    }

    /// Forgets the verdicts, listed records, keys and skipped rows of the
    /// location resolved before.
    pub fn start_location(&self) -> Result<()> {
        self.conn.execute_batch(
            "DELETE FROM verdicts; DELETE FROM listed; DELETE FROM keys; DELETE FROM skip; \
             DELETE FROM pairs;",
        )?;
        Ok(())
    }

    /// Stages verdicts (seq, record, unchanged): row `seq` names `record`,
    /// which it would leave `unchanged` or not.
    pub fn push_verdicts(&self, verdicts: &[(u64, i64, bool)]) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO verdicts (seq, record, unchanged) VALUES (?1, ?2, ?3)")?;
        for &(seq, record, unchanged) in verdicts {
            stmt.execute(params![seq as i64, record, unchanged])?;
        }
        Ok(())
    }

    /// Marks rows of the location being resolved as making no item.
    pub fn push_skip(&self, seqs: impl IntoIterator<Item = u64>) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO skip (seq) VALUES (?1)")?;
        for seq in seqs {
            stmt.execute([seq as i64])?;
        }
        Ok(())
    }

    /// The duplicates among the keyed rows of the location being resolved,
    /// as (row, partner, partner is earlier), one line per row, in file
    /// order. Two rows are a pair when one is the latest row before the
    /// other to claim one of its keys, as scanning the rows in file order
    /// with a map of each key's latest owner would find (`find_duplicates`
    /// in `resolve`). `last_wins`: each superseded row with the first
    /// later row that claims one of its keys. Otherwise every row of a
    /// pair: a row with an earlier partner is given the first of those;
    /// one with only later partners, the first of those. Sorted by SQLite
    /// (spilling to disk), so a file that repeats one product a million
    /// times takes no more memory than one that does not.
    pub fn duplicate_pairs(
        &self,
        last_wins: bool,
        mut f: impl FnMut(u64, u64, bool) -> Result<()>,
    ) -> Result<()> {
        // The pairs: consecutive rows of each key, from one sorted read
        // (a key of one row, as nearly every key is, makes none).
        self.conn.execute_batch("DELETE FROM pairs;")?;
        {
            let mut read = self
                .conn
                .prepare_cached("SELECT k, seq FROM keys ORDER BY k, seq")?;
            let mut insert = self
                .conn
                .prepare_cached("INSERT INTO pairs (prev, seq) VALUES (?1, ?2)")?;
            let mut rows = read.query([])?;
            let (mut key, mut last): (Vec<u8>, Option<i64>) = (Vec::new(), None);
            while let Some(row) = rows.next()? {
                let k = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                let seq: i64 = row.get(1)?;
                match last {
                    Some(prev) if key == k => {
                        insert.execute(params![prev, seq])?;
                    }
                    _ => {
                        key.clear();
                        key.extend_from_slice(k);
                    }
                }
                last = Some(seq);
            }
        }
        let sql = if last_wins {
            "SELECT prev, min(seq), 0 FROM pairs GROUP BY prev ORDER BY prev"
        } else {
            "WITH later AS (SELECT seq AS row, min(prev) AS partner FROM pairs GROUP BY seq) \
             SELECT row, partner, 1 FROM later \
             UNION ALL \
             SELECT prev, min(seq), 0 FROM pairs WHERE prev NOT IN (SELECT row FROM later) \
             GROUP BY prev \
             ORDER BY 1"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (seq, partner, earlier): (i64, i64, bool) = (row.get(0)?, row.get(1)?, row.get(2)?);
            f(seq as u64, partner as u64, earlier)?;
        }
        Ok(())
    }

    /// Stages records a row lists (full mode), once each.
    pub fn push_listed(&self, ids: impl IntoIterator<Item = i64>) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO listed (id) VALUES (?1)")?;
        for id in ids {
            stmt.execute([id])?;
        }
        Ok(())
    }

    pub fn is_listed(&self, id: i64) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM listed WHERE id = ?1)")?;
        Ok(stmt.query_row([id], |row| row.get(0))?)
    }

    /// The rows of a location after `after`, up to `limit`, each with its
    /// verdict, leaving out those marked to skip: what building the jobs
    /// reads, in file order.
    #[allow(clippy::type_complexity)]
    pub fn location_window_to_plan(
        &self,
        location: u32,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, CheckedRow, Option<(i64, bool)>)>> {
        self.window(
            "SELECT r.seq, r.data, v.record, v.unchanged FROM rows r \
             LEFT JOIN verdicts v ON v.seq = r.seq \
             WHERE r.location = ?1 AND r.seq > ?2 \
             AND NOT EXISTS (SELECT 1 FROM skip s WHERE s.seq = r.seq) \
             ORDER BY r.seq LIMIT ?3",
            location,
            after,
            limit,
            |seq, data, row| {
                let verdict = match row.get::<_, Option<i64>>(2)? {
                    Some(record) => Some((record, row.get::<_, bool>(3)?)),
                    None => None,
                };
                Ok((seq, data, verdict))
            },
        )
    }

    /// How many rows have validation errors or warnings.
    pub fn flagged(&self) -> u64 {
        self.flagged
    }

    /// Calls `f` with each row that has validation errors or warnings or
    /// something resolving found, in file order, and what was found.
    pub fn for_each_flagged_or_found(
        &self,
        mut f: impl FnMut(u64, CheckedRow, Findings) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, location FROM flagged UNION SELECT seq, location FROM found ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let (seq, location): (i64, i64) = (row.get(0)?, row.get(1)?);
            let seq = seq as u64;
            if let Some(checked) = self.row_at(location, seq)? {
                f(seq, checked, self.found_at(seq)?)?;
            }
        }
        Ok(())
    }

    /// Stages what resolving found about rows of a location. A row's
    /// findings are staged once: in a large location, what matching finds
    /// is errors, and a row with errors is never paired as a duplicate.
    pub fn push_found(
        &self,
        location: u32,
        found: impl IntoIterator<Item = (u64, Findings)>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO found (seq, location, data) VALUES (?1, ?2, ?3)")?;
        for (seq, (errors, warnings)) in found {
            if errors.is_empty() && warnings.is_empty() {
                continue;
            }
            // Serialising plain data into a Vec cannot fail.
            let data = postcard::to_stdvec(&(&errors, &warnings)).unwrap_or_default();
            stmt.execute(params![seq as i64, location, data])?;
        }
        Ok(())
    }

    /// What resolving found about row `seq`: (errors, warnings).
    pub fn found_at(&self, seq: u64) -> Result<Findings> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM found WHERE seq = ?1")?;
        let mut rows = stmt.query([seq as i64])?;
        match rows.next()? {
            Some(row) => {
                let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                decode_as("staged finding", data)
            }
            None => Ok(Findings::default()),
        }
    }

    /// How many rows resolving found something about.
    pub fn found(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM found", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// The row staged as `seq` at `location` (-1: none).
    pub fn row_at(&self, location: i64, seq: u64) -> Result<Option<CheckedRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM rows WHERE location = ?1 AND seq = ?2")?;
        let mut rows = stmt.query(params![location, seq as i64])?;
        match rows.next()? {
            Some(row) => {
                let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                Ok(Some(decode(data)?))
            }
            None => Ok(None),
        }
    }

    /// Calls `f` with every row, in file order, and what was found.
    pub fn for_each_row(
        &self,
        mut f: impl FnMut(u64, CheckedRow, Findings) -> Result<()>,
    ) -> Result<()> {
        // Built only here (a file rejected, or mostly flagged): the rows
        // are clustered by location, and a clean file never needs them in
        // file order as a whole.
        self.conn
            .execute_batch("CREATE INDEX IF NOT EXISTS rows_seq ON rows(seq);")?;
        let mut stmt = self
            .conn
            .prepare("SELECT seq, data FROM rows ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let seq = row.get::<_, i64>(0)? as u64;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            f(seq, decode(data)?, self.found_at(seq)?)?;
        }
        Ok(())
    }

    pub fn push_job(&mut self, job: &StagedJob) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO jobs (seq, location, manufacturer_id, item_count, zero_count, plan) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.execute(params![
            self.jobs as i64,
            job.location,
            job.manufacturer_id,
            job.item_count as i64,
            job.zero_count as i64,
            job.plan
        ])?;
        self.jobs += 1;
        Ok(())
    }

    pub fn jobs(&self) -> u64 {
        self.jobs
    }

    /// Calls `f` with every staged job, in plan order.
    pub fn for_each_job(&self, mut f: impl FnMut(StagedJob) -> Result<()>) -> Result<()> {
        let mut stmt = self.conn.prepare(
            "SELECT location, manufacturer_id, item_count, zero_count, plan FROM jobs ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            f(StagedJob {
                location: row.get(0)?,
                manufacturer_id: row.get(1)?,
                item_count: row.get::<_, i64>(2)? as u64,
                zero_count: row.get::<_, i64>(3)? as u64,
                plan: row.get(4)?,
            })?;
        }
        Ok(())
    }

    pub fn push_left_out(&self, seq: u64, row: &LeftOutRow) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO left_out (seq, tbl, number, location, error) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        stmt.execute(params![
            seq as i64,
            row.table,
            row.number as i64,
            row.location,
            row.error
        ])?;
        Ok(())
    }

    /// Up to `limit` rows left out after `seq` (`None`: from the start), in
    /// file order, with their seq.
    pub fn left_out_after(&self, seq: Option<u64>, limit: usize) -> Result<Vec<(u64, LeftOutRow)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, tbl, number, location, error FROM left_out WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let after = seq.map_or(-1, |s| s as i64);
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    LeftOutRow {
                        table: r.get(1)?,
                        number: r.get::<_, i64>(2)? as u64,
                        location: r.get(3)?,
                        error: r.get(4)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

/// A row as the stage keeps it: encoded (by [`StagedRow::encode`], on
/// whichever thread checked it) with what the stage indexes it by.
pub struct StagedRow {
    pub location: Option<u32>,
    pub errored: bool,
    /// Errors or warnings.
    pub flagged: bool,
}

/// The keys of each identifier of a valid row (a byte for its kind, 0–2:
/// sku, partNumber, UPC as [`crate::model::upc_key`], then its value): rows
/// that share a key name the same product.
pub fn row_keys(row: &CheckedRow) -> [Option<Vec<u8>>; 3] {
    let mut keys = [None, None, None];
    if row.is_valid() {
        let ids = row.ids();
        let values = [
            ids.sku.as_deref(),
            ids.part_number.as_deref(),
            ids.upc.as_deref().map(crate::model::upc_key),
        ];
        for (kind, value) in values.into_iter().enumerate() {
            keys[kind] = value.map(|v| key(kind as u8, v.as_bytes()));
        }
    }
    keys
}

/// The key of the record a row names (kind 3): rows naming one record are
/// duplicates, whatever identifiers they name it by.
pub fn record_key(record: i64) -> Vec<u8> {
    key(3, &record.to_be_bytes())
}

fn key(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 1);
    key.push(kind);
    key.extend_from_slice(value);
    key
}

impl StagedRow {
    /// Appends `row`'s encoding to `out` and says how to stage it.
    pub fn encode(row: &CheckedRow, out: &mut Vec<u8>) -> StagedRow {
        // Serialising plain data into a Vec cannot fail.
        let _ = postcard::to_io(row, &mut *out);
        StagedRow {
            location: row.location,
            errored: !row.errors.is_empty(),
            flagged: !row.errors.is_empty() || !row.warnings.is_empty(),
        }
    }
}

impl Stage {
    /// Stages a batch of rows encoded by [`StagedRow::encode`] one after
    /// another into `data`, each with the offset its encoding ends at. One
    /// prepared statement for the batch: a statement-cache lookup per row
    /// was 2% of the reading.
    pub fn push_batch(&mut self, data: &[u8], rows: &[(StagedRow, usize)]) {
        if self.failed.is_some() {
            return;
        }
        if let Err(e) = self.insert_batch(data, rows) {
            self.failed = Some(e);
        }
    }

    fn insert_batch(&mut self, data: &[u8], rows: &[(StagedRow, usize)]) -> rusqlite::Result<()> {
        let mut insert = self
            .conn
            .prepare_cached("INSERT INTO rows (seq, location, data) VALUES (?1, ?2, ?3)")?;
        let mut flag = self
            .conn
            .prepare_cached("INSERT INTO flagged (seq, location) VALUES (?1, ?2)")?;
        let mut start = 0;
        for (row, end) in rows {
            let encoded = data.get(start..*end).unwrap_or_default();
            start = *end;
            if row.errored {
                self.errored += 1;
            }
            if row.flagged {
                flag.execute(params![
                    self.rows as i64,
                    row.location.map_or(-1, i64::from)
                ])?;
                self.flagged += 1;
            }
            if let Some(location) = row.location {
                let location = location as usize;
                if self.per_location.len() <= location {
                    self.per_location.resize(location + 1, (0, 0));
                }
                let (rows, bytes) = &mut self.per_location[location];
                *rows += 1;
                *bytes += encoded.len() as u64;
            }
            insert.execute(params![
                self.rows as i64,
                row.location.map_or(-1, i64::from),
                encoded
            ])?;
            self.rows += 1;
        }
        Ok(())
    }
}

impl RowSink for Stage {
    fn push(&mut self, row: CheckedRow) {
        let mut data = Vec::new();
        let staged = StagedRow::encode(&row, &mut data);
        let end = data.len();
        self.push_batch(&data, &[(staged, end)]);
    }

    fn clear(&mut self) {
        if let Err(e) = self
            .conn
            .execute_batch("DELETE FROM rows; DELETE FROM flagged;")
        {
            self.failed.get_or_insert(e);
        }
        self.rows = 0;
        self.errored = 0;
        self.flagged = 0;
        self.per_location.clear();
    }

    fn len(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each table of the stage's schema, and the index made while
    /// resolving, with how many rows it holds.
    fn contents(conn: &Connection) -> Vec<(String, i64)> {
        let names: Vec<(String, String)> = conn
            .prepare("SELECT type, name FROM sqlite_master ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .expect("list the schema");
        names
            .into_iter()
            .map(|(kind, name)| {
                let n = if kind == "table" {
                    conn.query_row(&format!("SELECT count(*) FROM \"{name}\""), [], |r| {
                        r.get(0)
                    })
                    .expect("count")
                } else {
                    -1
                };
                (name, n)
            })
            .collect()
    }

    #[test]
    fn a_spare_stage_starts_as_empty_as_a_new_one() {
        let fresh = contents(&Stage::open().expect("open a stage"));
        let mut used = Stage::with(Stage::open().expect("open a stage")).expect("a stage");
        // Every table written, and the index resolving makes.
        let conn = &*used.conn;
        for table in [
            "rows", "flagged", "found", "keys", "pairs", "skip", "verdicts", "listed", "left_out",
            "jobs",
        ] {
            let columns: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM pragma_table_info('{table}')"),
                    [],
                    |r| r.get(0),
                )
                .expect("columns");
            let values = vec!["1"; columns as usize].join(", ");
            conn.execute(&format!("INSERT INTO {table} VALUES ({values})"), [])
                .expect("insert a row");
        }
        conn.execute_batch("CREATE INDEX IF NOT EXISTS rows_seq ON rows(seq);")
            .expect("index");
        assert!(
            contents(conn).iter().all(|(_, n)| *n != 0),
            "{:?}",
            contents(conn)
        );
        let conn = used.conn.0.take().expect("the connection");
        let spare = emptied(conn).expect("a small stage is kept");
        let again = Stage::with(spare).expect("a stage from the spare");
        assert_eq!(contents(&again.conn), fresh);
        assert!(
            !again.conn.is_autocommit(),
            "the stage runs in a transaction"
        );
    }
}
