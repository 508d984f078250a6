//! Imports and jobs: recording a plan, tracking progress, and the listings
//! the `jobs`, `job`, `imports`, `stock` and `export` commands print.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::records::parse_attributes;
use super::{Reader, Result, StoreError, Write};
use crate::plan::Draft;

/// What is recorded about a file when its plan is stored.
pub struct NewImport<'a> {
    /// The displayable form of the name (`crate::names`).
    pub file: &'a str,
    pub source_path: &'a str,
    pub sha256: &'a str,
    pub format: &'a str,
    pub status: &'a str,
    pub duplicate_of: Option<i64>,
    pub refresh_mode: &'a str,
    /// `refresh` or `adjust`: what the import's jobs do.
    pub job_type: &'a str,
    pub received_at: &'a str,
    pub rows_total: u64,
    pub rows_accepted: u64,
    pub rows_rejected: u64,
    pub report_dir: &'a str,
    pub draft: &'a Draft,
    /// The inbox the file came from (SPEC §2.1).
    pub inbox: &'a str,
}

pub fn insert_import(w: &Write<'_>, i: &NewImport<'_>) -> Result<i64> {
    let draft = serde_json::to_vec(i.draft).map_err(|e| StoreError::Corrupt {
        what: "report draft",
        detail: e.to_string(),
    })?;
    w.tx.prepare_cached(
        "INSERT INTO imports (file, source_path, sha256, format, status, duplicate_of, refresh_mode, \
         received_at, rows_total, rows_accepted, rows_rejected, report_dir, draft, file_raw, job_type, inbox) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
            i.file,
            i.source_path,
            i.sha256,
            i.format,
            i.status,
            i.duplicate_of,
            i.refresh_mode,
            i.received_at,
            i.rows_total as i64,
            i.rows_accepted as i64,
            i.rows_rejected as i64,
            i.report_dir,
            draft,
            // `file` is a displayable form, which gives the raw bytes back.
            crate::names::raw(i.file),
            i.job_type,
            i.inbox
        ])?;
    Ok(w.tx.last_insert_rowid())
}

pub struct NewJob<'a> {
    pub import_id: i64,
    pub location: &'a str,
    pub manufacturer_id: Option<u32>,
    pub item_count: usize,
    /// `refresh` or `adjust`.
    pub job_type: &'a str,
    pub status: &'a str,
    pub file: &'a str,
    pub messages: &'a [String],
    pub added: &'a str,
    pub plan: &'a [u8],
}

pub fn insert_job(w: &Write<'_>, j: &NewJob<'_>) -> Result<i64> {
    w.tx.prepare_cached(
        "INSERT INTO jobs (import_id, location, manufacturer_id, item_count, status, file, messages, \
         added, plan, type) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
            j.import_id,
            j.location,
            j.manufacturer_id,
            j.item_count as i64,
            j.status,
            j.file,
            serde_json::to_string(j.messages).unwrap_or_else(|_| "[]".into()),
            j.added,
            j.plan,
            j.job_type
        ])?;
    Ok(w.tx.last_insert_rowid())
}

pub struct PendingJob {
    pub id: i64,
    pub location: String,
    /// `refresh` or `adjust` (how its plan's quantities are applied).
    pub job_type: String,
}

