//! Delimited text (`.csv`, `.tsv`, `.txt`): encoding, delimiter detection
//! and RFC 4180 records through the `csv` crate, numbered by the line each
//! record starts on.

use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};

use super::{decode, Cell, DecimalComma, Format, Parsed, Row, Table};
use crate::columns::known_field_count;
use crate::config::ImportRules;
use crate::issue::{Code, Issue, Place};

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
    Ok(parsed(
        Box::new(records(Cursor::new(text), delimiter)),
        delimiter,
        warning,
        rules,
    ))
}

/// [`parse`] for a file read from disk as it is parsed: the first
/// [`super::TextFile::head`] bytes decide the delimiter, the records come
/// through the decoder from the open file, never more than its checked
/// length.
pub fn parse_file<'a>(file: super::TextFile<'a>, rules: &ImportRules) -> Result<Parsed<'a>, Issue> {
    // `len` was checked against `import.max_file_bytes` when the file was
    // hashed: nothing past it is read, whatever the file became since.
    let len = file.len;
    let from_start = |file: &'a File| -> Result<std::io::Take<&'a File>, Issue> {
        let mut handle = file;
        handle.seek(SeekFrom::Start(0)).map_err(|e| {
            Issue::new(
                Code::UnreadableFile,
                format!("the file could not be read: {e}"),
            )
        })?;
        Ok(handle.take(len))
    };
    let delimiter = match rules.csv_delimiter {
        Some(d) => d,
        None => {
            let (mut sample, _) = decode::reader(file.head, file.head, file.utf8);
            let mut text = Vec::new();
            let _ = sample.read_to_end(&mut text);
            detect_delimiter(&text, rules)
        }
    };
    let limited = from_start(file.file)?;
    let (text, warning) = decode::reader(limited, file.head, file.utf8);
    Ok(parsed(
        Box::new(records(text, delimiter)),
        delimiter,
        warning,
        rules,
    ))
}

fn parsed<'a>(
    rows: Box<dyn Iterator<Item = Result<Row, Issue>> + 'a>,
    delimiter: u8,
    warning: Option<Issue>,
    rules: &ImportRules,
) -> Parsed<'a> {
    // European Excel writes decimal commas in "CSV (semicolon)" and in
    // "Unicode Text" (tab-separated); csv.decimal says it outright.
    let decimal_comma = match rules.csv_decimal {
        Some(',') => DecimalComma::Only,
        Some(_) => DecimalComma::Never,
        None if matches!(delimiter, b';' | b'\t') => DecimalComma::Allowed,
        None => DecimalComma::Never,
    };
    Parsed {
        format: Format::Csv,
        tables: vec![Table {
            sheet: None,
            decimal_comma,
            rows,
        }],
        warnings: warning.into_iter().collect(),
    }
}

/// The longest record read (its cells' bytes together). A record longer
/// than this — a quote never closed, a file without line ends — stops the
/// file with `unreadable-file`: no row of a stock list comes near it, and
/// it must not take memory without bound.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// The most cells a record may have (a spreadsheet has 16,384 columns).
const MAX_RECORD_CELLS: usize = 1 << 16;

/// The non-blank records of `text`, each numbered by the line it starts on,
/// read through a fixed 64 KiB buffer (a record at most
/// [`MAX_RECORD_BYTES`]).
fn records<'a>(
    text: impl Read + 'a,
    delimiter: u8,
) -> impl Iterator<Item = Result<Row, Issue>> + 'a {
    let mut records = Records {
        input: text,
        core: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
        buf: vec![0; 1 << 16],
        start: 0,
        end: 0,
        eof: false,
        out: vec![0; 1 << 12],
        ends: vec![0; 64],
        lines: Lines::default(),
        failed: false,
    };
    std::iter::from_fn(move || {
        if records.failed {
            return None;
        }
        match records.next_record() {
            Ok(row) => row,
            Err(issue) => {
                records.failed = true;
                Some(Err(issue))
            }
        }
    })
}

