//! One file through the whole pipeline: read → parse and validate → resolve
//! → store the plan → apply → report. `import`, `retry`, the daemon and
//! recovery all go through [`import_path`] (one import per file, or per
//! member of a ZIP archive) and [`finish`].
//!
//! Crash safety: the plan (jobs with their items, the report's draft) is
//! committed before the first job is applied; each location's jobs commit
//! with their `success` status; the reports are written atomically before
//! the import is marked finished. A crash anywhere leaves an import in
//! `planned`, which [`recover`] completes: pending jobs are applied from the
//! stored plan, committed ones never again, and the reports are (re)written
//! under the same names.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::adjust;
use crate::apply::{self, now};
use crate::config::{ImportRules, Inbox, JobType, RefreshMode};
use crate::issue::{Code, Issue};
use crate::parse::{self, Cell};
use crate::plan::{LeftOutRow, Plan};
use crate::report::{self, errors_csv, JobEntry, JobList, Report};
use crate::resolve;
use crate::store::queries::{self, NewImport, NewJob};
use crate::store::stage::{Stage, StagedRow};
use crate::store::{Reader, Store, StoreError};
use crate::validate::{self, Checked, RowSink};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write the report into {dir}: {source}")]
    Report { dir: PathBuf, source: io::Error },
    #[error("cannot move {path}: {source}")]
    Move { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file changed while it was being read: its upload was not
    /// finished. Nothing was committed.
    #[error("the file changed while it was read; its upload is not finished")]
    Changed,
}

/// A claimed file's identity, size and modification time (see `open`).
pub use crate::open::Stamp;

/// Told what the pipeline is doing: (stage, done, of).
pub type Progress = std::sync::Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

/// Where the daemon says which file it is on, its stage and how far, for
/// `stockdrop status`: a hidden file in the work folder (private to
/// stockdrop, skipped by the claimed-file listing).
pub fn progress_file(work: &Path) -> PathBuf {
    work.join(".progress")
}

/// The daemon's progress reporter for the file `name`: once the file has
/// been in hand for a second, and then at most once a second, one line —
/// the file, its stage, how far — to systemd's `STATUS=` and to
/// [`progress_file`]. A file done sooner is never announced: a burst of
/// small files would each create and delete the progress file (which
/// costs more than a small file's report on some filesystems), for a line
/// no one could read in time. The name is the uploader's: control
/// characters are replaced, so it cannot add lines to a notification.
pub fn operator_progress(work: &Path, name: &str) -> Progress {
    progress_after(work, name, std::time::Duration::from_secs(1))
}

/// [`operator_progress`], first told `quiet` after it is made.
fn progress_after(work: &Path, name: &str, quiet: std::time::Duration) -> Progress {
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let path = progress_file(work);
    let quiet_until = std::time::Instant::now() + quiet;
    let last = std::sync::Mutex::new(None::<std::time::Instant>);
    std::sync::Arc::new(move |stage: &str, done: u64, of: u64| {
        let Ok(mut last) = last.lock() else {
            return;
        };
        let now_ = std::time::Instant::now();
        let due = now_ >= quiet_until
            && last.is_none_or(|t| now_.duration_since(t) >= std::time::Duration::from_secs(1));
        if !due {
            return;
        }
        *last = Some(now_);
        let how_far = match (done, of) {
            (0, 0) => String::new(),
            (done, 0) => format!(" ({done} rows)"),
            (done, of) => format!(" ({done} of {of})"),
        };
        let line = format!("importing {name}: {stage}{how_far}");
        crate::systemd::status(&line);
        // Meaningful only while the daemon runs (`status` shows it only
        // then): never fsynced.
        let text = format!("{line} (at {})\n", now());
        let _ = crate::durable::replace_with_bytes(
            &path,
            crate::durable::Durability::Volatile,
            text.as_bytes(),
        );
    })
}

#[derive(Clone, Default)]
pub struct ImportOptions {
    /// Apply even when the file is a duplicate.
    pub force: bool,
    /// Where reports go; the outbox when `None`.
    pub report_dir: Option<PathBuf>,
    /// Called as the pipeline advances: (what, done, of).
    pub progress: Option<Progress>,
    /// The name the file was dropped as, when it was renamed since (a
    /// claimed file in the work folder), in its displayable form
    /// (`crate::names::display`); the store keeps its raw bytes too.
    pub name: Option<String>,
    /// Refuse to commit if the file is no longer this one, with this size
    /// and time, or a writer holds it open.
    pub unchanged: Option<Stamp>,
    /// How the file may be opened: a claimed file is never followed.
    pub trust: crate::open::Trust,
    /// Finish what an earlier attempt stored instead of starting again
    /// (see [`import_path`]).
    pub resume: bool,
}