/// How many of the import's jobs are not applied yet, and the items they
/// hold.
pub fn count_pending_jobs(r: &impl Reader, import_id: i64) -> Result<(u64, u64)> {
    let (jobs, items): (i64, i64) = r
        .conn()
        .prepare_cached(
            "SELECT count(*), coalesce(sum(item_count), 0) FROM jobs \
         WHERE import_id = ?1 AND status IN ('pending', 'working')",
        )?
        .query_row([import_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok((jobs as u64, items as u64))
}

/// Up to `limit` of the import's jobs not applied yet, after job `after`,
/// in plan order (their plans are read one job at a time, by
/// [`job_plan`]). A page at a time: a file may have millions of jobs.
pub fn pending_jobs_after(
    r: &impl Reader,
    import_id: i64,
    after: i64,
    limit: usize,
) -> Result<Vec<PendingJob>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT id, location, type FROM jobs WHERE import_id = ?1 AND id > ?2 \
         AND status IN ('pending', 'working') ORDER BY id LIMIT ?3",
    )?;
    let jobs = stmt
        .query_map(rusqlite::params![import_id, after, limit as i64], |row| {
            Ok(PendingJob {
                id: row.get(0)?,
                location: row.get(1)?,
                job_type: row.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(jobs)
}

/// A job's stored plan (postcard).
pub fn job_plan(r: &impl Reader, id: i64) -> Result<Vec<u8>> {
    let mut stmt = r
        .conn()
        .prepare_cached("SELECT plan FROM jobs WHERE id = ?1")?;
    Ok(stmt.query_row([id], |row| row.get(0))?)
}

/// Whether a job is still waiting to be applied.
pub fn is_pending(r: &impl Reader, id: i64) -> Result<bool> {
    let status: Option<String> = r
        .conn()
        .prepare_cached("SELECT status FROM jobs WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    Ok(matches!(status.as_deref(), Some("pending" | "working")))
}

pub fn finish_job(
    w: &Write<'_>,
    id: i64,
    started: &str,
    finished: &str,
    zeroed: u64,
) -> Result<()> {
    // The plan is done with once applied (history records what it did):
    // dropping it keeps the store from growing by a copy of every file.
    w.tx.prepare_cached(
        "UPDATE jobs SET status = 'success', started = ?2, finished = ?3, zeroed = ?4, plan = x'' \
         WHERE id = ?1",
    )?
    .execute(params![id, started, finished, zeroed as i64])?;
    Ok(())
}

/// Marks an import as ending in failure: its jobs not yet applied become
/// `failed` and the error joins its report draft. Its reports are still to
/// be written, so it stays unfinished (`failing`) until they are.
pub fn mark_failing(
    w: &Write<'_>,
    id: i64,
    error: &crate::issue::Issue,
    max_errors: usize,
) -> Result<()> {
    let draft: Vec<u8> =
        w.tx.query_row("SELECT draft FROM imports WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
    let mut draft: Draft = serde_json::from_slice(&draft).map_err(|e| StoreError::Corrupt {
        what: "report draft",
        detail: format!("import {id}: {e}"),
    })?;
    draft.push_error(error.clone(), max_errors);
    let draft = serde_json::to_vec(&draft).map_err(|e| StoreError::Corrupt {
        what: "report draft",
        detail: e.to_string(),
    })?;
    w.tx.execute(
        "UPDATE imports SET status = 'failing', draft = ?2 WHERE id = ?1",
        params![id, draft],
    )?;
    w.tx.execute(
        "UPDATE jobs SET status = 'failed', messages = ?2 WHERE import_id = ?1 AND status IN ('pending', 'working')",
        params![id, serde_json::to_string(&[&error.message]).unwrap_or_else(|_| "[]".into())],
    )?;
    Ok(())
}

/// The import of a file claimed into the work folder, by its claimed path.
pub fn import_by_source(r: &impl Reader, source_path: &str) -> Result<Option<(i64, String)>> {
    Ok(r.conn()
        .prepare_cached(
            "SELECT id, status FROM imports WHERE source_path = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row([source_path], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// Records where the original of an import ended up.
pub fn set_archived(w: &Write<'_>, id: i64, path: &str) -> Result<()> {
    w.tx.prepare_cached("UPDATE imports SET archived_path = ?2 WHERE id = ?1")?
        .execute(params![id, path])?;
    Ok(())
}

/// Imports whose plan is stored but not finished: what recovery completes.
pub fn unfinished_imports(r: &impl Reader) -> Result<Vec<i64>> {
    let mut stmt = r
        .conn()
        .prepare("SELECT id FROM imports WHERE status IN ('planned', 'failing') ORDER BY id")?;
    let ids = stmt
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// An import as stored, with its draft.
pub struct ImportRecord {
    pub id: i64,
    pub file: String,
    pub source_path: String,
    pub sha256: String,
    pub format: String,
    pub status: String,
    pub duplicate_of: Option<i64>,
    pub refresh_mode: String,
    pub job_type: String,
    pub received_at: String,
    pub finished_at: Option<String>,
    pub report_dir: String,
    pub draft: Draft,
    pub inbox: String,
}

pub fn import(r: &impl Reader, id: i64) -> Result<Option<ImportRecord>> {
    let row = r
        .conn()
        .prepare_cached(
            "SELECT id, file, source_path, sha256, format, status, duplicate_of, received_at, \
             finished_at, report_dir, draft, refresh_mode, job_type, inbox FROM imports WHERE id = ?1",
        )?
        .query_row(
            [id],
            |row| {
                Ok((
                    ImportRecord {
                        id: row.get(0)?,
                        file: row.get(1)?,
                        source_path: row.get(2)?,
                        sha256: row.get(3)?,
                        format: row.get(4)?,
                        status: row.get(5)?,
                        duplicate_of: row.get(6)?,
                        received_at: row.get(7)?,
                        finished_at: row.get(8)?,
                        report_dir: row.get(9)?,
                        refresh_mode: row.get(11)?,
                        job_type: row.get(12)?,
                        inbox: row.get(13)?,
                        draft: Draft::default(),
                    },
                    row.get::<_, Vec<u8>>(10)?,
                ))
            },
        )
        .optional()?;
    let Some((mut record, draft)) = row else {
        return Ok(None);
    };
    record.draft = serde_json::from_slice(&draft).map_err(|e| StoreError::Corrupt {
        what: "report draft",
        detail: format!("import {id}: {e}"),
    })?;
    Ok(Some(record))
}

pub fn finish_import(w: &Write<'_>, id: i64, status: &str, finished_at: &str) -> Result<()> {
    w.tx.prepare_cached("UPDATE imports SET status = ?2, finished_at = ?3 WHERE id = ?1")?
        .execute(params![id, status, finished_at])?;
    Ok(())
}

/// The latest adjust import with this SHA-256 that was applied (or is being
/// applied: a stored plan is always finished), SPEC §1.1 "never twice".
///
/// Only `inbox`'s imports count: a file one account sends must never make
/// another account's file a duplicate (docs/inboxes.md).
pub fn applied_adjust_with(r: &impl Reader, inbox: &str, sha256: &str) -> Result<Option<i64>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT id FROM imports WHERE sha256 = ?1 AND job_type = 'adjust' AND inbox = ?2 \
         AND status IN ('planned', 'applied', 'partial') ORDER BY id DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row(params![sha256, inbox], |row| row.get(0))
        .optional()?)
}

/// The file name of the import whose refresh job last changed `location`
/// (for stale updates, SPEC §1.1).
pub fn last_refresh_file(r: &impl Reader, location: &str) -> Result<Option<String>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT i.file FROM jobs j JOIN imports i ON i.id = j.import_id \
         WHERE j.location = ?1 AND j.status = 'success' AND j.type = 'refresh' \
         ORDER BY j.id DESC LIMIT 1",
    )?;
    Ok(stmt.query_row([location], |row| row.get(0)).optional()?)
}

/// The import whose job last changed `location` (SPEC §2, duplicate files):
/// its id, SHA-256 and inbox.
pub fn last_applied_to(r: &impl Reader, location: &str) -> Result<Option<(i64, String, String)>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT i.id, i.sha256, i.inbox FROM jobs j JOIN imports i ON i.id = j.import_id \
         WHERE j.location = ?1 AND j.status = 'success' AND j.type = 'refresh' \
         ORDER BY j.id DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row([location], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?)
}

/// A job as the `jobs` and `job` commands show it.
#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    pub job_id: i64,
    pub import_id: i64,
    #[serde(rename = "type")]
    pub job_type: String,
    pub location: String,
    #[serde(rename = "manufacturerID")]
    pub manufacturer_id: Option<i64>,
    pub item_count: i64,
    pub zeroed: i64,
    pub status: String,
    pub file: String,
    pub messages: Vec<String>,
    pub added: String,
    pub started: Option<String>,
    pub finished: Option<String>,
}

const JOB_COLUMNS: &str =
    "id, import_id, type, location, manufacturer_id, item_count, zeroed, status, \
                           file, messages, added, started, finished";

fn job_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let messages: String = row.get(9)?;
    Ok(JobRow {
        job_id: row.get(0)?,
        import_id: row.get(1)?,
        job_type: row.get(2)?,
        location: row.get(3)?,
        manufacturer_id: row.get(4)?,
        item_count: row.get(5)?,
        zeroed: row.get(6)?,
        status: row.get(7)?,
        file: row.get(8)?,
        messages: serde_json::from_str(&messages).unwrap_or_default(),
        added: row.get(10)?,
        started: row.get(11)?,
        finished: row.get(12)?,
    })
}

#[derive(Debug, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    pub location: Option<String>,
    /// `refresh`, `adjust` or `revert`.
    pub job_type: Option<String>,
    pub import_id: Option<i64>,
    pub limit: Option<u64>,
    /// Only jobs of imports from this inbox (SPEC §2.1).
    pub inbox: Option<String>,
}

/// Jobs, newest first (an import's jobs in plan order).
pub fn jobs(r: &impl Reader, filter: &JobFilter) -> Result<Vec<JobRow>> {
    let order = if filter.import_id.is_some() {
        "ASC"
    } else {
        "DESC"
    };
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR status = ?1) \
         AND (?2 IS NULL OR location = ?2) AND (?3 IS NULL OR import_id = ?3) \
         AND (?5 IS NULL OR type = ?5) \
         AND (?6 IS NULL OR import_id IN (SELECT id FROM imports WHERE inbox = ?6)) \
         ORDER BY id {order} LIMIT ?4"
    );
    let limit = filter.limit.map_or(-1, |l| l as i64);
    let mut stmt = r.conn().prepare(&sql)?;
    let rows = stmt
        .query_map(
            params![
                filter.status,
                filter.location,
                filter.import_id,
                limit,
                filter.job_type,
                filter.inbox
            ],
            job_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Each job of an import in order, up to id `through`, past the first
/// `skip`, one row at a time: an import may have a job per row.
pub fn each_job_of_import(
    r: &impl Reader,
    import_id: i64,
    through: i64,
    skip: u64,
    mut f: impl FnMut(JobRow) -> Result<()>,
) -> Result<()> {
    let mut stmt = r.conn().prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE import_id = ?1 AND id <= ?2 ORDER BY id \
         LIMIT -1 OFFSET ?3"
    ))?;
    let mut rows = stmt.query(params![import_id, through, skip as i64])?;
    while let Some(row) = rows.next()? {
        f(job_row(row)?)?;
    }
    Ok(())
}

