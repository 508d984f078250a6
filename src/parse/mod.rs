//! Parsing: bytes of a dropped file → a format-neutral stream of cells with
//! their positions (sheet, row, column). Nothing here knows what a column
//! means; that is validation's job.
//!
//! Parsing never panics on input. A file that cannot be read at all is one
//! file-level [`Issue`]; everything else is rows.

pub mod container;
pub mod decode;
pub mod delimited;
pub mod detect;
pub mod json;
pub mod ods;
pub mod shared_strings;
pub mod styles;
pub mod workbook;

use std::cell::Cell as Counter;
use std::path::Path;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::config::ImportRules;
use crate::issue::{Code, Issue, Place};

/// The file formats of SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
    Xlsm,
    Xlsb,
    Xls,
    Ods,
    Json,
    /// A ZIP container before its members are looked at; a plain archive
    /// after.
    Zip,
    Unknown,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Xlsm => "xlsm",
            Format::Xlsb => "xlsb",
            Format::Xls => "xls",
            Format::Ods => "ods",
            Format::Json => "json",
            Format::Zip => "zip",
            Format::Unknown => "unknown",
        }
    }
}

/// One cell as the file holds it. Delimited text only yields `Text` and
/// `Empty`; spreadsheets add the typed variants.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A date or time cell, as the spreadsheet shows it.
    Date(String),
    /// A formula error such as `#N/A`.
    Error(String),
}

/// The most a row of a workbook may hold, its cells' text together: what a
/// CSV record may be ([`delimited::MAX_RECORD_BYTES`]). A stock row is a
/// few hundred bytes; a row of thousands of long cells would be held whole.
pub const MAX_ROW_BYTES: usize = delimited::MAX_RECORD_BYTES;

/// The most cells a sheet's rows may span, counting the empty ones before
/// each row's last cell: a cell in column XFD on every row makes each row
/// 16,384 cells wide.
pub const MAX_SHEET_SPAN: u64 = 100_000_000;

/// The most sheets a workbook may have: each is a table of its own, held
/// and opened on its own, and a stock list has a few.
pub const MAX_SHEETS: usize = 1024;

/// A workbook of more than [`MAX_SHEETS`] sheets: `count` of them, where
/// they were counted to the end.
pub fn too_many_sheets(count: Option<usize>) -> Issue {
    let count = match count {
        Some(n) => n.to_string(),
        None => format!("more than {MAX_SHEETS}"),
    };
    Issue::new(
        Code::FileTooLarge,
        format!(
            "the workbook has {count} sheets; at most {MAX_SHEETS} are read: split it into \
             several workbooks, or save the sheets as CSV files, and drop them again"
        ),
    )
}

/// A workbook row over [`MAX_ROW_BYTES`].
pub fn row_too_large(sheet: &str, row: u64) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "row {row} of sheet \"{sheet}\" holds more than {} MiB of text, far more than a \
             stock row; check the sheet around that row, save it again and drop it again",
            MAX_ROW_BYTES >> 20
        ),
    )
    .at(Place {
        row: Some(row),
        sheet: Some(sheet.to_string()),
        ..Place::default()
    })
}

/// A sheet whose rows span more than [`MAX_SHEET_SPAN`] cells.
pub fn sheet_too_wide(sheet: &str, row: u64) -> Issue {
    Issue::new(
        Code::UnreadableFile,
        format!(
            "sheet \"{sheet}\" spans more than {MAX_SHEET_SPAN} cells by row {row} (rows with a \
             cell far to the right, such as in column XFD); delete the columns right of the \
             stock list, save the sheet again and drop it again"
        ),
    )
    .at(Place {
        row: Some(row),
        sheet: Some(sheet.to_string()),
        ..Place::default()
    })
}

impl Cell {
    /// The bytes a cell's value takes: its text, or 8 for a number.
    pub fn size(&self) -> usize {
        match self {
            Cell::Text(s) | Cell::Date(s) | Cell::Error(s) => s.len(),
            Cell::Empty | Cell::Bool(_) => 1,
            Cell::Int(_) | Cell::Float(_) => 8,
        }
    }

    /// The cell as a person would type it back into a CSV.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => format_number(*f),
            Cell::Bool(true) => "TRUE".into(),
            Cell::Bool(false) => "FALSE".into(),
            Cell::Date(s) | Cell::Error(s) => s.clone(),
        }
    }

    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            // A visible ASCII first character settles it without `trim`,
            // which looks for Unicode spaces.
            Cell::Text(s) => {
                !s.as_bytes().first().is_some_and(u8::is_ascii_graphic) && s.trim().is_empty()
            }
            _ => false,
        }
    }
}

