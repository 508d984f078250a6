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

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::apply::{self, now};
use crate::config::{Config, ImportRules, RefreshMode};
use crate::issue::{Code, Issue};
use crate::parse::{self, Cell};
use crate::plan::{ErrorsCsvRow, LeftOutRow, Plan};
use crate::report::{self, JobEntry, Report};
use crate::resolve;
use crate::store::queries::{self, JobFilter, NewImport, NewJob};
use crate::store::{Reader, Store, StoreError};
use crate::validate::{self, Checked};

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
}

/// A file's bytes and checksum, read once.
struct Content {
    name: String,
    bytes: Vec<u8>,
    sha256: String,
    /// Rejects the file whatever its content: over `import.max_file_bytes`
    /// (hashed without being kept in memory), or an encrypted ZIP member.
    forced_error: Option<Issue>,
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
    let (mut file, meta) = crate::open::open(path, trust).map_err(fail)?;
    let size = meta.len();
    let bytes = if size > rules.max_file_bytes {
        Vec::new()
    } else {
        crate::open::read_bounded(&mut file, rules.max_file_bytes, size).map_err(fail)?
    };
    let read = bytes.len() as u64;
    if size > rules.max_file_bytes || read > rules.max_file_bytes {
        // Not read past the limit, so not hashed either.
        return Ok(Content {
            name,
            bytes: Vec::new(),
            sha256: String::new(),
            forced_error: Some(too_large(size.max(read), rules)),
        });
    }
    let sha256 = hex(&Sha256::digest(&bytes));
    Ok(Content {
        name,
        bytes,
        sha256,
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

fn check(content: &Content, rules: &ImportRules) -> Checked {
    let mut checked = validate::check(&content.name, &content.bytes, rules);
    if let Some(issue) = &content.forced_error {
        checked = Checked {
            rows: Vec::new(),
            file_error: Some(issue.clone()),
            ..checked
        };
    }
    checked
}

/// Parses the file a second time to copy the rows left out into the errors
/// CSV with their original cells. Done only when rows were left out, so a
/// clean import holds no raw text in memory.
fn copy_left_out_rows(
    content: &Content,
    rules: &ImportRules,
    checked: &Checked,
    draft: &crate::plan::Draft,
    left_out: &[LeftOutRow],
) -> Vec<ErrorsCsvRow> {
    let header = &draft.errors_csv_header;
    if left_out.is_empty() {
        return Vec::new();
    }
    let wanted: HashSet<(u16, u64)> = left_out.iter().map(|r| (r.table, r.number)).collect();
    let mut cells: HashMap<(u16, u64), Vec<String>> = HashMap::new();
    if let Ok(parsed) = parse::parse(&content.name, &content.bytes, rules) {
        for (index, table) in parsed.tables.into_iter().enumerate() {
            let table_no = u16::try_from(index).unwrap_or(u16::MAX);
            for row in table.rows.map_while(Result::ok) {
                if wanted.contains(&(table_no, row.number)) {
                    cells.insert(
                        (table_no, row.number),
                        row.cells.iter().map(Cell::to_text).collect(),
                    );
                }
            }
        }
    }
    // Several sheets share one header (see `resolve::errors_csv_header`):
    // each row's cells go under their own column names.
    let merged = draft.errors_csv_sheets;
    left_out
        .iter()
        .map(|r| {
            let own = cells.remove(&(r.table, r.number)).unwrap_or_default();
            let cells = if merged {
                let table = checked.tables.get(usize::from(r.table));
                let names: Vec<String> = table
                    .and_then(|t| t.layout.as_ref())
                    .map(|l| l.names.iter().map(|n| n.trim().to_string()).collect())
                    .unwrap_or_default();
                header
                    .iter()
                    .map(|column| {
                        if column == "sheet" {
                            return table.and_then(|t| t.sheet.clone()).unwrap_or_default();
                        }
                        names
                            .iter()
                            .position(|n| n == column)
                            .and_then(|i| own.get(i).cloned())
                            .unwrap_or_default()
                    })
                    .collect()
            } else {
                own
            };
            ErrorsCsvRow {
                cells,
                location: r.location.clone(),
                error: r.error.clone(),
            }
        })
        .collect()
}

/// The earlier import this file repeats (SPEC §2): for every location it
/// names, the last import applied there has the same SHA-256.
fn duplicate_of(store: &impl Reader, plan: &Plan, sha256: &str) -> Result<Option<i64>, StoreError> {
    if plan.locations.is_empty() {
        return Ok(None);
    }
    let mut latest = None;
    for location in &plan.locations {
        match queries::last_applied_to(store, location)? {
            Some((id, sha)) if sha == sha256 => latest = latest.max(Some(id)),
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
    config: &Config,
    path: &Path,
    options: &ImportOptions,
) -> Result<Outcome, PipelineError> {
    let content = read_content(path, options.name.as_deref(), &config.rules, options.trust)?;
    import_content(
        store,
        config,
        path,
        &path.display().to_string(),
        content,
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
    config: &Config,
    path: &Path,
    options: &ImportOptions,
) -> Result<Vec<Outcome>, PipelineError> {
    let rules = &config.rules;
    let source = path.display().to_string();
    if options.resume {
        if let Some((id, _)) = queries::import_by_source(&store.read(), &source)? {
            return Ok(vec![finish(store, id, None)?]);
        }
    }
    let content = read_content(path, options.name.as_deref(), rules, options.trust)?;
    let members = match parse::archive_members(&content.name, &content.bytes, rules) {
        Some(Ok(members)) => members,
        // Not an archive, or one rejected as a whole: one import.
        _ => {
            return Ok(vec![import_content(
                store, config, path, &source, content, options,
            )?])
        }
    };
    let mut outcomes = Vec::new();
    let mut skipped = Vec::new();
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
        if options.resume {
            if let Some((id, _)) = queries::import_by_source(&store.read(), &member_source)? {
                outcomes.push(finish(store, id, None)?);
                continue;
            }
        }
        let member_content = member_content(&content, member, name, rules);
        outcomes.push(import_content(
            store,
            config,
            path,
            &member_source,
            member_content,
            options,
        )?);
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
            store, config, path, &source, content, options,
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
        bytes: Vec::new(),
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
    match parse::container::extract(&archive.bytes, member) {
        Ok(bytes) => {
            let sha256 = hex(&Sha256::digest(&bytes));
            Content {
                name,
                bytes,
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
    config: &Config,
    path: &Path,
    source: &str,
    content: Content,
    options: &ImportOptions,
) -> Result<Outcome, PipelineError> {
    let rules = &config.rules;
    let received_at = now();
    let progress = |what: &str, done: u64, of: u64| {
        if let Some(report) = &options.progress {
            report(what, done, of);
        }
    };
    progress("checking rows", 0, 0);
    let mut checked = check(&content, rules);
    progress("resolving items", 0, 0);
    let mut plan = resolve::plan(&mut checked, &store.read(), rules, &content.name)?;
    plan.draft.errors_csv =
        copy_left_out_rows(&content, rules, &checked, &plan.draft, &plan.left_out);
    let duplicate = if rules.skip_duplicate_files && !options.force && checked.file_error.is_none()
    {
        duplicate_of(&store.read(), &plan, &content.sha256)?
    } else {
        None
    };
    let report_dir = options
        .report_dir
        .clone()
        .unwrap_or_else(|| config.paths.outbox.clone());
    let source_path = source.to_string();

    if let Some(stamp) = options.unchanged {
        if !stamp.still_holds(path) {
            return Err(PipelineError::Changed);
        }
    }

    // The plan, committed before anything is applied.
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
            received_at: &received_at,
            rows_total: plan.draft.rows_total,
            rows_accepted: plan.draft.rows_accepted,
            rows_rejected: plan.draft.rows_rejected,
            report_dir: &report_dir.display().to_string(),
            draft: &plan.draft,
        },
    )?;
    if duplicate.is_none() {
        for job in &plan.jobs {
            let messages: Vec<String> = if job.rejected {
                vec!["rejected: not applied because of errors in the file (see its report)".into()]
            } else {
                Vec::new()
            };
            queries::insert_job(
                &write,
                &NewJob {
                    import_id,
                    location: &job.location,
                    manufacturer_id: job.manufacturer_id,
                    item_count: job.plan.items.len(),
                    status: if job.rejected { "rejected" } else { "pending" },
                    file: &content.name,
                    messages: &messages,
                    added: &received_at,
                    plan: &job.plan.encode(),
                },
            )?;
        }
    }
    write.commit()?;
    crate::crashpoint::hit("after-plan");
    drop(content);
    tracing::info!(import_id, path = %path.display(), "plan stored");
    finish(store, import_id, options.progress.as_ref())
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
    let read = store.read();
    let jobs = queries::jobs(
        &read,
        &JobFilter {
            import_id: Some(import_id),
            ..JobFilter::default()
        },
    )?;
    let entries: Vec<JobEntry> = jobs
        .iter()
        .map(|j| JobEntry {
            job_id: Some(j.job_id),
            location: j.location.clone(),
            manufacturer_id: j.manufacturer_id,
            item_count: j.item_count as u64,
            zeroed: j.zeroed as u64,
            status: j.status.clone(),
        })
        .collect();
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
    report.received_at = record.received_at.clone();
    report.finished_at = record.finished_at.clone().unwrap_or_else(now);
    report.jobs = entries;
    let dir = PathBuf::from(&record.report_dir);
    fs::create_dir_all(&dir).map_err(|source| PipelineError::Report {
        dir: dir.clone(),
        source,
    })?;
    let paths = report::write_all(&report, &record.draft, &dir).map_err(|source| {
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
    Ok(Outcome { report, paths })
}

/// Ends a file as `failed` after an operational failure that retries did
/// not cure (SPEC §2): jobs not yet applied are marked `failed`, the error
/// joins the report, and the report is written. `existing` is the file's
/// import, if its plan was stored; otherwise an import is recorded now.
pub fn fail(
    store: &mut Store,
    config: &Config,
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
            let sha256 = crate::open::sha256_of(path, config.rules.max_file_bytes);
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
                    refresh_mode: mode_name(config.rules.refresh_mode),
                    received_at: &now(),
                    rows_total: 0,
                    rows_accepted: 0,
                    rows_rejected: 0,
                    report_dir: &config.paths.outbox.display().to_string(),
                    draft: &draft,
                },
            )?
        }
    };
    queries::mark_failing(&write, import_id, &issue, config.rules.max_errors)?;
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
pub fn validate_file(store: &Store, config: &Config, path: &Path) -> Result<Report, PipelineError> {
    let content = read_content(path, None, &config.rules, Default::default())?;
    validate_content(store, config, content)
}

/// [`validate_file`] for every file an import of `path` would make: one
/// report, or one per member of a ZIP archive.
pub fn validate_path(
    store: &Store,
    config: &Config,
    path: &Path,
) -> Result<Vec<Report>, PipelineError> {
    let rules = &config.rules;
    let content = read_content(path, None, rules, Default::default())?;
    let members = match parse::archive_members(&content.name, &content.bytes, rules) {
        Some(Ok(members)) => members,
        _ => return Ok(vec![validate_content(store, config, content)?]),
    };
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    for member in &members {
        let name = crate::names::display(parse::container::base_name(&member.name).as_bytes());
        if !is_member_file(member, &name) {
            continue;
        }
        if parse::detect::is_stock_file_name(&name) {
            reports.push(validate_content(
                store,
                config,
                member_content(&content, member, name, rules),
            )?);
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
        reports.push(validate_content(store, config, content)?);
    }
    Ok(reports)
}

fn validate_content(
    store: &Store,
    config: &Config,
    content: Content,
) -> Result<Report, PipelineError> {
    let rules = &config.rules;
    let received_at = now();
    let mut checked = check(&content, rules);
    let plan = resolve::plan(&mut checked, &store.read(), rules, &content.name)?;
    let duplicate = if rules.skip_duplicate_files && checked.file_error.is_none() {
        duplicate_of(&store.read(), &plan, &content.sha256)?
    } else {
        None
    };
    let entries: Vec<JobEntry> = plan
        .jobs
        .iter()
        .map(|j| JobEntry {
            job_id: None,
            location: j.location.clone(),
            manufacturer_id: j.manufacturer_id.map(i64::from),
            item_count: j.plan.items.len() as u64,
            zeroed: j.plan.zero.len() as u64,
            status: if j.rejected { "rejected" } else { "pending" }.to_string(),
        })
        .collect();
    let mut report = Report::from_draft(&plan.draft);
    report.file = content.name.clone();
    report.sha256 = content.sha256.clone();
    report.format = checked.format.as_str().to_string();
    report.status = report::file_status(&plan.draft, &entries, duplicate.is_some()).to_string();
    report.duplicate_of = duplicate;
    report.refresh_mode = mode_name(plan.mode).to_string();
    report.received_at = received_at;
    report.finished_at = now();
    report.jobs = entries;
    Ok(report)
}
