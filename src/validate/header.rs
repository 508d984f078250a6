//! Finding the header row and mapping its columns to fields (SPEC §3).

use std::collections::BTreeMap;

use crate::columns::{
    known_field_count, normalise_header, target, ColumnTarget, HEADER_SEARCH_ROWS,
};
use crate::issue::{column_letters, Code, Issue, Place};
use crate::model::Field;

/// Headers (normalised) that often hold a product's code but are no alias,
/// because just as many exports use them for a description (`Item`). A file
/// refused for want of an identifier is told how to map them.
const IDENTIFIER_LIKE: [&str; 12] = [
    "item",
    "itemnr",
    "itemnum",
    "product",
    "productnumber",
    "productno",
    "productnr",
    "article",
    "articlenr",
    "artnr",
    "artikel",
    "artikelnummer",
];

/// For a file refused for want of an identifier column: the `[columns]`
/// lines that would map the columns named like one (`"Item #" = "sku"`),
/// as a sentence to append to the message; empty when there are none.
pub fn identifier_hint(names: &[String], columns: &BTreeMap<String, ColumnTarget>) -> String {
    let lines: Vec<String> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| {
            let key = normalise_header(n);
            IDENTIFIER_LIKE.contains(&key.as_str()) && !columns.contains_key(&key)
        })
        .map(|n| format!("{} = \"sku\"", toml_key(n)))
        .collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        ". If {} holds the product's code, add under [columns] in the config: {}",
        if lines.len() == 1 {
            "that column"
        } else {
            "one of those columns"
        },
        lines.join(" or ")
    )
}

/// A header as a quoted TOML key.
fn toml_key(name: &str) -> String {
    let escaped: String = name
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// The columns of a table: which field each one feeds.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The header row's number.
    pub row: u64,
    /// The header cells as written in the file.
    pub names: Vec<String>,
    /// Column index → field.
    pub fields: BTreeMap<Field, usize>,
    /// `unknown-column` warnings.
    pub warnings: Vec<Issue>,
}

impl Layout {
    pub fn column(&self, field: Field) -> Option<usize> {
        self.fields.get(&field).copied()
    }
}

/// The result of looking for a header among a table's first rows.
pub enum HeaderSearch {
    /// Found in the row at this index of the rows searched.
    Found(usize, Layout),
    /// No row among the first ten names two known fields.
    NotFound,
    /// A header was found but cannot be used (`ambiguous-column`).
    Unusable(Issue),
}

/// Looks for the header among `rows` (the first non-empty rows of a table).
/// `extra_ignored` are normalised names skipped silently, such as the
/// `error` column of a dropped-back errors CSV.
pub fn find_header(
    rows: &[Vec<String>],
    row_numbers: &[u64],
    sheet: Option<&str>,
    columns: &BTreeMap<String, ColumnTarget>,
    extra_ignored: &[&str],
) -> HeaderSearch {
    let Some(index) = rows
        .iter()
        .take(HEADER_SEARCH_ROWS)
        .position(|cells| known_field_count(cells, columns) >= 2)
    else {
        return HeaderSearch::NotFound;
    };
    let names = &rows[index];
    let row = row_numbers.get(index).copied().unwrap_or(0);
    let mut fields: BTreeMap<Field, usize> = BTreeMap::new();
    let mut warnings = Vec::new();
    for (col, name) in names.iter().enumerate() {
        let place = Place {
            row: Some(row),
            sheet: sheet.map(str::to_string),
            cell: Some(format!("{}{row}", column_letters(col))),
            column: Some(name.trim().to_string()),
            pointer: None,
        };
        match target(name, columns) {
            Some(ColumnTarget::Field(field)) => {
                if let Some(&first) = fields.get(&field) {
                    return HeaderSearch::Unusable(
                        Issue::new(
                            Code::AmbiguousColumn,
                            format!(
                                "columns \"{}\" ({}) and \"{}\" ({}) both mean {}; remove one, \
                                 or map one to \"ignore\" under [columns] in the config",
                                names[first].trim(),
                                column_letters(first),
                                name.trim(),
                                column_letters(col),
                                field.api_name()
                            ),
                        )
                        .at(place),
                    );
                }
                fields.insert(field, col);
            }
            Some(ColumnTarget::Ignore) => {}
            None => {
                let key = normalise_header(name);
                if !key.is_empty() && !extra_ignored.contains(&key.as_str()) {
                    warnings.push(
                        Issue::new(
                            Code::UnknownColumn,
                            format!(
                                "column \"{}\" ({}) is not a known field and was ignored; \
                                 map it under [columns] in the config if it should be read",
                                name.trim(),
                                column_letters(col)
                            ),
                        )
                        .at(place),
                    );
                }
            }
        }
    }
    HeaderSearch::Found(
        index,
        Layout {
            row,
            names: names.clone(),
            fields,
            warnings,
        },
    )
}

