//! Which record each row of a location is: the records its identifiers
//! name, `identifier-conflict`, and what the record would become (too many
//! attributes, or nothing new at all).
//!
//! A file that sends a location's whole stock list names most of its
//! records, so the location's identifiers are read as three range scans
//! of the identifier indexes and matched against the rows in memory,
//! instead of three point lookups per row (which cost more than SQLite's
//! own join of the same rows: a descent of each index per identifier).
//! A location that holds far more records than the file has rows for it
//! is matched by point lookups instead, so a small file never reads a
//! large location. The records found are then read in id order.

use std::collections::BTreeSet;

// foldhash rather than std's SipHash: the maps here hold a file's
// identifiers and record ids by the hundred thousand, and SipHash was
// 8% of a re-import. Its seed is random per process, so an uploader cannot
// pick identifiers that collide.
use foldhash::{HashMap, HashMapExt, HashSet};

use super::{row_place, Found};
use crate::issue::{Code, Issue, Place};
use crate::model::{gtin14, upc_key};
use crate::store::records::{self, IdKind, Record};
use crate::store::{Reader, Result};
use crate::validate::row::MAX_ATTRIBUTES;
use crate::validate::{Checked, CheckedRow};

/// The record each identifier of a row names (sku, partNumber, upc).
type Matches = [Option<i64>; 3];

const KINDS: [IdKind; 3] = [IdKind::Sku, IdKind::PartNumber, IdKind::Upc];

/// The records a location's rows name, as read from the store: what
/// [`check_named`] compares with the rows, apart from the store.
#[derive(Default)]
pub(super) struct Named {
    /// Each row's matches, by row index (empty: nothing matched).
    matches: Vec<Matches>,
    /// The records to read: (record id, row index), in record order;
    /// emptied by [`Named::read_records`].
    wanted: Vec<(i64, usize)>,
    records: Vec<Record>,
    /// (row index, index into `records`), in record order.
    rows: Vec<(usize, usize)>,
}

impl Named {
    /// Reads the records the rows name, in id order. Apart from matching,
    /// so that another thread can do it, through a connection reading the
    /// same snapshot (`store::twin`).
    pub(super) fn read_records(&mut self, store: &impl Reader) -> Result<()> {
        let wanted = std::mem::take(&mut self.wanted);
        let ids: Vec<i64> = wanted.iter().map(|w| w.0).collect();
        let mut next = 0;
        self.records.reserve(ids.len());
        records::get_sorted(store, &ids, |record| {
            // Every row that names this record (a file may repeat a product).
            while let Some(&(id, index)) = wanted.get(next) {
                if id > record.id {
                    break;
                }
                next += 1;
                if id == record.id {
                    self.rows.push((index, self.records.len()));
                }
            }
            self.records.push(record);
        })
    }
}

/// Matches the rows of one location against its records. `found[i]` gets
/// `identifier-conflict` where row `i`'s identifiers name several records;
/// `listed` every record a row names (valid or not), for full mode; the
/// records named are returned, to be read ([`Named::read_records`]) and
/// then compared with the rows ([`check_named`]). `scan` says whether range
/// scans are still worth trying at this location; it is cleared once the
/// location proves too large for them, so the later windows of a large
/// location go straight to point lookups.
pub(super) fn match_rows(
    checked: &Checked,
    rows: &[CheckedRow],
    found: &mut [Found],
    store: &impl Reader,
    location: &str,
    listed: &mut HashSet<i64>,
    scan: &mut bool,
) -> Result<Named> {
    let mut named = Named::default();
    if rows.is_empty() || !records::any_at(store, location)? {
        return Ok(named);
    }
    let scanned = match scan {
        true => scan_matches(store, location, rows)?,
        false => None,
    };
    *scan = scanned.is_some();
    let matches = match scanned {
        Some(matches) => matches,
        None => records::lookup_each(
            store,
            location,
            rows.iter()
                .map(|row| (!row.ids().is_empty()).then(|| row.ids())),
        )?,
    };
    // The rows that name one record, by record id: read in id order.
    let mut wanted: Vec<(i64, usize)> = Vec::new();
    for (index, (row, matched)) in rows.iter().zip(&matches).enumerate() {
        listed.extend(matched.iter().flatten());
        if let Some(id) = one_record(checked, row, matched, &mut found[index], location) {
            wanted.push((id, index));
        }
    }
    wanted.sort_unstable();
    named.wanted = wanted;
    named.matches = matches;
    Ok(named)
}

/// Compares each row with the record it names: `found[i]` gets row `i`'s
/// record, `identifier-conflict` / `too-many-attributes`, and whether it is
/// unchanged. No store: the records were read.
pub(super) fn check_named(
    checked: &Checked,
    rows: &[CheckedRow],
    found: &mut [Found],
    location: &str,
    named: Named,
) -> Result<()> {
    // Unread, every row would look like a new record.
    if !named.wanted.is_empty() {
        return Err(crate::store::StoreError::Corrupt {
            what: "resolve",
            detail: format!("the records named at location {location} were not read"),
        });
    }
    for &(index, record) in &named.rows {
        check_record(
            checked,
            &rows[index],
            &named.matches[index],
            &named.records[record],
            &mut found[index],
            location,
        );
    }
    Ok(())
}

