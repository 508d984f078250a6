//! An adjust file's rows at one location (SPEC §1.1): stale files,
//! unknown products, one product's rows added up, and the count
//! checked against what the store holds.

use foldhash::{HashMap, HashMapExt};

use super::duplicates::row_list;
use super::{row_place, Found};
use crate::adjust;
use crate::config::{BelowZero, ImportRules};
use crate::issue::{Code, Issue, Place};
use crate::store::queries;
use crate::store::records::{self};
use crate::store::{Reader, Result};
use crate::validate::value::MAX_INT;
use crate::validate::{Checked, CheckedRow};

/// An adjust file's rows at one location (SPEC §1.1): `stale-update`
/// when a later refresh already counted them, `unknown-item` for a product
/// the location does not hold, and the rows of one product added up into
/// the first of them (the others superseded), checked against the current
/// count for `negative-stock` / `clamped-to-zero`.
pub(super) fn adjust_rows(
    checked: &Checked,
    rows: &mut [CheckedRow],
    found: &mut [Found],
    store: &impl Reader,
    rules: &ImportRules,
    location: &str,
    update_stamp: Option<u64>,
) -> Result<()> {
    let usable = |rows: &[CheckedRow], found: &[Found], i: usize| {
        rows[i].is_valid() && found[i].errors.is_empty() && rows[i].item.is_some()
    };
    if let Some(stamp) = update_stamp {
        if let Some(file) = queries::last_refresh_file(store, location)? {
            if adjust::refresh_stamp(&file).is_some_and(|refreshed| refreshed > stamp) {
                for i in 0..rows.len() {
                    if usable(rows, found, i) {
                        found[i].errors.push(
                            Issue::new(
                                Code::StaleUpdate,
                                format!(
                                    "location {location} was last refreshed from {file}, which is later \
                                     than this update; the refresh already counted these movements, so \
                                     the row was not applied"
                                ),
                            )
                            .at(row_place(checked, &rows[i])),
                        );
                    }
                }
                return Ok(());
            }
        }
    }
    // Record → the rows that change it, in file order.
    let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<i64, usize> = HashMap::new();
    for i in 0..rows.len() {
        if !usable(rows, found, i) {
            continue;
        }
        match found[i].record {
            Some(record) => {
                let group = *group_of.entry(record).or_insert_with(|| {
                    groups.push((record, Vec::new()));
                    groups.len() - 1
                });
                groups[group].1.push(i);
            }
            None => {
                let describe = rows[i].ids().describe();
                found[i].errors.push(
                    Issue::new(
                        Code::UnknownItem,
                        format!(
                            "location {location} holds no product with {describe}, so there is nothing \
                             to adjust; send the product in a refresh file first, or correct the identifiers"
                        ),
                    )
                    .at(row_place(checked, &rows[i]))
                    .with_value(describe),
                );
            }
        }
    }
    for (record, members) in groups {
        let current = records::get(store, record)?.map_or(0, |r| r.quantity);
        let change: i64 = members
            .iter()
            .filter_map(|&i| rows[i].item.as_ref().map(|item| item.quantity))
            .sum();
        let result = current + change;
        let what = format!(
            "the product has {current} in stock at location {location}; this file changes it by {change:+} \
             ({}), which would leave {result}",
            row_list(members.iter().map(|&i| rows[i].number), members.len())
        );
        let error = if result < 0 && rules.adjust_below_zero == BelowZero::Reject {
            Some(Issue::new(
                Code::NegativeStock,
                format!(
                    "{what}; correct the change, or set import.adjust_below_zero = \"clamp\" to stop at 0"
                ),
            ))
        } else if result > MAX_INT {
            Some(Issue::new(
                Code::OutOfRange,
                format!("{what}; a count is at most {MAX_INT}"),
            ))
        } else {
            None
        };
        if let Some(error) = error {
            for &i in &members {
                let issue = error
                    .clone()
                    .at(Place {
                        column: Some("quantity".into()),
                        ..row_place(checked, &rows[i])
                    })
                    .with_value(change.to_string());
                found[i].errors.push(issue);
            }
            continue;
        }
        let first = members[0];
        if result < 0 {
            found[first].warnings.push(
                Issue::new(
                    Code::ClampedToZero,
                    format!(
                        "{what}; it is set to 0 instead (import.adjust_below_zero = \"clamp\")"
                    ),
                )
                .at(row_place(checked, &rows[first])),
            );
        }
        // The rows add up into the first: the summed change, the later
        // rows' other fields over the earlier ones', attributes merged.
        for &later in &members[1..] {
            found[later].superseded = true;
            let Some(item) = rows[later].item.take() else {
                continue;
            };
            if let Some(sum) = rows[first].item.as_mut() {
                sum.optionals.take_given(&item.optionals);
                for attribute in &item.attributes {
                    if !sum.attributes.contains(attribute) {
                        sum.attributes.push(attribute.clone());
                    }
                }
            }
        }
        if let Some(sum) = rows[first].item.as_mut() {
            sum.quantity = change;
        }
    }
    Ok(())
}