struct Records<R> {
    input: R,
    core: csv_core::Reader,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// The current record's cells, end to end; `ends` where each ends.
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Line breaks before the unread input.
    lines: Lines,
    failed: bool,
}

impl<R: Read> Records<R> {
    /// The next non-blank record, `None` at the end.
    fn next_record(&mut self) -> Result<Option<Result<Row, Issue>>, Issue> {
        loop {
            let Some((line, n_out, n_ends)) = self.read_record()? else {
                return Ok(None);
            };
            let mut from = 0;
            let mut cells = Vec::with_capacity(n_ends);
            for &to in &self.ends[..n_ends] {
                let field = &self.out[from..to.min(n_out)];
                from = to;
                cells.push(if field.is_empty() {
                    Cell::Empty
                } else {
                    Cell::Text(String::from_utf8_lossy(field).into_owned())
                });
            }
            if cells.iter().all(Cell::is_blank) {
                continue;
            }
            return Ok(Some(Ok(Row {
                number: line,
                cells,
                pointers: None,
            })));
        }
    }

    /// Reads one record into `out`/`ends`: (its first line, bytes, cells).
    fn read_record(&mut self) -> Result<Option<(u64, usize, usize)>, Issue> {
        let mut n_out = 0;
        let mut n_ends = 0;
        let mut line = None;
        loop {
            if self.start == self.end && !self.eof {
                self.fill()?;
            }
            let input = &self.buf[self.start..self.end];
            let (result, n_in, wrote, ended) =
                self.core
                    .read_record(input, &mut self.out[n_out..], &mut self.ends[n_ends..]);
            self.lines.count(&input[..n_in], &mut line);
            self.start += n_in;
            n_out += wrote;
            n_ends += ended;
            let too_long = |line: Option<u64>| {
                let line = line.unwrap_or(self.lines.breaks + 1);
                Issue::new(
                    Code::UnreadableFile,
                    format!(
                        "the record that starts on line {line} is over {} MiB long (or has over {MAX_RECORD_CELLS} cells), \
                         so the file is not read: a quote that is never closed, or a file without line ends; \
                         check the file around that line, export it as CSV again and drop it again",
                        MAX_RECORD_BYTES >> 20
                    ),
                )
                .at(Place {
                    row: Some(line),
                    ..Place::default()
                })
            };
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    if self.out.len() >= MAX_RECORD_BYTES {
                        return Err(too_long(line));
                    }
                    let grown = (self.out.len() * 2).min(MAX_RECORD_BYTES);
                    self.out.resize(grown, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= MAX_RECORD_CELLS {
                        return Err(too_long(line));
                    }
                    let grown = (self.ends.len() * 2).min(MAX_RECORD_CELLS);
                    self.ends.resize(grown, 0);
                }
                csv_core::ReadRecordResult::Record => {
                    return Ok(Some((line.unwrap_or(self.lines.breaks + 1), n_out, n_ends)))
                }
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        }
    }

    fn fill(&mut self) -> Result<(), Issue> {
        loop {
            match self.input.read(&mut self.buf) {
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    self.eof = n == 0;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Issue::new(
                        Code::UnreadableFile,
                        format!("the file could not be read past this point: {e}"),
                    ))
                }
            }
        }
    }
}

/// Line breaks counted from the bytes themselves: LF, CRLF, and the lone CR
/// of old Mac files (a CR at the end of one buffer may start a CRLF).
#[derive(Default)]
struct Lines {
    breaks: u64,
    pending_cr: bool,
}

