//! `stockdrop retry IMPORT_ID`: put a file from `failed/` back through the
//! pipeline (after the config or the cause was fixed), with a new import
//! and report; the original then moves to where the new outcome says.

use std::path::PathBuf;

use super::{import::print_outcome, open_existing_write, CmdResult, Exit, Failure};
use crate::archive;
use crate::config::Config;
use crate::pipeline::{self, ImportOptions};
use crate::store::queries;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The import whose original is in failed/.
    import_id: i64,
    /// Print the new report as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let unknown = || Failure::Usage(format!("there is no import {}", args.import_id));
    let mut store = open_existing_write(config)?.ok_or_else(unknown)?;
    let record = queries::import(&store.read(), args.import_id)?.ok_or_else(unknown)?;
    let original = queries::archived_path(&store.read(), args.import_id)?
        .map(PathBuf::from)
        .filter(|p| p.starts_with(&config.paths.failed) && p.is_file())
        .ok_or_else(|| {
            Failure::Usage(format!(
                "import {} ({}) has no original in {}; only files the daemon put in failed/ can be retried",
                args.import_id,
                record.file,
                config.paths.failed.display()
            ))
        })?;
    // What is in failed/ came from the inbox: a link or a file with other
    // names there was refused once and is refused again, never followed.
    let options = ImportOptions {
        name: Some(record.file.clone()),
        trust: crate::open::Trust::Claimed(None),
        ..ImportOptions::default()
    };
    // Read again by the rules of the inbox it came from, reported to its
    // outbox only.
    let inbox = config.inbox(&record.inbox).ok_or_else(|| {
        Failure::Usage(format!(
            "import {} came from inbox {:?}, which the config no longer has (inboxes: {})",
            args.import_id,
            record.inbox,
            config.inbox_names().join(", ")
        ))
    })?;
    let outcomes = pipeline::import_path(&mut store, inbox, &original, &options)?;
    let mut owed = crate::report::index::Owed::default();
    pipeline::index_owed(&mut owed, &outcomes);
    owed.pay(&store.read());
    let mut exit = Exit::Success;
    for outcome in &outcomes {
        exit = exit.worst(print_outcome(outcome, args.json)?);
    }
    if let Some(first) = outcomes.first() {
        let import_id = first.report.import_id.unwrap_or_default();
        let applied = outcomes.iter().any(|o| {
            matches!(
                o.report.status.as_str(),
                "applied" | "partial" | "duplicate"
            )
        });
        let status = if applied { "applied" } else { "rejected" };
        let root = archive::destination_root(config, &inbox.name, status);
        let target = archive::target(
            &root,
            import_id,
            &record.file,
            chrono::Utc::now().date_naive(),
        );
        let write = store.write()?;
        queries::set_archived(&write, import_id, &target.display().to_string())?;
        write.commit()?;
        archive::archive(&original, &target)
            .map_err(|e| Failure::Io(format!("cannot move {}: {e}", original.display())))?;
        eprintln!("stockdrop: original moved to {}", target.display());
    }
    Ok(exit)
}
