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

/// [`check_into`] of either kind of [`parse::Input`]: the file's tables
/// one after the other, each its header found, then its rows checked and
/// handed to `sink` as they are read.
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
    let mut file = FileCheck {
        rules,
        sink,
        checked,
        file_location: location_from_name(name, rules),
        extra_ignored: if is_errors_report(name) {
            &["error"]
        } else {
            &[]
        },
        location_index: HashMap::new(),
        any_header: false,
        first_row: Vec::new(),
    };
    for (index, table) in parsed.tables.into_iter().enumerate() {
        let table_no = u16::try_from(index).unwrap_or(u16::MAX);
        if let Err(stop) = file.table(table_no, table) {
            if stop.drop_rows {
                file.sink.clear();
            }
            file.checked.file_error = Some(stop.issue);
            return file.checked;
        }
    }
    if !file.any_header {
        file.checked.file_error = Some(no_header(&file.first_row, rules));
    }
    file.checked
}

/// A file being checked, a table at a time.
struct FileCheck<'a> {
    rules: &'a ImportRules,
    sink: &'a mut dyn RowSink,
    checked: Checked,
    /// The location the file's name gives (`import.location_from_filename`).
    file_location: Option<String>,
    /// Header names (normalised) skipped silently: a dropped-back errors
    /// CSV's `error` column.
    extra_ignored: &'static [&'static str],
    location_index: HashMap<String, u32>,
    any_header: bool,
    /// The first table's first row, trimmed: quoted when no table has a
    /// header.
    first_row: Vec<String>,
}

/// Why a file's check stops before its end: the error that rejects it as
/// a whole, and whether the rows checked so far are dropped (for a file
/// too large to list, or one whose rows cannot be trusted) or kept, to be
/// listed in the report as rejected with it.
struct Stop {
    issue: Issue,
    drop_rows: bool,
}

impl Stop {
    fn keeping_rows(issue: Issue) -> Stop {
        Stop {
            issue,
            drop_rows: false,
        }
    }

    fn dropping_rows(issue: Issue) -> Stop {
        Stop {
            issue,
            drop_rows: true,
        }
    }
}

