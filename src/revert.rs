//! Reverting a job (`stockdrop revert JOB`): every value the job replaced is
//! restored, in one transaction, as a new job of type `revert` whose history
//! records the change back; the job becomes `reverted`.
//!
//! Refused when a later job changed the same records (its values would be
//! overwritten), unless forced; and when the job's history was pruned.
//! A record the job created did not exist before it: reverting sets its
//! quantity back to 0 (the record stays, so its history stays readable).

use std::collections::HashSet;

use rusqlite::params;
use serde_json::Value;

use crate::apply::now;
use crate::store::history::{self, Entry, Journal};
use crate::store::records::{self, IdKind, Record};
use crate::store::{Reader, Store, StoreError, Write};

#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("there is no job {0}")]
    Unknown(i64),
    #[error("job {job} is {status}; only a job that was applied (success) can be reverted")]
    NotApplied { job: i64, status: String },
    #[error(
        "job {job}'s history was pruned (retention.history_days), so the values it replaced are no \
         longer known; it cannot be reverted"
    )]
    Pruned { job: i64 },
    #[error(
        "later jobs changed the same items: {}; reverting job {job} would undo their values too. \
         Revert those first, or use --force",
        later.iter().map(|j| format!("job {j}")).collect::<Vec<_>>().join(", ")
    )]
    LaterJobs { job: i64, later: Vec<i64> },
    #[error(
        "reverting job {job} would give record #{record} the {kind} {value}, which record #{holder} \
         at that location has now; change one of them first"
    )]
    IdentifierTaken {
        job: i64,
        record: i64,
        kind: &'static str,
        value: String,
        holder: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for RevertError {
    fn from(e: rusqlite::Error) -> Self {
        RevertError::Store(StoreError::Sqlite(e))
    }
}

/// What a revert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reverted {
    pub job: i64,
    /// The new job of type `revert` that holds the restored values.
    pub revert_job: i64,
    pub records: usize,
}

/// Whether a history entry changed nothing but the quantity.
fn only_quantity(entry: &Entry) -> bool {
    entry.before.keys().all(|k| k == "quantity") && entry.after.keys().all(|k| k == "quantity")
}

pub fn revert(store: &mut Store, job_id: i64, force: bool) -> Result<Reverted, RevertError> {
    let write = store.write()?;
    let job = write
        .conn()
        .query_row(
            "SELECT status, history_pruned, import_id, location, file, type FROM jobs WHERE id = ?1",
            [job_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => RevertError::Unknown(job_id),
            other => other.into(),
        })?;
    let (status, pruned, import_id, location, file, job_type) = job;
    if pruned != 0 {
        return Err(RevertError::Pruned { job: job_id });
    }
    if status != "success" {
        return Err(RevertError::NotApplied {
            job: job_id,
            status,
        });
    }
    let history = history::of_job(&write, job_id)?;
    let later = later_jobs(&write, job_id, &location, &history)?;
    // Undoing an adjustment takes its change back off the count there is
    // now (SPEC §1.1), which keeps what later jobs did: no need to refuse
    // unless it also set other fields.
    let opposite_only = job_type == "adjust" && history.iter().all(only_quantity);
    if !later.is_empty() && !force && !opposite_only {
        return Err(RevertError::LaterJobs { job: job_id, later });
    }
    let at = now();
    write.conn().execute(
        "INSERT INTO jobs (import_id, type, location, item_count, status, file, messages, added, started, \
         finished, plan, reverts) VALUES (?1, 'revert', ?2, ?3, 'success', ?4, ?5, ?6, ?6, ?6, x'', ?7)",
        params![
            import_id,
            location,
            history.len() as i64,
            file,
            serde_json::to_string(&[format!("reverts job {job_id}")]).unwrap_or_default(),
            at,
            job_id
        ],
    )?;
    let revert_job = write.conn().last_insert_rowid();
    // Newest change first, so a record changed twice ends at its oldest value.
    // Only records that change count, so the answer and `job ID` of the
    // revert job agree.
    let mut restored_count = 0;
    let mut journal = Journal::new(revert_job);
    for row in history.iter().rev() {
        let Some(current) = records::get(&write, row.record_id)? else {
            continue;
        };
        let restored = restore(&current, row);
        let Some((old, new)) = history::diff(&current, &restored) else {
            continue;
        };
        // An identifier put back may meanwhile belong to another record
        // (only possible when undoing a revert): refuse rather than fail on
        // the unique index.
        for (kind, value) in IdKind::of(&restored.ids) {
            if let Some(holder) = records::find(&write, &location, kind, value)? {
                if holder != row.record_id {
                    return Err(RevertError::IdentifierTaken {
                        job: job_id,
                        record: row.record_id,
                        kind: kind.name(),
                        value: value.to_string(),
                        holder,
                    });
                }
            }
        }
        records::update(&write, &restored, revert_job, &at)?;
        journal.add(&write, row.record_id, "revert", &old, &new)?;
        restored_count += 1;
    }
    journal.flush(&write)?;
    write.conn().execute(
        "UPDATE jobs SET item_count = ?2 WHERE id = ?1",
        params![revert_job, restored_count as i64],
    )?;
    // Undoing a revert puts the job it had undone back in force.
    write.conn().execute(
        "UPDATE jobs SET status = 'success' WHERE id = (SELECT reverts FROM jobs WHERE id = ?1) \
         AND status = 'reverted'",
        [job_id],
    )?;
    write.conn().execute(
        "UPDATE jobs SET status = 'reverted', messages = ?2 WHERE id = ?1",
        params![
            job_id,
            serde_json::to_string(&[format!("reverted by job {revert_job}")]).unwrap_or_default()
        ],
    )?;
    write.commit()?;
    Ok(Reverted {
        job: job_id,
        revert_job,
        records: restored_count,
    })
}

