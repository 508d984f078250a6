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
use std::io;
use std::path::{Path, PathBuf};

use crate::adjust;
use crate::apply::{self, now};
use crate::config::{ImportRules, Inbox, JobType, RefreshMode};
use crate::parse;
use crate::plan::Plan;
use crate::report::{self, Report};
use crate::resolve;
use crate::store::queries::{self, NewImport, NewJob};
use crate::store::stage::Stage;
use crate::store::{Reader, Store, StoreError};

mod check;
mod content;
mod dry_run;
mod finish;
mod left_out;
mod progress;

use check::check;
use content::{member_content, no_stock_file, read_content, Content};
pub use dry_run::{validate_file, validate_path};
pub use finish::{fail, finish, index_owed, record_unread, recover, Recovered};
use left_out::{errors_csv_room, write_errors_csv};
pub use progress::{operator_progress, progress_file};

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
    /// The outbox the reports went to, as `imports.report_dir` holds it:
    /// its `index.html` is owed a rewrite ([`index_owed`]).
    pub outbox: String,
    /// The distinct locations the file named (`Draft::locations`).
    pub locations: u64,
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
        content.forced_error = Some(no_stock_file(&skipped));
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

    if let Some(stamp) = options.unchanged {
        if !stamp.still_holds(path) {
            return Err(PipelineError::Changed);
        }
    }

    // The plan, committed before anything is applied.
    progress("storing the plan", 0, 0);
    let import_id = store_plan(
        store,
        StoredPlan {
            inbox,
            content: &content,
            source,
            format: checked.format.as_str(),
            plan: &plan,
            stage: &stage,
            duplicate,
            received_at: &received_at,
            report_dir: &report_dir,
            errors_csv,
        },
    )?;
    clock.lap("store plan");
    crate::crashpoint::hit("after-plan");
    drop(content);
    tracing::info!(import_id, path = %path.display(), "plan stored");
    let outcome = finish(store, import_id, options.progress.as_ref());
    clock.lap("apply and report");
    outcome
}

/// What [`store_plan`] records: a file's plan, with what the import's row
/// needs.
struct StoredPlan<'a> {
    inbox: &'a Inbox,
    content: &'a Content,
    source: &'a str,
    format: &'a str,
    plan: &'a Plan,
    stage: &'a Stage,
    duplicate: Option<i64>,
    received_at: &'a str,
    report_dir: &'a Path,
    /// The errors CSV written under a temporary name, renamed to the
    /// import's before the commit.
    errors_csv: Option<Staged>,
}

/// Commits the import and its jobs (`pending`, or `rejected` with no items
/// at a rejected location; none for a duplicate) in one transaction:
/// after it, the plan is on disk before anything is applied (SPEC §2).
fn store_plan(store: &mut Store, stored: StoredPlan<'_>) -> Result<i64, PipelineError> {
    let StoredPlan {
        inbox,
        content,
        source,
        format,
        plan,
        stage,
        duplicate,
        received_at,
        report_dir,
        errors_csv,
    } = stored;
    let write = store.write()?;
    let import_id = queries::insert_import(
        &write,
        &NewImport {
            file: &content.name,
            source_path: source,
            sha256: &content.sha256,
            format,
            status: "planned",
            duplicate_of: duplicate,
            refresh_mode: mode_name(plan.mode),
            job_type: plan.job_type.as_str(),
            received_at,
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
                    added: received_at,
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
        let staged = report::staged_errors_csv(report_dir, import_id);
        fs::rename(&temp.0, &staged)
            .and_then(|()| crate::durable::sync_dir(report_dir))
            .map_err(|source| PipelineError::Report {
                dir: report_dir.to_path_buf(),
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
    Ok(import_id)
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
