//! The terminal summary of one file's report, as `import` and `validate`
//! print it: the outcome, the jobs, then the errors and the warnings, each
//! counted per code with the first few listed (the JSON report has all).

use std::collections::BTreeMap;

use crate::issue::{count, Code};
use crate::report::{Entry, Report};

/// How many errors the summary lists.
const ERRORS_LISTED: usize = 20;
/// How many jobs the summary lists.
const JOBS_LISTED: usize = 50;
/// How many warnings the summary lists.
const WARNINGS_LISTED: usize = 5;

pub fn summary(report: &Report) -> String {
    let mut out = match report.duplicate_of {
        // A duplicate changes nothing: its rows and errors are those of the
        // import it repeats, whose report already says them.
        Some(dup) => format!(
            "{}: duplicate — same content as import {dup}, nothing applied",
            report.file
        ),
        None => format!(
            "{}: {} — {}, {} accepted, {} rejected",
            report.file,
            report.status,
            count(report.rows.total, "row", "rows"),
            report.rows.accepted,
            report.rows.rejected
        ),
    };
    if let Some(id) = report.import_id {
        out.push_str(&format!(" (import {id})"));
    }
    // An adjust file's jobs say so (SPEC §1.1): their counts are changes.
    let kind = if report.job_type == "adjust" {
        "adjust "
    } else {
        ""
    };
    for job in report.jobs.held().iter().take(JOBS_LISTED) {
        out.push_str(&format!(
            "\n  {kind}job {}: location {}, {}{}, {}",
            job.job_id.map_or("-".to_string(), |id| id.to_string()),
            job.location,
            count(job.item_count, "item", "items"),
            if job.zeroed > 0 {
                format!(", {} zeroed", job.zeroed)
            } else {
                String::new()
            },
            job.status
        ));
    }
    let shown = report.jobs.held().len().min(JOBS_LISTED) as u64;
    if report.jobs.total() > shown {
        out.push_str(&format!(
            "\n  … {} more {kind}jobs{}",
            report.jobs.total() - shown,
            // `validate` writes no report to look in.
            if report.import_id.is_some() && !report.jobs_truncated {
                " in the JSON report"
            } else {
                ""
            }
        ));
    }
    if report.duplicate_of.is_some() {
        return out;
    }
    section(
        &mut out,
        ("error", "errors"),
        &report.error_counts,
        &report.errors,
        ERRORS_LISTED,
    );
    section(
        &mut out,
        ("warning", "warnings"),
        &report.warning_counts,
        &report.warnings,
        WARNINGS_LISTED,
    );
    out
}

/// `  2 warnings (encoding-fallback 1, unknown-column 1):` and the first
/// `listed` entries; nothing when there are none.
fn section(
    out: &mut String,
    (one, many): (&str, &str),
    counts: &BTreeMap<Code, u64>,
    entries: &[Entry],
    listed: usize,
) {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return;
    }
    let per_code: Vec<String> = counts
        .iter()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    out.push_str(&format!(
        "\n  {} ({}):",
        count(total, one, many),
        per_code.join(", ")
    ));
    for entry in entries.iter().take(listed) {
        let place = entry.place();
        out.push_str(&format!(
            "\n    {}{}: {}",
            if place.is_empty() {
                String::new()
            } else {
                format!("{place} ")
            },
            entry.code,
            entry.message
        ));
    }
    let shown = entries.len().min(listed) as u64;
    if total > shown {
        out.push_str(&format!(
            "\n    … {} more in the JSON report",
            total - shown
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{JobEntry, JobList, Rows};

    fn report() -> Report {
        let mut report = Report::from_draft(&crate::plan::Draft::default());
        report.file = "s.csv".into();
        report.status = "applied".into();
        report.import_id = Some(3);
        report.rows = Rows {
            total: 1,
            accepted: 1,
            rejected: 0,
        };
        report.jobs = [job(7)].into_iter().collect();
        report
    }

    fn job(id: i64) -> JobEntry {
        JobEntry {
            job_id: Some(id),
            location: "11".into(),
            manufacturer_id: None,
            item_count: 1,
            zeroed: 0,
            status: "success".into(),
        }
    }

    #[test]
    fn one_is_singular() {
        let text = summary(&report());
        assert!(
            text.starts_with("s.csv: applied — 1 row, 1 accepted"),
            "{text}"
        );
        assert!(
            text.contains("job 7: location 11, 1 item, success"),
            "{text}"
        );
    }

    #[test]
    fn many_jobs_are_counted_past_the_first_fifty() {
        let mut r = report();
        r.jobs = (1..=1200).map(job).collect();
        let text = summary(&r);
        assert_eq!(
            text.matches(": location 11,").count(),
            JOBS_LISTED,
            "{text}"
        );
        assert!(text.contains("job 50: location 11"), "{text}");
        assert!(!text.contains("job 51:"), "{text}");
        assert!(
            text.ends_with("\n  … 1150 more jobs in the JSON report"),
            "{text}"
        );
    }

    #[test]
    fn warnings_are_counted_and_listed() {
        let mut r = report();
        r.warning_counts.insert(Code::UnknownColumn, 7);
        r.warnings = (0..7)
            .map(|i| Entry {
                row: Some(1),
                sheet: None,
                cell: Some(format!("D{i}")),
                pointer: None,
                column: None,
                value: None,
                code: Code::UnknownColumn,
                message: "ignored".into(),
            })
            .collect();
        let text = summary(&r);
        assert!(
            text.contains("\n  7 warnings (unknown-column 7):"),
            "{text}"
        );
        assert_eq!(text.matches("unknown-column: ignored").count(), 5, "{text}");
        assert!(text.ends_with("… 2 more in the JSON report"), "{text}");
    }

    #[test]
    fn a_duplicate_says_nothing_was_applied() {
        let mut r = report();
        r.status = "duplicate".into();
        r.duplicate_of = Some(1);
        r.jobs = JobList::new();
        r.error_counts.insert(Code::OutOfRange, 1);
        let text = summary(&r);
        assert_eq!(
            text,
            "s.csv: duplicate — same content as import 1, nothing applied (import 3)"
        );
    }
}
