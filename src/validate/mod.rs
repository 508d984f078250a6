//! Validation: parsed rows → validated items and a list of issues.
//!
//! Validation is pure: it never touches the store and never fails. Rules that
//! need the store (identifier conflicts, attribute limits after merging, full
//! mode) belong to `resolve`; rules that need the whole file (duplicates, the
//! `on_error` policies) too.

pub mod header;
pub mod row;
pub mod upc;
pub mod value;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::ImportRules;
use crate::issue::{Code, Issue, Place};
use crate::model::{Field, Identifiers, Item};
use crate::parse::{self, Cell, Format, Row};
use header::{HeaderSearch, Layout};

/// One data row after validation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckedRow {
    /// Index into [`Checked::tables`].
    pub table: u16,
    pub number: u64,
    /// JSON input: the item's pointer (`/items/3`).
    pub pointer: Option<String>,
    /// Index into [`Checked::locations`]; `None` when the row has none.
    pub location: Option<u32>,
    pub manufacturer_id: Option<u32>,
    /// A rejected row's identifiers, kept because a rejected row still
    /// counts as listed in full mode; empty for a valid row, whose
    /// identifiers are in its item (see [`CheckedRow::ids`]).
    pub ids: Identifiers,
    /// The item, when the row has no errors (boxed: most of a row's size,
    /// and it moves into the plan).
    pub item: Option<Box<Item>>,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

impl CheckedRow {
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The identifiers the row carries, valid or not.
    pub fn ids(&self) -> &Identifiers {
        self.item.as_ref().map_or(&self.ids, |item| &item.ids)
    }
}

/// A table (sheet) and how its columns were read.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub sheet: Option<String>,
    pub layout: Option<Layout>,
}

/// A validated file.
#[derive(Debug, Clone)]
pub struct Checked {
    pub format: Format,
    pub tables: Vec<TableInfo>,
    /// Location names, indexed by [`CheckedRow::location`].
    pub locations: Vec<String>,
    pub rows: Vec<CheckedRow>,
    /// Set when the file is rejected as a whole.
    pub file_error: Option<Issue>,
    /// File-level warnings (encoding, unknown columns, …).
    pub warnings: Vec<Issue>,
    /// True when the location did not come from a column, so an errors CSV
    /// must carry it in a column of its own.
    pub location_outside_columns: bool,
}

/// Whether `name` is a corrected errors report dropped back in (SPEC §1).
pub fn is_errors_report(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".errors.csv")
}

