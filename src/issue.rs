//! Problems found in a file, as data: every error and warning carries its
//! stable code (SPEC §4.4), where it is and a message a clerk understands.
//! Validation never returns `Err` for bad input; it returns issues.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable codes of SPEC §4.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    // Row errors.
    MissingIdentifier,
    MissingQuantity,
    NotAnInteger,
    NotANumber,
    OutOfRange,
    ValueTooLong,
    UpcInvalid,
    UpcScientific,
    UpcCheckDigit,
    MissingLocation,
    UnknownLocation,
    TooManyAttributes,
    DuplicateItem,
    IdentifierConflict,
    NotApplied,
    /// An adjust row for a product the location does not hold (SPEC §1.1).
    UnknownItem,
    NegativeStock,
    StaleUpdate,
    // Location errors.
    TooManyZeroed,
    // File errors.
    MissingColumn,
    AmbiguousColumn,
    UnsupportedFormat,
    UnreadableFile,
    FileTooLarge,
    TooManyRows,
    TooManyLocations,
    ArchiveTooLarge,
    // Warnings only.
    UnknownColumn,
    ExtraCells,
    EncodingFallback,
    UpcZerosRestored,
    EmptySheet,
    NoHeader,
    IdentifierAsNumber,
    ClampedToZero,
    // An operational failure (I/O, database) that ended a file as `failed`.
    OperationalError,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MissingIdentifier => "missing-identifier",
            Code::MissingQuantity => "missing-quantity",
            Code::NotAnInteger => "not-an-integer",
            Code::NotANumber => "not-a-number",
            Code::OutOfRange => "out-of-range",
            Code::ValueTooLong => "value-too-long",
            Code::UpcInvalid => "upc-invalid",
            Code::UpcScientific => "upc-scientific",
            Code::UpcCheckDigit => "upc-check-digit",
            Code::MissingLocation => "missing-location",
            Code::UnknownLocation => "unknown-location",
            Code::TooManyAttributes => "too-many-attributes",
            Code::DuplicateItem => "duplicate-item",
            Code::IdentifierConflict => "identifier-conflict",
            Code::NotApplied => "not-applied",
            Code::UnknownItem => "unknown-item",
            Code::NegativeStock => "negative-stock",
            Code::StaleUpdate => "stale-update",
            Code::TooManyZeroed => "too-many-zeroed",
            Code::MissingColumn => "missing-column",
            Code::AmbiguousColumn => "ambiguous-column",
            Code::UnsupportedFormat => "unsupported-format",
            Code::UnreadableFile => "unreadable-file",
            Code::FileTooLarge => "file-too-large",
            Code::TooManyRows => "too-many-rows",
            Code::TooManyLocations => "too-many-locations",
            Code::ArchiveTooLarge => "archive-too-large",
            Code::UnknownColumn => "unknown-column",
            Code::ExtraCells => "extra-cells",
            Code::EncodingFallback => "encoding-fallback",
            Code::UpcZerosRestored => "upc-zeros-restored",
            Code::EmptySheet => "empty-sheet",
            Code::NoHeader => "no-header",
            Code::IdentifierAsNumber => "identifier-as-number",
            Code::ClampedToZero => "clamped-to-zero",
            Code::OperationalError => "operational-error",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in the file an issue is. All parts are optional: a file error has
/// none, a row error has a row, a cell error also a column and cell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// 1-based row as a spreadsheet program shows it (for delimited text,
    /// the line the record starts on).
    pub row: Option<u64>,
    pub sheet: Option<String>,
    /// `F14`: column letters and row.
    pub cell: Option<String>,
    /// The field's API name, or the header text for unknown columns.
    pub column: Option<String>,
    /// JSON Pointer, for JSON input.
    pub pointer: Option<String>,
}

