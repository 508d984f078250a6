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
use crate::plan::LeftOutRow;
use crate::validate::{CheckedRow, RowSink};

pub struct Stage {
    conn: Connection,
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

/// A job as staged: location index, manufacturer, item count, records it
/// zeroes, and its plan (postcard).
/// One location's staged rows, as resolving needs them.
#[derive(Default)]
pub struct LocationRows {
    /// The rows that carry an identifier or are valid, in file order.
    pub rows: Vec<(u64, CheckedRow)>,
    /// (seq, row number) of the first row left out above: it has errors
    /// and no identifier.
    pub first_idless_error: Option<(u64, u64)>,
}

pub struct StagedJob {
    pub location: u32,
    pub manufacturer_id: Option<u32>,
    pub item_count: u64,
    pub zero_count: u64,
    pub plan: Vec<u8>,
}

fn decode(bytes: &[u8]) -> Result<CheckedRow> {
    postcard::from_bytes(bytes).map_err(|e| super::StoreError::Corrupt {
        what: "staged row",
        detail: e.to_string(),
    })
}

impl Stage {
    pub fn new() -> Result<Stage> {
        // "": a private, temporary database on disk; its page cache is the
        // only part in memory.
        let conn = Connection::open("")?;
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
             CREATE TABLE flagged (seq INTEGER PRIMARY KEY);
             -- Per location being resolved (a large one): a hash of each
             -- identifier of each valid row, and of the record it names;
             -- rows that share one are the only ones that can be
             -- duplicates of each other.
             -- (Sorted once they are all in: `duplicate_candidates`.)
             CREATE TABLE keys (h INTEGER NOT NULL, seq INTEGER NOT NULL);
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
        Ok(Stage {
            conn,
            rows: 0,
            errored: 0,
            flagged: 0,
            per_location: Vec::new(),
            failed: None,
            jobs: 0,
        })
    }

    /// Ends the rows' bulk insert and indexes them by location; reports a
    /// write that failed on the way.
    pub fn finish_rows(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e.into());
        }
        self.conn
            .execute_batch("CREATE INDEX rows_seq ON rows(seq);")?;
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
        let mut out = LocationRows::default();
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
            out.rows.push((seq as u64, row));
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

    /// Stages keys ([`key_hash`]) of the location being resolved, each
    /// with the seq of the row that has it.
    pub fn push_keys(&self, keys: &[(i64, u64)]) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO keys (h, seq) VALUES (?1, ?2)")?;
        for &(h, seq) in keys {
            stmt.execute(params![h, seq as i64])?;
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

    /// Forgets the verdicts and listed records of the location resolved
    /// before.
    pub fn start_location(&self) -> Result<()> {
        self.conn
            .execute_batch("DELETE FROM verdicts; DELETE FROM listed; DELETE FROM keys;")?;
        Ok(())
    }

    /// Stages verdicts (seq, record, unchanged): row `seq` names `record`,
    /// which it would leave `unchanged` or not; the record's hash joins the
    /// row's keys.
    pub fn push_verdicts(&self, verdicts: &[(u64, i64, bool)]) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO verdicts (seq, record, unchanged) VALUES (?1, ?2, ?3)")?;
        for &(seq, record, unchanged) in verdicts {
            stmt.execute(params![seq as i64, record, unchanged])?;
        }
        drop(stmt);
        let keys: Vec<(i64, u64)> = verdicts
            .iter()
            .map(|&(seq, record, _)| (key_hash(3, &record.to_le_bytes()), seq))
            .collect();
        self.push_keys(&keys)
    }

    /// The record row `seq` names and whether it is unchanged.
    pub fn verdict(&self, seq: u64) -> Result<Option<(i64, bool)>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record, unchanged FROM verdicts WHERE seq = ?1")?;
        let mut rows = stmt.query([seq as i64])?;
        match rows.next()? {
            Some(row) => Ok(Some((row.get(0)?, row.get(1)?))),
            None => Ok(None),
        }
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

