//! Claiming (SPEC §2): a settled file is moved from the inbox into the work
//! folder by one atomic rename. Only a claimed file is processed, so two
//! daemons — or an upload that restarts — can never make a file count twice.
//!
//! The claimed name is `<claim stamp>-<n>_<name>`, where `<name>` is the
//! displayable form of the name it was dropped as (`crate::names`), cut to
//! fit `NAME_MAX`: unique even when the same name is dropped again while
//! the first is still in hand, and free of bytes that could not be shown.
//!
//! The original name must survive a `kill -9` at any point, from what is on
//! disk alone:
//! - not shortened: the displayable form is lossless, so the claimed name
//!   itself holds the original;
//! - shortened: a sidecar `.<claim stamp>-<n>.name` in the work folder holds
//!   the whole displayable form. It is written atomically (temporary name,
//!   fsync, rename, fsync of the folder) *before* the claiming rename, so a
//!   claimed file never exists without it. A crash between the two leaves a
//!   sidecar with no file, which the next start removes
//!   ([`remove_orphan_sidecars`]); a crash after the file left `work`
//!   (archived or released) but before its sidecar was removed does the
//!   same. Sidecars are hidden, so [`claimed_files`] never takes one for a
//!   claimed file.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::durable::{sync_dir, write_atomic};
use crate::names;

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The ending of a sidecar's name.
const SIDECAR: &str = ".name";

