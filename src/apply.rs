//! Applying planned jobs to the inventory (SPEC §1).
//!
//! A location's jobs, and its full-mode zeroing, commit in one transaction
//! together with their `success` status: after a crash a job is either
//! wholly applied and marked so, or not applied at all and still `pending`.
//! Only this module and `store` write inventory.

use serde_json::{json, Map, Value};

use crate::model::{Item, Optionals};
use crate::plan::JobPlan;
use crate::store::checkpointer::Background;
use crate::store::history::{self, Journal};
use crate::store::queries::{self, PendingJob};
use crate::store::records::{self, Record};
use crate::store::{Result, Store, StoreError, Write};

/// The RFC 3339 UTC timestamp the store and reports use.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Applies every pending job of an import, one transaction per location.
/// `progress` is told (jobs done, jobs in all) after each location.
pub fn apply_import(
    store: &mut Store,
    import_id: i64,
    mut progress: impl FnMut(u64, u64),
) -> Result<()> {
    let (total, items) = queries::count_pending_jobs(&store.read(), import_id)?;
    // A location's identifier indexes take about 130 bytes a record: past
    // SQLite's default 2 MB cache at some 15,000 records, each insert
    // into them reads and writes pages through the kernel. 32 MiB holds a
    // location of 250,000 records.
    store.set_cache_kib(APPLY_CACHE_KIB)?;
    // A large file's pages are copied from the WAL into the database on
    // the other core, which applying leaves idle (a small one's are not
    // worth a thread and a connection).
    let checkpointer = match store.path() {
        Some(path) if items >= BACKGROUND_CHECKPOINT_ITEMS => Background::start(&path),
        _ => None,
    };
    if checkpointer.is_some() {
        store.set_auto_checkpoint(false)?;
    }
    let applied = apply_locations(
        store,
        import_id,
        total,
        checkpointer.as_ref(),
        &mut progress,
    );
    drop(checkpointer);
    store.set_auto_checkpoint(true)?;
    store.set_cache_kib(DEFAULT_CACHE_KIB)?;
    applied
}

/// Items from which applying checkpoints on a thread of its own.
pub const BACKGROUND_CHECKPOINT_ITEMS: u64 = 50_000;
const APPLY_CACHE_KIB: i64 = 32 * 1024;
const DEFAULT_CACHE_KIB: i64 = 2000;

/// How many pending jobs are read at a time.
const PAGE_JOBS: usize = 256;

/// Applies the import's pending jobs in plan order, one transaction per
/// location. A location's jobs are consecutive in the plan (it is made a
/// location at a time, and recovery leaves whole locations), so a
/// transaction ends where the location changes; the jobs are read a page
/// at a time, as a file of many locations or small jobs has many.
fn apply_locations(
    store: &mut Store,
    import_id: i64,
    total: u64,
    checkpointer: Option<&Background>,
    progress: &mut impl FnMut(u64, u64),
) -> Result<()> {
    let mut done = 0;
    let mut page = queries::pending_jobs_after(&store.read(), import_id, 0, PAGE_JOBS)?;
    while let Some(location) = page.first().map(|job| job.location.clone()) {
        let write = store.write()?;
        loop {
            let ours = page
                .iter()
                .take_while(|job| job.location == location)
                .count();
            for job in &page[..ours] {
                apply_job(&write, job)?;
                done += 1;
            }
            if ours < page.len() {
                page.drain(..ours);
                break;
            }
            let after = page.last().map_or(0, |job| job.id);
            page = queries::pending_jobs_after(&write, import_id, after, PAGE_JOBS)?;
            if page.first().is_none_or(|job| job.location != location) {
                break;
            }
        }
        write.commit()?;
        crate::crashpoint::hit_commit();
        if let Some(checkpointer) = checkpointer {
            checkpointer.keep_wal_bounded();
        }
        progress(done, total);
    }
    Ok(())
}

