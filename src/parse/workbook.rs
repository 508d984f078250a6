//! Workbooks (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`) through calamine:
//! every visible sheet (or those in `sheet.names`), each a table numbered
//! as the spreadsheet numbers its rows and columns. Formulas give their
//! cached values; dates, booleans and errors keep their kind so validation
//! can say what a cell held.

use std::io::Cursor;

use calamine::{open_workbook_auto_from_rs, Data, Reader, SheetVisible};

use super::{Cell, Format, Parsed, Row, Table};
use crate::config::ImportRules;
use crate::issue::{Code, Issue, Place};

pub fn parse<'a>(
    bytes: &'a [u8],
    format: Format,
    rules: &ImportRules,
) -> Result<Parsed<'a>, Issue> {
    let mut workbook = open_workbook_auto_from_rs(Cursor::new(bytes)).map_err(|e| {
        Issue::new(
            Code::UnreadableFile,
            format!(
                "the {} workbook could not be opened ({e}); open it in the spreadsheet program, \
                 save it again and drop it again",
                format.as_str()
            ),
        )
    })?;
    let mut warnings = Vec::new();
    let sheets: Vec<String> = if rules.sheet_names.is_empty() {
        workbook
            .sheets_metadata()
            .iter()
            .filter(|s| s.visible == SheetVisible::Visible)
            .map(|s| s.name.clone())
            .collect()
    } else {
        let present = workbook.sheet_names();
        for wanted in &rules.sheet_names {
            if !present.contains(wanted) {
                warnings.push(Issue::new(
                    Code::NoHeader,
                    format!(
                        "sheet \"{wanted}\" (sheet.names) is not in the workbook; it has: {}",
                        present.join(", ")
                    ),
                ));
            }
        }
        rules
            .sheet_names
            .iter()
            .filter(|name| present.contains(name))
            .cloned()
            .collect()
    };
    let mut tables = Vec::new();
    for name in sheets {
        let range = workbook.worksheet_range(&name).map_err(|e| {
            Issue::new(
                Code::UnreadableFile,
                format!("sheet \"{name}\" could not be read ({e}); save the workbook again"),
            )
            .at(Place {
                sheet: Some(name.clone()),
                ..Place::default()
            })
        })?;
        let (first_row, first_col) = range.start().unwrap_or((0, 0));
        let rows: Vec<Row> = range
            .rows()
            .enumerate()
            .filter_map(|(i, cells)| {
                // Cells keep their sheet columns: a range starting at C
                // still names its first cell C, not A.
                let mut row: Vec<Cell> = vec![Cell::Empty; first_col as usize];
                row.extend(cells.iter().map(cell));
                while matches!(row.last(), Some(c) if c.is_blank()) {
                    row.pop();
                }
                (!row.iter().all(Cell::is_blank)).then(|| Row {
                    number: u64::from(first_row) + i as u64 + 1,
                    cells: row,
                    pointers: None,
                })
            })
            .collect();
        if rows.is_empty() {
            warnings.push(
                Issue::new(
                    Code::EmptySheet,
                    format!("sheet \"{name}\" is empty and was skipped"),
                )
                .at(Place {
                    sheet: Some(name.clone()),
                    ..Place::default()
                }),
            );
            continue;
        }
        tables.push(Table {
            sheet: Some(name),
            decimal_comma: false,
            rows: Box::new(rows.into_iter().map(Ok)),
        });
    }
    if tables.is_empty() {
        return Err(Issue::new(
            Code::MissingColumn,
            "the workbook has no visible sheet with data; put the stock list on a visible sheet",
        ));
    }
    Ok(Parsed {
        format,
        tables,
        warnings,
    })
}

fn cell(data: &Data) -> Cell {
    match data {
        Data::Empty => Cell::Empty,
        Data::String(s) if s.trim().is_empty() => Cell::Empty,
        Data::String(s) => Cell::Text(s.clone()),
        Data::Int(i) => Cell::Int(*i),
        Data::Float(f) => Cell::Float(*f),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(dt) => Cell::Date(match dt.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => dt.to_string(),
        }),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::Date(s.clone()),
        Data::Error(e) => Cell::Error(e.to_string()),
    }
}
