//! `stockdrop export`: the inventory as CSV (re-importable: its headers are
//! the API's field names) or as a JSON array, streamed record by record.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use super::{open_read, CmdResult, Exit, Failure};
use crate::config::Config;
use crate::store::queries::{self, StockFilter, StockRow};
use crate::store::StoreError;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this location.
    #[arg(long)]
    location: Option<String>,
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
    /// Write to this file (atomically) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

const CSV_HEADER: [&str; 14] = [
    "locationName",
    "sku",
    "partNumber",
    "upc",
    "quantity",
    "binID",
    "ltd",
    "floor",
    "safetyStock",
    "currencyID",
    "retailPrice",
    "attributes",
    "updated_at",
    "job_id",
];

fn csv_record(r: &StockRow) -> Vec<String> {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    let f = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    vec![
        r.location.clone(),
        o(&r.sku),
        o(&r.part_number),
        o(&r.upc),
        r.quantity.to_string(),
        n(r.bin_id),
        f(r.ltd),
        n(r.floor),
        n(r.safety_stock),
        n(r.currency_id),
        f(r.retail_price),
        r.attributes.join(";"),
        r.updated_at.clone(),
        n(r.job_id),
    ]
}

pub fn run(args: Args, config: &Config) -> CmdResult {
    let json = args.json || matches!(args.format, Format::Json);
    let filter = StockFilter {
        location: args.location,
        ..StockFilter::default()
    };
    let store = open_read(config)?;
    let mut buffer: Vec<u8> = Vec::new();
    let result = {
        let sink: Box<dyn Write> = match &args.output {
            Some(_) => Box::new(&mut buffer),
            None => Box::new(BufWriter::new(io::stdout().lock())),
        };
        write_export(store.as_ref(), &filter, json, sink)
    };
    match result {
        Err(Failure::Store(StoreError::Output(e))) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Ok(Exit::Success)
        }
        other => other?,
    }
    if let Some(path) = &args.output {
        crate::durable::write_atomic(path, &buffer)
            .map_err(|e| Failure::Io(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(Exit::Success)
}

fn write_export(
    store: Option<&crate::store::Store>,
    filter: &StockFilter,
    json: bool,
    mut sink: Box<dyn Write + '_>,
) -> Result<(), Failure> {
    let io_err = |e: io::Error| Failure::Store(StoreError::Output(e));
    if json {
        sink.write_all(b"[").map_err(io_err)?;
        let mut first = true;
        if let Some(store) = store {
            queries::stock(&store.read(), filter, |row| {
                if !first {
                    sink.write_all(b",")?;
                }
                first = false;
                sink.write_all(b"\n  ")?;
                serde_json::to_writer(&mut sink, &row).map_err(io::Error::other)
            })?;
        }
        sink.write_all(if first { b"]\n" } else { b"\n]\n" })
            .map_err(io_err)?;
    } else {
        let mut writer = csv::Writer::from_writer(sink);
        writer
            .write_record(CSV_HEADER)
            .map_err(|e| io_err(e.into()))?;
        if let Some(store) = store {
            queries::stock(&store.read(), filter, |row| {
                writer
                    .write_record(csv_record(&row))
                    .map_err(io::Error::from)
            })?;
        }
        writer.flush().map_err(io_err)?;
        return Ok(());
    }
    sink.flush().map_err(io_err)
}