fn apply_job(w: &Write<'_>, job: &PendingJob) -> Result<()> {
    // Checked again inside the write transaction: another process (a
    // one-shot `import` finishing an interrupted import beside the daemon)
    // may have applied it since the pending list was read.
    if !queries::is_pending(w, job.id)? {
        return Ok(());
    }
    let plan =
        JobPlan::decode(&queries::job_plan(w, job.id)?).map_err(|e| StoreError::Corrupt {
            what: "job plan",
            detail: format!("job {}: {e}", job.id),
        })?;
    let started = now();
    let mut journal = Journal::new(job.id);
    if job.job_type == "adjust" {
        return apply_adjust(w, job, plan, &started, &mut journal);
    }
    let empty = Record {
        id: 0,
        location: job.location.clone(),
        ids: Default::default(),
        quantity: 0,
        optionals: Optionals::default(),
        attributes: Vec::new(),
    };
    // Looked up (or added) at the first record the job creates.
    let mut location_id = None;
    let mut inserts = records::Inserts::new(w)?;
    for planned in plan.items {
        let existing = match planned.record {
            Some(id) => records::get(w, id)?,
            None => None,
        };
        match existing {
            Some(before) => {
                let after = merged(&before, &planned.item);
                if let Some((old, new)) = history::diff(&before, &after) {
                    records::update(w, &after, job.id, &started)?;
                    journal.add(w, before.id, "update", &old, &new)?;
                }
            }
            None => {
                let item = planned.item;
                let mut record = Record {
                    id: 0,
                    location: job.location.clone(),
                    ids: item.ids,
                    quantity: item.quantity,
                    optionals: item.optionals,
                    attributes: item.attributes,
                };
                let location_id = match location_id {
                    Some(id) => id,
                    None => *location_id.insert(records::location_id(w, &job.location)?),
                };
                record.id = inserts.insert(location_id, &record, job.id, &started)?;
                if let Some((old, new)) = history::diff(&empty, &record) {
                    journal.add(w, record.id, "create", &old, &new)?;
                }
            }
        }
    }
    let mut zeroed = 0u64;
    for &id in &plan.zero {
        let Some(before) = records::get(w, id)? else {
            continue;
        };
        if before.quantity == 0 {
            continue;
        }
        let after = Record {
            quantity: 0,
            ..before.clone()
        };
        if let Some((old, new)) = history::diff(&before, &after) {
            records::update(w, &after, job.id, &started)?;
            journal.add(w, id, "zero", &old, &new)?;
            zeroed += 1;
        }
    }
    journal.flush(w)?;
    queries::finish_job(w, job.id, &started, &now(), zeroed)
}

/// Whether applying `item` to `record` would change nothing: the same as
/// `merged(record, item) == *record`, without building the merged record
/// (resolving asks this of every row that names a record).
pub(crate) fn changes_nothing(record: &Record, item: &Item) -> bool {
    let (o, r) = (&item.optionals, &record.optionals);
    let same = |given: Option<i64>, held: Option<i64>| given.is_none() || given == held;
    let same_f = |given: Option<f64>, held: Option<f64>| given.is_none() || given == held;
    let id_kept = |given: &Option<String>, held: &Option<String>| given.is_none() || held.is_some();
    item.quantity == record.quantity
        && same(o.bin_id, r.bin_id)
        && same_f(o.ltd, r.ltd)
        && same(o.floor, r.floor)
        && same(o.safety_stock, r.safety_stock)
        && same(o.currency_id, r.currency_id)
        && same_f(o.retail_price, r.retail_price)
        && id_kept(&item.ids.sku, &record.ids.sku)
        && id_kept(&item.ids.part_number, &record.ids.part_number)
        && id_kept(&item.ids.upc, &record.ids.upc)
        && item
            .attributes
            .iter()
            .all(|a| record.attributes.contains(a))
}

/// An adjust job (SPEC §1.1): each item's quantity is a change, added to
/// the count the record has now, read inside this transaction — so the
/// count moves once, by the planned change, whenever the job is applied.
/// A result below 0 (the count fell between planning and applying, or
/// `adjust_below_zero = "clamp"`) stops at 0.
fn apply_adjust(
    w: &Write<'_>,
    job: &PendingJob,
    plan: JobPlan,
    started: &str,
    journal: &mut Journal,
) -> Result<()> {
    for planned in &plan.items {
        // Planning matched every item to a record; one deleted since has
        // nothing to adjust.
        let Some(before) = (match planned.record {
            Some(id) => records::get(w, id)?,
            None => None,
        }) else {
            continue;
        };
        let mut after = merged(&before, &planned.item);
        after.quantity = before
            .quantity
            .saturating_add(planned.item.quantity)
            .clamp(0, crate::validate::value::MAX_INT);
        if let Some((old, new)) = history::diff(&before, &after) {
            records::update(w, &after, job.id, started)?;
            journal.add(w, before.id, "adjust", &old, &new)?;
        }
    }
    journal.flush(w)?;
    queries::finish_job(w, job.id, started, &now(), 0)
}

