//! What a column's header means (SPEC §3): the names a header cell may
//! carry, read the same way by the config's `[columns]`, by the delimited
//! reader choosing a delimiter, and by validation finding the header row.
//! Apart from both `parse` and `validate`, which each ask it.

use std::collections::BTreeMap;

use crate::model::Field;

/// What a configured column alias (`[columns]`) maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnTarget {
    Field(Field),
    Ignore,
}

/// How many non-empty rows the header may be preceded by, plus one.
pub const HEADER_SEARCH_ROWS: usize = 10;

/// Lower-cases and drops spaces, `_`, `-`, `.` and `#`, so "Qty On-Hand"
/// and "qty_on_hand" both read `qtyonhand`.
pub fn normalise_header(name: &str) -> String {
    let name = name.trim().trim_start_matches('\u{feff}');
    // One leading `'` marks text in a spreadsheet, on headers too.
    name.strip_prefix('\'')
        .unwrap_or(name)
        .chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '.' | '#') && !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Columns `stockdrop export` adds to the API's fields (normalised): read
/// back, they are stockdrop's own bookkeeping, skipped without a warning.
const EXPORT_COLUMNS: [&str; 2] = ["updatedat", "jobid"];

/// What one header cell means.
pub fn target(name: &str, columns: &BTreeMap<String, ColumnTarget>) -> Option<ColumnTarget> {
    let key = normalise_header(name);
    if key.is_empty() {
        return None;
    }
    columns.get(&key).copied().or_else(|| {
        Field::from_alias(&key)
            .map(ColumnTarget::Field)
            .or_else(|| {
                EXPORT_COLUMNS
                    .contains(&key.as_str())
                    .then_some(ColumnTarget::Ignore)
            })
    })
}

/// How many cells of a row name a known field: two or more make a header.
pub fn known_field_count(cells: &[String], columns: &BTreeMap<String, ColumnTarget>) -> usize {
    cells
        .iter()
        .filter(|c| matches!(target(c, columns), Some(ColumnTarget::Field(_))))
        .count()
}

#[cfg(test)]
mod tests {
    use super::normalise_header;

    #[test]
    fn normalising_ignores_case_and_punctuation() {
        assert_eq!(normalise_header(" Qty On-Hand "), "qtyonhand");
        assert_eq!(normalise_header("Store #"), "store");
        assert_eq!(normalise_header("part_no."), "partno");
        assert_eq!(normalise_header("\u{feff}SKU"), "sku");
        assert_eq!(normalise_header("'Qty"), "qty");
    }
}
