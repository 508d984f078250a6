//! Resolving: validated rows + the store → the [`Plan`].
//!
//! This is where the rules that need the store or the whole file are decided
//! (SPEC §1, §4): which record each item is, identifier conflicts, duplicate
//! items, attributes after merging, the `on_error` policies, full-mode
//! zeroing and its guard, and the split into jobs of at most
//! `items_per_job`. It only reads the store.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::config::{Duplicates, ImportRules, OnError, RefreshMode};
use crate::issue::{Code, Issue, Place};
use crate::model::gtin14;
use crate::plan::{Draft, JobPlan, LeftOutRow, Plan, PlannedItem, PlannedJob};
use crate::store::records::{self, IdKind};
use crate::store::{Reader, Result};
use crate::validate::row::MAX_ATTRIBUTES;
use crate::validate::{is_errors_report, Checked, CheckedRow};

/// Per-row findings of this step, beside the row's own validation result.
#[derive(Default, Clone)]
struct Found {
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
    record: Option<i64>,
    /// Replaced by a later row (`duplicates = "last-wins"`).
    superseded: bool,
    /// Valid, but its location or the file was rejected.
    not_applied: Option<String>,
}

fn row_place(checked: &Checked, row: &CheckedRow) -> Place {
    if let Some(pointer) = &row.pointer {
        return Place {
            pointer: Some(pointer.clone()),
            ..Place::default()
        };
    }
    Place {
        row: Some(row.number),
        sheet: checked
            .tables
            .get(usize::from(row.table))
            .and_then(|t| t.sheet.clone()),
        ..Place::default()
    }
}