impl FileCheck<'_> {
    /// One table: its header looked for in its first rows, then every row
    /// below it checked.
    fn table(&mut self, table_no: u16, table: parse::Table<'_>) -> Result<(), Stop> {
        let parse::Table {
            sheet,
            decimal_comma,
            mut rows,
        } = table;
        // The first rows are held to find the header among them.
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
            if head.len() >= crate::columns::HEADER_SEARCH_ROWS {
                break;
            }
        }
        let Some((header_index, layout)) = self.header(&head, sheet.as_deref(), &mut read_error)?
        else {
            self.checked.tables.push(TableInfo {
                sheet,
                layout: None,
            });
            return Ok(());
        };
        // Sheet name (import.location_from_sheet), then the file name,
        // then import.default_location.
        let fallback_location = sheet
            .as_deref()
            .filter(|_| self.rules.location_from_sheet)
            .or(self.file_location.as_deref())
            .or(self.rules.default_location.as_deref())
            .map(str::to_string);
        let context = row::Context {
            layout: &layout,
            rules: self.rules,
            sheet: sheet.as_deref(),
            decimal_comma,
            fallback_location: fallback_location.as_deref(),
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
            data_rows += 1;
            self.row(table_no, &context, &row)?;
        }
        if data_rows == 0 {
            self.checked.warnings.push(empty_sheet(sheet.as_deref()));
        }
        self.checked.tables.push(TableInfo {
            sheet,
            layout: Some(layout),
        });
        match read_error {
            Some(issue) => Err(Stop::dropping_rows(issue)),
            None => Ok(()),
        }
    }

    /// The header among a table's first rows and the columns it maps, or
    /// `None` for a table without one (skipped, with a warning for a
    /// sheet). `read_error` is what stopped the rows being read, if
    /// anything did.
    fn header(
        &mut self,
        head: &[Row],
        sheet: Option<&str>,
        read_error: &mut Option<Issue>,
    ) -> Result<Option<(usize, Layout)>, Stop> {
        let texts: Vec<Vec<String>> = head
            .iter()
            .map(|r| r.cells.iter().map(Cell::to_text).collect())
            .collect();
        let numbers: Vec<u64> = head.iter().map(|r| r.number).collect();
        if self.first_row.is_empty() {
            if let Some(first) = texts.first() {
                self.first_row = first.iter().map(|s| s.trim().to_string()).collect();
            }
        }
        let search = header::find_header(
            &texts,
            &numbers,
            sheet,
            &self.rules.columns,
            self.extra_ignored,
        );
        let (index, layout) = match search {
            HeaderSearch::Found(index, layout) => (index, layout),
            HeaderSearch::Unusable(issue) => return Err(Stop::keeping_rows(issue)),
            // The rows could not be read as far as a header: what stopped
            // them is what the sender must fix, not a header they have.
            HeaderSearch::NotFound => match read_error.take() {
                Some(issue) => return Err(Stop::dropping_rows(issue)),
                None => {
                    if let Some(name) = sheet {
                        self.checked.warnings.push(
                            Issue::new(
                                Code::NoHeader,
                                format!("sheet \"{name}\" has no header row in its first 10 rows and was skipped"),
                            )
                            .at(Place { sheet: Some(name.to_string()), ..Place::default() }),
                        );
                    }
                    return Ok(None);
                }
            },
        };
        self.any_header = true;
        if let Some(issue) = missing_columns(&layout, self.rules, self.file_location.is_some()) {
            return Err(Stop::keeping_rows(issue.at(Place {
                row: Some(layout.row),
                sheet: sheet.map(str::to_string),
                ..Place::default()
            })));
        }
        if layout.column(Field::LocationName).is_none() {
            self.checked.location_outside_columns = true;
        }
        self.checked
            .warnings
            .extend(layout.warnings.iter().cloned());
        Ok(Some((index, layout)))
    }

    /// One data row, checked and handed to the sink.
    fn row(&mut self, table_no: u16, context: &row::Context<'_>, row: &Row) -> Result<(), Stop> {
        let rules = self.rules;
        if self.sink.len() >= rules.max_rows {
            return Err(Stop::dropping_rows(Issue::new(
                Code::TooManyRows,
                format!(
                    "the file has more than {} rows (import.max_rows); split it into smaller files",
                    rules.max_rows
                ),
            )));
        }
        let result = row::check_row(context, row);
        let location = match result.location {
            Some(name) => Some(self.location(&name, row, context.sheet)?),
            None => None,
        };
        self.sink.push(CheckedRow {
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
        Ok(())
    }

    /// The index of the location `name`, numbered in the order the file
    /// first names them.
    fn location(&mut self, name: &str, row: &Row, sheet: Option<&str>) -> Result<u32, Stop> {
        if let Some(&index) = self.location_index.get(name) {
            return Ok(index);
        }
        let rules = self.rules;
        let locations = &mut self.checked.locations;
        // Each location is resolved, applied and committed on its own: a
        // file naming a million (a product column taken for the location)
        // would hold the daemon for hours.
        if locations.len() as u64 + rules.archive_locations >= rules.max_locations {
            return Err(Stop::dropping_rows(too_many_locations(
                rules, row, sheet, name,
            )));
        }
        let index = locations.len() as u32;
        self.location_index.insert(name.to_string(), index);
        locations.push(name.to_string());
        Ok(index)
    }
}

/// The warning for a table with a header and nothing under it.
fn empty_sheet(sheet: Option<&str>) -> Issue {
    Issue::new(
        Code::EmptySheet,
        match sheet {
            Some(name) => format!("sheet \"{name}\" has a header but no data rows"),
            None => "the file has a header but no data rows".to_string(),
        },
    )
    .at(Place {
        sheet: sheet.map(str::to_string),
        ..Place::default()
    })
}

/// `missing-column` for a file in which no table has a header, quoting
/// its first row.
fn no_header(first_row: &[String], rules: &ImportRules) -> Issue {
    Issue::new(
        Code::MissingColumn,
        format!(
            "no header row found in the first 10 rows: a header names at least two known \
             columns. The first row reads: {}. Expected {}{}",
            if first_row.is_empty() {
                "(nothing)".to_string()
            } else {
                first_row
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            header::expected_headers(),
            header::identifier_hint(first_row, &rules.columns)
        ),
    )
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
