//! The HTML report: one self-contained page a person understands at a
//! glance — the outcome first, then counts, jobs per location, and the
//! errors with where they are. Every value from the file is escaped.

use std::fmt::Write as _;

use std::collections::BTreeMap;

use super::{Entry, Report};
use crate::issue::{count, Code};

/// How many errors and warnings the page lists (the JSON has more).
const MAX_LISTED: usize = 1000;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn headline(report: &Report) -> (&'static str, String) {
    let r = &report.rows;
    match report.status.as_str() {
        "applied" if r.total == 0 => ("ok", "Applied: the file holds no rows; nothing changed.".to_string()),
        "applied" => (
            "ok",
            format!("Applied: {} in the inventory.", match r.total {
                1 => "the file's row is".to_string(),
                n => format!("all {n} rows are"),
            }),
        ),
        "partial" => (
            "warn",
            format!(
                "Partly applied: {} of {} in the inventory; {} not applied. \
                 Fix them in {} and drop it in again.",
                r.accepted,
                count(r.total, "row is", "rows are"),
                count(r.rejected, "row was", "rows were"),
                report.errors_csv_name()
            ),
        ),
        "rejected" if r.rejected > 0 => (
            "bad",
            format!(
                "Rejected: nothing from this file was applied. See the errors below; \
                 the rows are in {} to fix and drop in again.",
                report.errors_csv_name()
            ),
        ),
        "rejected" => (
            "bad",
            "Rejected: nothing from this file was applied. See the errors below.".to_string(),
        ),
        "duplicate" => (
            "ok",
            format!(
                "Duplicate: this file is the same as import {}, which is already applied; nothing changed.",
                report
                    .duplicate_of
                    .map_or("?".to_string(), |id| id.to_string())
            ),
        ),
        "failed" => (
            "bad",
            "Failed: stockdrop could not process this file (see the errors below); nothing was applied \
             after the last successful job."
                .to_string(),
        ),
        other => ("warn", other.to_string()),
    }
}

fn entries_table(out: &mut String, entries: &[Entry]) {
    out.push_str(
        "<table><thead><tr><th>Where</th><th>Column</th><th>Value</th><th>Code</th><th>What to do</th></tr></thead><tbody>\n",
    );
    for e in entries.iter().take(MAX_LISTED) {
        let _ = writeln!(
            out,
            "<tr><td class=\"nw\">{}</td><td>{}</td><td><code>{}</code></td><td class=\"nw\">{}</td><td>{}</td></tr>",
            escape(&e.place()),
            escape(e.column.as_deref().unwrap_or("")),
            escape(e.value.as_deref().unwrap_or("")),
            escape(e.code.as_str()),
            escape(&e.message)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// A section of errors or warnings: the count per code, then the first
/// [`MAX_LISTED`] entries. Nothing when there are none.
fn issues_section(out: &mut String, title: &str, counts: &BTreeMap<Code, u64>, entries: &[Entry]) {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return;
    }
    let _ = write!(
        out,
        "<section><h2>{title} ({total})</h2><ul class=\"codes\">"
    );
    for (code, count) in counts {
        let _ = write!(
            out,
            "<li><code>{}</code> × {count}</li>",
            escape(code.as_str())
        );
    }
    out.push_str("</ul>\n");
    let listed = entries.len().min(MAX_LISTED);
    if total as usize > listed {
        let _ = writeln!(
            out,
            "<p>The first {listed} are listed here; the JSON report (and, for errors, the errors CSV) has more.</p>"
        );
    }
    entries_table(out, entries);
    out.push_str("</section>\n");
}

/// The tiles of counts: rows, applied, not applied — for a duplicate, 0
/// applied and every row not applied, since nothing was done.
fn count_tiles(report: &Report) -> String {
    let r = &report.rows;
    let (applied, not_applied, label) = match report.duplicate_of {
        Some(_) => (0, r.total, "not applied (duplicate)"),
        None => (r.accepted, r.rejected, "not applied"),
    };
    format!(
        "<div class=\"counts\"><div><b>{total}</b>{rows}</div><div class=\"ok\"><b>{applied}</b>applied</div>\
         <div class=\"{tone}\"><b>{not_applied}</b>{label}</div></div>",
        total = r.total,
        rows = if r.total == 1 { "row" } else { "rows" },
        tone = if not_applied > 0 && report.duplicate_of.is_none() { "bad" } else { "ok" },
    )
}

pub fn render(report: &Report) -> String {
    let (tone, message) = headline(report);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{status}: {file}</title>\n<style>\n{CSS}</style></head><body>\n\
         <header class=\"{tone}\"><h1>{status_upper}</h1><p>{message}</p></header>\n",
        status = escape(&report.status),
        file = escape(&report.file),
        status_upper = escape(&report.status.to_uppercase()),
        message = escape(&message),
    );
    let _ = write!(
        out,
        "<section><h2>{file}</h2><dl>\
         <dt>Import</dt><dd>{import}</dd><dt>Inbox</dt><dd>{inbox}</dd>\
         <dt>Received</dt><dd>{received}</dd><dt>Finished</dt><dd>{finished}</dd>\
         <dt>Format</dt><dd>{format}</dd><dt>Mode</dt><dd>{mode}</dd>\
         <dt>Jobs</dt><dd>{job_type}</dd>\
         <dt>SHA-256</dt><dd><code>{sha}</code></dd></dl>\n\
         {counts}</section>\n",
        file = escape(&report.file),
        import = report
            .import_id
            .map_or("— (validation only)".to_string(), |id| id.to_string()),
        inbox = escape(&report.inbox),
        received = escape(&report.received_at),
        finished = escape(&report.finished_at),
        format = escape(&report.format),
        mode = escape(&report.refresh_mode),
        job_type = escape(&job_type_text(&report.job_type)),
        sha = escape(&report.sha256),
        counts = count_tiles(report),
    );
    if !report.jobs.is_empty() {
        out.push_str(
            "<section><h2>Jobs per location</h2><table><thead><tr><th>Location</th><th>Job</th>\
             <th>Items</th><th>Set to 0</th><th>Status</th></tr></thead><tbody>\n",
        );
        for job in report.jobs.held() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"st-{}\">{}</td></tr>",
                escape(&job.location),
                job.job_id.map_or("—".to_string(), |id| id.to_string()),
                job.item_count,
                job.zeroed,
                escape(&job.status),
                escape(&job.status)
            );
        }
        out.push_str("</tbody></table>");
        let more = report.jobs.total() - report.jobs.held().len() as u64;
        if more > 0 {
            let _ = write!(
                out,
                "<p>… and {}; {}.</p>",
                count(more, "more job", "more jobs"),
                if report.jobs_truncated {
                    "an import of the file lists them all in its JSON report"
                } else {
                    "the JSON report lists them all"
                }
            );
        }
        out.push_str("</section>\n");
    }
    match report.duplicate_of {
        // Nothing was done with a duplicate's rows: its errors and warnings
        // are those of the import it repeats, and that report lists them.
        Some(dup) => {
            let _ = writeln!(
                out,
                "<section><p>This file was not applied again, so none of its rows changed anything \
                 and no errors CSV was written for it. What was found in it is in the report of \
                 import {dup}.</p></section>"
            );
        }
        None => {
            issues_section(&mut out, "Errors", &report.error_counts, &report.errors);
            issues_section(
                &mut out,
                "Warnings",
                &report.warning_counts,
                &report.warnings,
            );
        }
    }
    out.push_str("<footer>stockdrop</footer></body></html>\n");
    out
}