impl Place {
    /// How a person is shown the place: `Sheet2!C5`, `F14`, `row 14`,
    /// `/items/3/quantity`, or empty.
    pub fn human(&self) -> String {
        if let Some(p) = &self.pointer {
            return p.clone();
        }
        match (&self.sheet, &self.cell, self.row) {
            (Some(s), Some(c), _) => format!("{s}!{c}"),
            (None, Some(c), _) => c.clone(),
            (Some(s), None, Some(r)) => format!("{s} row {r}"),
            (None, None, Some(r)) => format!("row {r}"),
            (Some(s), None, None) => s.clone(),
            (None, None, None) => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub code: Code,
    pub place: Place,
    /// The offending value as it was in the file.
    pub value: Option<String>,
    pub message: String,
}

/// The longest message an issue keeps, in bytes, and the longest value it
/// quotes, in characters. A report keeps up to `report.max_errors` issues:
/// a cell of a megabyte quoted whole in each (a quantity column of long
/// text) took over a gigabyte. Values are quoted shortened where they are
/// put into messages ([`shown`]); this is the bound whatever a message says.
const MAX_MESSAGE_BYTES: usize = 2048;
const MAX_VALUE_CHARS: usize = 300;

/// `s` cut to at most `max` characters, with `…` where it was cut.
fn shortened(mut s: String, max_chars: usize) -> String {
    if truncate_chars(&mut s, max_chars) {
        s.push('…');
    }
    s
}

/// Cuts `s` to its first `max` characters; whether it was longer.
pub fn truncate_chars(s: &mut String, max_chars: usize) -> bool {
    match s.char_indices().nth(max_chars) {
        Some((cut, _)) => {
            s.truncate(cut);
            true
        }
        None => false,
    }
}

/// A value from the file as a message quotes it: at most 100 characters.
pub fn shown(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(100) {
        Some((cut, _)) => std::borrow::Cow::Owned(format!(
            "{}… ({} characters)",
            &value[..cut],
            value.chars().count()
        )),
        None => std::borrow::Cow::Borrowed(value),
    }
}

impl Issue {
    pub fn new(code: Code, message: impl Into<String>) -> Issue {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_BYTES {
            let mut cut = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        Issue {
            code,
            place: Place::default(),
            value: None,
            message,
        }
    }

    pub fn at(mut self, place: Place) -> Issue {
        self.place = place;
        self
    }

    pub fn with_value(mut self, value: impl Into<String>) -> Issue {
        self.value = Some(shortened(value.into(), MAX_VALUE_CHARS));
        self
    }
}

/// A count with its noun, singular for one: `1 item`, `2 items`,
/// `1 entry`/`3 entries`. Every message that counts says it through here.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The first five of `items` (`total` in all) and a count of the rest:
/// `a, b, c, d, e and 7 more`. A message that lists what may be thousands
/// of things (rows, locations) lists them through here.
pub fn first_five(items: impl Iterator<Item = String>, total: usize) -> String {
    const SHOWN: usize = 5;
    let mut text = items.take(SHOWN).collect::<Vec<_>>().join(", ");
    if total > SHOWN {
        text.push_str(&format!(" and {} more", total - SHOWN));
    }
    text
}

/// Spreadsheet column letters for a 0-based index: 0 → `A`, 26 → `AA`.
pub fn column_letters(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_and_a_value_are_kept_to_their_bounds() {
        let issue = Issue::new(Code::NotANumber, "é".repeat(3000)).with_value("x".repeat(5000));
        assert!(issue.message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(issue.message.ends_with('…'));
        assert_eq!(
            issue.value.as_deref().map(|v| v.chars().count()),
            Some(MAX_VALUE_CHARS + 1)
        );
        let short = Issue::new(Code::NotANumber, "got 'x'").with_value("x");
        assert_eq!(
            (short.message.as_str(), short.value.as_deref()),
            ("got 'x'", Some("x"))
        );
        assert_eq!(shown("abc"), "abc");
        assert_eq!(
            shown(&"y".repeat(150)),
            format!("{}… (150 characters)", "y".repeat(100))
        );
    }

    #[test]
    fn column_letters_follow_spreadsheets() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(5), "F");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
    }

    #[test]
    fn codes_serialise_as_the_spec_spells_them() {
        assert_eq!(
            serde_json::to_string(&Code::NotAnInteger).unwrap(),
            "\"not-an-integer\""
        );
        assert_eq!(Code::UpcZerosRestored.as_str(), "upc-zeros-restored");
    }

    #[test]
    fn places_read_as_people_expect() {
        let p = Place {
            row: Some(5),
            sheet: Some("Sheet2".into()),
            cell: Some("C5".into()),
            ..Place::default()
        };
        assert_eq!(p.human(), "Sheet2!C5");
    }
}