pub fn job(r: &impl Reader, id: i64) -> Result<Option<JobRow>> {
    Ok(r.conn()
        .query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            job_row,
        )
        .optional()?)
}

/// One item a job changed: its identifiers now, and the fields before/after.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub record_id: i64,
    pub action: String,
    pub sku: Option<String>,
    #[serde(rename = "partNumber")]
    pub part_number: Option<String>,
    pub upc: Option<String>,
    pub before: Value,
    pub after: Value,
}

pub fn job_changes(r: &impl Reader, job_id: i64) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    for entry in super::history::of_job(r, job_id)? {
        let ids = super::records::get(r, entry.record_id)?
            .map(|record| record.ids)
            .unwrap_or_default();
        changes.push(Change {
            record_id: entry.record_id,
            action: entry.action,
            sku: ids.sku,
            part_number: ids.part_number,
            upc: ids.upc,
            before: Value::Object(entry.before),
            after: Value::Object(entry.after),
        });
    }
    Ok(changes)
}

/// An import as the `imports` command shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportRow {
    pub import_id: i64,
    pub file: String,
    pub sha256: String,
    pub format: String,
    pub status: String,
    pub duplicate_of: Option<i64>,
    pub rows_total: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
    pub jobs: JobIds,
    pub received_at: String,
    pub finished_at: Option<String>,
    /// The inbox the file came from (SPEC §2.1).
    pub inbox: String,
    /// `refresh` or `adjust` (SPEC §1.1).
    pub job_type: String,
}

