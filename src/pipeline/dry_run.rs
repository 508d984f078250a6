//! `stockdrop validate`: a file through parse, validate and resolve
//! against the store, writing nothing.

use std::path::Path;

use super::{
    check, duplicate_of, file_rules, is_member_file, member_content, mode_name, no_stock_file,
    read_content, Content, PipelineError,
};
use crate::adjust;
use crate::apply::now;
use crate::config::{Inbox, JobType};
use crate::parse;
use crate::report::{self, JobEntry, JobList, Report};
use crate::resolve;
use crate::store::stage::Stage;
use crate::store::Store;

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
        content.forced_error = Some(no_stock_file(&skipped));
        reports.push(validate_content(store, inbox, content, archive_kind)?.0);
    }
    Ok(reports)
}

/// The report an import of `content` would produce, and the distinct
/// locations it names.
pub(super) fn validate_content(
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