/// What became of one file.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: Report,
    pub paths: Vec<PathBuf>,
    /// The outbox the reports went to, as `imports.report_dir` holds it:
    /// its `index.html` is owed a rewrite ([`index_owed`]).
    pub outbox: String,
    /// The distinct locations the file named (`Draft::locations`).
    pub locations: u64,
}

/// A file's content and checksum. Delimited text larger than
/// [`HEAD_BYTES`] stays on disk and is read from its open descriptor at
/// each pass (hashed and checked for UTF-8 as it is opened), so memory does
/// not grow with the file; anything else is read into memory, within
/// `import.max_file_bytes`.
struct Content {
    name: String,
    body: Body,
    sha256: String,
    /// Rejects the file whatever its content: over `import.max_file_bytes`
    /// (hashed without being kept in memory), or an encrypted ZIP member.
    forced_error: Option<Issue>,
}

enum Body {
    Bytes(Vec<u8>),
    Text {
        file: fs::File,
        len: u64,
        head: Vec<u8>,
        utf8: bool,
    },
}

/// How much of a file is read before deciding whether it is streamed: as
/// much as delimiter detection samples.
const HEAD_BYTES: usize = 64 * 1024;

impl Content {
    fn input(&self) -> parse::Input<'_> {
        match &self.body {
            Body::Bytes(bytes) => parse::Input::Bytes(bytes),
            Body::Text {
                file,
                len,
                head,
                utf8,
            } => parse::Input::Text(parse::TextFile {
                file,
                len: *len,
                head,
                utf8: *utf8,
            }),
        }
    }

    /// The bytes of a file held in memory (an archive is); empty for a
    /// streamed one.
    fn bytes(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(bytes) => bytes,
            Body::Text { .. } => &[],
        }
    }
}

/// Whether a file whose first bytes are `head` is read from disk as it is
/// parsed: delimited text only (JSON needs its whole body to be told from
/// text, and workbooks and archives are read whole).
fn streams(name: &str, head: &[u8]) -> bool {
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let json_like = matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    );
    !json_like
        && matches!(
            parse::detect::detect(Path::new(name), head),
            Ok(parse::Format::Csv)
        )
}

/// Reads up to `want` bytes (fewer only at the end of the file).
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn read_content(
    path: &Path,
    name: Option<&str>,
    rules: &ImportRules,
    trust: crate::open::Trust,
) -> Result<Content, PipelineError> {
    let fail = |source| PipelineError::Read {
        path: path.to_path_buf(),
        source,
    };
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| crate::names::display_os(path.file_name().unwrap_or(path.as_os_str())));
    // One descriptor, checked (see `open`), read never past the limit.
    let (file, meta) = crate::open::open(path, trust).map_err(fail)?;
    let size = meta.len();
    let over = |read: u64| Content {
        name: name.clone(),
        body: Body::Bytes(Vec::new()),
        // Not read past the limit, so not hashed either.
        sha256: String::new(),
        forced_error: Some(too_large(size.max(read), rules)),
    };
    if size > rules.max_file_bytes {
        return Ok(over(size));
    }
    // One more byte than the limit tells a file that grew after the fstat.
    let mut reader = (&file).take(rules.max_file_bytes.saturating_add(1));
    let mut head = vec![0; HEAD_BYTES];
    let got = read_up_to(&mut reader, &mut head).map_err(fail)?;
    head.truncate(got);
    if got < HEAD_BYTES || !streams(&name, &head) {
        let mut bytes = head;
        bytes.reserve(usize::try_from(size.min(rules.max_file_bytes)).unwrap_or(0));
        reader.read_to_end(&mut bytes).map_err(fail)?;
        let read = bytes.len() as u64;
        if read > rules.max_file_bytes {
            return Ok(over(read));
        }
        let sha256 = hex(&Sha256::digest(&bytes));
        return Ok(Content {
            name,
            body: Body::Bytes(bytes),
            sha256,
            forced_error: None,
        });
    }
    // Delimited text: hashed and checked for UTF-8 a buffer at a time,
    // then parsed from the same descriptor.
    let mut hasher = Sha256::new();
    let mut utf8 = parse::decode::Utf8Check::default();
    hasher.update(&head);
    utf8.feed(&head);
    let mut read = head.len() as u64;
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = read_up_to(&mut reader, &mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        utf8.feed(&buf[..n]);
        read += n as u64;
    }
    if read > rules.max_file_bytes {
        return Ok(over(read));
    }
    Ok(Content {
        name,
        body: Body::Text {
            file,
            len: read,
            head,
            utf8: utf8.is_utf8(),
        },
        sha256: hex(&hasher.finalize()),
        forced_error: None,
    })
}

