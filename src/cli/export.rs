//! `stockdrop export`: the inventory as CSV (re-importable: its headers are
//! the API's field names) or as a JSON array, streamed record by record.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use super::{open_read, CmdResult, Exit, Failure};
use crate::config::{Config, MAX_ITEMS_PER_JOB};
use crate::report::errors_csv::neutralise;
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

/// The CSV record of one inventory record, every cell through the formula
/// guard (an uploaded sku `=HYPERLINK(…)` must not come out live).
fn csv_record(r: &StockRow) -> Vec<String> {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let n = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    let f = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    [
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
    .iter()
    .map(|cell| neutralise(cell))
    .collect()
}

/// One item of a request body: the API's fields, absent values left out.
fn request_item(r: &StockRow) -> serde_json::Value {
    let mut item = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value| {
        if !value.is_null() {
            item.insert(key.to_string(), value);
        }
    };
    put("sku", r.sku.clone().into());
    put("partNumber", r.part_number.clone().into());
    put("upc", r.upc.clone().into());
    put("quantity", r.quantity.into());
    put("binID", r.bin_id.into());
    put("ltd", r.ltd.into());
    put("floor", r.floor.into());
    put("safetyStock", r.safety_stock.into());
    put("currencyID", r.currency_id.into());
    put("retailPrice", r.retail_price.into());
    if !r.attributes.is_empty() {
        put("attributes", r.attributes.clone().into());
    }
    serde_json::Value::Object(item)
}

/// Writes request bodies as records arrive in location order: a new body
/// at each new location and after every [`MAX_ITEMS_PER_JOB`] items.
struct Bodies<W: Write> {
    sink: W,
    /// The location of the open body and how many items it holds.
    open: Option<(String, usize)>,
}

impl<W: Write> Bodies<W> {
    fn push(&mut self, row: &StockRow) -> io::Result<()> {
        match &mut self.open {
            Some((location, count)) if *location == row.location && *count < MAX_ITEMS_PER_JOB => {
                *count += 1;
                self.sink.write_all(b",\n    ")?;
            }
            open => {
                let first = open.is_none();
                if !first {
                    self.sink.write_all(b"\n  ]},")?;
                }
                self.sink.write_all(b"\n  {\"locationName\": ")?;
                serde_json::to_writer(&mut self.sink, &row.location).map_err(io::Error::other)?;
                self.sink.write_all(b", \"items\": [\n    ")?;
                *open = Some((row.location.clone(), 1));
            }
        }
        serde_json::to_writer(&mut self.sink, &request_item(row)).map_err(io::Error::other)
    }

    fn finish(mut self) -> io::Result<W> {
        self.sink.write_all(if self.open.is_some() {
            b"\n  ]}\n]\n"
        } else {
            b"]\n"
        })?;
        Ok(self.sink)
    }
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
        let mut bodies = Bodies { sink, open: None };
        if let Some(store) = store {
            queries::stock(&store.read(), filter, |row| bodies.push(&row))?;
        }
        sink = bodies.finish().map_err(io_err)?;
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