/// Builds the plan for `checked`, reading the store through `store`. The
/// valid rows' items move into the plan's jobs (a file's items are held
/// once, not twice).
pub fn plan(
    checked: &mut Checked,
    store: &impl Reader,
    rules: &ImportRules,
    file_name: &str,
) -> Result<Plan> {
    let mode = if is_errors_report(file_name) {
        RefreshMode::Delta
    } else {
        rules.refresh_mode
    };
    let mut found: Vec<Found> = vec![Found::default(); checked.rows.len()];
    let mut by_location: Vec<Vec<usize>> = vec![Vec::new(); checked.locations.len()];
    for (index, row) in checked.rows.iter().enumerate() {
        if let Some(location) = row.location {
            by_location[location as usize].push(index);
        }
    }

    // Records each location's rows name (valid or not), for full mode.
    let mut listed: Vec<HashSet<i64>> = vec![HashSet::new(); checked.locations.len()];
    for (location_index, rows) in by_location.iter().enumerate() {
        let location = &checked.locations[location_index];
        let empty = records::count_at(store, location)? == 0;
        for &index in rows {
            let row = &checked.rows[index];
            if !empty {
                resolve_row(
                    checked,
                    row,
                    &mut found[index],
                    store,
                    location,
                    &mut listed[location_index],
                )?;
            }
        }
        find_duplicates(checked, rows, &mut found, rules.duplicates);
    }

    // The on_error policies.
    let errored: Vec<bool> = (0..checked.rows.len())
        .map(|i| !checked.rows[i].errors.is_empty() || !found[i].errors.is_empty())
        .collect();
    let has_error = |i: usize| errored[i];
    let mut rejected_locations: Vec<Option<String>> = vec![None; checked.locations.len()];
    let mut location_errors: Vec<Issue> = Vec::new();
    let any_row_error = (0..checked.rows.len()).any(has_error);
    let mut file_rejected =
        checked.file_error.is_some() || (rules.on_error == OnError::RejectFile && any_row_error);
    if rules.on_error == OnError::RejectLocation {
        for (location_index, rows) in by_location.iter().enumerate() {
            if let Some(&bad) = rows.iter().find(|&&i| has_error(i)) {
                rejected_locations[location_index] = Some(format!(
                    "location {} was rejected because row {} has errors (import.on_error = reject-location)",
                    checked.locations[location_index], checked.rows[bad].number
                ));
            }
        }
    }

    // Full mode: zero what the file does not list, unless that is too much.
    let mut zero_lists: Vec<Vec<i64>> = vec![Vec::new(); checked.locations.len()];
    if mode == RefreshMode::Full && !file_rejected {
        for (location_index, location) in checked.locations.iter().enumerate() {
            if rejected_locations[location_index].is_some() {
                continue;
            }
            // A location outside import.locations is never changed: its
            // rows are `unknown-location`, and nothing there is zeroed.
            if let Some(allowed) = &rules.locations {
                if !allowed.contains(location) {
                    continue;
                }
            }
            let nonzero = records::nonzero_at(store, location)?;
            let zero: Vec<i64> = nonzero
                .iter()
                .copied()
                .filter(|id| !listed[location_index].contains(id))
                .collect();
            if zero.is_empty() {
                continue;
            }
            let pct = zero.len() as f64 * 100.0 / nonzero.len() as f64;
            if pct > rules.full_max_zero_pct {
                location_errors.push(
                    Issue::new(
                        Code::TooManyZeroed,
                        format!(
                            "location {location}: the file does not list {} of the {} products in stock there \
                             ({pct:.0}%), and full mode would set them all to 0; the limit \
                             (import.full_max_zero_pct) is {}%. Is the file complete? Send the whole \
                             stock list, or use delta mode",
                            zero.len(),
                            nonzero.len(),
                            rules.full_max_zero_pct
                        ),
                    )
                    .with_value(location.clone()),
                );
                rejected_locations[location_index] = Some(format!(
                    "location {location} was rejected: the file would set {} products in stock to 0 (too-many-zeroed)",
                    zero.len()
                ));
                if rules.on_error == OnError::RejectFile {
                    file_rejected = true;
                }
            } else {
                zero_lists[location_index] = zero;
            }
        }
    }
    let file_reason = if checked.file_error.is_some() {
        "the file was rejected as a whole".to_string()
    } else if !location_errors.is_empty() && rules.on_error == OnError::RejectFile {
        "the file was rejected because a location failed the full-mode check (import.on_error = reject-file)"
            .to_string()
    } else {
        "the file was rejected because some rows have errors (import.on_error = reject-file)"
            .to_string()
    };

    // Mark valid rows left out by a rejected location or file.
    for (index, row) in checked.rows.iter().enumerate() {
        if has_error(index) {
            continue;
        }
        let location_reason = row
            .location
            .and_then(|l| rejected_locations[l as usize].clone());
        if file_rejected {
            found[index].not_applied = Some(file_reason.clone());
        } else if let Some(reason) = location_reason {
            found[index].not_applied = Some(reason);
        }
    }

    // Jobs: per location and manufacturer, in file order, at most
    // items_per_job items each.
    let mut jobs: Vec<PlannedJob> = Vec::new();
    for (location_index, rows) in by_location.iter().enumerate() {
        let location = checked.locations[location_index].clone();
        let rejected = file_rejected || rejected_locations[location_index].is_some();
        let mut groups: Vec<(Option<u32>, Vec<PlannedItem>)> = Vec::new();
        for &index in rows {
            let row = &mut checked.rows[index];
            if has_error(index) || found[index].superseded {
                continue;
            }
            let Some(item) = row.item.take() else {
                continue;
            };
            let planned = PlannedItem {
                row: row.number,
                record: found[index].record,
                item: *item,
            };
            match groups.iter_mut().find(|(m, _)| *m == row.manufacturer_id) {
                Some((_, items)) => items.push(planned),
                None => groups.push((row.manufacturer_id, vec![planned])),
            }
        }
        let first_job = jobs.len();
        for (manufacturer_id, items) in groups {
            let mut items = items.into_iter().peekable();
            while items.peek().is_some() {
                let chunk: Vec<PlannedItem> = items.by_ref().take(rules.items_per_job).collect();
                jobs.push(PlannedJob {
                    location: location.clone(),
                    manufacturer_id,
                    rejected,
                    plan: JobPlan {
                        items: chunk,
                        zero: Vec::new(),
                    },
                });
            }
        }
        let zero = std::mem::take(&mut zero_lists[location_index]);
        if !rejected && !zero.is_empty() {
            // The zeroing rides on the location's last job, or on a job of
            // its own when every row of the location was rejected: those
            // rows still count as listed, the rest is still not in stock.
            if jobs.len() == first_job {
                jobs.push(PlannedJob {
                    location: location.clone(),
                    manufacturer_id: rules.manufacturer_id,
                    rejected: false,
                    plan: JobPlan::default(),
                });
            }
            if let Some(last) = jobs.last_mut() {
                last.plan.zero = zero;
            }
        }
    }

    // The report's draft: counts, errors in file order, warnings.
    let max = rules.max_errors;
    let mut draft = Draft::default();
    if let Some(issue) = &checked.file_error {
        draft.push_error(issue.clone(), max);
    }
    for issue in location_errors {
        draft.push_error(issue, max);
    }
    for issue in &checked.warnings {
        draft.push_warning(issue.clone(), max);
    }
    let mut left_out = Vec::new();
    for (index, row) in checked.rows.iter().enumerate() {
        let f = &found[index];
        let mut messages: Vec<String> = Vec::new();
        for issue in row.errors.iter().chain(&f.errors) {
            messages.push(issue.message.clone());
            draft.push_error(issue.clone(), max);
        }
        if let Some(reason) = &f.not_applied {
            messages.push(format!("not applied: {reason}"));
            draft.push_error(
                Issue::new(
                    Code::NotApplied,
                    format!("the row is valid but was not applied: {reason}"),
                )
                .at(row_place(checked, row)),
                max,
            );
        }
        for issue in row.warnings.iter().chain(&f.warnings) {
            draft.push_warning(issue.clone(), max);
        }
        if !messages.is_empty() {
            left_out.push(LeftOutRow {
                table: row.table,
                number: row.number,
                location: row.location.map(|l| checked.locations[l as usize].clone()),
                error: messages.join("; "),
            });
        }
    }
    draft.rows_total = checked.rows.len() as u64;
    draft.rows_rejected = left_out.len() as u64;
    draft.rows_accepted = draft.rows_total - draft.rows_rejected;
    draft.errors_csv_location = checked.location_outside_columns;
    draft.errors_csv_header = errors_csv_header(checked, &left_out);
    draft.errors_csv_sheets = left_out.iter().any(|r| r.table != left_out[0].table);

    Ok(Plan {
        mode,
        jobs,
        draft,
        locations: checked.locations.clone(),
        left_out,
    })
}

