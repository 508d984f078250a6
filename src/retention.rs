//! Retention (`stockdrop prune`, and once a day in the daemon): originals in
//! `archive/` and `failed/` are kept `retention.archive_days` (by the date
//! folder they are in), reports in the outbox `retention.outbox_days` (by
//! modification time), and per-item history `retention.history_days`
//! (default: forever). A job whose history was pruned is marked so, and
//! `revert` refuses it with a clear message. An outbox's `index.html` is
//! never aged out; it is rewritten after reports are deleted, so it links
//! none of them.
//!
//! With `[[inbox]]` tables the date folders are under a folder per inbox
//! (`archive/<inbox>/YYYY-MM-DD`), and every inbox's outbox is pruned.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{NaiveDate, Utc};
use rusqlite::params;

use crate::config::Config;
use crate::store::{Reader, Store, StoreError};

/// What a prune removed (or, dry, would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Date folders of archive/ and failed/.
    pub folders: Vec<PathBuf>,
    /// Report files of the outbox.
    pub reports: Vec<PathBuf>,
    /// Jobs whose history was (or would be) deleted.
    pub history_jobs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("cannot prune {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn prune(
    config: &Config,
    store: Option<&mut Store>,
    today: NaiveDate,
    dry_run: bool,
) -> Result<Pruned, PruneError> {
    let mut pruned = Pruned::default();
    let oldest_kept = today - chrono::Duration::days(config.archive_days as i64);
    let mut roots = vec![config.paths.archive.clone(), config.paths.failed.clone()];
    if config.has_inbox_tables() {
        for inbox in &config.inboxes {
            roots.push(config.paths.archive.join(&inbox.name));
            roots.push(config.paths.failed.join(&inbox.name));
        }
    }
    for root in &roots {
        for folder in dated_folders(root)? {
            if folder.0 < oldest_kept {
                if !dry_run {
                    fs::remove_dir_all(&folder.1).map_err(|source| PruneError::Io {
                        path: folder.1.clone(),
                        source,
                    })?;
                }
                pruned.folders.push(folder.1);
            }
        }
    }
    let cutoff = SystemTime::now() - Duration::from_secs(config.outbox_days * 86_400);
    for outbox in config.inboxes.iter().map(|i| &i.outbox) {
        if !outbox.is_dir() {
            continue;
        }
        let entries = fs::read_dir(outbox).map_err(|source| PruneError::Io {
            path: outbox.clone(),
            source,
        })?;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name();
            // The index is rewritten, not aged: it is rebuilt below.
            let report = meta.is_file()
                && !name.to_string_lossy().starts_with('.')
                && name != crate::report::index::FILE_NAME;
            if report && meta.modified().is_ok_and(|m| m < cutoff) {
                if !dry_run {
                    fs::remove_file(&path).map_err(|source| PruneError::Io {
                        path: path.clone(),
                        source,
                    })?;
                }
                pruned.reports.push(path);
            }
        }
    }
    let mut store = store;
    if let (Some(days), Some(store)) = (config.history_days, store.as_deref_mut()) {
        let cutoff = (Utc::now() - chrono::Duration::days(days as i64))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let write = store.write()?;
        let jobs: i64 = write.conn().query_row(
            "SELECT count(*) FROM jobs WHERE history_pruned = 0 AND finished IS NOT NULL AND finished < ?1 \
             AND (EXISTS (SELECT 1 FROM job_history h WHERE h.job_id = jobs.id) \
                  OR EXISTS (SELECT 1 FROM history h WHERE h.job_id = jobs.id))",
            [&cutoff],
            |r| r.get(0),
        ).map_err(StoreError::from)?;
        pruned.history_jobs = jobs as u64;
        if !dry_run {
            for table in ["history", "job_history"] {
                write
                    .conn()
                    .execute(
                        &format!("DELETE FROM {table} WHERE job_id IN (SELECT id FROM jobs WHERE finished IS NOT NULL AND finished < ?1)"),
                        params![cutoff],
                    )
                    .map_err(StoreError::from)?;
            }
            write
                .conn()
                .execute(
                    "UPDATE jobs SET history_pruned = 1 WHERE history_pruned = 0 AND finished IS NOT NULL AND finished < ?1",
                    params![cutoff],
                )
                .map_err(StoreError::from)?;
            write.commit()?;
        }
    }
    // The index must not link the reports just deleted.
    if let (false, false, Some(store)) = (dry_run, pruned.reports.is_empty(), store) {
        let read = store.read();
        for outbox in config.inboxes.iter().map(|i| &i.outbox) {
            crate::report::index::rewrite_or_log(&read, &outbox.display().to_string());
        }
    }
    Ok(pruned)
}

/// `YYYY-MM-DD` folders directly under `root`, with their dates.
fn dated_folders(root: &Path) -> Result<Vec<(NaiveDate, PathBuf)>, PruneError> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let entries = fs::read_dir(root).map_err(|source| PruneError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let mut folders: Vec<(NaiveDate, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            NaiveDate::parse_from_str(&name, "%Y-%m-%d")
                .ok()
                .map(|d| (d, e.path()))
        })
        .collect();
    folders.sort();
    Ok(folders)
}