/// An import's job ids, held as runs of consecutive ids (an import's jobs
/// are numbered together, so a file of a job per row is one run) and
/// written out one id at a time: a JSON array of every id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobIds(Vec<(i64, i64)>);

impl JobIds {
    /// The ids of an import's jobs, read in order through the `jobs_import`
    /// index (no sort) and folded into runs as they come.
    fn of_import(r: &impl Reader, import_id: i64) -> Result<JobIds> {
        let mut stmt = r
            .conn()
            .prepare_cached("SELECT id FROM jobs WHERE import_id = ?1 ORDER BY id")?;
        let mut rows = stmt.query([import_id])?;
        let mut ids = JobIds::default();
        while let Some(row) = rows.next()? {
            ids.push(row.get(0)?);
        }
        Ok(ids)
    }

    /// Adds `id`, greater than every id before it.
    fn push(&mut self, id: i64) {
        match self.0.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => self.0.push((id, id)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().flat_map(|&(first, last)| first..=last)
    }
}

/// `41-1040,1052`: each run, a single id alone.
impl std::fmt::Display for JobIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, &(first, last)) in self.0.iter().enumerate() {
            let comma = if n > 0 { "," } else { "" };
            match first == last {
                true => write!(f, "{comma}{first}")?,
                false => write!(f, "{comma}{first}-{last}")?,
            }
        }
        Ok(())
    }
}

