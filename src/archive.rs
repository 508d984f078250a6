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

/// Moves the claimed file to its final place and returns that path. Done
/// twice (after a crash between the move and its record), the second call
/// finds the file already there and returns the same path.
pub fn archive(
    claimed: &Path,
    root: &Path,
    import_id: i64,
    original_name: &str,
    date: chrono::NaiveDate,
) -> io::Result<PathBuf> {
    let dir = root.join(date.format("%Y-%m-%d").to_string());
    let target = dir.join(format!("{import_id}_{original_name}"));
    if !claimed.exists() && target.exists() {
        return Ok(target);
    }
    fs::create_dir_all(&dir)?;
    fs::rename(claimed, &target)?;
    sync_dir(&dir)?;
    sync_dir(root)?;
    if let Some(work) = claimed.parent() {
        sync_dir(work)?;
    }
    Ok(target)
}
