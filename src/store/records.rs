//! Inventory records and their history rows: the lookups resolving needs and
//! the writes applying does.

use rusqlite::{params, OptionalExtension, Row};

use super::{Reader, Result, StoreError, Write};
use crate::model::{gtin14, Identifiers, Optionals};

/// One inventory record: a product at a location.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: i64,
    pub location: String,
    pub ids: Identifiers,
    pub quantity: i64,
    pub optionals: Optionals,
    pub attributes: Vec<String>,
}

/// Which identifier a lookup goes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Sku,
    PartNumber,
    /// Matched as GTIN-14.
    Upc,
}

impl IdKind {
    pub fn name(self) -> &'static str {
        match self {
            IdKind::Sku => "sku",
            IdKind::PartNumber => "partNumber",
            IdKind::Upc => "upc",
        }
    }

    /// The identifiers of `ids` with their kinds, in a fixed order.
    pub fn of(ids: &Identifiers) -> impl Iterator<Item = (IdKind, &str)> {
        [
            (IdKind::Sku, ids.sku.as_deref()),
            (IdKind::PartNumber, ids.part_number.as_deref()),
            (IdKind::Upc, ids.upc.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

const COLUMNS: &str = "id, location, sku, part_number, upc, quantity, bin_id, ltd, floor, \
                       safety_stock, currency_id, retail_price, attributes";

fn from_row(row: &Row<'_>) -> rusqlite::Result<(Record, String)> {
    Ok((
        Record {
            id: row.get(0)?,
            location: row.get(1)?,
            ids: Identifiers {
                sku: row.get(2)?,
                part_number: row.get(3)?,
                upc: row.get(4)?,
            },
            quantity: row.get(5)?,
            optionals: Optionals {
                bin_id: row.get(6)?,
                ltd: row.get(7)?,
                floor: row.get(8)?,
                safety_stock: row.get(9)?,
                currency_id: row.get(10)?,
                retail_price: row.get(11)?,
            },
            attributes: Vec::new(),
        },
        row.get(12)?,
    ))
}

pub fn parse_attributes(json: &str) -> Result<Vec<String>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        what: "attribute list",
        detail: e.to_string(),
    })
}

/// The record at `location` with identifier `value` of `kind`.
pub fn find(r: &impl Reader, location: &str, kind: IdKind, value: &str) -> Result<Option<i64>> {
    let sql = match kind {
        IdKind::Sku => "SELECT id FROM inventory WHERE location = ?1 AND sku = ?2",
        IdKind::PartNumber => "SELECT id FROM inventory WHERE location = ?1 AND part_number = ?2",
        IdKind::Upc => "SELECT id FROM inventory WHERE location = ?1 AND upc14 = ?2",
    };
    let key = match kind {
        IdKind::Upc => gtin14(value),
        _ => value.to_string(),
    };
    let mut stmt = r.conn().prepare_cached(sql)?;
    Ok(stmt
        .query_row(params![location, key], |row| row.get(0))
        .optional()?)
}

pub fn get(r: &impl Reader, id: i64) -> Result<Option<Record>> {
    let mut stmt = r
        .conn()
        .prepare_cached(&format!("SELECT {COLUMNS} FROM inventory WHERE id = ?1"))?;
    let found = stmt.query_row([id], from_row).optional()?;
    match found {
        None => Ok(None),
        Some((mut record, attributes)) => {
            record.attributes = parse_attributes(&attributes)?;
            Ok(Some(record))
        }
    }
}

/// How many records a location has.
pub fn count_at(r: &impl Reader, location: &str) -> Result<u64> {
    let mut stmt = r
        .conn()
        .prepare_cached("SELECT count(*) FROM inventory WHERE location = ?1")?;
    Ok(stmt.query_row([location], |row| row.get::<_, i64>(0))? as u64)
}

/// The records at a location whose quantity is not 0: what full mode may zero.
pub fn nonzero_at(r: &impl Reader, location: &str) -> Result<Vec<i64>> {
    let mut stmt = r.conn().prepare_cached(
        "SELECT id FROM inventory WHERE location = ?1 AND quantity != 0 ORDER BY id",
    )?;
    let ids = stmt
        .query_map([location], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    Ok(ids)
}

/// Runs an insert or update whose `?1` is `key` and whose `?2`…`?15` are
/// the record's identifiers and values, in the column order of both.
fn execute_record(
    stmt: &mut rusqlite::CachedStatement<'_>,
    key: &dyn rusqlite::ToSql,
    record: &Record,
    job_id: i64,
    now: &str,
) -> Result<()> {
    let o = &record.optionals;
    stmt.execute(params![
        key,
        record.ids.sku,
        record.ids.part_number,
        record.ids.upc,
        record.ids.upc14(),
        record.quantity,
        o.bin_id,
        o.ltd,
        o.floor,
        o.safety_stock,
        o.currency_id,
        o.retail_price,
        serde_json::to_string(&record.attributes).unwrap_or_else(|_| "[]".into()),
        now,
        job_id
    ])?;
    Ok(())
}

/// Inserts a new record and returns its id.
pub fn insert(w: &Write<'_>, record: &Record, job_id: i64, now: &str) -> Result<i64> {
    let mut stmt = w.tx.prepare_cached(
        "INSERT INTO inventory (location, sku, part_number, upc, upc14, quantity, bin_id, ltd, \
         floor, safety_stock, currency_id, retail_price, attributes, updated_at, job_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    execute_record(&mut stmt, &record.location, record, job_id, now)?;
    Ok(w.tx.last_insert_rowid())
}

/// Overwrites a record's identifiers and values.
pub fn update(w: &Write<'_>, record: &Record, job_id: i64, now: &str) -> Result<()> {
    let mut stmt = w.tx.prepare_cached(
        "UPDATE inventory SET sku = ?2, part_number = ?3, upc = ?4, upc14 = ?5, quantity = ?6, \
         bin_id = ?7, ltd = ?8, floor = ?9, safety_stock = ?10, currency_id = ?11, \
         retail_price = ?12, attributes = ?13, updated_at = ?14, job_id = ?15 WHERE id = ?1",
    )?;
    execute_record(&mut stmt, &record.id, record, job_id, now)
}