fn too_large(size: u64, rules: &ImportRules) -> Issue {
    Issue::new(
        Code::FileTooLarge,
        format!(
            "the file is {size} bytes; the limit (import.max_file_bytes) is {}; split it into smaller files",
            rules.max_file_bytes
        ),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses and validates the file, its rows going into `stage` as they are
/// checked. Reading and checking run on a thread of their own, beside this
/// one staging the rows it hands on (a bounded channel between them: a
/// few batches of rows in flight, whatever the file's size), so a large
/// file uses both cores.
fn check(
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
const BATCH_ROWS: usize = 512;
const BATCHES_IN_FLIGHT: usize = 4;

/// Rows handed from the reading thread to the staging one, already
/// encoded: one buffer per batch (the row objects are made and dropped on
/// the reading thread; freeing them on the other one made both wait on
/// the allocator), each row with where its encoding ends.
enum Batch {
    Rows {
        data: Vec<u8>,
        rows: Vec<(StagedRow, usize)>,
    },
    Clear,
}

/// Validation's sink on the reading thread: rows go to the staging thread
/// in batches. If that thread is gone, rows are dropped (the import fails
/// there with its own error).
struct Batches {
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
struct NoRows;

impl RowSink for NoRows {
    fn push(&mut self, _row: validate::CheckedRow) {}
    fn clear(&mut self) {}
    fn len(&self) -> u64 {
        0
    }
}

/// The rows a plan left out, read from the stage a batch at a time.
struct LeftOutRows<'a> {
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
fn errors_csv_limit(content: &Content, rules: &ImportRules) -> u64 {
    let own = errors_csv_room(content.input().len());
    rules.errors_csv_room.map_or(own, |room| room.min(own))
}

/// The errors-CSV room of a file (or an archive's members) of `bytes`.
fn errors_csv_room(bytes: u64) -> u64 {
    bytes.saturating_mul(2).saturating_add(16 * 1024 * 1024)
}

/// Writes the errors CSV of the rows left out into a hidden file beside
/// the reports, parsing the file a second time to copy their original
/// cells as they come (one row in memory at a time; the staged rows left
/// out are in file order, so the two are walked side by side). Returns the rows written
/// and the rows cut off at [`errors_csv_limit`].
fn write_errors_csv(
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

/// The rules one file is read by: the configured ones, with the file's own
/// kind (SPEC §1.1) decided from its name and what it inherits.
fn file_rules(rules: &ImportRules, name: &str, inherited: JobType) -> ImportRules {
    ImportRules {
        job_type: adjust::kind_of(name, inherited),
        ..rules.clone()
    }
}

/// The earlier import this file repeats. A refresh (SPEC §2, when
/// `skip_duplicate_files`): for every location it names, the last import
/// applied there has the same SHA-256. An adjust file (SPEC §1.1), always:
/// any earlier adjust import with the same SHA-256 — counting an update
/// twice is never right.
///
/// Per inbox (docs/inboxes.md): only an earlier import from the same inbox
/// makes a file a duplicate, so one account can never get another's file
/// skipped by sending a copy of it first (nor learn of the other's import
/// from its report).
fn duplicate_of(
    store: &impl Reader,
    inbox: &str,
    rules: &ImportRules,
    plan: &Plan,
    sha256: &str,
) -> Result<Option<i64>, StoreError> {
    if plan.job_type == JobType::Adjust {
        return queries::applied_adjust_with(store, inbox, sha256);
    }
    if !rules.skip_duplicate_files || plan.locations.is_empty() {
        return Ok(None);
    }
    let mut latest = None;
    for location in &plan.locations {
        match queries::last_applied_to(store, location)? {
            Some((id, sha, from)) if sha == sha256 && from == inbox => {
                latest = latest.max(Some(id))
            }
            _ => return Ok(None),
        }
    }
    Ok(latest)
}

fn mode_name(mode: RefreshMode) -> &'static str {
    match mode {
        RefreshMode::Delta => "delta",
        RefreshMode::Full => "full",
    }
}

/// Plans, applies and reports one file. The original is left where it is.
pub fn import_file(
    store: &mut Store,
    inbox: &Inbox,
    path: &Path,
    options: &ImportOptions,
) -> Result<Outcome, PipelineError> {
    let content = read_content(path, options.name.as_deref(), &inbox.rules, options.trust)?;
    import_content(
        store,
        inbox,
        path,
        &path.display().to_string(),
        content,
        inbox.rules.job_type,
        options,
    )
}

/// Imports a file; a ZIP archive of stock files becomes one import (and
/// one report) per member. With `options.resume`, a unit that already has
/// an import (found by its source: the path, or `path#member`) is finished
/// from its stored plan instead of imported again — how the daemon picks up
/// a claimed file after a crash.
pub fn import_path(
    store: &mut Store,
    inbox: &Inbox,
    path: &Path,
    options: &ImportOptions,
) -> Result<Vec<Outcome>, PipelineError> {
    let rules = &inbox.rules;
    let source = path.display().to_string();
    if options.resume {
        if let Some((id, _)) = queries::import_by_source(&store.read(), &source)? {
            return Ok(vec![finish(store, id, None)?]);
        }
    }
    let content = read_content(path, options.name.as_deref(), rules, options.trust)?;
    let members = match parse::archive_members(&content.name, content.bytes(), rules) {
        Some(Ok(members)) => members,
        // Not an archive, or one rejected as a whole: one import.
        _ => {
            return Ok(vec![import_content(
                store,
                inbox,
                path,
                &source,
                content,
                rules.job_type,
                options,
            )?])
        }
    };
    // Members are of the archive's kind unless their own names say.
    let archive_kind = adjust::kind_of(&content.name, rules.job_type);
    let mut outcomes = Vec::new();
    let mut skipped = Vec::new();
    // The members share one `import.max_locations`: each location costs a
    // transaction and an fsync, and a thousand members of 10,000 locations
    // each would hold the daemon for most of an hour. They share one
    // errors-CSV room too, the archive's.
    let mut member_inbox = inbox.clone();
    member_inbox.rules.errors_csv_room = Some(errors_csv_room(
        members.iter().map(|m| m.size).fold(0, u64::saturating_add),
    ));
    for member in &members {
        let name = crate::names::display(parse::container::base_name(&member.name).as_bytes());
        if !is_member_file(member, &name) {
            continue;
        }
        if !parse::detect::is_stock_file_name(&name) {
            skipped.push(name);
            continue;
        }
        let member_source = format!("{source}#{}", member.index);
        let member_import = || -> Result<(Outcome, bool), PipelineError> {
            if options.resume {
                if let Some((id, _)) = queries::import_by_source(&store.read(), &member_source)? {
                    return Ok((finish(store, id, None)?, true));
                }
            }
            let member_content = member_content(&content, member, name, rules);
            let outcome = import_content(
                store,
                &member_inbox,
                path,
                &member_source,
                member_content,
                archive_kind,
                options,
            )?;
            Ok((outcome, false))
        };
        let (outcome, resumed) = match member_import() {
            Ok(done) => done,
            Err(e) => {
                // The members done so far are not returned with the error:
                // their outbox's index is rewritten now, as it would have
                // been after each of them.
                let mut owed = report::index::Owed::default();
                index_owed(&mut owed, &outcomes);
                owed.pay(&store.read());
                return Err(e);
            }
        };
        if resumed {
            outcomes.push(outcome);
            continue;
        }
        let csv_bytes = outcome
            .paths
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".errors.csv"))
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| m.len())
            .fold(0, u64::saturating_add);
        member_inbox
            .rules
            .count_member(outcome.locations, csv_bytes);
        outcomes.push(outcome);
    }
    if !skipped.is_empty() {
        tracing::warn!(file = %content.name, skipped = %skipped.join(", "), "archive members that are not stock files were skipped");
    }
    if outcomes.is_empty() {
        // Nothing to import: the archive itself gets the one report.
        let mut content = content;
        content.forced_error = Some(Issue::new(
            Code::UnsupportedFormat,
            format!(
                "the archive holds no stock file (CSV, workbook or JSON){}",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; it has: {}", skipped.join(", "))
                }
            ),
        ));
        outcomes.push(import_content(
            store,
            inbox,
            path,
            &source,
            content,
            archive_kind,
            options,
        )?);
    }
    Ok(outcomes)
}

