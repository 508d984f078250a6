//! The errors CSV (SPEC §5): the rows a plan left out, with their original
//! cells and what is wrong, written while the file is still in hand.

use std::fs;
use std::io;
use std::path::Path;

use super::Content;
use crate::config::ImportRules;
use crate::parse::{self, Cell};
use crate::plan::LeftOutRow;
use crate::report::errors_csv;
use crate::store::stage::Stage;
use crate::store::StoreError;
use crate::validate::Checked;

/// The rows a plan left out, read from the stage a batch at a time.
pub(super) struct LeftOutRows<'a> {
    stage: &'a Stage,
    batch: std::vec::IntoIter<(u64, LeftOutRow)>,
    last: Option<u64>,
    done: bool,
    error: Option<StoreError>,
}

impl<'a> LeftOutRows<'a> {
    const BATCH: usize = 4096;

    fn new(stage: &'a Stage) -> Self {
        LeftOutRows {
            stage,
            batch: Vec::new().into_iter(),
            last: None,
            done: false,
            error: None,
        }
    }
}

impl Iterator for LeftOutRows<'_> {
    type Item = LeftOutRow;

    fn next(&mut self) -> Option<LeftOutRow> {
        if self.batch.len() == 0 && !self.done {
            match self.stage.left_out_after(self.last, Self::BATCH) {
                Ok(rows) => {
                    self.done = rows.len() < Self::BATCH;
                    self.batch = rows.into_iter();
                }
                Err(e) => {
                    self.error = Some(e);
                    self.done = true;
                }
            }
        }
        let (seq, row) = self.batch.next()?;
        self.last = Some(seq);
        Some(row)
    }
}

/// The errors CSV may take this much of the outbox: twice the file, plus
/// room for the messages of a small one. A bad file must not fill the disk
/// (ten kilobytes of `{}` items once made 473 MB of errors CSV). An
/// archive's members share the archive's room (`errors_csv_room`): 40
/// members of bad rows made 969 MB of errors CSVs from a 2 MB ZIP.
pub(super) fn errors_csv_limit(content: &Content, rules: &ImportRules) -> u64 {
    let own = errors_csv_room(content.input().len());
    rules.errors_csv_room.map_or(own, |room| room.min(own))
}

/// The errors-CSV room of a file (or an archive's members) of `bytes`.
pub(super) fn errors_csv_room(bytes: u64) -> u64 {
    bytes.saturating_mul(2).saturating_add(16 * 1024 * 1024)
}

/// Writes the errors CSV of the rows left out into a hidden file beside
/// the reports, parsing the file a second time to copy their original
/// cells as they come (one row in memory at a time; the staged rows left
/// out are in file order, so the two are walked side by side). Returns the rows written
/// and the rows cut off at [`errors_csv_limit`].
pub(super) fn write_errors_csv(
    content: &Content,
    rules: &ImportRules,
    checked: &Checked,
    draft: &crate::plan::Draft,
    stage: &Stage,
    path: &Path,
) -> io::Result<(u64, u64)> {
    let file = fs::File::create(path)?;
    let mut writer = errors_csv::Writer::new(
        io::BufWriter::with_capacity(1 << 16, file),
        &draft.errors_csv_header,
        draft.errors_csv_location,
        errors_csv_limit(content, rules),
    )?;
    // Several sheets share one header (see `resolve::errors_csv_header`):
    // each row's cells go under their own column names.
    let merged = draft.errors_csv_sheets;
    let header = &draft.errors_csv_header;
    let arrange = |table: u16, own: Vec<String>| -> Vec<String> {
        if !merged {
            return own;
        }
        let info = checked.tables.get(usize::from(table));
        let names: Vec<String> = info
            .and_then(|t| t.layout.as_ref())
            .map(|l| l.names.iter().map(|n| n.trim().to_string()).collect())
            .unwrap_or_default();
        header
            .iter()
            .map(|column| {
                if column == "sheet" {
                    return info.and_then(|t| t.sheet.clone()).unwrap_or_default();
                }
                names
                    .iter()
                    .position(|n| n == column)
                    .and_then(|i| own.get(i).cloned())
                    .unwrap_or_default()
            })
            .collect()
    };
    let mut cursor = LeftOutRows::new(stage);
    let mut next = cursor.by_ref().peekable();
    if let Ok(parsed) = parse::parse_input(&content.name, content.input(), rules) {
        'tables: for (index, table) in parsed.tables.into_iter().enumerate() {
            let table_no = u16::try_from(index).unwrap_or(u16::MAX);
            for row in table.rows.map_while(Result::ok) {
                let key = (table_no, row.number);
                // Rows the second parse does not meet get empty cells.
                while let Some(r) = next.next_if(|r| (r.table, r.number) < key) {
                    writer.row(
                        &arrange(r.table, Vec::new()),
                        r.location.as_deref(),
                        &r.error,
                    )?;
                }
                let Some(r) = next.next_if(|r| (r.table, r.number) == key) else {
                    if next.peek().is_none() {
                        break 'tables;
                    }
                    continue;
                };
                let own: Vec<String> = row.cells.iter().map(Cell::to_text).collect();
                writer.row(&arrange(r.table, own), r.location.as_deref(), &r.error)?;
            }
        }
    }
    for r in next {
        writer.row(
            &arrange(r.table, Vec::new()),
            r.location.as_deref(),
            &r.error,
        )?;
    }
    if let Some(e) = cursor.error {
        return Err(io::Error::other(e.to_string()));
    }
    let (rows, omitted) = (writer.rows, writer.omitted);
    let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((rows, omitted))
}