impl Lines {
    /// Counts the breaks in `consumed`, and sets `line` (if unset) to the
    /// line its first byte past any line ends is on: the record's line.
    fn count(&mut self, consumed: &[u8], line: &mut Option<u64>) {
        if !self.pending_cr && memchr::memchr(b'\r', consumed).is_none() {
            // Line feeds only, as nearly every file has: counted a word at
            // a time rather than byte by byte.
            if line.is_none() {
                if let Some(i) = consumed.iter().position(|&b| b != b'\n') {
                    *line = Some(self.breaks + i as u64 + 1);
                }
            }
            self.breaks += memchr::memchr_iter(b'\n', consumed).count() as u64;
            return;
        }
        for &b in consumed {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    self.breaks += 1;
                }
            }
            if line.is_none() && b != b'\r' && b != b'\n' {
                *line = Some(self.breaks + 1);
            }
            match b {
                b'\n' => self.breaks += 1,
                b'\r' => self.pending_cr = true,
                _ => {}
            }
        }
    }
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
        let rows: Vec<Vec<String>> = records(sample, delimiter)
            .filter_map(Result::ok)
            .take(SAMPLE_RECORDS)
            .map(|row| row.cells.iter().map(Cell::to_text).collect())
            .collect();
        let known = rows
            .iter()
            .map(|cells| known_field_count(cells, &rules.columns))
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

    #[test]
    fn line_numbers_hold_across_buffers_and_crlf_split_between_them() {
        // Rows of varying width so that CRLF pairs fall across the 64 KiB
        // buffer boundary somewhere.
        let mut text = Vec::new();
        let mut starts = Vec::new();
        let mut line = 1;
        for i in 0..20_000u64 {
            starts.push(line);
            if i % 7 == 3 {
                text.extend_from_slice(format!("\"q{i}\r\nx\",{i}\r\n").as_bytes());
                line += 2;
            } else {
                text.extend_from_slice(
                    format!("r{i},{}\r\n", "y".repeat((i % 13) as usize)).as_bytes(),
                );
                line += 1;
            }
            if i % 11 == 0 {
                text.extend_from_slice(b"\r\n");
                line += 1;
            }
        }
        let numbers: Vec<u64> = records(&text[..], b',')
            .map(|r| r.unwrap().number)
            .collect();
        assert_eq!(numbers, starts);
    }

    #[test]
    fn a_record_past_the_bound_stops_the_file_with_its_line() {
        let mut text = b"sku,qty\nA,1\n\"never closed,".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        let rows: Vec<Result<Row, Issue>> = records(&text[..], b',').collect();
        assert_eq!(rows.len(), 3);
        let error = rows[2].as_ref().unwrap_err();
        assert_eq!(error.code, Code::UnreadableFile);
        assert_eq!(error.place.row, Some(3));
        // Just under the bound is a record like any other.
        let mut text = b"A,".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES - 10));
        let rows: Vec<Row> = records(&text[..], b',').map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
    }

    /// Line breaks counted a slice at a time (the fast path for slices
    /// with no CR) come to what counting byte by byte gives, wherever the
    /// reader's slices end: LF, CRLF split across slices, lone CRs.
    fn counted_byte_by_byte(bytes: &[u8]) -> (u64, Option<u64>) {
        let (mut breaks, mut pending_cr, mut line) = (0u64, false, None);
        for &b in bytes {
            if std::mem::take(&mut pending_cr) && b != b'\n' {
                breaks += 1;
            }
            if line.is_none() && b != b'\r' && b != b'\n' {
                line = Some(breaks + 1);
            }
            match b {
                b'\n' => breaks += 1,
                b'\r' => pending_cr = true,
                _ => {}
            }
        }
        (breaks, line)
    }

    proptest::proptest! {
        #[test]
        fn lines_counted_by_slices_match_byte_by_byte(
            bytes in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\n', b'\r']), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= bytes.len()).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let (mut lines, mut line) = (Lines::default(), None);
            for pair in cuts.windows(2) {
                lines.count(&bytes[pair[0]..pair[1]], &mut line);
            }
            let (breaks, first) = counted_byte_by_byte(&bytes);
            // A CR at the very end is pending in both: not yet a break.
            proptest::prop_assert_eq!(lines.breaks, breaks);
            proptest::prop_assert_eq!(line, first);
        }
    }
}
