//! Rows of one location that name one product (`duplicate-item`):
//! found by sorting their keys, and reported under the `duplicates` policy.

use super::{row_place, Found};
use crate::config::Duplicates;
use crate::issue::{first_five, Code, Issue, Place};
use crate::model::upc_key;
use crate::store::records::IdKind;
use crate::validate::{Checked, CheckedRow};

/// `row 7`, `rows 7, 9`, `rows 7, 9, 12, 15, 20 and 4995 more`: five rows
/// named and the rest counted. Every member of a group gets the message,
/// so naming them all would grow with the square of the group (a file
/// repeating one product 5,000 times made a 146 MB report).
pub(super) fn row_list(numbers: impl Iterator<Item = u64>, count: usize) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!(
        "row{plural} {}",
        first_five(numbers.map(|n| n.to_string()), count)
    )
}

/// The `duplicate-item` finding of `subject`, one of two rows that name one
/// product: `earlier` and `later` in file order. Under `last-wins` it is
/// the earlier row's warning; under `reject`, either row's error.
pub(super) fn duplicate_issue(
    checked: &Checked,
    policy: Duplicates,
    earlier: &CheckedRow,
    later: &CheckedRow,
    subject: &CheckedRow,
) -> Issue {
    let describe = later.ids().describe();
    // Rows of different sheets (or items of different bodies) are named
    // with where they are: "rows 2 and 2" would say nothing.
    let (a, b) = if earlier.table == later.table {
        (earlier.number.to_string(), later.number.to_string())
    } else {
        let name = |row: &CheckedRow| match row_place(checked, row) {
            Place {
                sheet: Some(sheet), ..
            } => format!("{} of sheet \"{sheet}\"", row.number),
            place => place.human().trim_start_matches("row ").to_string(),
        };
        (name(earlier), name(later))
    };
    let message = match policy {
        Duplicates::LastWins => {
            format!("row {a} names the same product as row {b} ({describe}); the later row wins")
        }
        Duplicates::Reject => format!(
            "rows {a} and {b} name the same product ({describe}); keep one row per product and location"
        ),
    };
    Issue::new(Code::DuplicateItem, message).at(row_place(checked, subject))
}

/// `duplicate-item`: two valid rows of one location that share an
/// identifier or resolve to the same record.
pub(super) fn find_duplicates(
    checked: &Checked,
    rows: &[CheckedRow],
    found: &mut [Found],
    policy: Duplicates,
) {
    // Each row against the latest earlier row it shares a key with, in
    // file order (a row with several gets them in order of those rows).
    for (index, other) in duplicate_pairs(rows, found) {
        let row = &rows[index];
        let issue = |subject| duplicate_issue(checked, policy, &rows[other], row, subject);
        match policy {
            Duplicates::LastWins => {
                if !found[other].superseded {
                    found[other].superseded = true;
                    found[other].warnings.push(issue(&rows[other]));
                }
            }
            Duplicates::Reject => {
                let has_duplicate_error =
                    |f: &Found| f.errors.iter().any(|e| e.code == Code::DuplicateItem);
                if !has_duplicate_error(&found[other]) {
                    found[other].errors.push(issue(&rows[other]));
                }
                if !has_duplicate_error(&found[index]) {
                    found[index].errors.push(issue(row));
                }
            }
        }
    }
}

/// What two rows of a location may share: an identifier (a UPC as
/// [`upc_key`]) or the record they resolved to.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum DuplicateKey<'a> {
    Id(IdKind, &'a str),
    Record(i64),
}

/// A row's keys, each in its own slot (sku, partNumber, UPC, record).
pub(super) fn duplicate_keys<'a>(
    row: &'a CheckedRow,
    found: &Found,
) -> [Option<DuplicateKey<'a>>; KEY_SLOTS] {
    let ids = row.ids();
    [
        ids.sku.as_deref().map(|v| DuplicateKey::Id(IdKind::Sku, v)),
        ids.part_number
            .as_deref()
            .map(|v| DuplicateKey::Id(IdKind::PartNumber, v)),
        ids.upc
            .as_deref()
            .map(|v| DuplicateKey::Id(IdKind::Upc, upc_key(v))),
        found.record.map(DuplicateKey::Record),
    ]
}

pub(super) const KEY_SLOTS: usize = 4;

/// Every (row, earlier row) of a location where the earlier one is the
/// latest valid row before it to share one of its keys, in file order of
/// the row and then of the earlier row, each pair once. Rows with errors
/// take no part.
///
/// Found by sorting the keys' hashes rather than in a map from each key to
/// its latest row: a location of 100,000 rows made maps of 16 MB, larger
/// than the CPU's cache, and a probe per key cost a miss (a third of a
/// 5M-row file's resolve). Sorted, equal keys lie side by side, and a
/// hash shared by different keys (seeded per process, so no file can aim
/// for it) is told apart by comparing the keys themselves.
pub(super) fn duplicate_pairs(rows: &[CheckedRow], found: &[Found]) -> Vec<(usize, usize)> {
    use std::hash::BuildHasher;
    let hasher = foldhash::fast::RandomState::default();
    duplicate_pairs_by(rows, found, |key| hasher.hash_one(key))
}

