//! Delimited text (`.csv`, `.tsv`, `.txt`): encoding, delimiter detection
//! and RFC 4180 records through the `csv` crate, numbered by the line each
//! record starts on.

use std::borrow::Cow;
use std::io::Cursor;

use super::{decode, Cell, DecimalComma, Format, Parsed, Row, Table};
use crate::config::ImportRules;
use crate::issue::{Code, Issue};
use crate::validate::header;

const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];
/// How much of the file delimiter detection looks at.
const SAMPLE_BYTES: usize = 64 * 1024;
/// How many non-blank records delimiter detection looks at (the header is
/// searched among the first 10 non-empty rows, SPEC §3).
const SAMPLE_RECORDS: usize = 10;

pub fn parse<'a>(bytes: &'a [u8], rules: &ImportRules) -> Result<Parsed<'a>, Issue> {
    let (text, warning) = decode::to_utf8(bytes);
    let delimiter = rules
        .csv_delimiter
        .unwrap_or_else(|| detect_delimiter(&text, rules));
    let rows = records(text, delimiter);
    // European Excel writes decimal commas in "CSV (semicolon)" and in
    // "Unicode Text" (tab-separated); csv.decimal says it outright.
    let decimal_comma = match rules.csv_decimal {
        Some(',') => DecimalComma::Only,
        Some(_) => DecimalComma::Never,
        None if matches!(delimiter, b';' | b'\t') => DecimalComma::Allowed,
        None => DecimalComma::Never,
    };
    Ok(Parsed {
        format: Format::Csv,
        tables: vec![Table {
            sheet: None,
            decimal_comma,
            rows: Box::new(rows),
        }],
        warnings: warning.into_iter().collect(),
    })
}

/// The non-blank records of `text`, each numbered by the line it starts on.
fn records(text: Cow<'_, [u8]>, delimiter: u8) -> impl Iterator<Item = Result<Row, Issue>> + '_ {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(Cursor::new(text));
    let mut record = csv::ByteRecord::new();
    let mut failed = false;
    // Line numbers are counted here from byte offsets: the csv crate's own
    // line count lags behind after CRLF line ends and blank lines.
    let mut counted_to = 0usize;
    let mut line = 1u64;
    std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        match reader.read_byte_record(&mut record) {
            Ok(false) => return None,
            Ok(true) => {
                let bytes: &[u8] = reader.get_ref().get_ref();
                let mut start = record
                    .position()
                    .map_or(counted_to, |p| {
                        usize::try_from(p.byte()).unwrap_or(usize::MAX)
                    })
                    .clamp(counted_to, bytes.len());
                while matches!(bytes.get(start), Some(b'\r' | b'\n')) {
                    start += 1;
                }
                line += line_breaks(&bytes[counted_to..start]);
                counted_to = start;
                let cells: Vec<Cell> = record
                    .iter()
                    .map(|field| {
                        if field.is_empty() {
                            Cell::Empty
                        } else {
                            Cell::Text(String::from_utf8_lossy(field).into_owned())
                        }
                    })
                    .collect();
                if cells.iter().all(Cell::is_blank) {
                    continue;
                }
                return Some(Ok(Row {
                    number: line,
                    cells,
                    pointers: None,
                }));
            }
            Err(e) => {
                failed = true;
                return Some(Err(Issue::new(
                    Code::UnreadableFile,
                    format!("the file could not be read past this point: {e}"),
                )));
            }
        }
    })
}

/// Line breaks in `bytes`: LF, CRLF, and the lone CR of old Mac files.
fn line_breaks(bytes: &[u8]) -> u64 {
    let mut count = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            count += 1;
        }
    }
    count
}