pub(super) const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
header{padding:1.2rem 2rem;color:#fff}header h1{margin:0;font-size:1.8rem;letter-spacing:.05em}
header p{margin:.4rem 0 0;font-size:1.1rem}
header.ok{background:#1f7a3d}header.warn{background:#b26a00}header.bad{background:#b3261e}
section{background:#fff;margin:1rem 2rem;padding:1rem 1.5rem;border-radius:6px;box-shadow:0 1px 2px #0002}
h2{margin-top:0;font-size:1.2rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0 0 1rem}dt{color:#5a6270}dd{margin:0}
.counts{display:flex;gap:1rem}.counts div{padding:.6rem 1rem;border-radius:6px;background:#eef0f3;min-width:7rem}
.counts b{display:block;font-size:1.6rem}.counts .ok b{color:#1f7a3d}.counts .bad b{color:#b3261e}
table{border-collapse:collapse;width:100%;font-size:.92rem}th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#eef0f3}code{font-family:ui-monospace,Consolas,monospace;white-space:pre-wrap;overflow-wrap:anywhere}.nw{white-space:nowrap}
.st-success{color:#1f7a3d}.st-rejected,.st-failed{color:#b3261e;font-weight:600}
ul.codes{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.5rem}ul.codes li{background:#eef0f3;padding:.2rem .6rem;border-radius:4px}
footer{margin:1rem 2rem 2rem;color:#8a919c;font-size:.8rem}
";

/// What the file's jobs did, for people (SPEC §1.1).
fn job_type_text(job_type: &str) -> String {
    match job_type {
        "adjust" => "adjust (changes added to the counts)".to_string(),
        "refresh" | "" => "refresh (counts set)".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: &str) -> Report {
        let mut report = Report::from_draft(&crate::plan::Draft::default());
        report.file = "mistakes.csv".into();
        report.status = status.into();
        report.import_id = Some(6);
        report.rows = crate::report::Rows {
            total: 10,
            accepted: 1,
            rejected: 9,
        };
        report.error_counts.insert(Code::OutOfRange, 9);
        report
    }

    #[test]
    fn a_duplicate_shows_nothing_applied() {
        let mut dup = report("duplicate");
        dup.duplicate_of = Some(4);
        let page = render(&dup);
        assert!(page.contains("<b>0</b>applied"), "{page}");
        assert!(page.contains("<b>10</b>not applied (duplicate)"), "{page}");
        assert!(!page.contains("<b>1</b>applied"), "{page}");
        assert!(!page.contains("Errors ("), "{page}");
        assert!(page.contains("import 4"), "{page}");
        let partial = render(&report("partial"));
        assert!(partial.contains("<b>1</b>applied"), "{partial}");
        assert!(partial.contains("<b>9</b>not applied<"), "{partial}");
        assert!(partial.contains("Errors (9)"), "{partial}");
        assert!(
            partial.contains("1 of 10 rows are in the inventory; 9 rows were not applied"),
            "{partial}"
        );
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
