//! Metrics for the node_exporter textfile collector (`metrics.textfile`),
//! rewritten atomically after each file: files by status, rows accepted and
//! rejected, jobs by status, the last success time and how long the last
//! file took. Counted from the store, so they survive restarts. While the
//! daemon retries an operational failure, `stockdrop_retrying` is 1 with
//! the attempts so far — written even when the store itself is the fault.
//!
//! With `[[inbox]]` tables (SPEC §2.1) the files, rows and jobs counters
//! carry an `inbox="NAME"` label, one series per inbox (`sum without
//! (inbox)` gives the totals); with the one implicit inbox they have no
//! such label, as before, so existing dashboards keep working.

use std::fmt::Write as _;
use std::path::Path;

use crate::daemon::Fault;
use crate::store::{Reader, StoreError};

fn epoch(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}

/// One counter line per status (0 for a status not seen), from a
/// `SELECT status, count(*)` query.
fn by_status(
    r: &impl Reader,
    out: &mut String,
    sql: &str,
    metric: &str,
    statuses: &[&str],
    inbox: Option<&str>,
) -> Result<(), StoreError> {
    let mut stmt = r.conn().prepare(sql)?;
    let counts = stmt
        .query_map([inbox], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for status in statuses {
        let n = counts
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "{metric}{{{}status=\"{status}\"}} {n}", label(inbox));
    }
    Ok(())
}

/// `inbox="NAME",` for a per-inbox series; nothing for the one inbox.
/// Inbox names are letters, digits, `-` and `_`: nothing to escape.
fn label(inbox: Option<&str>) -> String {
    inbox.map_or(String::new(), |name| format!("inbox=\"{name}\","))
}

/// The metrics in Prometheus' text format; `inboxes`: the declared inbox
/// names, one series each (empty: the one implicit inbox, unlabelled).
pub fn render(r: &impl Reader, inboxes: &[&str]) -> Result<String, StoreError> {
    let conn = r.conn();
    let mut out = String::new();
    let each: Vec<Option<&str>> = if inboxes.is_empty() {
        vec![None]
    } else {
        inboxes.iter().copied().map(Some).collect()
    };
    out.push_str("# HELP stockdrop_files_total Files processed, by final status.\n");
    out.push_str("# TYPE stockdrop_files_total counter\n");
    for &inbox in &each {
        by_status(
            r,
            &mut out,
            "SELECT status, count(*) FROM imports WHERE status NOT IN ('planned', 'failing') \
             AND (?1 IS NULL OR inbox = ?1) GROUP BY status",
            "stockdrop_files_total",
            &["applied", "partial", "rejected", "duplicate", "failed"],
            inbox,
        )?;
    }
    out.push_str("# HELP stockdrop_rows_total Data rows read, by result.\n");
    out.push_str("# TYPE stockdrop_rows_total counter\n");
    for &inbox in &each {
        let (accepted, rejected): (i64, i64) = conn.query_row(
            "SELECT coalesce(sum(rows_accepted), 0), coalesce(sum(rows_rejected), 0) FROM imports \
             WHERE status NOT IN ('planned', 'failing', 'duplicate') AND (?1 IS NULL OR inbox = ?1)",
            [inbox],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let l = label(inbox);
        let _ = writeln!(
            out,
            "stockdrop_rows_total{{{l}result=\"accepted\"}} {accepted}"
        );
        let _ = writeln!(
            out,
            "stockdrop_rows_total{{{l}result=\"rejected\"}} {rejected}"
        );
    }
    out.push_str("# HELP stockdrop_jobs_total Refresh jobs, by status.\n");
    out.push_str("# TYPE stockdrop_jobs_total counter\n");
    for &inbox in &each {
        by_status(
            r,
            &mut out,
            "SELECT status, count(*) FROM jobs WHERE type = 'refresh' AND (?1 IS NULL \
             OR import_id IN (SELECT id FROM imports WHERE inbox = ?1)) GROUP BY status",
            "stockdrop_jobs_total",
            &["pending", "success", "failed", "rejected", "reverted"],
            inbox,
        )?;
    }
    let last_success: Option<String> = conn.query_row(
        "SELECT max(finished_at) FROM imports WHERE status IN ('applied', 'partial', 'duplicate')",
        [],
        |row| row.get(0),
    )?;
    out.push_str("# HELP stockdrop_last_success_timestamp_seconds When a file last applied (or was a duplicate).\n");
    out.push_str("# TYPE stockdrop_last_success_timestamp_seconds gauge\n");
    let _ = writeln!(
        out,
        "stockdrop_last_success_timestamp_seconds {}",
        last_success.as_deref().and_then(epoch).unwrap_or(0)
    );
    let last: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT received_at, finished_at FROM imports WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .ok();
    let seconds = last
        .and_then(|(start, end)| Some(epoch(end.as_deref()?)? - epoch(&start)?))
        .unwrap_or(0);
    out.push_str("# HELP stockdrop_last_processing_seconds How long the last file took, received to finished.\n");
    out.push_str("# TYPE stockdrop_last_processing_seconds gauge\n");
    let _ = writeln!(out, "stockdrop_last_processing_seconds {seconds}");
    Ok(out)
}

/// The retry gauges: whether a claimed file is being retried after an
/// operational failure, how many attempts failed, since when.
pub fn render_fault(fault: Option<&Fault>) -> String {
    let mut out = String::new();
    out.push_str("# HELP stockdrop_retrying Whether a claimed file is being retried after an operational failure.\n");
    out.push_str("# TYPE stockdrop_retrying gauge\n");
    let _ = writeln!(out, "stockdrop_retrying {}", u8::from(fault.is_some()));
    out.push_str("# HELP stockdrop_retry_attempts Failed attempts of the file being retried.\n");
    out.push_str("# TYPE stockdrop_retry_attempts gauge\n");
    let _ = writeln!(
        out,
        "stockdrop_retry_attempts {}",
        fault.map_or(0, |f| f.attempts)
    );
    out.push_str(
        "# HELP stockdrop_retrying_since_timestamp_seconds When the retried fault began.\n",
    );
    out.push_str("# TYPE stockdrop_retrying_since_timestamp_seconds gauge\n");
    let _ = writeln!(
        out,
        "stockdrop_retrying_since_timestamp_seconds {}",
        fault.and_then(|f| epoch(&f.since)).unwrap_or(0)
    );
    out
}

/// Writes the metrics file atomically (the collector never reads half).
/// When the store cannot be read, the retry gauges are still written.
pub fn write(
    r: &impl Reader,
    path: &Path,
    fault: Option<&Fault>,
    inboxes: &[&str],
) -> Result<(), String> {
    let (mut text, store_error) = match render(r, inboxes) {
        Ok(text) => (text, None),
        Err(e) => (String::new(), Some(e.to_string())),
    };
    text.push_str(&render_fault(fault));
    crate::durable::write_atomic(path, text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match store_error {
        Some(e) => Err(format!("only the retry gauges were written: {e}")),
        None => Ok(()),
    }
}