/// Picks the delimiter under which some early row reads as a header (two or
/// more known field names, the most wins); failing that, the one that splits
/// the first rows into the same number (> 1) of cells most consistently.
fn detect_delimiter(text: &[u8], rules: &ImportRules) -> u8 {
    let mut sample = &text[..text.len().min(SAMPLE_BYTES)];
    if sample.len() < text.len() {
        if let Some(end) = sample.iter().rposition(|&b| b == b'\n') {
            sample = &sample[..end];
        }
    }
    let mut best_header = (0usize, b',');
    let mut best_shape = (0usize, b',');
    for delimiter in CANDIDATES {
        let rows: Vec<Vec<String>> = records(Cow::Borrowed(sample), delimiter)
            .filter_map(Result::ok)
            .take(SAMPLE_RECORDS)
            .map(|row| row.cells.iter().map(Cell::to_text).collect())
            .collect();
        let known = rows
            .iter()
            .map(|cells| header::known_field_count(cells, &rules.columns))
            .max()
            .unwrap_or(0);
        if known >= 2 && known > best_header.0 {
            best_header = (known, delimiter);
        }
        let first_width = rows.first().map_or(0, Vec::len);
        if first_width > 1 {
            let consistent = rows.iter().filter(|r| r.len() == first_width).count();
            let score = consistent * first_width;
            if score > best_shape.0 {
                best_shape = (score, delimiter);
            }
        }
    }
    if best_header.0 >= 2 {
        best_header.1
    } else {
        best_shape.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rows(text: &[u8]) -> (Vec<Row>, DecimalComma) {
        let config = Config::defaults();
        let parsed = parse(text, &config.rules).unwrap();
        let table = parsed.tables.into_iter().next().unwrap();
        let decimal_comma = table.decimal_comma;
        (table.rows.map(Result::unwrap).collect(), decimal_comma)
    }

    fn texts(row: &Row) -> Vec<String> {
        row.cells.iter().map(Cell::to_text).collect()
    }

    #[test]
    fn detects_each_delimiter() {
        for d in [",", ";", "\t", "|"] {
            let text = format!("Store{d}SKU{d}Qty\n11{d}A{d}5\n");
            let (rows, decimal_comma) = rows(text.as_bytes());
            assert_eq!(texts(&rows[1]), ["11", "A", "5"], "delimiter {d:?}");
            let expected = if d == ";" || d == "\t" {
                DecimalComma::Allowed
            } else {
                DecimalComma::Never
            };
            assert_eq!(decimal_comma, expected, "delimiter {d:?}");
        }
    }

    #[test]
    fn semicolon_file_with_decimal_commas_is_not_read_as_commas() {
        let (rows, _) = rows(b"location;sku;quantity;price\n11;A;5;12,50\n11;B;6;3,99\n");
        assert_eq!(texts(&rows[1]), ["11", "A", "5", "12,50"]);
    }

    #[test]
    fn csv_decimal_decides_for_every_delimiter() {
        let mut config = Config::defaults();
        for (decimal, delimiter, expected) in [
            (Some(','), ",", DecimalComma::Only),
            (Some(','), "\t", DecimalComma::Only),
            (Some('.'), ";", DecimalComma::Never),
            (Some('.'), "\t", DecimalComma::Never),
        ] {
            config.rules.csv_decimal = decimal;
            let text = format!("sku{delimiter}qty\nA{delimiter}1\n");
            let parsed = parse(text.as_bytes(), &config.rules).unwrap();
            assert_eq!(
                parsed.tables[0].decimal_comma, expected,
                "{decimal:?} {delimiter:?}"
            );
        }
    }

    #[test]
    fn quoted_newlines_keep_the_start_line() {
        let (rows, _) = rows(b"sku,qty,note\r\nA,1,\"two\r\nlines\"\r\nB,2,x\r\n");
        assert_eq!(rows[1].number, 2);
        assert_eq!(texts(&rows[1])[2], "two\r\nlines");
        assert_eq!(rows[2].number, 4);
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let (rows, _) = rows(b"sku,qty\n\nA,1\n,\nB,2\n");
        let numbers: Vec<u64> = rows.iter().map(|r| r.number).collect();
        assert_eq!(numbers, [1, 3, 5]);
    }

    #[test]
    fn title_row_does_not_fool_detection() {
        let (rows, _) = rows(b"Stock report; week 47\nsku;qty;store\nA;1;11\n");
        assert_eq!(texts(&rows[1]), ["sku", "qty", "store"]);
    }
}