/// [`duplicate_pairs`] with the keys hashed by `hash`.
pub(super) fn duplicate_pairs_by(
    rows: &[CheckedRow],
    found: &[Found],
    hash: impl Fn(&DuplicateKey<'_>) -> u64,
) -> Vec<(usize, usize)> {
    let eligible = |i: usize| rows[i].is_valid() && found[i].errors.is_empty();
    // (hash, row * KEY_SLOTS + slot): sorted, a key's rows in file order.
    let mut keyed: Vec<(u64, usize)> = Vec::with_capacity(rows.len() * KEY_SLOTS);
    for index in (0..rows.len()).filter(|&i| eligible(i)) {
        for (slot, key) in duplicate_keys(&rows[index], &found[index])
            .iter()
            .enumerate()
        {
            if let Some(key) = key {
                keyed.push((hash(key), index * KEY_SLOTS + slot));
            }
        }
    }
    keyed.sort_unstable();
    let key_at = |code: usize| {
        duplicate_keys(&rows[code / KEY_SLOTS], &found[code / KEY_SLOTS])[code % KEY_SLOTS]
    };
    let mut pairs = Vec::new();
    for run in keyed.chunk_by(|a, b| a.0 == b.0) {
        for (j, &(_, later)) in run.iter().enumerate().skip(1) {
            let key = key_at(later);
            // The nearest earlier entry of the same key: the one before it,
            // unless the hash is shared by another key.
            if let Some(&(_, earlier)) = run[..j].iter().rev().find(|&&(_, e)| key_at(e) == key) {
                pairs.push((later / KEY_SLOTS, earlier / KEY_SLOTS));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identifiers;
    use foldhash::{HashMap, HashMapExt};

    fn row(number: u64, sku: &str, part: &str, upc: &str) -> CheckedRow {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        CheckedRow {
            table: 0,
            number,
            pointer: None,
            location: Some(0),
            manufacturer_id: None,
            ids: Identifiers {
                sku: some(sku),
                part_number: some(part),
                upc: some(upc),
            },
            item: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// What a map from each key to its latest row finds: the definition
    /// `duplicate_pairs` keeps.
    fn by_map(rows: &[CheckedRow], found: &[Found]) -> Vec<(usize, usize)> {
        let mut latest: HashMap<DuplicateKey<'_>, usize> = HashMap::new();
        let mut pairs = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            if !row.is_valid() || !found[index].errors.is_empty() {
                continue;
            }
            let mut earlier: Vec<usize> = duplicate_keys(row, &found[index])
                .into_iter()
                .flatten()
                .filter_map(|key| latest.insert(key, index))
                .collect();
            earlier.sort_unstable();
            earlier.dedup();
            pairs.extend(earlier.into_iter().map(|other| (index, other)));
        }
        pairs
    }

    fn sample() -> (Vec<CheckedRow>, Vec<Found>) {
        let mut rows = vec![
            row(2, "A", "P1", "036000291452"),
            row(3, "B", "P2", ""),
            // The same UPC written with its leading zero dropped, and
            // partNumber P1 again: two keys, one earlier row.
            row(4, "C", "P1", "36000291452"),
            row(5, "B", "", ""),
            // A value shared across kinds is no duplicate.
            row(6, "P2", "B", ""),
            row(7, "D", "", ""),
            row(8, "E", "", ""),
            // Rows 3 and 5's sku, and row 7's record.
            row(9, "B", "", ""),
            row(10, "F", "", ""),
            // An invalid row takes no part, nor does one with a finding.
            row(11, "A", "", ""),
            row(12, "A", "", ""),
        ];
        rows[9].errors.push(Issue::new(Code::NotAnInteger, "bad"));
        let mut found = vec![Found::default(); rows.len()];
        found[5].record = Some(40);
        found[7].record = Some(40);
        found[8].record = Some(40);
        found[10]
            .errors
            .push(Issue::new(Code::DuplicateItem, "seen"));
        (rows, found)
    }

    #[test]
    fn each_row_meets_the_latest_earlier_row_of_each_key() {
        let (rows, found) = sample();
        let pairs = duplicate_pairs(&rows, &found);
        assert_eq!(pairs, vec![(2, 0), (3, 1), (7, 3), (7, 5), (8, 7)]);
        assert_eq!(pairs, by_map(&rows, &found));
    }

    #[test]
    fn keys_of_one_hash_are_told_apart_by_their_values() {
        // Every key hashed alike: the sort puts them all in one run, and
        // only comparing the keys finds the pairs.
        let (rows, found) = sample();
        assert_eq!(
            duplicate_pairs_by(&rows, &found, |_| 7),
            by_map(&rows, &found)
        );
        let two = |key: &DuplicateKey<'_>| match key {
            DuplicateKey::Id(_, v) => v.len() as u64 % 2,
            DuplicateKey::Record(r) => *r as u64 % 2,
        };
        assert_eq!(
            duplicate_pairs_by(&rows, &found, two),
            by_map(&rows, &found)
        );
    }

    #[test]
    fn many_rows_of_repeated_keys_agree_with_the_map() {
        let rows: Vec<CheckedRow> = (0..5_000u64)
            .map(|n| {
                let sku = format!("S{}", (n * 7919) % 613);
                let part = format!("P{}", (n * 104_729) % 1_201);
                let upc = if n % 3 == 0 {
                    format!("{:012}", n % 97)
                } else {
                    String::new()
                };
                row(n + 2, &sku, &part, &upc)
            })
            .collect();
        let mut found = vec![Found::default(); rows.len()];
        for (n, f) in found.iter_mut().enumerate() {
            if n % 5 == 0 {
                f.record = Some((n % 211) as i64);
            }
        }
        let pairs = duplicate_pairs(&rows, &found);
        assert!(pairs.len() > 4_000);
        assert_eq!(pairs, by_map(&rows, &found));
        assert_eq!(duplicate_pairs_by(&rows, &found, |_| 1), pairs);
    }
}
