//! Writing files so that a reader (or a crash) never sees half of one:
//! every file stockdrop writes goes to a temporary name in the same
//! directory, is fsynced, then renamed over the final name, and the
//! directory is fsynced so the rename itself survives a power cut.
//!
//! An fsync costs a disk flush (0.2–0.7 ms each where the benchmark ran,
//! and a small file's way through the daemon took 17 of them), so where a
//! file's durability is not what a guarantee rests on the caller says so
//! ([`Durability`]): the reports of one import share one directory fsync,
//! the outbox index (rebuilt after every import) and the daemon's
//! progress line need none.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically. A crash before the rename leaves at
/// most a hidden `.NAME.tmp-PID` file, never a partial `NAME`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with_bytes(path, Durability::Renamed, bytes)
}

/// [`replace`] with `bytes`.
pub fn replace_with_bytes(path: &Path, durability: Durability, bytes: &[u8]) -> io::Result<()> {
    replace(path, durability, |out| out.write_all(bytes))
}

/// [`write_atomic`] of what `write` writes, through a buffer: for content
/// made as it is written, never held whole.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    replace(path, Durability::Renamed, write)
}

/// How far [`replace`] makes a file durable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The file and its new name survive a power cut once this returns.
    Renamed,
    /// The file is on disk before its name points at it, so a power cut
    /// leaves the old file or the new one, whole; the rename itself is
    /// durable once the caller fsyncs the directory (`sync_dir`, once for
    /// several files), or the next write of the same name replaces it.
    Written,
    /// Not fsynced at all: atomic for a reader, for a file that means
    /// something only while the process runs (the daemon's progress line).
    /// A power cut may leave the old file, the new one, or an empty one.
    Volatile,
}

/// Writes what `write` writes to a hidden temporary name beside `path`
/// and renames it over `path`, fsyncing as far as `durability` asks.
pub fn replace(
    path: &Path,
    durability: Durability,
    write: impl FnOnce(&mut io::BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // Hidden, so an SFTP listing or the inbox scanner never picks it up.
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut out = io::BufWriter::with_capacity(1 << 16, &file);
        write(&mut out)?;
        out.flush()?;
        drop(out);
        if durability != Durability::Volatile {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        match durability {
            Durability::Renamed => sync_dir(dir),
            Durability::Written | Durability::Volatile => Ok(()),
        }
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory, making renames into or out of it durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