/// The errors CSV's columns: the header of the table the left-out rows
/// come from; when they come from several sheets, `sheet` and then every
/// column name of those sheets, in first-seen order.
pub fn errors_csv_header(checked: &Checked, left_out: &[LeftOutRow]) -> Vec<String> {
    let names = |table: u16| -> Vec<String> {
        checked
            .tables
            .get(usize::from(table))
            .and_then(|t| t.layout.as_ref())
            .map(|l| l.names.iter().map(|n| n.trim().to_string()).collect())
            .unwrap_or_default()
    };
    let tables: BTreeSet<u16> = left_out.iter().map(|r| r.table).collect();
    if tables.len() <= 1 {
        return tables.first().map(|&t| names(t)).unwrap_or_default();
    }
    let mut header = vec!["sheet".to_string()];
    for table in tables {
        for name in names(table) {
            if !name.is_empty() && !header.contains(&name) {
                header.push(name);
            }
        }
    }
    header
}

/// Matches a row's identifiers to the location's records. For a valid row
/// this decides its record or an `identifier-conflict`; for any row, the
/// records it names count as listed in full mode.
fn resolve_row(
    checked: &Checked,
    row: &CheckedRow,
    found: &mut Found,
    store: &impl Reader,
    location: &str,
    listed: &mut HashSet<i64>,
) -> Result<()> {
    let mut matches: Vec<(IdKind, &str, i64)> = Vec::new();
    for (kind, value) in IdKind::of(row.ids()) {
        if let Some(id) = records::find(store, location, kind, value)? {
            matches.push((kind, value, id));
            listed.insert(id);
        }
    }
    if !row.is_valid() {
        return Ok(());
    }
    let Some(item) = &row.item else {
        return Ok(());
    };
    let distinct: BTreeSet<i64> = matches.iter().map(|m| m.2).collect();
    if distinct.len() > 1 {
        let detail = matches
            .iter()
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
        return Ok(());
    }
    let Some(&id) = distinct.iter().next() else {
        return Ok(()); // A new record.
    };
    let Some(record) = records::get(store, id)? else {
        return Ok(());
    };
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
            let (match_kind, match_value, _) = matches[0];
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
            return Ok(());
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
        return Ok(());
    }
    found.record = Some(id);
    Ok(())
}

