//! The data directories (SPEC §2): created at start-up, checked writable,
//! and checked to share one filesystem so that every move between inbox,
//! work, archive and failed is an atomic rename, never a copy.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::Paths;

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{key} = {path}: cannot create the directory: {source}")]
    Create {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{key} = {path}: the directory is not writable: {source}")]
    NotWritable {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{key} = {path} is on a different filesystem from paths.inbox = {inbox}; files move between \
         them by rename, which cannot cross filesystems: put them under one data root"
    )]
    CrossDevice {
        key: &'static str,
        path: PathBuf,
        inbox: PathBuf,
    },
}

/// Creates and checks the directories. Work, archive and failed are made
/// readable by the stockdrop user only when created here; the inbox keeps
/// whatever mode the administrator gave it (it is shared with the uploader).
pub fn prepare(paths: &Paths) -> Result<(), DirError> {
    let dirs: [(&'static str, &Path, bool); 5] = [
        ("paths.inbox", &paths.inbox, false),
        ("paths.work", &paths.work, true),
        ("paths.archive", &paths.archive, true),
        ("paths.failed", &paths.failed, true),
        ("paths.outbox", &paths.outbox, false),
    ];
    for (key, dir, private) in dirs {
        let existed = dir.is_dir();
        fs::create_dir_all(dir).map_err(|source| DirError::Create {
            key,
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
            key: "paths.database",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let device = |key: &'static str, dir: &Path| {
        fs::metadata(dir)
            .map(|m| m.dev())
            .map_err(|source| DirError::Create {
                key,
                path: dir.to_path_buf(),
                source,
            })
    };
    let inbox = device("paths.inbox", &paths.inbox)?;
    for (key, dir) in [
        ("paths.work", &paths.work),
        ("paths.archive", &paths.archive),
        ("paths.failed", &paths.failed),
    ] {
        if device(key, dir)? != inbox {
            return Err(DirError::CrossDevice {
                key,
                path: dir.clone(),
                inbox: paths.inbox.clone(),
            });
        }
    }
    Ok(())
}
