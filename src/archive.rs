//! Finishing (SPEC §2): the original moves to
//! `archive/YYYY-MM-DD/<import id>_<name>` (applied, partial, duplicate) or
//! `failed/YYYY-MM-DD/…` (rejected, failed), by rename, with both
//! directories fsynced.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::Paths;
use crate::durable::sync_dir;

/// Where a file of this status ends up.
pub fn destination_root<'a>(paths: &'a Paths, status: &str) -> &'a Path {
    match status {
        "rejected" | "failed" => &paths.failed,
        _ => &paths.archive,
    }
}

/// `root/YYYY-MM-DD/<import id>_<name>`.
pub fn target(
    root: &Path,
    import_id: i64,
    original_name: &str,
    date: chrono::NaiveDate,
) -> PathBuf {
    root.join(date.format("%Y-%m-%d").to_string())
        .join(format!("{import_id}_{original_name}"))
}

/// Moves the claimed file to `target`. Done twice (after a crash between
/// the move and what follows), the second call finds the file already
/// there and succeeds.
pub fn archive(claimed: &Path, target: &Path) -> io::Result<()> {
    if !claimed.exists() && target.exists() {
        return Ok(());
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    fs::rename(claimed, target)?;
    sync_dir(dir)?;
    if let Some(root) = dir.parent() {
        sync_dir(root)?;
    }
    if let Some(work) = claimed.parent() {
        sync_dir(work)?;
    }
    Ok(())
}