/// Whether an archive member is a file at all: not a folder, not hidden,
/// not macOS resource-fork litter.
fn is_member_file(member: &parse::container::Member, name: &str) -> bool {
    !member.is_dir
        && !name.is_empty()
        && !name.starts_with('.')
        && !member.name.starts_with("__MACOSX/")
}

/// One member of an archive as a file of its own.
fn member_content(
    archive: &Content,
    member: &parse::container::Member,
    name: String,
    rules: &ImportRules,
) -> Content {
    let rejected = |issue: Issue| Content {
        name: name.clone(),
        body: Body::Bytes(Vec::new()),
        sha256: hex(&Sha256::digest(format!(
            "{}#{}",
            archive.sha256, member.index
        ))),
        forced_error: Some(issue),
    };
    if member.encrypted {
        return rejected(Issue::new(
            Code::UnsupportedFormat,
            "the file is encrypted (password-protected) inside the archive; zip it without a password",
        ));
    }
    if member.size > rules.max_file_bytes {
        return rejected(too_large(member.size, rules));
    }
    match parse::container::extract(archive.bytes(), member) {
        Ok(bytes) => {
            let sha256 = hex(&Sha256::digest(&bytes));
            Content {
                name,
                body: Body::Bytes(bytes),
                sha256,
                forced_error: None,
            }
        }
        Err(issue) => rejected(issue),
    }
}

