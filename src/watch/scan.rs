//! Listing the inbox: the regular files that may be stock files, with what
//! settling needs (size, modification time). Hidden files, temporary upload
//! names, `watch.ignore` globs, done markers, subfolders, FIFOs and other
//! non-regular files are skipped; symbolic links are skipped with a warning
//! (once per name) and never followed (SPEC §2). Names are the raw bytes
//! the filesystem holds (not always UTF-8, see `crate::names`).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::open::Identity;

/// Temporary names of SFTP clients, browsers and office programs.
const TEMPORARY: &[&str] = &[
    "*.filepart",
    "*.part",
    "*.partial",
    "*.tmp",
    "*.crdownload",
    "~$*",
];

/// A candidate file in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As the filesystem holds it; shown through `names::display_os`.
    pub name: OsString,
    pub path: PathBuf,
    pub size: u64,
    pub modified: Option<SystemTime>,
    /// The device and inode the scan saw: only this file is ever read
    /// under the name (see `open`).
    pub identity: Identity,
}

/// What the inbox scan skips.
pub struct Filter {
    ignore: GlobSet,
    done_marker: Option<String>,
    warned_links: HashSet<OsString>,
}

impl Filter {
    /// `patterns` are the `watch.ignore` globs (checked by the config).
    pub fn new(patterns: &[String], done_marker: Option<&str>) -> Result<Filter, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        for pattern in TEMPORARY
            .iter()
            .copied()
            .chain(patterns.iter().map(String::as_str))
        {
            builder.add(Glob::new(pattern)?);
        }
        Ok(Filter {
            ignore: builder.build()?,
            done_marker: done_marker.map(str::to_string),
            warned_links: HashSet::new(),
        })
    }

    /// Whether a name is never a stock file, before looking at the file.
    pub fn ignores_name(&self, name: &OsStr) -> bool {
        name.as_bytes().starts_with(b".")
            || self.ignore.is_match(Path::new(name))
            || self
                .done_marker
                .as_deref()
                .is_some_and(|marker| name.as_bytes().ends_with(marker.as_bytes()))
    }

    /// The done marker of `name`, when markers are in use.
    pub fn marker_for(&self, dir: &Path, name: &OsStr) -> Option<PathBuf> {
        self.done_marker.as_deref().map(|marker| {
            let mut marked = name.to_os_string();
            marked.push(marker);
            dir.join(marked)
        })
    }

    /// Lists the inbox. Never opens a file (a FIFO would block).
    pub fn scan(&mut self, inbox: &Path) -> io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for dirent in fs::read_dir(inbox)? {
            let Ok(dirent) = dirent else { continue };
            let name = dirent.file_name();
            if self.ignores_name(&name) {
                continue;
            }
            let path = dirent.path();
            // symlink_metadata: a link is seen as a link, never followed.
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = meta.file_type();
            if kind.is_symlink() {
                if self.warned_links.insert(name.clone()) {
                    tracing::warn!(file = %crate::names::display_os(&name), "ignoring a symbolic link in the inbox; links are never followed");
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            if let Some(marker) = self.marker_for(inbox, &name) {
                if !marker.exists() {
                    continue;
                }
            }
            entries.push(Entry {
                name,
                path,
                size: meta.len(),
                modified: meta.modified().ok(),
                identity: Identity::of(&meta),
            });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(filter: &mut Filter, dir: &Path) -> Vec<OsString> {
        let mut names: Vec<OsString> = filter
            .scan(dir)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn skips_hidden_temporary_ignored_links_folders_and_fifos() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "a.csv",
            ".hidden.csv",
            "b.csv.filepart",
            "c.part",
            "~$d.xlsx",
            "e.bak",
            "f.tmp",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a.csv"), dir.path().join("link.csv")).unwrap();
        let fifo = dir.path().join("pipe.csv");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let mut filter = Filter::new(&["*.bak".to_string()], None).unwrap();
        assert_eq!(names(&mut filter, dir.path()), ["a.csv"]);
    }

    #[test]
    fn done_marker_gates_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.csv"), b"x").unwrap();
        fs::write(dir.path().join("b.csv"), b"x").unwrap();
        fs::write(dir.path().join("b.csv.done"), b"").unwrap();
        let mut filter = Filter::new(&[], Some(".done")).unwrap();
        assert_eq!(names(&mut filter, dir.path()), ["b.csv"]);
    }

    #[test]
    fn names_that_are_not_utf8_are_listed() {
        use std::os::unix::ffi::OsStringExt;
        let dir = tempfile::tempdir().unwrap();
        let latin1 = OsString::from_vec(b"Caf\xe9.csv".to_vec());
        fs::write(dir.path().join(&latin1), b"x").unwrap();
        fs::write(dir.path().join(OsString::from_vec(b".\xe9".to_vec())), b"x").unwrap();
        let mut filter = Filter::new(&[], None).unwrap();
        assert_eq!(names(&mut filter, dir.path()), [latin1]);
    }
}
