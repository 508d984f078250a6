//! Opening a file the uploader controls (SPEC §2, steps 3 and 4).
//!
//! The uploading account can rename anything over a name in the inbox
//! between the scan and the read: a symbolic link to a secret, a FIFO that
//! blocks `open()` for good, a link to `/dev/zero`, a hard link to a file
//! elsewhere. So a file is opened once, without following links and
//! without blocking (`O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`), its descriptor
//! is `fstat`ed, and it is read only if it is a regular file with one link
//! and — when known — the device and inode the scan saw. Everything that
//! reads a claimed file goes through [`open`]; a refusal is an
//! [`io::Error`] carrying a [`Refusal`], which the daemon turns into one
//! report (see `daemon`).
//!
//! [`writers`] asks the kernel whether any process holds a file open for
//! writing, with a read lease that is released at once: `F_SETLEASE`
//! with `F_RDLCK` fails with `EAGAIN` while a writer has the file open. It
//! needs the file's owner or `CAP_LEASE`, and a filesystem with leases
//! (not NFS); where it cannot tell, settling is all there is.

use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Once;
use std::time::SystemTime;

/// Where a file's data lives: what the scan saw, checked again at the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
}

impl Identity {
    pub fn of(meta: &Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// How far a path is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trust {
    /// A path an operator typed (`stockdrop import FILE`, `validate`): a
    /// symbolic link the operator names is followed, but what it leads to
    /// must be a regular file with one link, and is never waited on.
    #[default]
    Named,
    /// A file claimed from the inbox, or one in `failed/`: never followed,
    /// one link, and the identity the scan saw when it is known.
    Claimed(Option<Identity>),
}

/// Why a file is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Symlink,
    Fifo,
    Socket,
    Device,
    Directory,
    Special,
    /// A regular file with this many names (hard links).
    Links(u64),
    /// A regular file, but not the one that settled under this name.
    Swapped,
}

impl Refusal {
    fn of_kind(meta: &Metadata) -> Option<Refusal> {
        let kind = meta.file_type();
        if kind.is_file() {
            return None;
        }
        Some(if kind.is_symlink() {
            Refusal::Symlink
        } else if kind.is_fifo() {
            Refusal::Fifo
        } else if kind.is_socket() {
            Refusal::Socket
        } else if kind.is_block_device() || kind.is_char_device() {
            Refusal::Device
        } else if kind.is_dir() {
            Refusal::Directory
        } else {
            Refusal::Special
        })
    }

    /// What it was, in a few words (for logs and the report).
    pub fn what(&self) -> String {
        match self {
            Refusal::Symlink => "a symbolic link".into(),
            Refusal::Fifo => "a named pipe (FIFO)".into(),
            Refusal::Socket => "a socket".into(),
            Refusal::Device => "a device node".into(),
            Refusal::Directory => "a folder".into(),
            Refusal::Special => "not a regular file".into(),
            Refusal::Links(n) => format!("a file with {n} hard links"),
            Refusal::Swapped => "a different file from the one that finished uploading".into(),
        }
    }

    /// What the sender should do instead.
    pub fn advice(&self) -> &'static str {
        match self {
            Refusal::Symlink => {
                "links are never followed; upload the file itself, not a link to it"
            }
            Refusal::Links(_) => {
                "a file with other names could be changed through them after it was read, or \
                 be data from elsewhere; upload a copy of the file, not a hard link"
            }
            Refusal::Swapped => {
                "it was replaced under the same name after its upload had settled; upload the \
                 file again, under a name of its own"
            }
            _ => "only regular files are read; upload the stock file itself",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stockdrop did not read it: it is {}; {}",
            self.what(),
            self.advice()
        )
    }
}

impl std::error::Error for Refusal {}

/// The [`Refusal`] an error from [`open`] carries, if it is one.
pub fn refusal(error: &io::Error) -> Option<&Refusal> {
    error.get_ref().and_then(|e| e.downcast_ref::<Refusal>())
}