/// Plans, applies and reports one file's content. `path` is the file on
/// disk (checked for changes before the plan is committed); `source` is
/// what the import records as its origin.
fn import_content(
    store: &mut Store,
    inbox: &Inbox,
    path: &Path,
    source: &str,
    content: Content,
    inherited: JobType,
    options: &ImportOptions,
) -> Result<Outcome, PipelineError> {
    let rules = &file_rules(&inbox.rules, &content.name, inherited);
    let received_at = now();
    let progress = |what: &str, done: u64, of: u64| {
        if let Some(report) = &options.progress {
            report(what, done, of);
        }
    };
    progress("checking rows", 0, 0);
    let mut clock = StageClock::start();
    let mut stage = Stage::new()?;
    let checked = check(&content, rules, &mut stage, &progress)?;
    clock.lap("check");
    progress("resolving items", 0, stage.rows());
    let mut plan = resolve::plan(
        &checked,
        &mut stage,
        &store.read(),
        rules,
        &content.name,
        &|done, of| progress("resolving items", done, of),
    )?;
    clock.lap("resolve");
    plan.draft.locations = checked.locations.len() as u64;
    let report_dir = options
        .report_dir
        .clone()
        .unwrap_or_else(|| inbox.outbox.clone());
    // The errors CSV, written now (it needs the original cells) under a
    // temporary name and renamed to the import's once its id is known.
    let errors_csv = if plan.left_out == 0 {
        None
    } else {
        progress("writing the errors CSV", 0, 0);
        let report_error = |source| PipelineError::Report {
            dir: report_dir.clone(),
            source,
        };
        fs::create_dir_all(&report_dir).map_err(report_error)?;
        let temp = Staged(report_dir.join(format!(".errors.csv.part-{}", std::process::id())));
        let (rows, omitted) =
            write_errors_csv(&content, rules, &checked, &plan.draft, &stage, &temp.0)
                .map_err(report_error)?;
        plan.draft.errors_csv_rows = rows;
        plan.draft.errors_csv_omitted = omitted;
        Some(temp)
    };
    let duplicate = if options.force || checked.file_error.is_some() {
        None
    } else {
        duplicate_of(&store.read(), &inbox.name, rules, &plan, &content.sha256)?
    };
    let source_path = source.to_string();

    if let Some(stamp) = options.unchanged {
        if !stamp.still_holds(path) {
            return Err(PipelineError::Changed);
        }
    }

    // The plan, committed before anything is applied.
    progress("storing the plan", 0, 0);
    let write = store.write()?;
    let import_id = queries::insert_import(
        &write,
        &NewImport {
            file: &content.name,
            source_path: &source_path,
            sha256: &content.sha256,
            format: checked.format.as_str(),
            status: "planned",
            duplicate_of: duplicate,
            refresh_mode: mode_name(plan.mode),
            job_type: plan.job_type.as_str(),
            received_at: &received_at,
            rows_total: plan.draft.rows_total,
            rows_accepted: plan.draft.rows_accepted,
            rows_rejected: plan.draft.rows_rejected,
            report_dir: &report_dir.display().to_string(),
            draft: &plan.draft,
            inbox: &inbox.name,
        },
    )?;
    if duplicate.is_none() {
        let messages = [String::from(
            "rejected: not applied because of errors in the file (see its report)",
        )];
        stage.for_each_job(|job| {
            let rejected = plan.is_rejected(job.location);
            let location = plan
                .locations
                .get(job.location as usize)
                .map_or("", String::as_str);
            queries::insert_job(
                &write,
                &NewJob {
                    import_id,
                    location,
                    manufacturer_id: job.manufacturer_id,
                    item_count: job.item_count as usize,
                    job_type: plan.job_type.as_str(),
                    status: if rejected { "rejected" } else { "pending" },
                    file: &content.name,
                    messages: if rejected { &messages } else { &[] },
                    added: &received_at,
                    // A rejected job is never applied: its items are not kept.
                    plan: if rejected { &[] } else { &job.plan },
                },
            )?;
            Ok(())
        })?;
    }
    if let Some(temp) = errors_csv {
        // Renamed before the plan commits: a crash after the commit finds
        // it under the import's id (a crash before leaves a stale one, which
        // the next import with this id replaces or removes).
        let staged = report::staged_errors_csv(&report_dir, import_id);
        fs::rename(&temp.0, &staged)
            .and_then(|()| crate::durable::sync_dir(&report_dir))
            .map_err(|source| PipelineError::Report {
                dir: report_dir.clone(),
                source,
            })?;
        std::mem::forget(temp);
    }
    // A plan as large as the apply that checkpoints on the other core is
    // left in the WAL for that thread to copy (436 MB for 5M rows).
    let committed = if plan.draft.rows_accepted >= apply::BACKGROUND_CHECKPOINT_ITEMS {
        write.commit_leaving_checkpoint()
    } else {
        write.commit()
    };
    store.set_auto_checkpoint(true)?;
    committed?;
    clock.lap("store plan");
    crate::crashpoint::hit("after-plan");
    drop(content);
    tracing::info!(import_id, path = %path.display(), "plan stored");
    let outcome = finish(store, import_id, options.progress.as_ref());
    clock.lap("apply and report");
    outcome
}

