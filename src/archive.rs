//! Finishing (SPEC §2): the original moves to
//! `archive/YYYY-MM-DD/<import id>_<name>` (applied, partial, duplicate) or
//! `failed/YYYY-MM-DD/…` (rejected, failed), by rename, with both
//! directories fsynced. `<name>` is the displayable form of the name the
//! file was dropped as (`crate::names`), cut to fit `NAME_MAX` when the
//! import id makes it too long; the whole name stays in the store and the
//! report.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::durable::sync_dir;

/// Where a file of this status from `inbox` ends up: with `[[inbox]]`
/// tables, under a folder of the inbox's name (SPEC §2 step 6); with the
/// one implicit `default` inbox, as before, directly in archive/failed.
pub fn destination_root(config: &Config, inbox: &str, status: &str) -> PathBuf {
    let root = match status {
        "rejected" | "failed" => &config.paths.failed,
        _ => &config.paths.archive,
    };
    if config.has_inbox_tables() {
        root.join(inbox)
    } else {
        root.clone()
    }
}

/// `root/YYYY-MM-DD/<import id>_<name>`; `original_name` is a displayable
/// form (`crate::names::display`).
pub fn target(
    root: &Path,
    import_id: i64,
    original_name: &str,
    date: chrono::NaiveDate,
) -> PathBuf {
    let prefix = format!("{import_id}_");
    let name = crate::names::shorten(original_name, crate::names::NAME_MAX - prefix.len());
    root.join(date.format("%Y-%m-%d").to_string())
        .join(format!("{prefix}{name}"))
}

/// Moves the claimed file to `target`, then drops the record of its long
/// name (`claim::remove_sidecar`). Done twice (after a crash between the
/// move and what follows), the second call finds the file already there
/// and succeeds.
pub fn archive(claimed: &Path, target: &Path) -> io::Result<()> {
    if !claimed.exists() && target.exists() {
        return crate::claim::remove_sidecar(claimed);
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    fs::rename(claimed, target)?;
    sync_dir(dir)?;
    // The day's folder's own entry is made durable by the first file this
    // process moves into it (whoever created it: another process may not
    // have fsynced its parent yet), not by every file of the day.
    if let Some(root) = dir.parent() {
        if first_use(dir) {
            sync_dir(root)?;
        }
    }
    if let Some(work) = claimed.parent() {
        sync_dir(work)?;
    }
    crate::claim::remove_sidecar(claimed)
}

/// Whether this process has not moved a file into `dir` before (then it
/// has now).
fn first_use(dir: &Path) -> bool {
    static SYNCED: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut synced) = SYNCED.lock() else {
        return true;
    };
    if synced.iter().any(|d| d == dir) {
        return false;
    }
    // A day's folder a day, per inbox and outcome: a short list, kept so.
    if synced.len() >= 64 {
        synced.remove(0);
    }
    synced.push(dir.to_path_buf());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_fit_with_their_import_id() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap_or_default();
        let long = format!("{}.csv", "x".repeat(251));
        let path = target(Path::new("/a"), 123_456, &long, date);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), crate::names::NAME_MAX);
        assert!(
            name.starts_with("123456_xxx") && name.ends_with(".csv"),
            "{name}"
        );
        let short = target(Path::new("/a"), 7, "store11.csv", date);
        assert_eq!(short, Path::new("/a/2026-12-01/7_store11.csv"));
    }
}