    /// The rows of the location being resolved that share an identifier
    /// (or a record) with another of its rows, in file order: the only
    /// ones duplicate detection needs to see.
    pub fn duplicate_candidates(&self) -> Result<Vec<u64>> {
        // One sort of the keys (SQLite's sorter, which spills to disk),
        // read in order: a run of equal hashes is a group of candidates.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT h, seq FROM keys ORDER BY h")?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        // The current run's hash and its first row, until a second joins.
        let mut run: Option<(i64, Option<u64>)> = None;
        while let Some(row) = rows.next()? {
            let (h, seq): (i64, i64) = (row.get(0)?, row.get(1)?);
            let seq = seq as u64;
            match &mut run {
                Some((current, first)) if *current == h => {
                    out.extend(first.take());
                    out.push(seq);
                }
                _ => run = Some((h, Some(seq))),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The rows of a location after `after`, up to `limit`, each with its
    /// verdict: what building the jobs reads, in file order.
    #[allow(clippy::type_complexity)]
    pub fn location_window_with_verdicts(
        &self,
        location: u32,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, CheckedRow, Option<(i64, bool)>)>> {
        self.window(
            "SELECT r.seq, r.data, v.record, v.unchanged FROM rows r \
             LEFT JOIN verdicts v ON v.seq = r.seq \
             WHERE r.location = ?1 AND r.seq > ?2 ORDER BY r.seq LIMIT ?3",
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

    /// The seqs of the rows with validation errors or warnings, in order.
    pub fn flagged_seqs(&self) -> Result<Vec<u64>> {
        let mut stmt = self.conn.prepare("SELECT seq FROM flagged ORDER BY seq")?;
        let seqs = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .map(|seq| seq.map(|s| s as u64))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(seqs)
    }

    /// The row staged as `seq`.
    pub fn row_at(&self, seq: u64) -> Result<Option<CheckedRow>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM rows WHERE seq = ?1")?;
        let mut rows = stmt.query([seq as i64])?;
        match rows.next()? {
            Some(row) => {
                let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                Ok(Some(decode(data)?))
            }
            None => Ok(None),
        }
    }

    /// Calls `f` with every row, in file order.
    pub fn for_each_row(&self, mut f: impl FnMut(u64, CheckedRow) -> Result<()>) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, data FROM rows ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            f(seq as u64, decode(data)?)?;
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

/// [`key_hash`] of each identifier of a valid row.
pub fn row_keys(row: &CheckedRow) -> [Option<i64>; 3] {
    let mut keys = [None; 3];
    if row.is_valid() {
        let ids = row.ids();
        let values = [
            ids.sku.as_deref(),
            ids.part_number.as_deref(),
            ids.upc.as_deref().map(crate::model::upc_key),
        ];
        for (kind, value) in values.into_iter().enumerate() {
            keys[kind] = value.map(|v| key_hash(kind as u8, v.as_bytes()));
        }
    }
    keys
}

/// A 64-bit hash of one identifier (`kind` 0–2: sku, partNumber, UPC as
/// [`crate::model::upc_key`]) or of a record (`kind` 3). Equal keys hash
/// equal; a collision only makes two rows look worth comparing, and the
/// comparison is made on the identifiers themselves.
pub fn key_hash(kind: u8, value: &[u8]) -> i64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    // Seeded at random once per process (an uploader cannot make many rows
    // collide and so be held as candidates), the same for every call in it.
    static SEED: std::sync::OnceLock<foldhash::quality::RandomState> = std::sync::OnceLock::new();
    let mut hasher = SEED.get_or_init(Default::default).build_hasher();
    kind.hash(&mut hasher);
    value.hash(&mut hasher);
    hasher.finish() as i64
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
            .prepare_cached("INSERT INTO flagged (seq) VALUES (?1)")?;
        let mut start = 0;
        for (row, end) in rows {
            let encoded = data.get(start..*end).unwrap_or_default();
            start = *end;
            if row.errored {
                self.errored += 1;
            }
            if row.flagged {
                flag.execute([self.rows as i64])?;
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
