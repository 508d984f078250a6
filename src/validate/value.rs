//! Reading one cell as the kind of value a field needs (SPEC §4.2). Each
//! function returns the value or a message saying what the cell held.

use std::borrow::Cow;

use crate::issue::shown;
use crate::parse::{Cell, DecimalComma};

/// The largest integer the API accepts.
pub const MAX_INT: i64 = 2_147_483_647;

/// The text of a cell after the rules of SPEC §3: trimmed, one leading `'`
/// dropped. `None` for an empty cell.
pub fn text(cell: &Cell) -> Option<String> {
    trimmed(cell).map(Cow::into_owned)
}

/// [`text`] without a copy where the cell already holds text: numbers are
/// read from it, and most cells are numbers or identifiers read once.
pub fn trimmed(cell: &Cell) -> Option<Cow<'_, str>> {
    let t = match cell {
        Cell::Empty => return None,
        Cell::Text(s) => {
            let b = s.as_bytes();
            // Nearly every cell has nothing to trim: it starts and ends with
            // a visible ASCII character, and not with a quote. Only the
            // others go through `trim`, which looks for Unicode spaces.
            let plain = matches!((b.first(), b.last()),
                (Some(&f), Some(&l)) if f.is_ascii_graphic() && f != b'\'' && l.is_ascii_graphic());
            if plain {
                Cow::Borrowed(s.as_str())
            } else {
                let t = s.trim();
                Cow::Borrowed(t.strip_prefix('\'').unwrap_or(t).trim())
            }
        }
        other => Cow::Owned(other.to_text()),
    };
    (!t.is_empty()).then_some(t)
}

/// Whether [`trimmed`] gives a value, without formatting one: a number
/// cell is filled, and a numeric field reads it as a number.
pub fn is_filled(cell: &Cell) -> bool {
    match cell {
        Cell::Empty => false,
        Cell::Text(_) => trimmed(cell).is_some(),
        Cell::Date(s) | Cell::Error(s) => !s.is_empty(),
        Cell::Int(_) | Cell::Float(_) | Cell::Bool(_) => true,
    }
}

/// What a non-numeric cell holds, for messages.
fn describe(cell: &Cell) -> String {
    match cell {
        Cell::Bool(b) => format!("the yes/no value {}", if *b { "TRUE" } else { "FALSE" }),
        Cell::Date(d) => format!("the date {d}"),
        Cell::Error(e) => format!("the spreadsheet error {e}"),
        other => format!("'{}'", other.to_text().trim()),
    }
}

/// A whole number: `101`, a numeric cell with no fraction (`101.0`), or
/// text of such a number. Thousands separators, fractions, text, dates,
/// booleans and errors are refused. Where a decimal comma is allowed,
/// `101,00` is 101 too; three zeros (`1,000`, `1.000`) look like a
/// thousands group and are refused rather than silently read as 1.
pub fn integer(cell: &Cell, decimal_comma: DecimalComma) -> Result<i64, String> {
    match cell {
        Cell::Int(i) => Ok(*i),
        // A whole number too large for i64 saturates, so the caller reports
        // it as out of range rather than as not a whole number.
        Cell::Float(f) if f.is_finite() && f.fract() == 0.0 => Ok(*f as i64),
        Cell::Float(_) => Err(format!("got {}", describe(cell))),
        Cell::Text(_) => {
            let t = trimmed(cell).unwrap_or_default();
            integer_text(&t, decimal_comma).ok_or_else(|| format!("got '{}'", shown(&t)))
        }
        _ => Err(format!("got {}", describe(cell))),
    }
}

fn integer_text(t: &str, decimal_comma: DecimalComma) -> Option<i64> {
    // Plain digits, as nearly every quantity is; 18 of them cannot
    // overflow.
    if (1..=18).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()) {
        return Some(t.bytes().fold(0, |n, b| n * 10 + i64::from(b - b'0')));
    }
    let separators: &[char] = match decimal_comma {
        DecimalComma::Never => &['.'],
        DecimalComma::Allowed => &['.', ','],
        DecimalComma::Only => &[','],
    };
    let whole = match t.split_once(['.', ',']) {
        Some((whole, frac))
            if separators.iter().any(|&s| t[whole.len()..].starts_with(s))
                && (1..=2).contains(&frac.len())
                && frac.bytes().all(|b| b == b'0') =>
        {
            whole
        }
        Some(_) => return None,
        None => t,
    };
    let digits = whole.strip_prefix('+').unwrap_or(whole);
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(rest) if whole.starts_with('-') => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Saturate: out-of-range is reported by the caller with the right code.
    let magnitude = digits.parse::<i64>().unwrap_or(i64::MAX);
    Some(if negative { -magnitude } else { magnitude })
}