/// The rows' matches from range scans of the location's three identifier
/// indexes; `None` when the location holds too many records for that to
/// pay (more than a few times the rows).
fn scan_matches(
    store: &impl Reader,
    location: &str,
    rows: &[CheckedRow],
) -> Result<Option<Vec<Matches>>> {
    let limit = rows.len() * 4 + 1000;
    let mut matches: Vec<Matches> = vec![[None; 3]; rows.len()];
    for (slot, kind) in KINDS.into_iter().enumerate() {
        // Each value → the rows that give it (a chain through `next`:
        // a file may repeat a product).
        let mut first: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
        let mut next: Vec<Option<usize>> = vec![None; rows.len()];
        for (index, row) in rows.iter().enumerate() {
            let ids = row.ids();
            let value = match kind {
                IdKind::Sku => ids.sku.as_deref(),
                IdKind::PartNumber => ids.part_number.as_deref(),
                IdKind::Upc => ids.upc.as_deref().map(upc_key),
            };
            if let Some(value) = value {
                next[index] = first.insert(value, index);
            }
        }
        if first.is_empty() {
            continue;
        }
        let complete = records::scan_ids(store, location, kind, limit, |value, id| {
            let value = if kind == IdKind::Upc {
                upc_key(value)
            } else {
                value
            };
            let mut at = first.get(value).copied();
            while let Some(index) = at {
                matches[index][slot] = Some(id);
                at = next[index];
            }
        })?;
        if !complete {
            return Ok(None);
        }
    }
    Ok(Some(matches))
}

/// The one record a valid row names, or `None`: a new record, a row with
/// errors, or `identifier-conflict` (its identifiers name several).
fn one_record(
    checked: &Checked,
    row: &CheckedRow,
    matched: &Matches,
    found: &mut Found,
    location: &str,
) -> Option<i64> {
    if !row.is_valid() || row.item.is_none() {
        return None;
    }
    let mut ids = matched.iter().flatten().copied();
    let one = ids.next();
    if ids.any(|id| Some(id) != one) {
        let detail = named(row, matched)
            .map(|(kind, value, id)| format!("{} {value} belongs to record #{id}", kind.name()))
            .collect::<Vec<_>>()
            .join(", ");
        found.errors.push(
            Issue::new(
                Code::IdentifierConflict,
                format!(
                    "the row's identifiers point at different products at location {location}: {detail}; \
                     correct the identifiers so they name one product"
                ),
            )
            .at(row_place(checked, row))
            .with_value(row.ids().describe()),
        );
        return None;
    }
    one
}

/// A row's identifiers that name a record: (kind, the row's value, record).
fn named<'a>(
    row: &'a CheckedRow,
    matched: &'a Matches,
) -> impl Iterator<Item = (IdKind, &'a str, i64)> + 'a {
    KINDS
        .into_iter()
        .zip(matched)
        .filter_map(move |(kind, id)| {
            let ids = row.ids();
            let value = match kind {
                IdKind::Sku => ids.sku.as_deref(),
                IdKind::PartNumber => ids.part_number.as_deref(),
                IdKind::Upc => ids.upc.as_deref(),
            };
            Some((kind, value?, (*id)?))
        })
}

/// What the row would do to `record`, the one record it names: an
/// identifier the record holds with another value is a conflict, too many
/// attributes after merging an error; otherwise the row resolves to it.
fn check_record(
    checked: &Checked,
    row: &CheckedRow,
    matched: &Matches,
    record: &Record,
    found: &mut Found,
    location: &str,
) {
    let Some(item) = &row.item else {
        return;
    };
    let id = record.id;
    // An identifier the record already has with another value would be
    // replaced; refuse instead of silently re-labelling a product.
    for (kind, value) in IdKind::of(&item.ids) {
        let existing = match kind {
            IdKind::Sku => record.ids.sku.as_deref(),
            IdKind::PartNumber => record.ids.part_number.as_deref(),
            IdKind::Upc => record.ids.upc.as_deref(),
        };
        let same = match (kind, existing) {
            (_, None) => true,
            (IdKind::Upc, Some(e)) => gtin14(e) == gtin14(value),
            (_, Some(e)) => e == value,
        };
        if !same {
            let Some((match_kind, match_value, _)) = named(row, matched).next() else {
                return;
            };
            found.errors.push(
                Issue::new(
                    Code::IdentifierConflict,
                    format!(
                        "{} {match_value} is record #{id} at location {location}, whose {} is {}, \
                         but the row gives {} {value}; correct the row, or the record's identifiers",
                        match_kind.name(),
                        kind.name(),
                        existing.unwrap_or_default(),
                        kind.name()
                    ),
                )
                .at(row_place(checked, row))
                .with_value(value.to_string()),
            );
            return;
        }
    }
    let mut merged: BTreeSet<&str> = record.attributes.iter().map(String::as_str).collect();
    merged.extend(item.attributes.iter().map(String::as_str));
    if merged.len() > MAX_ATTRIBUTES {
        found.errors.push(
            Issue::new(
                Code::TooManyAttributes,
                format!(
                    "the product would have {} attributes after adding this row's; at most {MAX_ATTRIBUTES} are allowed",
                    merged.len()
                ),
            )
            .at(Place {
                column: Some("attributes".into()),
                ..row_place(checked, row)
            }),
        );
        return;
    }
    found.unchanged = crate::apply::changes_nothing(record, item);
    found.record = Some(id);
}
