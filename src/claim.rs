//! Claiming (SPEC §2): a settled file is moved from the inbox into the work
//! folder by one atomic rename. Only a claimed file is processed, so two
//! daemons — or an upload that restarts — can never make a file count twice.
//!
//! The claimed name is `<claim stamp>_<original name>`: unique even when
//! the same name is dropped again while the first is still in hand, and the
//! original name can always be read back from it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::durable::sync_dir;

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Moves `inbox/name` into `work`; `None` when the file vanished first (it
/// is then simply forgotten). Both directories are fsynced, so a crash
/// after the claim finds the file in `work`.
pub fn claim(inbox: &Path, work: &Path, name: &str) -> io::Result<Option<PathBuf>> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let target = work.join(format!("{stamp}-{sequence:04}_{name}"));
    match fs::rename(inbox.join(name), &target) {
        Ok(()) => {
            sync_dir(work)?;
            sync_dir(inbox)?;
            crate::crashpoint::hit("after-claim");
            Ok(Some(target))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The name a file was dropped as, from its claimed path.
pub fn original_name(claimed: &Path) -> String {
    let name = claimed
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.split_once('_') {
        Some((_, original)) if !original.is_empty() => original.to_string(),
        _ => name,
    }
}

/// Puts a claimed file back into the inbox (it changed after the claim:
/// the upload was not finished). Refuses to overwrite a newer upload of the
/// same name; then the claimed copy keeps its place in `work`.
pub fn release(claimed: &Path, inbox: &Path) -> io::Result<bool> {
    let target = inbox.join(original_name(claimed));
    if target.exists() {
        return Ok(false);
    }
    fs::rename(claimed, &target)?;
    if let Some(work) = claimed.parent() {
        sync_dir(work)?;
    }
    sync_dir(inbox)?;
    Ok(true)
}

/// The files in `work`, oldest claim first: what a start-up must finish.
pub fn claimed_files(work: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(work)?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_moves_and_keeps_the_name_readable() {
        let inbox = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        fs::write(inbox.path().join("store_11.csv"), b"x").unwrap();
        let claimed = claim(inbox.path(), work.path(), "store_11.csv")
            .unwrap()
            .unwrap();
        assert!(!inbox.path().join("store_11.csv").exists());
        assert_eq!(original_name(&claimed), "store_11.csv");
        assert_eq!(claimed_files(work.path()).unwrap(), vec![claimed.clone()]);
        assert!(release(&claimed, inbox.path()).unwrap());
        assert!(inbox.path().join("store_11.csv").exists());
    }

    #[test]
    fn a_vanished_file_is_forgotten() {
        let inbox = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        assert_eq!(claim(inbox.path(), work.path(), "gone.csv").unwrap(), None);
    }
}