/// Logs (at debug) how long each stage of one file took: where the time
/// of a large import goes, without a profiler.
struct StageClock(std::time::Instant);

impl StageClock {
    fn start() -> Self {
        StageClock(std::time::Instant::now())
    }

    fn lap(&mut self, stage: &str) {
        let ms = self.0.elapsed().as_millis() as u64;
        tracing::debug!(stage, ms, "stage done");
        self.0 = std::time::Instant::now();
    }
}

/// A temporary file removed when dropped (an import that stops before
/// its plan is stored leaves none behind).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Applies what is left of a stored plan, writes the reports and marks the
/// import finished. Safe to call again after a crash at any point.
pub fn finish(
    store: &mut Store,
    import_id: i64,
    progress: Option<&Progress>,
) -> Result<Outcome, PipelineError> {
    let record = load_import(store, import_id)?;
    if record.status == "failing" {
        return write_reports(store, record);
    }
    apply::apply_import(store, import_id, |done, of| {
        if let Some(report) = progress {
            report("applying jobs", done, of);
        }
    })?;
    let record = load_import(store, import_id)?;
    write_reports(store, record)
}

fn load_import(store: &Store, import_id: i64) -> Result<queries::ImportRecord, PipelineError> {
    queries::import(&store.read(), import_id)?.ok_or_else(|| {
        PipelineError::Store(StoreError::Corrupt {
            what: "import",
            detail: format!("import {import_id} vanished"),
        })
    })
}

/// Writes the reports of an import whose jobs are done, then marks it
/// finished with its status.
fn write_reports(
    store: &mut Store,
    record: queries::ImportRecord,
) -> Result<Outcome, PipelineError> {
    let import_id = record.id;
    // Counted whole, held in part: the JSON reads the rest again as it is
    // written (`report::jobs`).
    let mut entries = JobList::new();
    let mut through = 0;
    queries::each_job_of_import(&store.read(), import_id, i64::MAX, 0, |job| {
        through = job.job_id;
        entries.push(JobEntry::from(&job));
        Ok(())
    })?;
    if let Some(database) = store.path() {
        entries.read_rest_from(Arc::new(report::jobs::ImportJobs {
            database,
            import_id,
            through,
        }));
    }
    let status = if record.status == "failing" || record.status == "failed" {
        "failed"
    } else {
        report::file_status(&record.draft, &entries, record.duplicate_of.is_some())
    };
    let mut report = Report::from_draft(&record.draft);
    report.import_id = Some(import_id);
    report.file = record.file.clone();
    report.sha256 = record.sha256.clone();
    report.format = record.format.clone();
    report.status = status.to_string();
    report.duplicate_of = record.duplicate_of;
    report.refresh_mode = record.refresh_mode.clone();
    report.job_type = record.job_type.clone();
    report.inbox = record.inbox.clone();
    report.received_at = record.received_at.clone();
    report.finished_at = record.finished_at.clone().unwrap_or_else(now);
    report.jobs_truncated = entries.left_out() > 0;
    report.jobs = entries;
    let dir = PathBuf::from(&record.report_dir);
    fs::create_dir_all(&dir).map_err(|source| PipelineError::Report {
        dir: dir.clone(),
        source,
    })?;
    let paths = report::write_all(&report, &record.draft, &dir, import_id).map_err(|source| {
        PipelineError::Report {
            dir: dir.clone(),
            source,
        }
    })?;
    crate::crashpoint::hit("after-reports");
    let write = store.write()?;
    queries::finish_import(&write, import_id, status, &report.finished_at)?;
    write.commit()?;
    tracing::info!(import_id, file = %record.file, status, "import finished");
    Ok(Outcome {
        report,
        paths,
        outbox: record.report_dir,
        locations: record.draft.locations,
    })
}