/// The record after applying `item`: quantity set, the optional fields the
/// item carries set, identifiers added, attributes merged (set union, in
/// first-seen order).
pub(crate) fn merged(record: &Record, item: &Item) -> Record {
    let mut after = record.clone();
    after.quantity = item.quantity;
    after.optionals.take_given(&item.optionals);
    if after.ids.sku.is_none() {
        after.ids.sku = item.ids.sku.clone();
    }
    if after.ids.part_number.is_none() {
        after.ids.part_number = item.ids.part_number.clone();
    }
    if after.ids.upc.is_none() {
        after.ids.upc = item.ids.upc.clone();
    }
    for attribute in &item.attributes {
        if !after.attributes.contains(attribute) {
            after.attributes.push(attribute.clone());
        }
    }
    after
}

/// The fields that differ, by their API names: (before, after). What
/// history records is this, encoded by `history::diff` without the maps.
pub fn changes(before: &Record, after: &Record) -> (Map<String, Value>, Map<String, Value>) {
    let fields = |r: &Record| -> Vec<(&'static str, Value)> {
        let o = &r.optionals;
        vec![
            ("sku", json!(r.ids.sku)),
            ("partNumber", json!(r.ids.part_number)),
            ("upc", json!(r.ids.upc)),
            ("quantity", json!(r.quantity)),
            ("binID", json!(o.bin_id)),
            ("ltd", json!(o.ltd)),
            ("floor", json!(o.floor)),
            ("safetyStock", json!(o.safety_stock)),
            ("currencyID", json!(o.currency_id)),
            ("retailPrice", json!(o.retail_price)),
            ("attributes", json!(r.attributes)),
        ]
    };
    let mut old = Map::new();
    let mut new = Map::new();
    // A created record has every field "changed" from nothing; show only the
    // ones it has.
    let created = before.ids.is_empty();
    for ((name, b), (_, a)) in fields(before).into_iter().zip(fields(after)) {
        let unset = a.is_null() || a == json!([]);
        if b != a && !(created && unset) {
            old.insert(name.to_string(), b);
            new.insert(name.to_string(), a);
        }
    }
    if created {
        // A new record with quantity 0 still records its quantity.
        new.insert("quantity".into(), json!(after.quantity));
    }
    (old, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identifiers;

    #[test]
    fn changes_nothing_agrees_with_merging() {
        let record = Record {
            id: 1,
            location: "A".into(),
            ids: Identifiers {
                sku: Some("S".into()),
                part_number: None,
                upc: Some("036000291452".into()),
            },
            quantity: 5,
            optionals: Optionals {
                bin_id: Some(3),
                ltd: Some(1.5),
                ..Optionals::default()
            },
            attributes: vec!["red".into(), "M".into()],
        };
        let same = Item {
            ids: Identifiers {
                sku: Some("S".into()),
                ..Identifiers::default()
            },
            quantity: 5,
            optionals: Optionals {
                ltd: Some(1.5),
                ..Optionals::default()
            },
            attributes: vec!["M".into()],
        };
        let edits: [fn(&mut Item); 7] = [
            |_| {},
            |i| i.quantity = 6,
            |i| i.optionals.ltd = Some(2.0),
            |i| i.optionals.floor = Some(1),
            |i| i.ids.part_number = Some("P".into()),
            |i| i.ids.upc = Some("036000291452".into()),
            |i| i.attributes.push("wool".into()),
        ];
        for edit in edits {
            let mut item = same.clone();
            edit(&mut item);
            assert_eq!(
                changes_nothing(&record, &item),
                merged(&record, &item) == record,
                "{item:?}"
            );
        }
        assert!(changes_nothing(&record, &same));
    }
}
