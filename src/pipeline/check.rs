//! Parse and validate, on a thread of their own, the rows handed to this
//! one in batches and staged as they come.

use std::path::{Path, PathBuf};

use super::{Content, PipelineError};
use crate::config::ImportRules;
use crate::issue::{Code, Issue};
use crate::parse;
use crate::store::stage::{Stage, StagedRow};
use crate::validate::{self, Checked, RowSink};

/// Parses and validates the file, its rows going into `stage` as they are
/// checked. Reading and checking run on a thread of their own, beside this
/// one staging the rows it hands on (a bounded channel between them: a
/// few batches of rows in flight, whatever the file's size), so a large
/// file uses both cores.
pub(super) fn check(
    content: &Content,
    rules: &ImportRules,
    stage: &mut Stage,
    progress: &dyn Fn(&str, u64, u64),
) -> Result<Checked, PipelineError> {
    let (sender, batches) = std::sync::mpsc::sync_channel(BATCHES_IN_FLIGHT);
    // calamine can panic on a damaged workbook (seen on mutated `.xls`
    // files: index out of bounds in its CFB reader). A panic while reading
    // one file must not stop the daemon — it would find the file claimed
    // at every start and stop again — so it rejects that file instead.
    // Nothing is shared with the reader but the channel; the stage is
    // cleared below.
    let read = std::thread::scope(|scope| {
        let reader = std::thread::Builder::new()
            .name("stockdrop-read".into())
            .spawn_scoped(scope, || {
                let mut sink = Batches::new(sender);
                crate::crashpoint::panic_at("panic-while-reading");
                let checked =
                    validate::check_input(&content.name, content.input(), rules, &mut sink);
                sink.flush();
                checked
            });
        let reader = reader?;
        for batch in batches {
            match batch {
                Batch::Rows { data, rows } => {
                    let before = stage.len();
                    stage.push_batch(&data, &rows);
                    // Told every 65,536 rows.
                    if stage.len() / 65_536 > before / 65_536 {
                        progress("checking rows", stage.len(), 0);
                    }
                }
                Batch::Clear => stage.clear(),
            }
        }
        Ok(reader.join())
    })
    .map_err(|source| PipelineError::Read {
        path: PathBuf::from(&content.name),
        source,
    })?;
    let mut checked = match read {
        Ok(checked) => checked,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::warn!(error = %what, "the spreadsheet reader failed on this file; it is rejected");
            stage.clear();
            let mut checked = validate::check_into("", &[], rules, &mut NoRows);
            checked.format =
                parse::detect::detect(Path::new(&content.name), content.input().head())
                    .unwrap_or(parse::Format::Unknown);
            checked.file_error = Some(Issue::new(
                Code::UnreadableFile,
                "the file is damaged: it cannot be read as the spreadsheet its content says it is; \
                 open it in the program that made it, save it again (or export it as CSV) and drop it again",
            ));
            checked
        }
    };
    if let Some(issue) = &content.forced_error {
        stage.clear();
        checked.file_error = Some(issue.clone());
    }
    stage.finish_rows()?;
    Ok(checked)
}

/// Rows per batch handed from the reading thread to the staging one, and
/// batches in flight: enough to keep both busy, little memory.
pub(super) const BATCH_ROWS: usize = 512;
pub(super) const BATCHES_IN_FLIGHT: usize = 4;

/// Rows handed from the reading thread to the staging one, already
/// encoded: one buffer per batch (the row objects are made and dropped on
/// the reading thread; freeing them on the other one made both wait on
/// the allocator), each row with where its encoding ends.
pub(super) enum Batch {
    Rows {
        data: Vec<u8>,
        rows: Vec<(StagedRow, usize)>,
    },
    Clear,
}

/// Validation's sink on the reading thread: rows go to the staging thread
/// in batches. If that thread is gone, rows are dropped (the import fails
/// there with its own error).
pub(super) struct Batches {
    sender: std::sync::mpsc::SyncSender<Batch>,
    data: Vec<u8>,
    rows: Vec<(StagedRow, usize)>,
    /// Rows pushed since the last clear.
    len: u64,
}

impl Batches {
    fn new(sender: std::sync::mpsc::SyncSender<Batch>) -> Self {
        Batches {
            sender,
            data: Vec::new(),
            rows: Vec::with_capacity(BATCH_ROWS),
            len: 0,
        }
    }

    fn flush(&mut self) {
        if !self.rows.is_empty() {
            let capacity = self.data.len();
            let data = std::mem::replace(&mut self.data, Vec::with_capacity(capacity));
            let rows = std::mem::replace(&mut self.rows, Vec::with_capacity(BATCH_ROWS));
            let _ = self.sender.send(Batch::Rows { data, rows });
        }
    }
}

impl RowSink for Batches {
    fn push(&mut self, row: validate::CheckedRow) {
        let staged = StagedRow::encode(&row, &mut self.data);
        self.rows.push((staged, self.data.len()));
        self.len += 1;
        if self.rows.len() == BATCH_ROWS {
            self.flush();
        }
    }

    fn clear(&mut self) {
        self.data.clear();
        self.rows.clear();
        self.len = 0;
        let _ = self.sender.send(Batch::Clear);
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A sink that keeps nothing (for a file that yields no rows).
pub(super) struct NoRows;

impl RowSink for NoRows {
    fn push(&mut self, _row: validate::CheckedRow) {}
    fn clear(&mut self) {}
    fn len(&self) -> u64 {
        0
    }
}