/// Jobs after `job_id` that changed any record `job_id` changed and whose
/// changes still stand: a later job already reverted, and the revert job
/// that undid it, do not count.
fn later_jobs(
    w: &Write<'_>,
    job_id: i64,
    location: &str,
    history: &[Entry],
) -> Result<Vec<i64>, RevertError> {
    let mine: HashSet<i64> = history.iter().map(|e| e.record_id).collect();
    // A record belongs to one location, so only that location's later jobs
    // can have changed one of these.
    let mut stmt = w.conn().prepare(
        "SELECT id FROM jobs WHERE location = ?2 AND id > ?1 AND status = 'success' \
         AND NOT (type = 'revert' AND reverts > ?1) ORDER BY id",
    )?;
    let candidates = stmt
        .query_map(params![job_id, location], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    let mut later = Vec::new();
    for job in candidates {
        if history::records_of_job(w, job)?
            .iter()
            .any(|id| mine.contains(id))
        {
            later.push(job);
        }
    }
    Ok(later)
}

/// The record with the job's `before` values put back.
fn restore(current: &Record, row: &Entry) -> Record {
    let mut r = current.clone();
    if row.action == "create" {
        r.quantity = 0;
        return r;
    }
    let text = |v: &Value| v.as_str().map(str::to_string);
    let int = |v: &Value| v.as_i64();
    for (field, value) in &row.before {
        match field.as_str() {
            "sku" => r.ids.sku = text(value),
            "partNumber" => r.ids.part_number = text(value),
            "upc" => r.ids.upc = text(value),
            // An adjustment is undone by its opposite change on the count
            // there is now, not by the count it replaced.
            "quantity" if row.action == "adjust" => {
                let change =
                    row.after.get("quantity").and_then(int).unwrap_or(0) - int(value).unwrap_or(0);
                r.quantity = current
                    .quantity
                    .saturating_sub(change)
                    .clamp(0, crate::validate::value::MAX_INT);
            }
            "quantity" => r.quantity = int(value).unwrap_or(0),
            "binID" => r.optionals.bin_id = int(value),
            "ltd" => r.optionals.ltd = value.as_f64(),
            "floor" => r.optionals.floor = int(value),
            "safetyStock" => r.optionals.safety_stock = int(value),
            "currencyID" => r.optionals.currency_id = int(value),
            "retailPrice" => r.optionals.retail_price = value.as_f64(),
            "attributes" => {
                r.attributes = value
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            _ => {}
        }
    }
    r
}