/// A finite decimal number: `12.5`; `12,5` where a decimal comma is
/// allowed. Where both are allowed, a single comma followed by exactly three
/// digits (`1,000`) could be a decimal comma or a thousands separator: it is
/// refused, saying so, until `csv.decimal` says which.
pub fn number(cell: &Cell, decimal_comma: DecimalComma) -> Result<f64, String> {
    match cell {
        Cell::Int(i) => Ok(*i as f64),
        Cell::Float(f) if f.is_finite() => Ok(*f),
        Cell::Text(_) => {
            let t = trimmed(cell).unwrap_or_default();
            if decimal_comma == DecimalComma::Allowed && thousands_like(&t) {
                return Err(format!(
                    "got '{t}', which reads as {} with a decimal comma but as {} with a thousands \
                     separator; write it without the separator, or set csv.decimal = \",\" (or \".\") \
                     to say which the sender uses",
                    t.replace(',', "."),
                    t.replace(',', "")
                ));
            }
            number_text(&t, decimal_comma).ok_or_else(|| format!("got '{}'", shown(&t)))
        }
        _ => Err(format!("got {}", describe(cell))),
    }
}

/// `1,000`, `-12,500`: one comma, no point, exactly three digits after it.
fn thousands_like(t: &str) -> bool {
    match t.split_once(',') {
        Some((whole, frac)) => {
            let whole = whole.trim_start_matches(['+', '-']);
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && frac.len() == 3
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

fn number_text(t: &str, decimal_comma: DecimalComma) -> Option<f64> {
    let commas = t.matches(',').count();
    let normalised: Cow<str> = match decimal_comma {
        DecimalComma::Never => Cow::Borrowed(t),
        DecimalComma::Allowed if !t.contains('.') && commas == 1 => Cow::Owned(t.replace(',', ".")),
        DecimalComma::Allowed => Cow::Borrowed(t),
        // The sender writes decimal commas: a point is not a decimal point.
        DecimalComma::Only if t.contains('.') => return None,
        DecimalComma::Only => Cow::Owned(t.replace(',', ".")),
    };
    // Only plain decimal notation: no "inf", "NaN" or hex that Rust's
    // parser would also take; a second separator fails to parse.
    let plain = normalised
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !plain || !normalised.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    normalised.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecimalComma::{Allowed, Never, Only};

    fn t(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }

    #[test]
    fn integers_accept_what_spreadsheets_write() {
        assert_eq!(integer(&t("101"), Never), Ok(101));
        assert_eq!(integer(&t(" 101 "), Never), Ok(101));
        assert_eq!(integer(&t("'101"), Never), Ok(101));
        assert_eq!(integer(&t("101.0"), Never), Ok(101));
        assert_eq!(integer(&t("101,00"), Allowed), Ok(101));
        assert_eq!(integer(&t("+7"), Never), Ok(7));
        assert_eq!(integer(&t("-3"), Never), Ok(-3));
        assert_eq!(integer(&Cell::Float(101.0), Never), Ok(101));
        assert_eq!(integer(&Cell::Int(5), Never), Ok(5));
    }

    #[test]
    fn integers_refuse_fractions_separators_and_non_numbers() {
        assert_eq!(integer(&t("1.5"), Never), Err("got '1.5'".into()));
        assert!(integer(&t("1,000"), Never).is_err());
        assert!(integer(&t("1.000"), Allowed).is_err());
        assert!(integer(&t("1,000"), Allowed).is_err());
        assert!(integer(&t("1.000"), Never).is_err());
        assert!(integer(&t("ten"), Never).is_err());
        assert!(integer(&t("--3"), Never).is_err());
        assert!(integer(&t("1e3"), Never).is_err());
        assert!(integer(&Cell::Float(1.5), Never).is_err());
        assert_eq!(
            integer(&Cell::Error("#N/A".into()), Never),
            Err("got the spreadsheet error #N/A".into())
        );
        assert!(integer(&Cell::Bool(true), Never)
            .unwrap_err()
            .contains("yes/no"));
        assert!(integer(&Cell::Date("2026-01-05".into()), Never)
            .unwrap_err()
            .contains("date"));
    }

    #[test]
    fn huge_integers_saturate_for_the_range_check() {
        assert_eq!(integer(&t("99999999999999999999"), Never), Ok(i64::MAX));
    }

    #[test]
    fn numbers_take_a_decimal_comma_only_when_asked() {
        assert_eq!(number(&t("12.5"), Never), Ok(12.5));
        assert_eq!(number(&t("12,5"), Allowed), Ok(12.5));
        assert_eq!(number(&t("12.5"), Allowed), Ok(12.5));
        assert!(number(&t("12,5"), Never).is_err());
        assert!(number(&t("1.234,5"), Allowed).is_err());
        assert!(number(&t("inf"), Never).is_err());
        assert!(number(&t("NaN"), Never).is_err());
        assert!(number(&t("$5"), Never).is_err());
    }

    #[test]
    fn ambiguous_thousands_are_refused_until_csv_decimal_says() {
        assert_eq!(number(&t("19,99"), Allowed), Ok(19.99));
        assert_eq!(number(&t("19.99"), Allowed), Ok(19.99));
        assert_eq!(number(&t("1,5000"), Allowed), Ok(1.5));
        let err = number(&t("1,000"), Allowed).unwrap_err();
        assert!(err.contains("csv.decimal"), "{err}");
        assert!(err.contains("1.000") && err.contains("1000"), "{err}");
        assert_eq!(number(&t("1,000"), Only), Ok(1.0));
        assert!(number(&t("1.5"), Only).is_err());
        assert!(number(&t("1,000"), Never).is_err());
        assert_eq!(number(&t("1.000"), Never), Ok(1.0));
        assert!(number(&t("1.234,5"), Allowed).is_err());
        assert_eq!(integer(&t("5,00"), Allowed), Ok(5));
        assert_eq!(integer(&t("5.00"), Allowed), Ok(5));
        assert!(integer(&t("5.00"), Only).is_err());
        assert!(integer(&t("1,000"), Allowed).is_err());
    }

    #[test]
    fn text_drops_one_apostrophe_and_blanks() {
        assert_eq!(text(&t("  '=SUM(A1)  ")), Some("=SUM(A1)".into()));
        assert_eq!(text(&t("''x")), Some("'x".into()));
        assert_eq!(text(&t("   ")), None);
        assert_eq!(text(&Cell::Float(7.0)), Some("7".into()));
    }

    proptest::proptest! {
        /// The shortcut for cells with nothing to trim gives what trimming
        /// gives, for any text (Unicode spaces and quotes included).
        #[test]
        fn trimmed_matches_trimming(s in "[ '\u{a0}\u{3000}\ta-z0-9.,\u{e9}-]{0,12}") {
            let t = s.trim();
            let expected = t.strip_prefix('\'').unwrap_or(t).trim();
            let cell = Cell::Text(s.clone());
            let got = trimmed(&cell);
            proptest::prop_assert_eq!(got.as_deref().unwrap_or(""), expected);
        }

        /// Plain digits read as the standard parser reads them (saturating
        /// where they overflow, as the slow path does).
        #[test]
        fn plain_digits_read_as_parsed(s in "[0-9]{1,25}") {
            let expected = s.parse::<i64>().unwrap_or(i64::MAX);
            proptest::prop_assert_eq!(integer_text(&s, Never), Some(expected));
        }
    }

    #[test]
    fn filled_is_what_trimmed_says() {
        for cell in [
            Cell::Empty,
            t(""),
            t("  "),
            t("'"),
            t(" ' "),
            t("x"),
            Cell::Int(0),
            Cell::Float(1.5),
            Cell::Bool(false),
            Cell::Date(String::new()),
            Cell::Date("2026-12-03".into()),
            Cell::Error("#N/A".into()),
        ] {
            assert_eq!(is_filled(&cell), trimmed(&cell).is_some(), "{cell:?}");
        }
    }
}
