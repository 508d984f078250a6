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
pub mod workbook;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::ImportRules;
use crate::issue::{Code, Issue};

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

impl Cell {
    /// The cell as a person would type it back into a CSV.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => crate::validate::value::format_number(*f),
            Cell::Bool(true) => "TRUE".into(),
            Cell::Bool(false) => "FALSE".into(),
            Cell::Date(s) | Cell::Error(s) => s.clone(),
        }
    }

    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => s.trim().is_empty(),
            _ => false,
        }
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

/// A sheet of a workbook, or the single table of a delimited file.
pub struct Table<'a> {
    pub sheet: Option<String>,
    /// `12,5` is a number (a `;`-delimited file, SPEC §4.2).
    pub decimal_comma: bool,
    pub rows: Box<dyn Iterator<Item = Result<Row, Issue>> + 'a>,
}

/// A parsed file: its format, its tables, and file-level warnings
/// (such as an encoding fallback).
pub struct Parsed<'a> {
    pub format: Format,
    pub tables: Vec<Table<'a>>,
    pub warnings: Vec<Issue>,
}

/// Parses `bytes`, the content of the file called `name`. A ZIP archive
/// of stock files is not parsed here: the pipeline imports each member as a
/// file of its own ([`archive_members`]); met here, it is nested in another.
pub fn parse<'a>(name: &str, bytes: &'a [u8], rules: &ImportRules) -> Result<Parsed<'a>, Issue> {
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
        Format::Xls => workbook::parse(bytes, Format::Xls, rules),
        Format::Zip => {
            let members = container::inspect(bytes, rules)?;
            let workbook = container::kind(&members) != container::Kind::Archive;
            if workbook && members.iter().any(|m| m.encrypted) {
                return Err(Issue::new(
                    Code::UnsupportedFormat,
                    "the workbook is password-protected (encrypted); save it without a password and drop it again",
                ));
            }
            let xlsm = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("xlsm"));
            match container::kind(&members) {
                container::Kind::Xlsx if xlsm => workbook::parse(bytes, Format::Xlsm, rules),
                container::Kind::Xlsx => workbook::parse(bytes, Format::Xlsx, rules),
                container::Kind::Xlsb => workbook::parse(bytes, Format::Xlsb, rules),
                container::Kind::Ods => workbook::parse(bytes, Format::Ods, rules),
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
        Ok(members) if container::kind(&members) == container::Kind::Archive => Some(Ok(members)),
        Ok(_) => None,
        Err(issue) => Some(Err(issue)),
    }
}