/// Moves `inbox/name` into `work`; `None` when the file vanished first (it
/// is then simply forgotten). Both directories are fsynced, so a crash
/// after the claim finds the file in `work`.
/// `tag`: the inbox's name, for a file of a declared `[[inbox]]`; `None` for
/// the implicit default inbox.
pub fn claim(
    inbox: &Path,
    work: &Path,
    name: &OsStr,
    tag: Option<&str>,
) -> io::Result<Option<PathBuf>> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6f");
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let key = match tag {
        Some(inbox) => format!("{stamp}-{sequence:04}@{}", inbox.replace('_', ".")),
        None => format!("{stamp}-{sequence:04}"),
    };
    let shown = names::display_os(name);
    let prefix = format!("{key}_");
    let fitted = names::shorten(&shown, names::NAME_MAX - prefix.len());
    let sidecar = (fitted != shown).then(|| work.join(format!(".{key}{SIDECAR}")));
    if let Some(sidecar) = &sidecar {
        write_atomic(sidecar, shown.as_bytes())?;
    }
    let target = work.join(format!("{prefix}{fitted}"));
    match fs::rename(inbox.join(name), &target) {
        Ok(()) => {
            sync_dir(work)?;
            sync_dir(inbox)?;
            crate::crashpoint::hit("after-claim");
            Ok(Some(target))
        }
        Err(e) => {
            if let Some(sidecar) = &sidecar {
                let _ = fs::remove_file(sidecar);
            }
            if e.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

/// The claim key (`<claim stamp>-<n>`) and the name part of a claimed
/// path, as a displayable form. A file claimed by an older stockdrop kept
/// its raw name; that is turned into its displayable form here.
fn split_claimed(claimed: &Path) -> Option<(String, String)> {
    use std::os::unix::ffi::OsStrExt;
    let name = claimed.file_name()?.as_bytes();
    let split = name.iter().position(|&b| b == b'_')?;
    let (key, rest) = (
        std::str::from_utf8(&name[..split]).ok()?,
        &name[split + 1..],
    );
    let shown = match std::str::from_utf8(rest) {
        Ok(text) if names::is_displayable(text) => text.to_string(),
        _ => names::display(rest),
    };
    (!shown.is_empty()).then(|| (key.to_string(), shown))
}

/// The inbox a claimed file came from: the name in its claim key, or
/// `default` when it has none (see the module's notes).
pub fn inbox_of(claimed: &Path) -> String {
    match split_claimed(claimed) {
        Some((key, _)) => match key.split_once('@') {
            Some((_, inbox)) => inbox.replace('.', "_"),
            None => crate::config::DEFAULT_INBOX.to_string(),
        },
        None => crate::config::DEFAULT_INBOX.to_string(),
    }
}

fn sidecar_of(claimed: &Path) -> Option<PathBuf> {
    let (key, _) = split_claimed(claimed)?;
    Some(claimed.with_file_name(format!(".{key}{SIDECAR}")))
}

/// The displayable form (`crate::names::display`) of the name a file was
/// dropped as, from its claimed path and, for a shortened name, its
/// sidecar. `names::raw` of it is the name as the filesystem had it.
pub fn original_name(claimed: &Path) -> String {
    if let Some(whole) = sidecar_of(claimed)
        .and_then(|sidecar| fs::read(sidecar).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|whole| !whole.is_empty())
    {
        return whole;
    }
    match split_claimed(claimed) {
        Some((_, original)) => original,
        None => claimed
            .file_name()
            .map(names::display_os)
            .unwrap_or_default(),
    }
}

/// Removes the sidecar of a claimed file once the file has left the work
/// folder (archived or released). Nothing to do for most files.
pub fn remove_sidecar(claimed: &Path) -> io::Result<()> {
    let Some(sidecar) = sidecar_of(claimed) else {
        return Ok(());
    };
    match fs::remove_file(&sidecar) {
        Ok(()) => sync_dir(sidecar.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes sidecars whose claimed file is gone (a crash between writing
/// one and the claim, or between the archive and the removal). Only the
/// daemon, holding the work folder's lock, calls it.
pub fn remove_orphan_sidecars(work: &Path) -> io::Result<()> {
    let mut keys = std::collections::HashSet::new();
    let mut sidecars = Vec::new();
    for entry in fs::read_dir(work)?.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(key) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(SIDECAR))
            .filter(|key| !key.contains('_') && !key.is_empty())
        {
            sidecars.push((key.to_string(), entry.path()));
        } else if let Some((key, _)) = name.split_once('_') {
            keys.insert(key.to_string());
        }
    }
    for (key, path) in sidecars {
        if !keys.contains(&key) {
            tracing::info!(sidecar = %names::display_os(path.as_os_str()), "removing the name record of a file no longer claimed");
            fs::remove_file(&path)?;
        }
    }
    sync_dir(work)
}

/// Puts a claimed file back into the inbox (it changed after the claim:
/// the upload was not finished). Refuses to overwrite a newer upload of the
/// same name; then the claimed copy keeps its place in `work`.
pub fn release(claimed: &Path, inbox: &Path) -> io::Result<bool> {
    let target = inbox.join(names::raw_os(&original_name(claimed)));
    if target.exists() {
        return Ok(false);
    }
    fs::rename(claimed, &target)?;
    if let Some(work) = claimed.parent() {
        sync_dir(work)?;
    }
    sync_dir(inbox)?;
    remove_sidecar(claimed)?;
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
        let claimed = claim(inbox.path(), work.path(), OsStr::new("store_11.csv"), None)
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
        assert_eq!(
            claim(inbox.path(), work.path(), OsStr::new("gone.csv"), None).unwrap(),
            None
        );
        assert_eq!(fs::read_dir(work.path()).unwrap().count(), 0);
    }

    #[test]
    fn odd_and_long_names_are_claimed_and_read_back() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let inbox = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let long = format!("{}.csv", "é".repeat(125));
        assert_eq!(long.len(), 254);
        for raw in [
            OsString::from_vec(b"Caf\xe9.csv".to_vec()),
            OsString::from_vec(b"line\nbreak.csv".to_vec()),
            OsString::from(long.clone()),
        ] {
            fs::write(inbox.path().join(&raw), b"x").unwrap();
            let claimed = claim(inbox.path(), work.path(), &raw, Some("east_1"))
                .unwrap()
                .unwrap();
            assert_eq!(inbox_of(&claimed), "east_1");
            let claimed_name = claimed.file_name().unwrap().to_str().unwrap();
            assert!(claimed_name.len() <= names::NAME_MAX, "{claimed_name}");
            assert!(!claimed_name.contains('\n'));
            assert_eq!(original_name(&claimed), names::display_os(&raw));
            assert_eq!(claimed_files(work.path()).unwrap(), vec![claimed.clone()]);
            // Nothing is an orphan while the file is claimed.
            remove_orphan_sidecars(work.path()).unwrap();
            assert_eq!(original_name(&claimed), names::display_os(&raw));
            assert!(release(&claimed, inbox.path()).unwrap());
            assert!(inbox.path().join(&raw).exists());
            fs::remove_file(inbox.path().join(&raw)).unwrap();
            let left: Vec<_> = fs::read_dir(work.path()).unwrap().collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }

    #[test]
    fn a_raw_name_claimed_by_an_older_version_is_shown_escaped() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let work = tempfile::tempdir().unwrap();
        let old = work.path().join(OsString::from_vec(
            b"20261201T000000.000000-0001_a\nb\xe9.csv".to_vec(),
        ));
        assert_eq!(original_name(&old), "a%0Ab%E9.csv");
    }

    #[test]
    fn an_orphan_sidecar_is_removed() {
        let work = tempfile::tempdir().unwrap();
        fs::write(work.path().join(".20261201T000000.000000-0001.name"), b"x").unwrap();
        fs::write(work.path().join(".20261201T000000.000000-0002.name"), b"y").unwrap();
        fs::write(work.path().join("20261201T000000.000000-0002_y~0.csv"), b"").unwrap();
        remove_orphan_sidecars(work.path()).unwrap();
        assert!(!work
            .path()
            .join(".20261201T000000.000000-0001.name")
            .exists());
        assert!(work
            .path()
            .join(".20261201T000000.000000-0002.name")
            .exists());
        assert_eq!(
            original_name(&work.path().join("20261201T000000.000000-0002_y~0.csv")),
            "y"
        );
    }

    #[test]
    fn the_inbox_travels_in_the_claim_key_and_no_name_can_forge_it() {
        let inbox = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        for (tag, dropped) in [
            (Some("boston"), "x@chicago_y.csv"),
            (Some("a-b_c"), "@chicago_.csv"),
            (None, "@chicago_evil.csv"),
            (None, "1@chicago_evil.csv"),
        ] {
            fs::write(inbox.path().join(dropped), b"x").unwrap();
            let claimed = claim(inbox.path(), work.path(), OsStr::new(dropped), tag)
                .unwrap()
                .unwrap();
            assert_eq!(inbox_of(&claimed), tag.unwrap_or("default"), "{claimed:?}");
            assert_eq!(original_name(&claimed), dropped);
            fs::remove_file(&claimed).unwrap();
        }
        // A file claimed by an older stockdrop came from the one inbox.
        assert_eq!(
            inbox_of(Path::new("w/20261201T000000.000000-0001_a@b_c.csv")),
            "default"
        );
    }
}