/// Formats a spreadsheet number the way a person reads it: `101` rather
/// than `101.0`, and never in scientific notation for whole numbers.
fn format_number(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e17 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// One non-empty row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based, as a spreadsheet program numbers rows (for JSON, the
    /// item's position in its `items` array, from 1).
    pub number: u64,
    pub cells: Vec<Cell>,
    /// JSON input only: where the item and each cell are in the document.
    pub pointers: Option<Pointers>,
}

/// JSON Pointers of a row that came from JSON (`/items/3`, and per cell
/// `/items/3/quantity`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pointers {
    pub item: String,
    pub cells: Vec<String>,
}

/// Whether a text cell may write its decimals after a comma (SPEC §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalComma {
    /// Only `12.5` (comma-delimited text, JSON, workbook text cells, or
    /// `csv.decimal = "."`).
    Never,
    /// `12,5` and `12.5` (a `;`- or tab-delimited file): `1,000` could be
    /// either and is refused.
    Allowed,
    /// Only `12,5`, and `1,000` is one (`csv.decimal = ","`).
    Only,
}

/// A sheet of a workbook, or the single table of a delimited file.
pub struct Table<'a> {
    pub sheet: Option<String>,
    /// How a text cell's decimals are written.
    pub decimal_comma: DecimalComma,
    pub rows: Box<dyn Iterator<Item = Result<Row, Issue>> + 'a>,
}

/// A parsed file: its format, its tables, and file-level warnings
/// (such as an encoding fallback).
pub struct Parsed<'a> {
    pub format: Format,
    pub tables: Vec<Table<'a>>,
    pub warnings: Vec<Issue>,
}

/// What a file's content is read from: bytes in memory, or (for delimited
/// text, the one format that may be as large as `import.max_file_bytes`
/// allows) the open file itself, read as it is parsed.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    Bytes(&'a [u8]),
    Text(TextFile<'a>),
}

/// A delimited text file read from its open descriptor (each pass seeks
/// back to the start), hashed and checked for UTF-8 when it was opened.
#[derive(Clone, Copy)]
pub struct TextFile<'a> {
    pub file: &'a std::fs::File,
    /// Bytes to read: the length the file had when it was hashed.
    pub len: u64,
    /// The first bytes (what format detection and the delimiter look at).
    pub head: &'a [u8],
    /// Whether the whole file (after a UTF-8 byte-order mark) is UTF-8.
    pub utf8: bool,
}

impl<'a> Input<'a> {
    /// The bytes detection looks at: all of them, or the file's head.
    pub fn head(&self) -> &'a [u8] {
        match self {
            Input::Bytes(bytes) => bytes,
            Input::Text(file) => file.head,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Input::Bytes(bytes) => bytes.len() as u64,
            Input::Text(file) => file.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses `bytes`, the content of the file called `name`. A ZIP archive
/// of stock files is not parsed here: the pipeline imports each member as a
/// file of its own ([`archive_members`]); met here, it is nested in another.
///
/// Tables are read lazily, a row at a time, and together they stop with
/// `too-many-rows` as soon as they have yielded more rows than
/// `import.max_rows` data rows and a header per table can make.
pub fn parse<'a>(name: &str, bytes: &'a [u8], rules: &ImportRules) -> Result<Parsed<'a>, Issue> {
    parse_input(name, Input::Bytes(bytes), rules)
}

/// [`parse`] of either kind of [`Input`].
pub fn parse_input<'a>(
    name: &str,
    input: Input<'a>,
    rules: &ImportRules,
) -> Result<Parsed<'a>, Issue> {
    let mut parsed = match input {
        Input::Bytes(bytes) => parse_tables(name, bytes, rules)?,
        Input::Text(file) => match detect::detect(Path::new(name), file.head)? {
            Format::Csv => delimited::parse_file(file, rules)?,
            // The pipeline streams only what reads as delimited text.
            other => {
                return Err(Issue::new(
                    Code::UnreadableFile,
                    format!("the file is {}, not delimited text", other.as_str()),
                ))
            }
        },
    };
    let allowance = (rules.max_rows)
        .saturating_add(crate::columns::HEADER_SEARCH_ROWS as u64 * parsed.tables.len() as u64);
    let seen = Rc::new(Counter::new(0u64));
    let max_rows = rules.max_rows;
    for table in &mut parsed.tables {
        let rows = std::mem::replace(&mut table.rows, Box::new(std::iter::empty()));
        table.rows = Box::new(RowLimit {
            rows,
            seen: Rc::clone(&seen),
            allowance,
            max_rows,
            stopped: false,
        });
    }
    Ok(parsed)
}