/// The outbox indexes that `outcomes` leave to rewrite (SPEC §5: after
/// every import), each once: a ZIP's members share one. The caller pays
/// them ([`report::index::Owed::pay`]) when it chooses: the CLI at once, the
/// daemon once a burst is drained.
pub fn index_owed<'a>(
    owed: &mut report::index::Owed,
    outcomes: impl IntoIterator<Item = &'a Outcome>,
) {
    for outcome in outcomes {
        owed.add(&outcome.outbox);
    }
}

/// Ends a file as `failed` after an operational failure that retries did
/// not cure (SPEC §2): jobs not yet applied are marked `failed`, the error
/// joins the report, and the report is written. `existing` is the file's
/// import, if its plan was stored; otherwise an import is recorded now.
pub fn fail(
    store: &mut Store,
    inbox: &Inbox,
    path: &Path,
    name: &str,
    existing: Option<i64>,
    message: &str,
) -> Result<Outcome, PipelineError> {
    let issue = Issue::new(
        Code::OperationalError,
        format!("stockdrop could not process the file: {message}; fix the cause and drop the file again"),
    );
    let write = store.write()?;
    let import_id = match existing {
        Some(id) => id,
        None => {
            let sha256 = crate::open::sha256_of(path, inbox.rules.max_file_bytes);
            let draft = crate::plan::Draft::default();
            queries::insert_import(
                &write,
                &NewImport {
                    file: name,
                    source_path: &path.display().to_string(),
                    sha256: &sha256,
                    format: "unknown",
                    status: "planned",
                    duplicate_of: None,
                    refresh_mode: mode_name(inbox.rules.refresh_mode),
                    job_type: adjust::kind_of(name, inbox.rules.job_type).as_str(),
                    received_at: &now(),
                    rows_total: 0,
                    rows_accepted: 0,
                    rows_rejected: 0,
                    report_dir: &inbox.outbox.display().to_string(),
                    draft: &draft,
                    inbox: &inbox.name,
                },
            )?
        }
    };
    queries::mark_failing(&write, import_id, &issue, inbox.rules.max_errors)?;
    write.commit()?;
    finish(store, import_id, None)
}

/// What recovery did with one interrupted import.
pub type Recovered = (i64, Result<Outcome, PipelineError>);

/// Finishes every import a crash (or `kill -9`) left half done. One that
/// cannot be finished now does not hold up the others: each comes back
/// with its outcome or its error.
pub fn recover(store: &mut Store) -> Result<Vec<Recovered>, PipelineError> {
    let unfinished = queries::unfinished_imports(&store.read())?;
    let mut results = Vec::new();
    for import_id in unfinished {
        tracing::warn!(import_id, "finishing an import that was interrupted");
        results.push((import_id, finish(store, import_id, None)));
    }
    Ok(results)
}

/// Parses, validates and resolves a file against the store without writing
/// anything: the report an import would produce, with no ids.
pub fn validate_file(store: &Store, inbox: &Inbox, path: &Path) -> Result<Report, PipelineError> {
    let content = read_content(path, None, &inbox.rules, Default::default())?;
    Ok(validate_content(store, inbox, content, inbox.rules.job_type)?.0)
}