/// The accepted headers of the fields a file must have, for messages.
pub fn expected_headers() -> String {
    "a quantity column (quantity, qty, on hand, qoh, available, …), \
     at least one identifier column (sku, part number, upc, …) \
     and a location column (location, store, site, warehouse, …) \
     unless the config supplies the location"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn header_below_a_title_is_found() {
        let rows = vec![
            strings(&["Weekly stock report", ""]),
            strings(&["Store", "SKU", "Qty On Hand", "Description"]),
            strings(&["11", "A", "5", "thing"]),
        ];
        let HeaderSearch::Found(index, layout) =
            find_header(&rows, &[1, 2, 3], None, &BTreeMap::new(), &[])
        else {
            panic!("no header");
        };
        assert_eq!(index, 1);
        assert_eq!(layout.row, 2);
        assert_eq!(layout.column(Field::Quantity), Some(2));
        assert_eq!(layout.column(Field::LocationName), Some(0));
        assert_eq!(layout.warnings.len(), 1);
        assert_eq!(layout.warnings[0].code, Code::UnknownColumn);
        assert_eq!(layout.warnings[0].place.cell.as_deref(), Some("D2"));
    }

    #[test]
    fn two_columns_for_one_field_are_ambiguous_unless_one_is_ignored() {
        let rows = vec![strings(&["sku", "On Hand", "Available"])];
        match find_header(&rows, &[1], None, &BTreeMap::new(), &[]) {
            HeaderSearch::Unusable(issue) => {
                assert_eq!(issue.code, Code::AmbiguousColumn);
                assert!(issue.message.contains("On Hand") && issue.message.contains("Available"));
            }
            _ => panic!("expected ambiguous-column"),
        }
        let mut columns = BTreeMap::new();
        columns.insert("available".to_string(), ColumnTarget::Ignore);
        assert!(matches!(
            find_header(&rows, &[1], None, &columns, &[]),
            HeaderSearch::Found(0, _)
        ));
    }

    #[test]
    fn configured_aliases_count() {
        let mut columns = BTreeMap::new();
        columns.insert(
            "stockonhand".to_string(),
            ColumnTarget::Field(Field::Quantity),
        );
        let rows = vec![strings(&["Article", "Stock On Hand", "SKU"])];
        let HeaderSearch::Found(_, layout) = find_header(&rows, &[1], None, &columns, &[]) else {
            panic!("no header");
        };
        assert_eq!(layout.column(Field::Quantity), Some(1));
    }

    #[test]
    fn item_and_product_code_names_are_skus() {
        for name in [
            "Item Number",
            "Item No.",
            "item_code",
            "Item ID",
            "Product Code",
            "ProductID",
            "Article Number",
            "Article No",
            "Art. No.",
            "Item #No",
        ] {
            let rows = vec![strings(&[name, "Qty"])];
            let HeaderSearch::Found(_, layout) =
                find_header(&rows, &[1], None, &BTreeMap::new(), &[])
            else {
                panic!("{name}: no header");
            };
            assert_eq!(layout.column(Field::Sku), Some(0), "{name}");
        }
        assert_eq!(Field::from_alias(&normalise_header("Item")), None);
    }

    #[test]
    fn export_columns_are_known() {
        let rows = vec![strings(&[
            "locationName",
            "sku",
            "quantity",
            "updated_at",
            "job_id",
        ])];
        let HeaderSearch::Found(_, layout) = find_header(&rows, &[1], None, &BTreeMap::new(), &[])
        else {
            panic!("no header");
        };
        assert!(layout.warnings.is_empty(), "{:?}", layout.warnings);
    }

    #[test]
    fn identifier_like_columns_get_the_columns_line() {
        let hint = identifier_hint(&strings(&["Store", "Item #", "On Hand"]), &BTreeMap::new());
        assert!(hint.contains(r#""Item #" = "sku""#), "{hint}");
        assert_eq!(
            identifier_hint(&strings(&["Store", "Description"]), &BTreeMap::new()),
            ""
        );
        let mut columns = BTreeMap::new();
        columns.insert("item".to_string(), ColumnTarget::Ignore);
        assert_eq!(identifier_hint(&strings(&["Item"]), &columns), "");
        let hint = identifier_hint(&strings(&["Product", "Article"]), &BTreeMap::new());
        assert!(
            hint.contains(r#""Product" = "sku" or "Article" = "sku""#),
            "{hint}"
        );
    }

    #[test]
    fn a_header_after_ten_rows_is_not_found() {
        let mut rows: Vec<Vec<String>> =
            (0..10).map(|i| strings(&[&format!("note {i}")])).collect();
        rows.push(strings(&["sku", "qty"]));
        let numbers: Vec<u64> = (1..=11).collect();
        assert!(matches!(
            find_header(&rows, &numbers, None, &BTreeMap::new(), &[]),
            HeaderSearch::NotFound
        ));
    }
}