/// `duplicate-item`: two valid rows of one location that share an
/// identifier or resolve to the same record.
fn find_duplicates(checked: &Checked, rows: &[usize], found: &mut [Found], policy: Duplicates) {
    // (kind, value) and record id → the latest row that claimed it.
    let mut owners: HashMap<(IdKind, String), usize> = HashMap::new();
    let mut record_owner: HashMap<i64, usize> = HashMap::new();
    for &index in rows {
        let row = &checked.rows[index];
        if !row.is_valid() || !found[index].errors.is_empty() {
            continue;
        }
        let mut earlier: BTreeSet<usize> = BTreeSet::new();
        let keys: Vec<(IdKind, String)> = IdKind::of(row.ids())
            .map(|(kind, value)| {
                let key = if kind == IdKind::Upc {
                    gtin14(value)
                } else {
                    value.to_string()
                };
                (kind, key)
            })
            .collect();
        for key in &keys {
            if let Some(&other) = owners.get(key) {
                earlier.insert(other);
            }
        }
        if let Some(record) = found[index].record {
            if let Some(&other) = record_owner.get(&record) {
                earlier.insert(other);
            }
        }
        for &other in &earlier {
            let other_number = checked.rows[other].number;
            let describe = row.ids().describe();
            match policy {
                Duplicates::LastWins => {
                    if !found[other].superseded {
                        found[other].superseded = true;
                        found[other].warnings.push(
                            Issue::new(
                                Code::DuplicateItem,
                                format!(
                                    "row {other_number} names the same product as row {} ({describe}); \
                                     the later row wins",
                                    row.number
                                ),
                            )
                            .at(row_place(checked, &checked.rows[other])),
                        );
                    }
                }
                Duplicates::Reject => {
                    let message = |a: u64, b: u64| {
                        format!(
                            "rows {a} and {b} name the same product ({describe}); keep one row per product \
                             and location"
                        )
                    };
                    if !found[other]
                        .errors
                        .iter()
                        .any(|e| e.code == Code::DuplicateItem)
                    {
                        let issue =
                            Issue::new(Code::DuplicateItem, message(other_number, row.number))
                                .at(row_place(checked, &checked.rows[other]));
                        found[other].errors.push(issue);
                    }
                    if !found[index]
                        .errors
                        .iter()
                        .any(|e| e.code == Code::DuplicateItem)
                    {
                        let issue =
                            Issue::new(Code::DuplicateItem, message(other_number, row.number))
                                .at(row_place(checked, row));
                        found[index].errors.push(issue);
                    }
                }
            }
        }
        for key in keys {
            owners.insert(key, index);
        }
        if let Some(record) = found[index].record {
            record_owner.insert(record, index);
        }
    }
}