/// Where validated rows go as they are checked: a `Vec` (small files,
/// tests) or the on-disk staging area (`store::stage`), so a file's rows
/// need not be held in memory.
pub trait RowSink {
    fn push(&mut self, row: CheckedRow);
    /// Drops every row pushed so far (the file is rejected as a whole).
    fn clear(&mut self);
    fn len(&self) -> u64;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl RowSink for Vec<CheckedRow> {
    fn push(&mut self, row: CheckedRow) {
        Vec::push(self, row);
    }

    fn clear(&mut self) {
        Vec::clear(self);
    }

    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
}

/// Parses and validates a whole file, its rows in [`Checked::rows`].
pub fn check(name: &str, bytes: &[u8], rules: &ImportRules) -> Checked {
    let mut rows = Vec::new();
    let mut checked = check_into(name, bytes, rules, &mut rows);
    checked.rows = rows;
    checked
}

/// Parses and validates a whole file, handing its rows to `sink` as they
/// are checked ([`Checked::rows`] stays empty).
pub fn check_into(
    name: &str,
    bytes: &[u8],
    rules: &ImportRules,
    sink: &mut dyn RowSink,
) -> Checked {
    check_input(name, parse::Input::Bytes(bytes), rules, sink)
}

/// [`check_into`] of either kind of [`parse::Input`].
pub fn check_input(
    name: &str,
    input: parse::Input<'_>,
    rules: &ImportRules,
    sink: &mut dyn RowSink,
) -> Checked {
    let mut checked = Checked {
        format: Format::Unknown,
        tables: Vec::new(),
        locations: Vec::new(),
        rows: Vec::new(),
        file_error: None,
        warnings: Vec::new(),
        location_outside_columns: false,
    };
    if input.len() > rules.max_file_bytes {
        checked.file_error = Some(Issue::new(
            Code::FileTooLarge,
            format!(
                "the file is {} bytes; the limit (import.max_file_bytes) is {}; split it into smaller files",
                input.len(),
                rules.max_file_bytes
            ),
        ));
        return checked;
    }
    let parsed = match parse::parse_input(name, input, rules) {
        Ok(parsed) => parsed,
        Err(issue) => {
            checked.format = parse::detect::detect(std::path::Path::new(name), input.head())
                .unwrap_or(Format::Unknown);
            checked.file_error = Some(issue);
            return checked;
        }
    };
    checked.format = parsed.format;
    checked.warnings = parsed.warnings;
    let file_location = location_from_name(name, rules);
    let mut location_index: HashMap<String, u32> = HashMap::new();
    let errors_report = is_errors_report(name);
    let extra_ignored: &[&str] = if errors_report { &["error"] } else { &[] };
    let mut any_header = false;
    let mut first_rows_seen: Vec<String> = Vec::new();

    for (table_index, table) in parsed.tables.into_iter().enumerate() {
        let table_no = u16::try_from(table_index).unwrap_or(u16::MAX);
        let sheet = table.sheet.clone();
        let decimal_comma = table.decimal_comma;
        let mut rows = table.rows;
        // Buffer the first rows to find the header among them.
        let mut head: Vec<Row> = Vec::new();
        let mut read_error = None;
        for next in rows.by_ref() {
            match next {
                Ok(row) => head.push(row),
                Err(issue) => {
                    read_error = Some(issue);
                    break;
                }
            }
            if head.len() >= header::HEADER_SEARCH_ROWS {
                break;
            }
        }
        let texts: Vec<Vec<String>> = head
            .iter()
            .map(|r| r.cells.iter().map(Cell::to_text).collect())
            .collect();
        let numbers: Vec<u64> = head.iter().map(|r| r.number).collect();
        if first_rows_seen.is_empty() {
            if let Some(first) = texts.first() {
                first_rows_seen = first.iter().map(|s| s.trim().to_string()).collect();
            }
        }
        let (header_index, layout) = match header::find_header(
            &texts,
            &numbers,
            sheet.as_deref(),
            &rules.columns,
            extra_ignored,
        ) {
            HeaderSearch::Found(i, layout) => (i, layout),
            HeaderSearch::Unusable(issue) => {
                checked.file_error = Some(issue);
                return checked;
            }
            // The rows could not be read as far as a header: what stopped
            // them is what the sender must fix, not a header they have.
            HeaderSearch::NotFound if read_error.is_some() => {
                checked.file_error = read_error;
                sink.clear();
                return checked;
            }
            HeaderSearch::NotFound => {
                checked.tables.push(TableInfo {
                    sheet: sheet.clone(),
                    layout: None,
                });
                if let Some(name) = &sheet {
                    checked.warnings.push(
                        Issue::new(
                            Code::NoHeader,
                            format!("sheet \"{name}\" has no header row in its first 10 rows and was skipped"),
                        )
                        .at(Place { sheet: sheet.clone(), ..Place::default() }),
                    );
                }
                continue;
            }
        };
        any_header = true;
        if let Some(issue) = missing_columns(&layout, rules, file_location.is_some()) {
            checked.file_error = Some(issue.at(Place {
                row: Some(layout.row),
                sheet: sheet.clone(),
                ..Place::default()
            }));
            return checked;
        }
        if layout.column(Field::LocationName).is_none() {
            checked.location_outside_columns = true;
        }
        checked.warnings.extend(layout.warnings.iter().cloned());
        let context = row::Context {
            layout: &layout,
            rules,
            sheet: sheet.as_deref(),
            decimal_comma,
            // Sheet name (import.location_from_sheet), then the file name,
            // then import.default_location.
            fallback_location: sheet
                .as_deref()
                .filter(|_| rules.location_from_sheet)
                .or(file_location.as_deref())
                .or(rules.default_location.as_deref()),
        };
        let mut data_rows = 0usize;
        let body = head.into_iter().skip(header_index + 1).map(Ok).chain(rows);
        for next in body {
            let row = match next {
                Ok(row) => row,
                Err(issue) => {
                    read_error = Some(issue);
                    break;
                }
            };
            if sink.len() >= rules.max_rows {
                checked.file_error = Some(Issue::new(
                    Code::TooManyRows,
                    format!(
                        "the file has more than {} rows (import.max_rows); split it into smaller files",
                        rules.max_rows
                    ),
                ));
                sink.clear();
                return checked;
            }
            data_rows += 1;
            let result = row::check_row(&context, &row);
            let location = match result.location {
                Some(name) => match location_index.get(&name) {
                    Some(&index) => Some(index),
                    // Each location is resolved, applied and committed on
                    // its own: a file naming a million (a product column
                    // taken for the location) would hold the daemon for
                    // hours.
                    None if checked.locations.len() as u64 + rules.archive_locations
                        >= rules.max_locations =>
                    {
                        checked.file_error =
                            Some(too_many_locations(rules, &row, sheet.as_deref(), &name));
                        sink.clear();
                        return checked;
                    }
                    None => {
                        let index = checked.locations.len() as u32;
                        location_index.insert(name.clone(), index);
                        checked.locations.push(name);
                        Some(index)
                    }
                },
                None => None,
            };
            sink.push(CheckedRow {
                table: table_no,
                number: row.number,
                pointer: row.pointers.as_ref().map(|p| p.item.clone()),
                location,
                manufacturer_id: result.manufacturer_id,
                ids: result.ids,
                item: result.item,
                errors: result.errors,
                warnings: result.warnings,
            });
        }
        if data_rows == 0 {
            checked.warnings.push(
                Issue::new(
                    Code::EmptySheet,
                    match &sheet {
                        Some(name) => format!("sheet \"{name}\" has a header but no data rows"),
                        None => "the file has a header but no data rows".to_string(),
                    },
                )
                .at(Place {
                    sheet: sheet.clone(),
                    ..Place::default()
                }),
            );
        }
        checked.tables.push(TableInfo {
            sheet,
            layout: Some(layout),
        });
        if let Some(issue) = read_error {
            checked.file_error = Some(issue);
            sink.clear();
            return checked;
        }
    }
    if !any_header {
        checked.file_error = Some(Issue::new(
            Code::MissingColumn,
            format!(
                "no header row found in the first 10 rows: a header names at least two known \
                 columns. The first row reads: {}. Expected {}{}",
                if first_rows_seen.is_empty() {
                    "(nothing)".to_string()
                } else {
                    first_rows_seen
                        .iter()
                        .map(|c| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                header::expected_headers(),
                header::identifier_hint(&first_rows_seen, &rules.columns)
            ),
        ));
    }
    checked
}

/// `too-many-locations`: `row` names one location more than
/// `import.max_locations` allows.
fn too_many_locations(rules: &ImportRules, row: &Row, sheet: Option<&str>, name: &str) -> Issue {
    let message = match rules.archive_locations {
        0 => format!(
            "the file names more than {} locations (import.max_locations): row {} names another, \
             '{name}'; check that the location column holds locations and not products, or split \
             the file by location, or raise import.max_locations",
            rules.max_locations, row.number
        ),
        before => format!(
            "the archive's files name more than {} locations in all (import.max_locations): the \
             files before this one name {before}, and row {} names another, '{name}'; send the \
             files in separate uploads, or raise import.max_locations",
            rules.max_locations, row.number
        ),
    };
    Issue::new(Code::TooManyLocations, message).at(Place {
        row: row.pointers.is_none().then_some(row.number),
        sheet: sheet.map(str::to_string),
        pointer: row.pointers.as_ref().map(|p| p.item.clone()),
        ..Place::default()
    })
}

/// The location named by the file name, through `import.location_from_filename`.
fn location_from_name(name: &str, rules: &ImportRules) -> Option<String> {
    let re = rules.location_from_filename.as_ref()?;
    let captures = re.captures(name)?;
    let location = captures.name("location")?.as_str().trim();
    (!location.is_empty()).then(|| location.to_string())
}

/// A file-level `missing-column` error when the header lacks quantity, every
/// identifier, or (with no other source) the location.
fn missing_columns(layout: &Layout, rules: &ImportRules, file_location: bool) -> Option<Issue> {
    let found = layout
        .names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut missing = Vec::new();
    if layout.column(Field::Quantity).is_none() {
        missing.push("quantity column (quantity, qty, on hand, qoh, available, …)");
    }
    let no_identifier = [Field::Sku, Field::PartNumber, Field::Upc]
        .iter()
        .all(|f| layout.column(*f).is_none());
    if no_identifier {
        missing.push("identifier column (sku, part number, upc, item number, …)");
    }
    let location_known = layout.column(Field::LocationName).is_some()
        || rules.default_location.is_some()
        || file_location
        || rules.location_from_sheet;
    if !location_known {
        missing.push(if rules.location_from_filename.is_some() {
            "location column (location, store, site, …); the file name does not match \
             import.location_from_filename and import.default_location is not set"
        } else {
            "location column (location, store, site, …), or import.default_location / \
             import.location_from_filename in the config"
        });
    }
    if missing.is_empty() {
        return None;
    }
    Some(Issue::new(
        Code::MissingColumn,
        format!(
            "the file has no {}. Headers found: {found}{}",
            missing.join("; no "),
            if no_identifier {
                header::identifier_hint(&layout.names, &rules.columns)
            } else {
                String::new()
            }
        ),
    ))
}

#[cfg(test)]
mod tests;
