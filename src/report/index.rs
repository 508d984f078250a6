//! An outbox's `index.html` (SPEC §5): the latest imports whose reports went
//! to that outbox, newest first, each with its status and relative links to
//! its report files, so a clerk who fetches one file over SFTP sees what
//! became of everything they sent.
//!
//! The page is rebuilt from the store each time (never patched), after
//! every import that writes reports into the outbox and after a prune, and
//! written atomically: a reader sees the old page or the new one. A caller
//! that finishes many imports in a row (the daemon draining a burst) owes
//! the rewrites ([`Owed`]) and pays them once nothing else is waiting, or
//! within [`MAX_LAG`]: the page it then writes lists every one of them. It links
//! only report files that exist when it is written, so a report that
//! retention deleted is never linked.
//!
//! File names are the uploader's: they are shown HTML-escaped and linked
//! percent-encoded behind `./`, so no name can become markup, a script, an
//! absolute link or a link out of the outbox. The page is well-formed XML
//! as well as HTML (every element closed), static, with no scripts and no
//! external assets, so it works opened from disk.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use super::html::{escape, CSS};
use super::Report;
use crate::durable::{replace_with_bytes, Durability};
use crate::store::queries::{self, IndexRow};
use crate::store::{Reader, StoreError};

/// The index's file name in an outbox. Report names always carry an import
/// id (`<stem>.<id>.<ext>`), so no report can take this name.
pub const FILE_NAME: &str = "index.html";

/// How many imports the page lists (SPEC §5).
pub const LISTED: u64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {FILE_NAME} into {dir}: {source}")]
    Write { dir: String, source: std::io::Error },
}

/// How long a rewrite may be owed while more files wait: what a clerk
/// watching the page during a burst may see it lag by.
pub const MAX_LAG: Duration = Duration::from_secs(1);

/// Outboxes whose page is owed a rewrite. Rewriting after each of a
/// burst's imports is work nobody sees: every rewrite replaces the page's
/// file, and on ext4 without a journal each file freed that way made every
/// later file creation in the folder slower for 30 s (the allocator skips
/// recently freed inodes one by one), a third of the daemon's time while it
/// drained 1,000 small files. The page written once the burst is over (or
/// every [`MAX_LAG`] during it) lists every import all the same.
#[derive(Debug, Default)]
pub struct Owed {
    outboxes: BTreeSet<String>,
    /// When the oldest owed rewrite was owed.
    since: Option<Instant>,
}

impl Owed {
    /// Owes a rewrite of the outbox `report_dir` (as `imports.report_dir`
    /// holds it).
    pub fn add(&mut self, report_dir: &str) {
        if !self.outboxes.contains(report_dir) {
            self.outboxes.insert(report_dir.to_string());
        }
        self.since.get_or_insert_with(Instant::now);
    }

    /// Whether to pay now: when nothing else is waiting (`more_waiting`
    /// false), or once the oldest rewrite has been owed [`MAX_LAG`].
    pub fn due(&self, more_waiting: bool) -> bool {
        match self.since {
            None => false,
            Some(since) => !more_waiting || since.elapsed() >= MAX_LAG,
        }
    }

    /// Rewrites every owed page (a failure is logged: see
    /// [`rewrite_or_log`]).
    pub fn pay(&mut self, r: &impl Reader) {
        self.since = None;
        for report_dir in std::mem::take(&mut self.outboxes) {
            rewrite_or_log(r, &report_dir);
        }
    }
}

/// Rewrites `index.html` in the outbox `report_dir` (as stored in
/// `imports.report_dir`) from the store. An outbox that has neither a
/// report on record nor a page yet is left as it is: no page is made for
/// nothing.
pub fn rewrite(r: &impl Reader, report_dir: &str) -> Result<(), IndexError> {
    let rows = queries::imports_reported_to(r, report_dir, LISTED)?;
    let dir = Path::new(report_dir);
    let write_error = |source| IndexError::Write {
        dir: report_dir.to_string(),
        source,
    };
    let outbox = match Outbox::open(dir) {
        Ok(outbox) => outbox,
        Err(e) if rows.is_empty() && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(write_error(e)),
    };
    if rows.is_empty() && !outbox.holds(FILE_NAME) {
        return Ok(());
    }
    let page = render(&rows, |name| outbox.holds(name));
    // Rebuilt from the store after every import: a power cut that loses
    // the rename leaves the previous page, whole, until the next import,
    // so the folder is not fsynced for it.
    replace_with_bytes(&dir.join(FILE_NAME), Durability::Written, page.as_bytes())
        .map_err(write_error)
}