/// [`validate_file`] for every file an import of `path` would make: one
/// report, or one per member of a ZIP archive.
pub fn validate_path(
    store: &Store,
    inbox: &Inbox,
    path: &Path,
) -> Result<Vec<Report>, PipelineError> {
    let rules = &inbox.rules;
    let content = read_content(path, None, rules, Default::default())?;
    let members = match parse::archive_members(&content.name, content.bytes(), rules) {
        Some(Ok(members)) => members,
        _ => {
            return Ok(vec![
                validate_content(store, inbox, content, rules.job_type)?.0,
            ])
        }
    };
    let archive_kind = adjust::kind_of(&content.name, rules.job_type);
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    // As `import_path` does: the members share one `import.max_locations`.
    let mut member_inbox = inbox.clone();
    for member in &members {
        let name = crate::names::display(parse::container::base_name(&member.name).as_bytes());
        if !is_member_file(member, &name) {
            continue;
        }
        if parse::detect::is_stock_file_name(&name) {
            let (report, locations) = validate_content(
                store,
                &member_inbox,
                member_content(&content, member, name, rules),
                archive_kind,
            )?;
            // `validate` writes no errors CSV.
            member_inbox.rules.count_member(locations, 0);
            reports.push(report);
        } else {
            skipped.push(name);
        }
    }
    if reports.is_empty() {
        // Nothing to validate: the archive itself gets the one report, as
        // `import` gives it.
        let mut content = content;
        content.forced_error = Some(Issue::new(
            Code::UnsupportedFormat,
            format!(
                "the archive holds no stock file (CSV, workbook or JSON){}",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; it has: {}", skipped.join(", "))
                }
            ),
        ));
        reports.push(validate_content(store, inbox, content, archive_kind)?.0);
    }
    Ok(reports)
}

/// The report an import of `content` would produce, and the distinct
/// locations it names.
fn validate_content(
    store: &Store,
    inbox: &Inbox,
    content: Content,
    inherited: JobType,
) -> Result<(Report, u64), PipelineError> {
    let rules = &file_rules(&inbox.rules, &content.name, inherited);
    let received_at = now();
    let mut stage = Stage::new()?;
    let checked = check(&content, rules, &mut stage, &|_, _, _| {})?;
    let plan = resolve::plan(
        &checked,
        &mut stage,
        &store.read(),
        rules,
        &content.name,
        &|_, _| {},
    )?;
    let duplicate = if checked.file_error.is_none() {
        duplicate_of(&store.read(), &inbox.name, rules, &plan, &content.sha256)?
    } else {
        None
    };
    let mut entries = JobList::new();
    stage.for_each_job(|job| {
        let rejected = plan.is_rejected(job.location);
        entries.push(JobEntry {
            job_id: None,
            location: plan
                .locations
                .get(job.location as usize)
                .cloned()
                .unwrap_or_default(),
            manufacturer_id: job.manufacturer_id.map(i64::from),
            item_count: job.item_count,
            zeroed: if rejected { 0 } else { job.zero_count },
            status: if rejected { "rejected" } else { "pending" }.to_string(),
        });
        Ok(())
    })?;
    let mut report = Report::from_draft(&plan.draft);
    report.file = content.name.clone();
    report.sha256 = content.sha256.clone();
    report.format = checked.format.as_str().to_string();
    report.status = report::file_status(&plan.draft, &entries, duplicate.is_some()).to_string();
    report.duplicate_of = duplicate;
    report.refresh_mode = mode_name(plan.mode).to_string();
    report.job_type = plan.job_type.as_str().to_string();
    report.inbox = inbox.name.clone();
    report.received_at = received_at;
    report.finished_at = now();
    // The stage goes with this function: past the first jobs, a
    // `validate` report counts them (an import's report lists them all).
    report.jobs_truncated = entries.left_out() > 0;
    report.jobs = entries;
    Ok((report, checked.locations.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_progress_names_the_file_and_stage_on_one_line() {
        let work = tempfile::tempdir().unwrap();
        let progress = progress_after(
            work.path(),
            "x\nWATCHDOG_USEC=1\ny.csv",
            std::time::Duration::ZERO,
        );
        progress("applying jobs", 3, 20);
        let line = fs::read_to_string(progress_file(work.path())).unwrap();
        assert!(
            line.starts_with("importing x?WATCHDOG_USEC=1?y.csv: applying jobs (3 of 20) (at "),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1, "{line}");
        // At most once a second: the next call within it changes nothing.
        progress("writing reports", 0, 0);
        assert_eq!(
            fs::read_to_string(progress_file(work.path())).unwrap(),
            line
        );
    }

    /// A file done within its quiet start is never announced: no
    /// progress file is made for it.
    #[test]
    fn operator_progress_is_quiet_at_first() {
        let work = tempfile::tempdir().unwrap();
        let progress = progress_after(
            work.path(),
            "small.csv",
            std::time::Duration::from_secs(3600),
        );
        progress("reading", 0, 0);
        progress("applying jobs", 1, 1);
        assert!(!progress_file(work.path()).exists());
    }
}
