//! The report's draft (SPEC §5): its counts, the errors in file order and
//! the warnings, read from the stage once every location is resolved; the
//! rows left out are staged for the errors CSV.

use std::collections::BTreeSet;

use super::row_place;
use crate::config::ImportRules;
use crate::issue::{Code, Issue};
use crate::plan::{Draft, LeftOutRow};
use crate::store::stage::{Findings, Stage};
use crate::store::Result;
use crate::validate::{Checked, CheckedRow};

/// What resolving decided about the file and its locations.
pub(super) struct Verdict<'a> {
    /// The full-mode check's errors, one per location it rejected.
    pub location_errors: Vec<Issue>,
    /// Why each location was rejected (by location index), if it was.
    pub rejected_locations: &'a [Option<String>],
    /// Why the file was rejected, if it was.
    pub file_rejected: Option<&'a str>,
}

/// The draft, and how many rows were left out. Only rows with something
/// to say make it: those with validation errors or warnings, those
/// resolving found something about, and — when a location or the file is
/// rejected — every valid row ("not applied"). A clean file is not read a
/// second time.
pub(super) fn draft(
    checked: &Checked,
    stage: &mut Stage,
    rules: &ImportRules,
    verdict: Verdict<'_>,
) -> Result<(Draft, u64)> {
    let max = rules.max_errors;
    let mut draft = Draft::default();
    if let Some(issue) = &checked.file_error {
        draft.push_error(issue.clone(), max);
    }
    for issue in verdict.location_errors {
        draft.push_error(issue, max);
    }
    for issue in &checked.warnings {
        draft.push_warning(issue.clone(), max);
    }
    let rejected_locations = verdict.rejected_locations;
    let mut left_out_tables: BTreeSet<u16> = BTreeSet::new();
    let mut left_out = 0u64;
    let visit = |seq: u64, row: CheckedRow, found: Findings| -> Result<()> {
        let (found_errors, found_warnings) = found;
        let has_error = !row.errors.is_empty() || !found_errors.is_empty();
        let mut messages: Vec<String> = Vec::new();
        for issue in row.errors.iter().chain(&found_errors) {
            messages.push(issue.message.clone());
        }
        for issue in row.errors.iter().chain(&found_errors) {
            draft.push_error(issue.clone(), max);
        }
        if !has_error {
            let reason = match verdict.file_rejected {
                Some(reason) => Some(reason.to_string()),
                None => row
                    .location
                    .and_then(|l| rejected_locations[l as usize].clone()),
            };
            if let Some(reason) = reason {
                messages.push(format!("not applied: {reason}"));
                draft.push_error(
                    Issue::new(
                        Code::NotApplied,
                        format!("the row is valid but was not applied: {reason}"),
                    )
                    .at(row_place(checked, &row)),
                    max,
                );
            }
        }
        for issue in row.warnings.iter().chain(&found_warnings) {
            draft.push_warning(issue.clone(), max);
        }
        if !messages.is_empty() {
            left_out_tables.insert(row.table);
            left_out += 1;
            stage.push_left_out(
                seq,
                &LeftOutRow {
                    table: row.table,
                    number: row.number,
                    location: row.location.map(|l| checked.locations[l as usize].clone()),
                    error: messages.join("; "),
                },
            )?;
        }
        Ok(())
    };
    let any_rejected =
        verdict.file_rejected.is_some() || rejected_locations.iter().any(Option::is_some);
    if any_rejected || stage.flagged() + stage.found()? > stage.rows() / 4 {
        stage.for_each_row(visit)?;
    } else {
        stage.for_each_flagged_or_found(visit)?;
    }
    draft.rows_total = stage.rows();
    draft.rows_rejected = left_out;
    draft.rows_accepted = draft.rows_total - draft.rows_rejected;
    draft.errors_csv_location = checked.location_outside_columns;
    draft.errors_csv_header = errors_csv_header(checked, &left_out_tables);
    draft.errors_csv_sheets = left_out_tables.len() > 1;
    Ok((draft, left_out))
}

/// The errors CSV's columns: the header of the table the left-out rows
/// come from; when they come from several sheets, `sheet` and then every
/// column name of those sheets, in first-seen order.
pub fn errors_csv_header(checked: &Checked, tables: &BTreeSet<u16>) -> Vec<String> {
    let names = |table: u16| -> Vec<String> {
        checked
            .tables
            .get(usize::from(table))
            .and_then(|t| t.layout.as_ref())
            .map(|l| l.names.iter().map(|n| n.trim().to_string()).collect())
            .unwrap_or_default()
    };
    if tables.len() <= 1 {
        return tables.first().map(|&t| names(t)).unwrap_or_default();
    }
    let mut header = vec!["sheet".to_string()];
    for &table in tables {
        for name in names(table) {
            if !name.is_empty() && !header.contains(&name) {
                header.push(name);
            }
        }
    }
    header
}
