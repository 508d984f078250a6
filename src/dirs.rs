//! The data directories (SPEC §2): created at start-up, checked writable,
//! and checked to share one filesystem so that every move between inbox,
//! work, archive and failed is an atomic rename, never a copy.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{Inbox, Paths};

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{key} = {path}: cannot create the directory: {source}")]
    Create {
        key: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{key} = {path}: the directory is not writable: {source}")]
    NotWritable {
        key: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{key} = {path} is on a different filesystem from {other}; files move between \
         them by rename, which cannot cross filesystems: put them under one data root"
    )]
    CrossDevice {
        key: String,
        path: PathBuf,
        other: String,
    },
    #[error(
        "{key} = {path} is, once links are followed, the same folder as, inside or around {other}; \
         every inbox needs a folder of its own and an outbox no other inbox shares"
    )]
    Overlap {
        key: String,
        path: PathBuf,
        other: String,
    },
}

/// Creates and checks the directories. Work, archive and failed are made
/// readable by the stockdrop user only when created here; the inbox keeps
/// whatever mode the administrator gave it (it is shared with the uploader).
///
/// Every inbox (SPEC §2.1) must be on the filesystem of `paths.work`, as
/// archive and failed must: a claim is a rename from the inbox into work.
pub fn prepare(paths: &Paths, inboxes: &[Inbox]) -> Result<(), DirError> {
    let mut dirs: Vec<(String, &Path, bool)> = vec![
        ("paths.work".into(), &paths.work, true),
        ("paths.archive".into(), &paths.archive, true),
        ("paths.failed".into(), &paths.failed, true),
    ];
    for inbox in inboxes {
        dirs.push((inbox.key("path"), &inbox.path, false));
        dirs.push((inbox.key("outbox"), &inbox.outbox, false));
    }
    for (key, dir, private) in dirs {
        let existed = dir.is_dir();
        fs::create_dir_all(dir).map_err(|source| DirError::Create {
            key: key.clone(),
            path: dir.to_path_buf(),
            source,
        })?;
        if private && !existed {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        }
        let probe = dir.join(format!(".stockdrop-write-check-{}", std::process::id()));
        fs::write(&probe, b"")
            .and_then(|()| fs::remove_file(&probe))
            .map_err(|source| DirError::NotWritable {
                key,
                path: dir.to_path_buf(),
                source,
            })?;
    }
    if let Some(parent) = paths
        .database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        fs::create_dir_all(parent).map_err(|source| DirError::Create {
            key: "paths.database".into(),
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let device = |key: String, dir: &Path| {
        fs::metadata(dir)
            .map(|m| m.dev())
            .map_err(|source| DirError::Create {
                key,
                path: dir.to_path_buf(),
                source,
            })
    };
    let work = device("paths.work".into(), &paths.work)?;
    let mut same = vec![
        ("paths.archive".to_string(), &paths.archive),
        ("paths.failed".to_string(), &paths.failed),
    ];
    same.extend(inboxes.iter().map(|i| (i.key("path"), &i.path)));
    for (key, dir) in same {
        if device(key.clone(), dir)? != work {
            return Err(DirError::CrossDevice {
                key,
                path: dir.clone(),
                other: format!("paths.work = {}", paths.work.display()),
            });
        }
    }
    check_overlaps(paths, inboxes)
}

/// The config's checks on inbox folders compare paths as written; this
/// repeats them on the real folders, links followed, so two spellings of
/// one folder (a symlink, a bind mount's other name) cannot make two
/// inboxes claim each other's files or share an outbox.
///
/// Only for `[[inbox]]` tables: the one implicit inbox keeps whatever
/// layout worked before.
fn check_overlaps(paths: &Paths, inboxes: &[Inbox]) -> Result<(), DirError> {
    if !inboxes.iter().any(|i| i.declared) {
        return Ok(());
    }
    let real = |dir: &Path| fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let fixed = [
        ("paths.work", real(&paths.work)),
        ("paths.archive", real(&paths.archive)),
        ("paths.failed", real(&paths.failed)),
    ];
    let related = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    for (n, inbox) in inboxes.iter().enumerate() {
        let (path, outbox) = (real(&inbox.path), real(&inbox.outbox));
        let overlap = |other: String| DirError::Overlap {
            key: inbox.key("path"),
            path: inbox.path.clone(),
            other,
        };
        for (key, dir) in &fixed {
            if related(&path, dir) {
                return Err(overlap(format!("{key} = {}", dir.display())));
            }
        }
        for other in &inboxes[n + 1..] {
            if related(&path, &real(&other.path)) {
                return Err(overlap(format!(
                    "{} = {}",
                    other.key("path"),
                    other.path.display()
                )));
            }
            if outbox == real(&other.outbox) {
                return Err(DirError::Overlap {
                    key: inbox.key("outbox"),
                    path: inbox.outbox.clone(),
                    other: format!("{} = {}", other.key("outbox"), other.outbox.display()),
                });
            }
        }
        for other in inboxes {
            if outbox == real(&other.path) {
                return Err(DirError::Overlap {
                    key: inbox.key("outbox"),
                    path: inbox.outbox.clone(),
                    other: format!("{} = {}", other.key("path"), other.path.display()),
                });
            }
        }
    }
    Ok(())
}
