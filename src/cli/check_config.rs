//! `stockdrop check-config`: validate the config, create and check the
//! directories and the store, print the effective config.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{open_write, output, CmdResult, Exit, Failure};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, config: &Config) -> CmdResult {
    prepare_directories(config)?;
    open_write(config)?;
    let source = config
        .source
        .as_ref()
        .map_or("built-in defaults".to_string(), |p| p.display().to_string());
    output::println_or_fail(&format!(
        "# stockdrop: config OK (from {source}); directories and store are ready\n{}",
        config.to_toml()
    ))?;
    Ok(Exit::Success)
}

/// Creates the data directories, checks each is writable, and that the
/// inbox, work, archive and failed folders share one filesystem so every
/// move between them is an atomic rename (SPEC §2).
pub fn prepare_directories(config: &Config) -> Result<(), Failure> {
    let p = &config.paths;
    let dirs: [(&str, &Path); 5] = [
        ("paths.inbox", &p.inbox),
        ("paths.work", &p.work),
        ("paths.archive", &p.archive),
        ("paths.failed", &p.failed),
        ("paths.outbox", &p.outbox),
    ];
    for (key, dir) in dirs {
        fs::create_dir_all(dir)
            .map_err(|e| Failure::Io(format!("{key} = {}: cannot create: {e}", dir.display())))?;
        let probe = dir.join(format!(".stockdrop-write-check-{}", std::process::id()));
        fs::write(&probe, b"")
            .and_then(|()| fs::remove_file(&probe))
            .map_err(|e| Failure::Io(format!("{key} = {}: not writable: {e}", dir.display())))?;
    }
    let device = |dir: &Path| {
        fs::metadata(dir)
            .map(|m| m.dev())
            .map_err(|e| Failure::Io(format!("{}: {e}", dir.display())))
    };
    let inbox_device = device(&p.inbox)?;
    for (key, dir) in [
        ("paths.work", &p.work),
        ("paths.archive", &p.archive),
        ("paths.failed", &p.failed),
    ] {
        if device(dir)? != inbox_device {
            return Err(Failure::Usage(format!(
                "{key} = {} is on a different filesystem from paths.inbox = {}; files are moved \
                 between them by rename, which cannot cross filesystems. Put them under one data root",
                dir.display(),
                p.inbox.display()
            )));
        }
    }
    Ok(())
}
