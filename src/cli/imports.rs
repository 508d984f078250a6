//! `stockdrop imports`: recent files and their outcome.

use super::{open_read, output, CmdResult, Exit};
use crate::config::Config;
use crate::store::queries;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    limit: u64,
    /// Only files from this inbox.
    #[arg(long, value_name = "NAME")]
    inbox: Option<String>,
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let inbox = super::inbox_filter(config, args.inbox.as_deref())?;
    let rows = match open_read(config)? {
        Some(store) => queries::imports_of(&store.read(), Some(args.limit), inbox)?,
        None => Vec::new(),
    };
    if args.json {
        output::json(&rows)?;
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        output::println_or_fail("no imports")?;
        return Ok(Exit::Success);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|i| {
            vec![
                i.import_id.to_string(),
                i.status.clone(),
                i.rows_total.to_string(),
                i.rows_accepted.to_string(),
                i.rows_rejected.to_string(),
                i.jobs.to_string(),
                i.file.clone(),
                i.received_at.clone(),
                i.inbox.clone(),
            ]
        })
        .collect();
    output::println_or_fail(&output::table(
        &[
            "IMPORT", "STATUS", "ROWS", "ACCEPTED", "REJECTED", "JOBS", "FILE", "RECEIVED", "INBOX",
        ],
        &table,
    ))?;
    Ok(Exit::Success)
}