/// Stops a file's row streams once they have together yielded more than
/// `allowance` rows.
struct RowLimit<'a> {
    rows: Box<dyn Iterator<Item = Result<Row, Issue>> + 'a>,
    seen: Rc<Counter<u64>>,
    allowance: u64,
    max_rows: u64,
    stopped: bool,
}

impl Iterator for RowLimit<'_> {
    type Item = Result<Row, Issue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        let next = self.rows.next()?;
        if next.is_ok() {
            let seen = self.seen.get() + 1;
            self.seen.set(seen);
            if seen > self.allowance {
                self.stopped = true;
                return Some(Err(too_many_rows(self.max_rows)));
            }
        }
        Some(next)
    }
}

/// The `too-many-rows` file error.
pub fn too_many_rows(max_rows: u64) -> Issue {
    Issue::new(
        Code::TooManyRows,
        format!(
            "the file has more than {max_rows} rows (import.max_rows); split it into smaller files"
        ),
    )
}

fn parse_tables<'a>(name: &str, bytes: &'a [u8], rules: &ImportRules) -> Result<Parsed<'a>, Issue> {
    if bytes.is_empty() {
        return Err(Issue::new(
            Code::UnreadableFile,
            "the file is empty (0 bytes); upload it again once it is complete",
        ));
    }
    let path = Path::new(name);
    match detect::detect(path, bytes)? {
        Format::Csv => delimited::parse(bytes, rules),
        Format::Json => json::parse(bytes),
        Format::Xls => workbook::parse_xls(bytes, rules),
        Format::Zip => {
            let members = container::inspect(bytes, rules)?;
            let kind = container::kind(bytes, &members)?;
            if kind != container::Kind::Archive && members.iter().any(|m| m.encrypted) {
                return Err(Issue::new(
                    Code::UnsupportedFormat,
                    "the workbook is password-protected (encrypted); save it without a password and drop it again",
                ));
            }
            let xlsm = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("xlsm"));
            match kind {
                container::Kind::Xlsx { .. } if xlsm => {
                    workbook::parse_ooxml(bytes, &members, Format::Xlsm, false, rules)
                }
                container::Kind::Xlsx { .. } => {
                    workbook::parse_ooxml(bytes, &members, Format::Xlsx, false, rules)
                }
                container::Kind::Xlsb { .. } => {
                    workbook::parse_ooxml(bytes, &members, Format::Xlsb, true, rules)
                }
                container::Kind::Ods => ods::parse(bytes, &members, rules),
                container::Kind::OtherDocument(declared) => Err(Issue::new(
                    Code::UnsupportedFormat,
                    format!(
                        "the file is an office document of type {declared}, not a spreadsheet; \
                         export the stock list as CSV or a spreadsheet"
                    ),
                )),
                container::Kind::Archive => Err(Issue::new(
                    Code::UnsupportedFormat,
                    "a ZIP archive inside a ZIP archive is not read; zip the stock files themselves",
                )),
            }
        }
        other => Err(Issue::new(
            Code::UnsupportedFormat,
            format!("{} files are not read", other.as_str()),
        )),
    }
}

/// For a ZIP archive of stock files (not a workbook): its members, or the
/// error that rejects it as a whole. `None` for anything else.
pub fn archive_members(
    name: &str,
    bytes: &[u8],
    rules: &ImportRules,
) -> Option<Result<Vec<container::Member>, Issue>> {
    if !matches!(detect::detect(Path::new(name), bytes), Ok(Format::Zip)) {
        return None;
    }
    match container::inspect(bytes, rules) {
        Ok(members) => match container::kind(bytes, &members) {
            Ok(container::Kind::Archive) => Some(Ok(members)),
            // A workbook (or a damaged one): parsed as a file of its own.
            _ => None,
        },
        Err(issue) => Some(Err(issue)),
    }
}

#[cfg(test)]
mod tests {
    use super::Cell;

    #[test]
    fn numbers_read_without_point_zero() {
        assert_eq!(Cell::Float(101.0).to_text(), "101");
        assert_eq!(Cell::Float(36000291452.0).to_text(), "36000291452");
        assert_eq!(Cell::Float(12.5).to_text(), "12.5");
        assert_eq!(Cell::Float(1e20).to_text(), "100000000000000000000");
    }
}
