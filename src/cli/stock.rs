//! `stockdrop stock`: inventory records, filtered.

use super::{open_read, output, CmdResult, Exit};
use crate::config::Config;
use crate::store::queries::{self, StockFilter, StockRow};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    location: Option<String>,
    #[arg(long)]
    sku: Option<String>,
    /// Matched as GTIN-14, so 12 and 13 digit forms find the same record.
    #[arg(long)]
    upc: Option<String>,
    #[arg(long = "part")]
    part_number: Option<String>,
    #[arg(long)]
    pub(super) json: bool,
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let filter = StockFilter {
        location: args.location,
        sku: args.sku,
        upc: args.upc,
        part_number: args.part_number,
    };
    let mut rows: Vec<StockRow> = Vec::new();
    if let Some(store) = open_read(config)? {
        queries::stock(&store.read(), &filter, |row| {
            rows.push(row);
            Ok(())
        })?;
    }
    if args.json {
        output::json(&rows)?;
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        output::println_or_fail("no inventory records")?;
        return Ok(Exit::Success);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.record_id.to_string(),
                r.location.clone(),
                output::opt(&r.sku),
                output::opt(&r.part_number),
                output::opt(&r.upc),
                r.quantity.to_string(),
                output::opt(&r.bin_id),
                output::opt(&r.retail_price),
                r.updated_at.clone(),
                output::opt(&r.job_id),
            ]
        })
        .collect();
    output::println_or_fail(&output::table(
        &[
            "RECORD", "LOCATION", "SKU", "PART", "UPC", "QTY", "BIN", "PRICE", "UPDATED", "JOB",
        ],
        &table,
    ))?;
    Ok(Exit::Success)
}