fn refuse(refusal: Refusal) -> io::Error {
    io::Error::other(refusal)
}

/// Opens `path` for reading as `trust` allows; returns the descriptor and
/// what `fstat` says of it. Never blocks, never follows a link it should
/// not, never opens a device or a FIFO on purpose.
pub fn open(path: &Path, trust: Trust) -> io::Result<(File, Metadata)> {
    // Look before opening, so a device or FIFO is not even opened; the
    // descriptor's own fstat below is what decides.
    let seen = match trust {
        Trust::Named => fs::metadata(path)?,
        Trust::Claimed(_) => fs::symlink_metadata(path)?,
    };
    if let Some(refusal) = Refusal::of_kind(&seen) {
        return Err(refuse(refusal));
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if matches!(trust, Trust::Claimed(_)) {
        flags |= libc::O_NOFOLLOW;
    }
    options.custom_flags(flags);
    let file = match options.open(path) {
        Ok(file) => file,
        // Swapped for a link between the look and the open.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(refuse(Refusal::Symlink)),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if let Some(refusal) = Refusal::of_kind(&meta) {
        return Err(refuse(refusal));
    }
    if meta.nlink() > 1 {
        return Err(refuse(Refusal::Links(meta.nlink())));
    }
    if let Trust::Claimed(Some(expected)) = trust {
        if Identity::of(&meta) != expected {
            return Err(refuse(Refusal::Swapped));
        }
    }
    Ok((file, meta))
}

/// Reads at most `limit + 1` bytes from `file`: one more than the limit
/// tells the caller the file is over it (it grew after the `fstat`).
pub fn read_bounded(file: &mut File, limit: u64, expected: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected.min(limit)).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The SHA-256 of a claimed file, for the record of a file that failed;
/// empty when the file may not be read or is over `limit`.
pub fn sha256_of(path: &Path, limit: u64) -> String {
    use sha2::{Digest, Sha256};
    let Ok((mut file, meta)) = open(path, Trust::Claimed(None)) else {
        return String::new();
    };
    if meta.len() > limit {
        return String::new();
    }
    match read_bounded(&mut file, limit, meta.len()) {
        Ok(bytes) if bytes.len() as u64 <= limit => Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        _ => String::new(),
    }
}

/// Whether a writer holds a file open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// No process has it open for writing.
    None,
    /// Some process has it open for writing (or holds a lease on it).
    Open,
    /// The kernel cannot tell: `EINVAL` (no leases on this filesystem,
    /// or leases disabled) or `EACCES` (not the owner, no `CAP_LEASE`).
    Unknown(i32),
}

/// A read lease taken and released at once. While held for those few
/// instructions, a writer's `open` would break it and the kernel would
/// signal this process with SIGIO, whose default action ends it: SIGIO
/// gets a handler that does nothing, once per process (a handler, not
/// `SIG_IGN`, so `notify.command` and other children start with the
/// default again).
pub fn writers(file: &File) -> Writers {
    static CATCH_SIGIO: Once = Once::new();
    CATCH_SIGIO.call_once(catch_sigio);
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function borrows; no memory passed.
    let taken = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
    if taken == 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) };
        return Writers::None;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Writers::Open,
        Some(errno) => Writers::Unknown(errno),
        None => Writers::Unknown(0),
    }
}

extern "C" fn on_sigio(_: libc::c_int) {}

fn catch_sigio() {
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe
    // (it does nothing); SA_RESTART keeps interrupted calls going.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigio as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGIO, &action, std::ptr::null_mut());
    }
}

/// Opens `path` as `trust` allows and asks [`writers`]. A file another
/// process holds a write lease on cannot be opened without blocking
/// (`EWOULDBLOCK`): that counts as a writer.
pub fn writers_of(path: &Path, trust: Trust) -> io::Result<Writers> {
    match open(path, trust) {
        Ok((file, _)) => Ok(writers(&file)),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(Writers::Open),
        Err(e) => Err(e),
    }
}