/// An outbox, open, for the page's lookups: each report is looked up by
/// its name in the open folder (`fstatat`) rather than by its whole path,
/// which walked every folder above the outbox, up to 600 times an import
/// (13% of the daemon's samples while it drained 1,000 small files).
struct Outbox(std::fs::File);

impl Outbox {
    fn open(dir: &Path) -> std::io::Result<Outbox> {
        std::fs::File::open(dir).map(Outbox)
    }

    /// Whether `name` is a regular file in the outbox. Not followed: a
    /// link is only for a report stockdrop wrote.
    fn holds(&self, name: &str) -> bool {
        use std::os::fd::AsRawFd;
        if name.contains('/') {
            return false;
        }
        let Ok(name) = std::ffi::CString::new(name) else {
            return false;
        };
        // SAFETY: `stat` is plain data that fstatat fills in; the name is
        // NUL-terminated and the descriptor open for as long as `self`.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        let found = unsafe {
            libc::fstatat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                &mut stat,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        found == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// Rewrites the index and logs a failure instead of returning it: the
/// index is a convenience, and an import (or prune) that did its work must
/// not fail for it; the next import rewrites it.
pub fn rewrite_or_log(r: &impl Reader, report_dir: &str) {
    if let Err(error) = rewrite(r, report_dir) {
        tracing::warn!(
            outbox = %crate::names::escape_controls(report_dir),
            %error,
            "could not rewrite the outbox index; the next import rewrites it"
        );
    }
}

/// The report files one import may have, by the names
/// `report::write_all` gives them: (label, file name). An import that
/// applied every row, or a duplicate, has no errors CSV, so the page does
/// not look for one (one filesystem lookup fewer per row, on every
/// import).
fn report_files(row: &IndexRow) -> Vec<(&'static str, String)> {
    let mut report = Report::from_draft(&crate::plan::Draft::default());
    report.file = row.file.clone();
    report.import_id = Some(row.import_id);
    report.job_type = row.job_type.clone();
    let base = report.base_name();
    let mut files = vec![
        ("page", format!("{base}.html")),
        ("JSON", format!("{base}.json")),
    ];
    let no_errors_csv =
        matches!(row.status.as_str(), "applied" | "duplicate") && row.rows_rejected == 0;
    if !no_errors_csv {
        files.push(("errors CSV", report.errors_csv_name()));
    }
    files
}

/// A relative link to a file of the outbox: every byte but the unreserved
/// ones percent-encoded (so `%41` in a name stays `%41`, and `/`, `?`, `#`
/// and `:` are not syntax), behind `./` (so it can never read as a scheme
/// such as `javascript:`).
fn href(name: &str) -> String {
    let mut out = String::from("./");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The status's colour class and its words for people. Fixed strings, not
/// the stored text, so nothing but these classes reaches the markup.
fn status_look(status: &str) -> (&'static str, &'static str) {
    match status {
        "applied" => ("st-ok", "applied"),
        "partial" => ("st-warn", "partial"),
        "rejected" => ("st-bad", "rejected"),
        "failed" => ("st-bad", "failed"),
        "duplicate" => ("st-dup", "duplicate"),
        // Planned but not finished yet (or interrupted; finished at the
        // next start).
        "planned" | "failing" => ("st-warn", "in progress"),
        _ => ("st-warn", "unknown"),
    }
}

/// The page for `rows` (newest first); `exists` tells whether a report
/// file of that name is in the outbox.
pub fn render(rows: &[IndexRow], exists: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(4096 + rows.len() * 512);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\" xmlns=\"http://www.w3.org/1999/xhtml\"><head>\
         <meta charset=\"utf-8\" />\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\
         <title>stockdrop: your files</title>\n<style>\n{CSS}{INDEX_CSS}</style></head><body>\n\
         <header class=\"ok\"><h1>YOUR FILES</h1><p>What became of the latest {shown} file{s} \
         sent to this folder, newest first.</p></header>\n<section>",
        shown = rows.len(),
        s = if rows.len() == 1 { "" } else { "s" },
    );
    if rows.is_empty() {
        out.push_str("<p>No files yet.</p>");
    } else {
        out.push_str(
            "<table id=\"imports\"><thead><tr><th>Import</th><th>File</th><th>Received</th>\
             <th>Status</th><th>Rows</th><th>Applied</th><th>Not applied</th><th>Jobs</th>\
             <th>Reports</th></tr></thead><tbody>\n",
        );
        for row in rows {
            let (class, words) = status_look(&row.status);
            // As the report's page counts them: a duplicate applied nothing.
            let (accepted, rejected) = match row.status.as_str() {
                "duplicate" => (0, row.rows_total),
                _ => (row.rows_accepted, row.rows_rejected),
            };
            let links: Vec<String> = report_files(row)
                .into_iter()
                .filter(|(_, name)| exists(name))
                .map(|(label, name)| format!("<a href=\"{}\">{label}</a>", escape(&href(&name))))
                .collect();
            let links = if links.is_empty() {
                "—".to_string()
            } else {
                links.join(" ")
            };
            let _ = writeln!(
                out,
                "<tr class=\"{class}\" data-import=\"{id}\"><td>{id}</td><td class=\"file\">{file}</td>\
                 <td class=\"nw\">{received}</td><td class=\"status\">{words}</td><td>{total}</td>\
                 <td>{accepted}</td><td>{rejected}</td><td>{job_type}</td><td class=\"nw\">{links}</td></tr>",
                id = row.import_id,
                file = escape(&row.file),
                received = escape(&row.received_at),
                total = row.rows_total,
                accepted = accepted,
                rejected = rejected,
                job_type = escape(&row.job_type),
            );
        }
        out.push_str("</tbody></table>");
        if rows.len() as u64 >= LISTED {
            let _ = write!(
                out,
                "<p>Only the latest {LISTED} are listed; older reports that are still kept are \
                 in this folder under their own names.</p>"
            );
        }
    }
    out.push_str("</section>\n<footer>stockdrop</footer></body></html>\n");
    out
}

/// The index's own rules on top of the report's [`CSS`]: the status colours.
const INDEX_CSS: &str = "\
tr.st-ok td.status{color:#1f7a3d;font-weight:600}tr.st-warn td.status{color:#b26a00;font-weight:600}
tr.st-bad td.status{color:#b3261e;font-weight:600}tr.st-dup td.status{color:#5a6270;font-weight:600}
tr.st-bad{background:#fdf1f0}tr.st-warn{background:#fff8ec}td.file{overflow-wrap:anywhere}
td a{margin-right:.5rem}
";

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, file: &str, status: &str) -> IndexRow {
        IndexRow {
            import_id: id,
            file: file.into(),
            status: status.into(),
            job_type: "refresh".into(),
            rows_total: 3,
            rows_accepted: 2,
            rows_rejected: 1,
            received_at: "2026-12-02T07:00:00Z".into(),
        }
    }

    #[test]
    fn an_owed_rewrite_waits_for_the_queue_but_no_longer_than_max_lag() {
        let mut owed = Owed::default();
        assert!(!owed.due(false), "nothing owed");
        owed.add("/srv/out");
        owed.add("/srv/out");
        owed.add("/srv/other");
        assert_eq!(owed.outboxes.len(), 2, "each outbox once");
        assert!(owed.due(false), "nothing else waits: pay now");
        assert!(!owed.due(true), "more files wait, and it is fresh");
        owed.since = Instant::now().checked_sub(MAX_LAG);
        assert!(owed.due(true), "owed MAX_LAG: pay even mid-burst");
    }

    #[test]
    fn links_are_relative_and_encoded() {
        assert_eq!(href("a b%41.1.html"), "./a%20b%2541.1.html");
        assert_eq!(href("javascript:x.1.html"), "./javascript%3Ax.1.html");
        assert_eq!(href("/etc/passwd"), "./%2Fetc%2Fpasswd");
        assert_eq!(href("é.1.json"), "./%C3%A9.1.json");
    }

    #[test]
    fn a_hostile_name_is_text_and_missing_reports_are_not_linked() {
        let name = "<script>alert('x')</script>\"&.csv";
        let page = render(&[row(7, name, "partial")], |n| n.ends_with(".html"));
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;.csv"));
        assert!(page.contains(">page</a>"), "{page}");
        assert!(!page.contains(">JSON</a>"), "{page}");
        assert!(page.contains("class=\"st-warn\""), "{page}");
    }

    #[test]
    fn an_unknown_status_does_not_reach_the_markup() {
        let page = render(&[row(1, "a.csv", "x\" onmouseover=\"y")], |_| false);
        assert!(!page.contains("onmouseover"), "{page}");
    }
}