impl Serialize for JobIds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

pub fn imports(r: &impl Reader, limit: Option<u64>) -> Result<Vec<ImportRow>> {
    imports_of(r, limit, None)
}

/// The newest imports, of one inbox when `inbox` is given.
pub fn imports_of(
    r: &impl Reader,
    limit: Option<u64>,
    inbox: Option<&str>,
) -> Result<Vec<ImportRow>> {
    let mut stmt = r.conn().prepare(
        "SELECT id, file, sha256, format, status, duplicate_of, rows_total, rows_accepted, \
         rows_rejected, received_at, finished_at, inbox, job_type FROM imports \
         WHERE (?2 IS NULL OR inbox = ?2) ORDER BY id DESC LIMIT ?1",
    )?;
    let mut rows = stmt
        .query_map(params![limit.map_or(-1, |l| l as i64), inbox], |row| {
            Ok(ImportRow {
                import_id: row.get(0)?,
                file: row.get(1)?,
                sha256: row.get(2)?,
                format: row.get(3)?,
                status: row.get(4)?,
                duplicate_of: row.get(5)?,
                rows_total: row.get(6)?,
                rows_accepted: row.get(7)?,
                rows_rejected: row.get(8)?,
                jobs: JobIds::default(),
                received_at: row.get(9)?,
                finished_at: row.get(10)?,
                inbox: row.get(11)?,
                job_type: row.get(12)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for row in &mut rows {
        row.jobs = JobIds::of_import(r, row.import_id)?;
    }
    Ok(rows)
}

/// An import as an outbox's `index.html` lists it (SPEC §5).
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub import_id: i64,
    pub file: String,
    pub status: String,
    pub job_type: String,
    pub rows_total: i64,
    pub rows_accepted: i64,
    pub rows_rejected: i64,
    pub received_at: String,
}

/// The latest `limit` imports whose reports were written to `report_dir`,
/// newest first.
/// The listing of an outbox's index: answered from the index
/// `imports_outbox_listing` alone (migration 10).
pub(super) const OUTBOX_LISTING: &str =
    "SELECT id, file, status, job_type, rows_total, rows_accepted, rows_rejected, received_at \
     FROM imports WHERE report_dir = ?1 ORDER BY id DESC LIMIT ?2";

pub fn imports_reported_to(r: &impl Reader, report_dir: &str, limit: u64) -> Result<Vec<IndexRow>> {
    let mut stmt = r.conn().prepare(OUTBOX_LISTING)?;
    let rows = stmt
        .query_map(params![report_dir, limit as i64], |row| {
            Ok(IndexRow {
                import_id: row.get(0)?,
                file: row.get(1)?,
                status: row.get(2)?,
                job_type: row.get(3)?,
                rows_total: row.get(4)?,
                rows_accepted: row.get(5)?,
                rows_rejected: row.get(6)?,
                received_at: row.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// An inventory record as `stock` and `export` show it.
#[derive(Debug, Clone, Serialize)]
pub struct StockRow {
    /// The record's id, as `identifier-conflict` and `revert` messages name it.
    pub record_id: i64,
    pub location: String,
    pub sku: Option<String>,
    #[serde(rename = "partNumber")]
    pub part_number: Option<String>,
    pub upc: Option<String>,
    pub quantity: i64,
    #[serde(rename = "binID")]
    pub bin_id: Option<i64>,
    pub ltd: Option<f64>,
    pub floor: Option<i64>,
    #[serde(rename = "safetyStock")]
    pub safety_stock: Option<i64>,
    #[serde(rename = "currencyID")]
    pub currency_id: Option<i64>,
    #[serde(rename = "retailPrice")]
    pub retail_price: Option<f64>,
    pub attributes: Vec<String>,
    pub updated_at: String,
    pub job_id: Option<i64>,
}

#[derive(Debug, Default)]
pub struct StockFilter {
    pub location: Option<String>,
    pub sku: Option<String>,
    pub upc: Option<String>,
    pub part_number: Option<String>,
}

/// Inventory records in location and identifier order; `visit` is called
/// for each, so an export of millions of records streams.
pub fn stock(
    r: &impl Reader,
    filter: &StockFilter,
    mut visit: impl FnMut(StockRow) -> std::io::Result<()>,
) -> Result<()> {
    let mut stmt = r.conn().prepare(
        "SELECT l.name, i.sku, i.part_number, i.upc, i.quantity, i.bin_id, i.ltd, i.floor, \
         i.safety_stock, i.currency_id, i.retail_price, i.attributes, i.updated_at, i.job_id, i.id \
         FROM inventory i JOIN locations l ON l.id = i.location_id \
         WHERE (?1 IS NULL OR l.name = ?1) AND (?2 IS NULL OR i.sku = ?2) \
         AND (?3 IS NULL OR i.upc14 = ?3) AND (?4 IS NULL OR i.part_number = ?4) \
         ORDER BY l.name, coalesce(i.sku, i.part_number, i.upc), i.id",
    )?;
    let upc14 = filter.upc.as_deref().map(crate::model::gtin14);
    let mut rows = stmt.query(params![
        filter.location,
        filter.sku,
        upc14,
        filter.part_number
    ])?;
    while let Some(row) = rows.next()? {
        let attributes: String = row.get(11)?;
        let record = StockRow {
            location: row.get(0)?,
            sku: row.get(1)?,
            part_number: row.get(2)?,
            upc: row.get(3)?,
            quantity: row.get(4)?,
            bin_id: row.get(5)?,
            ltd: row.get(6)?,
            floor: row.get(7)?,
            safety_stock: row.get(8)?,
            currency_id: row.get(9)?,
            retail_price: row.get(10)?,
            attributes: parse_attributes(&attributes)?,
            updated_at: row.get(12)?,
            job_id: row.get(13)?,
            record_id: row.get(14)?,
        };
        visit(record).map_err(StoreError::Output)?;
    }
    Ok(())
}

/// Counts by status of imports and refresh jobs since `since` (RFC 3339).
pub fn counts_since(
    r: &impl Reader,
    since: &str,
) -> Result<(
    std::collections::BTreeMap<String, i64>,
    std::collections::BTreeMap<String, i64>,
)> {
    counts_since_in(r, since, None)
}

/// [`counts_since`] for one inbox's imports and their jobs, when given.
pub fn counts_since_in(
    r: &impl Reader,
    since: &str,
    inbox: Option<&str>,
) -> Result<(
    std::collections::BTreeMap<String, i64>,
    std::collections::BTreeMap<String, i64>,
)> {
    let count = |sql: &str| -> Result<std::collections::BTreeMap<String, i64>> {
        let mut stmt = r.conn().prepare(sql)?;
        let rows = stmt
            .query_map(params![since, inbox], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    };
    Ok((
        count(
            "SELECT status, count(*) FROM imports WHERE received_at >= ?1 \
             AND (?2 IS NULL OR inbox = ?2) GROUP BY status",
        )?,
        count(
            "SELECT status, count(*) FROM jobs WHERE added >= ?1 AND (?2 IS NULL \
             OR import_id IN (SELECT id FROM imports WHERE inbox = ?2)) GROUP BY status",
        )?,
    ))
}

/// The newest import that did not apply cleanly, with its first error.
#[derive(Debug, Clone, Serialize)]
pub struct LastError {
    pub import_id: i64,
    pub file: String,
    pub status: String,
    pub finished_at: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

pub fn last_error(r: &impl Reader) -> Result<Option<LastError>> {
    last_error_in(r, None)
}

/// [`last_error`] among one inbox's imports, when given.
pub fn last_error_in(r: &impl Reader, inbox: Option<&str>) -> Result<Option<LastError>> {
    let id: Option<i64> = r
        .conn()
        .query_row(
            "SELECT id FROM imports WHERE status IN ('partial', 'rejected', 'failed') \
             AND (?1 IS NULL OR inbox = ?1) ORDER BY id DESC LIMIT 1",
            [inbox],
            |row| row.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let Some(record) = import(r, id)? else {
        return Ok(None);
    };
    let first = record.draft.errors.first();
    Ok(Some(LastError {
        import_id: id,
        file: record.file,
        status: record.status,
        finished_at: record.finished_at,
        code: first.map(|e| e.code.as_str().to_string()),
        message: first.map(|e| e.message.clone()),
    }))
}

/// Where an import's original was archived, if the daemon (or `retry`)
/// moved it.
pub fn archived_path(r: &impl Reader, id: i64) -> Result<Option<String>> {
    Ok(r.conn()
        .query_row(
            "SELECT archived_path FROM imports WHERE id = ?1",
            [id],
            |row| row.get(0),
        )
        .optional()?
        .flatten())
}

/// The newest import's id (0 before the first).
pub fn last_import_id(r: &impl Reader) -> Result<i64> {
    Ok(r.conn()
        .query_row("SELECT coalesce(max(id), 0) FROM imports", [], |row| {
            row.get(0)
        })?)
}

/// How many imports after `import_id` ended in each status (what
/// `run --once` turns into its exit code).
pub fn statuses_after(
    r: &impl Reader,
    import_id: i64,
) -> Result<std::collections::BTreeMap<String, i64>> {
    let mut stmt = r
        .conn()
        .prepare("SELECT status, count(*) FROM imports WHERE id > ?1 GROUP BY status")?;
    let rows = stmt
        .query_map([import_id], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_held_as_runs_and_written_as_every_id() {
        let mut ids = JobIds::default();
        for id in [41, 42, 43, 44, 50, 52, 53] {
            ids.push(id);
        }
        assert_eq!(ids.0, [(41, 44), (50, 50), (52, 53)]);
        assert_eq!(ids.iter().collect::<Vec<_>>(), [41, 42, 43, 44, 50, 52, 53]);
        assert_eq!(ids.to_string(), "41-44,50,52-53");
        assert_eq!(
            serde_json::to_string(&ids).unwrap(),
            "[41,42,43,44,50,52,53]"
        );
        assert_eq!(JobIds::default().to_string(), "");
        assert_eq!(serde_json::to_string(&JobIds::default()).unwrap(), "[]");
    }
}