/// A claimed file as it was when its processing began: which file, its
/// size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub identity: Identity,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

impl Stamp {
    fn from_meta(meta: &Metadata) -> Stamp {
        Stamp {
            identity: Identity::of(meta),
            size: meta.len(),
            modified: meta.modified().ok(),
        }
    }

    /// The stamp of the file at `path`, opened as `trust` allows.
    pub fn of(path: &Path, trust: Trust) -> io::Result<Stamp> {
        open(path, trust).map(|(_, meta)| Stamp::from_meta(&meta))
    }

    /// Checked just before the first commit (SPEC §2.4): the same file,
    /// unchanged, and no process holding it open for writing. A rename into
    /// the work folder leaves a writer that has not finished its file
    /// open, so this is asked again rather than trusted from the scan.
    pub fn still_holds(&self, path: &Path) -> bool {
        let Ok((file, meta)) = open(path, Trust::Claimed(Some(self.identity))) else {
            return false;
        };
        Stamp::from_meta(&meta) == *self && writers(&file) != Writers::Open
    }
}

/// Which upload checks the kernel gives on the filesystem of `dir` (the
/// work folder shares the inbox's): probed on a file of stockdrop's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseSupport {
    /// Leases work, and `CAP_LEASE` lets stockdrop take them on files the
    /// uploading accounts own.
    Full,
    /// Leases work on stockdrop's own files only: files owned by another
    /// account cannot be checked (no `CAP_LEASE`).
    OwnFilesOnly,
    /// No leases here (NFS and other network filesystems, or
    /// `fs.leases-enable = 0`): the error the probe got.
    Unavailable(String),
}

impl LeaseSupport {
    pub fn probe(dir: &Path) -> LeaseSupport {
        let file = match tempfile::Builder::new()
            .prefix(".stockdrop-lease-probe")
            .tempfile_in(dir)
        {
            Ok(file) => file,
            Err(e) => return LeaseSupport::Unavailable(e.to_string()),
        };
        let result = match fs::File::open(file.path()) {
            Ok(reader) => writers(&reader),
            Err(e) => return LeaseSupport::Unavailable(e.to_string()),
        };
        // Our own temporary file is open for writing: EAGAIN means leases
        // work. Ask again with it closed to be sure.
        let path = file.path().to_path_buf();
        let kept = file.into_temp_path();
        let reopened = fs::File::open(&path).map(|f| writers(&f));
        drop(kept);
        match (result, reopened) {
            (Writers::Open, Ok(Writers::None)) if has_cap_lease() => LeaseSupport::Full,
            (Writers::Open, Ok(Writers::None)) => LeaseSupport::OwnFilesOnly,
            (_, Ok(Writers::Unknown(errno))) | (Writers::Unknown(errno), _) => {
                LeaseSupport::Unavailable(io::Error::from_raw_os_error(errno).to_string())
            }
            (_, Err(e)) => LeaseSupport::Unavailable(e.to_string()),
            (a, Ok(b)) => LeaseSupport::Unavailable(format!("unexpected probe ({a:?}, {b:?})")),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            LeaseSupport::Full => "on (read-lease probe, CAP_LEASE)".into(),
            LeaseSupport::OwnFilesOnly => {
                "on for files stockdrop's user owns only (no CAP_LEASE: files of other accounts \
                 are settled only)"
                    .into()
            }
            LeaseSupport::Unavailable(why) => {
                format!("off: the filesystem gives no leases ({why}); settling only")
            }
        }
    }
}

