//! After the plan: applying what is left of it, the reports, the import
//! marked finished; a file that failed; recovery after a crash.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{mode_name, Outcome, PipelineError, Progress};
use crate::adjust;
use crate::apply::{self, now};
use crate::config::{Inbox, JobType};
use crate::issue::{Code, Issue};
use crate::plan::Draft;
use crate::report::{self, JobEntry, JobList, Report};
use crate::store::queries::{self, NewImport};
use crate::store::{Store, StoreError, Write};

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

pub(super) fn load_import(
    store: &Store,
    import_id: i64,
) -> Result<queries::ImportRecord, PipelineError> {
    queries::import(&store.read(), import_id)?.ok_or_else(|| {
        PipelineError::Store(StoreError::Corrupt {
            what: "import",
            detail: format!("import {import_id} vanished"),
        })
    })
}

/// Writes the reports of an import whose jobs are done, then marks it
/// finished with its status.
pub(super) fn write_reports(
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
        None => record_unread(
            &write,
            inbox,
            name,
            &path.display().to_string(),
            &crate::open::sha256_of(path, inbox.rules.max_file_bytes),
            adjust::kind_of(name, inbox.rules.job_type),
            &crate::plan::Draft::default(),
        )?,
    };
    queries::mark_failing(&write, import_id, &issue, inbox.rules.max_errors)?;
    write.commit()?;
    finish(store, import_id, None)
}

/// Records an import of a file that was never read — refused when it was
/// claimed, or failed before its plan was stored — with no rows and
/// `planned`, so that [`finish`] writes its report and ends it.
pub fn record_unread(
    write: &Write<'_>,
    inbox: &Inbox,
    name: &str,
    source_path: &str,
    sha256: &str,
    job_type: JobType,
    draft: &Draft,
) -> Result<i64, StoreError> {
    queries::insert_import(
        write,
        &NewImport {
            file: name,
            source_path,
            sha256,
            format: "unknown",
            status: "planned",
            duplicate_of: None,
            refresh_mode: mode_name(inbox.rules.refresh_mode),
            job_type: job_type.as_str(),
            received_at: &now(),
            rows_total: 0,
            rows_accepted: 0,
            rows_rejected: 0,
            report_dir: &inbox.outbox.display().to_string(),
            draft,
            inbox: &inbox.name,
        },
    )
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
