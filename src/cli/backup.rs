//! `stockdrop backup DEST`: a consistent copy of the store through SQLite's
//! online backup API, safe while the daemon runs. The copy is written to a
//! temporary name, checked (`PRAGMA integrity_check`), then renamed.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{output, CmdResult, Exit, Failure};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup file, or a folder to put `stockdrop-<time>.db` in.
    dest: PathBuf,
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let source = &config.paths.database;
    if !source.exists() {
        return Err(Failure::Usage(format!(
            "there is no store at {} yet",
            source.display()
        )));
    }
    let dest = if args.dest.is_dir() {
        args.dest.join(format!(
            "stockdrop-{}.db",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ))
    } else {
        args.dest.clone()
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stockdrop.db".into());
    let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let fail = |e: rusqlite::Error| Failure::Io(format!("backup to {}: {e}", dest.display()));
    let result = (|| {
        let src =
            Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail)?;
        src.busy_timeout(Duration::from_secs(30)).map_err(fail)?;
        let mut dst = Connection::open(&tmp).map_err(fail)?;
        {
            let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(fail)?;
            // Copy in steps, letting writers in between.
            backup
                .run_to_completion(1024, Duration::from_millis(10), None)
                .map_err(fail)?;
        }
        let check: String = dst
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(fail)?;
        if check != "ok" {
            return Err(Failure::Io(format!(
                "the copy failed its integrity check: {check}"
            )));
        }
        dst.pragma_update(None, "journal_mode", "DELETE")
            .map_err(fail)?;
        drop(dst);
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &dest))
            .map_err(|e| Failure::Io(format!("backup to {}: {e}", dest.display())))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    output::println_or_fail(&format!("backup written: {}", dest.display()))?;
    Ok(Exit::Success)
}