/// Whether this process holds `CAP_LEASE` (capability 28) in its
/// effective set, as the unit grants it.
fn has_cap_lease() -> bool {
    const CAP_LEASE: u32 = 28;
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_LEASE) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn refused(result: io::Result<(File, Metadata)>) -> Refusal {
        match result {
            Ok(_) => panic!("opened"),
            Err(e) => refusal(&e).cloned().unwrap_or_else(|| panic!("{e}")),
        }
    }

    #[test]
    fn only_a_regular_file_with_one_link_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.csv");
        fs::write(&file, b"x").unwrap();
        let (_, meta) = open(&file, Trust::Claimed(None)).unwrap();
        let identity = Identity::of(&meta);
        open(&file, Trust::Claimed(Some(identity))).unwrap();

        let link = dir.path().join("link.csv");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(refused(open(&link, Trust::Claimed(None))), Refusal::Symlink);
        // An operator may name a link; it leads to a regular file.
        open(&link, Trust::Named).unwrap();

        let zero = dir.path().join("zero.csv");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert_eq!(refused(open(&zero, Trust::Claimed(None))), Refusal::Symlink);
        assert_eq!(refused(open(&zero, Trust::Named)), Refusal::Device);

        let fifo = dir.path().join("pipe.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(refused(open(&fifo, Trust::Claimed(None))), Refusal::Fifo);
        assert_eq!(refused(open(&fifo, Trust::Named)), Refusal::Fifo);

        let other = dir.path().join("other.csv");
        fs::write(&other, b"y").unwrap();
        assert_eq!(
            refused(open(&other, Trust::Claimed(Some(identity)))),
            Refusal::Swapped
        );

        fs::hard_link(&file, dir.path().join("second-name.csv")).unwrap();
        assert_eq!(
            refused(open(&file, Trust::Claimed(Some(identity)))),
            Refusal::Links(2)
        );
        assert!(sha256_of(&file, 100).is_empty());
    }

    #[test]
    fn reads_stop_one_byte_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        fs::write(&path, vec![b'x'; 100]).unwrap();
        let (mut file, _) = open(&path, Trust::Claimed(None)).unwrap();
        assert_eq!(read_bounded(&mut file, 10, 100).unwrap().len(), 11);
        assert_eq!(sha256_of(&path, 10), "");
        assert_eq!(sha256_of(&path, 100).len(), 64);
    }

    /// A writer opening the file while the probe holds its lease makes the
    /// kernel send SIGIO; the process must live through it.
    #[test]
    fn a_lease_broken_by_a_writer_does_not_end_the_process() {
        let dir = tempfile::tempdir().unwrap();
        if let LeaseSupport::Unavailable(why) = LeaseSupport::probe(dir.path()) {
            eprintln!("!!! SKIPPED: no leases on {}: {why}", dir.path().display());
            return;
        }
        let path = dir.path().join("a.csv");
        fs::write(&path, b"x").unwrap();
        let reader = File::open(&path).unwrap();
        catch_sigio();
        // SAFETY: fcntl on a descriptor this test owns.
        assert_eq!(
            unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) },
            0
        );
        let writer = {
            let path = path.clone();
            std::thread::spawn(move || fs::OpenOptions::new().append(true).open(path))
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: as above.
        unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        assert!(writer.join().unwrap().is_ok());
    }

    #[test]
    fn a_writer_holding_the_file_is_seen_and_the_stamp_no_longer_holds() {
        let dir = tempfile::tempdir().unwrap();
        if let LeaseSupport::Unavailable(why) = LeaseSupport::probe(dir.path()) {
            eprintln!("!!! SKIPPED: no leases on {}: {why}", dir.path().display());
            return;
        }
        let path = dir.path().join("a.csv");
        let mut writer = File::create(&path).unwrap();
        writer.write_all(b"location,sku,quantity\n").unwrap();
        assert_eq!(
            writers_of(&path, Trust::Claimed(None)).unwrap(),
            Writers::Open
        );
        let stamp = Stamp::of(&path, Trust::Claimed(None)).unwrap();
        assert!(!stamp.still_holds(&path), "a writer has it open");
        drop(writer);
        assert_eq!(
            writers_of(&path, Trust::Claimed(None)).unwrap(),
            Writers::None
        );
        assert!(stamp.still_holds(&path));
        fs::write(&path, b"location,sku,quantity\n11,A,1\n").unwrap();
        assert!(!stamp.still_holds(&path), "it changed");
    }
}
