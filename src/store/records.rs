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

/// A record's columns after its id and location (`i`: the inventory), in
/// the order `from_row` reads them from column 2 on.
macro_rules! record_values {
    () => {
        "i.sku, i.part_number, i.upc, i.quantity, i.bin_id, i.ltd, i.floor, \
         i.safety_stock, i.currency_id, i.retail_price, i.attributes"
    };
}

/// The id of a location's name in `locations`, as a scalar subquery: the
/// inventory and its identifier indexes key on the integer (SQLite
/// evaluates the subquery once per statement).
macro_rules! location_of {
    ($param:literal) => {
        concat!("(SELECT id FROM locations WHERE name = ", $param, ")")
    };
}

/// A record from its id (column 0) and [`record_values`] (columns 2 on),
/// with its attributes still as JSON; column 1 is the location, which the
/// caller reads (a name, or an id it names itself).
fn from_row(row: &Row<'_>) -> rusqlite::Result<(Record, String)> {
    Ok((
        Record {
            id: row.get(0)?,
            location: String::new(),
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
        IdKind::Sku => concat!(
            "SELECT id FROM inventory WHERE location_id = ",
            location_of!("?1"),
            " AND sku = ?2"
        ),
        IdKind::PartNumber => concat!(
            "SELECT id FROM inventory WHERE location_id = ",
            location_of!("?1"),
            " AND part_number = ?2"
        ),
        IdKind::Upc => concat!(
            "SELECT id FROM inventory WHERE location_id = ",
            location_of!("?1"),
            " AND upc14 = ?2"
        ),
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

/// The record each row's identifiers name at `location` (sku, partNumber,
/// upc; `None`: a row without any, which names nothing): one statement for
/// the three, prepared once for all the rows.
pub fn lookup_each<'i>(
    r: &impl Reader,
    location: &str,
    rows: impl IntoIterator<Item = Option<&'i Identifiers>>,
) -> Result<Vec<[Option<i64>; 3]>> {
    // The location looked up once a row (a location not in the store yet
    // gives no row: nothing matches).
    let mut stmt = r.conn().prepare_cached(
        "SELECT (SELECT id FROM inventory WHERE location_id = l.id AND sku = ?2), \
                (SELECT id FROM inventory WHERE location_id = l.id AND part_number = ?3), \
                (SELECT id FROM inventory WHERE location_id = l.id AND upc14 = ?4) \
         FROM locations l WHERE l.name = ?1",
    )?;
    let rows = rows.into_iter();
    let mut out = Vec::with_capacity(rows.size_hint().0);
    for ids in rows {
        let Some(ids) = ids else {
            out.push([None; 3]);
            continue;
        };
        let found = stmt
            .query_row(
                params![location, ids.sku, ids.part_number, ids.upc14()],
                |row| Ok([row.get(0)?, row.get(1)?, row.get(2)?]),
            )
            .optional()?
            .unwrap_or([None; 3]);
        out.push(found);
    }
    Ok(out)
}

/// Calls `f` with (value, record id) of every identifier of `kind` at
/// `location` (a UPC as GTIN-14), in index order, up to `limit` of them;
/// `false` when the limit cut the scan short.
pub fn scan_ids(
    r: &impl Reader,
    location: &str,
    kind: IdKind,
    limit: usize,
    mut f: impl FnMut(&str, i64),
) -> Result<bool> {
    let sql = match kind {
        IdKind::Sku => concat!(
            "SELECT sku, id FROM inventory WHERE location_id = ",
            location_of!("?1"),
            " AND sku IS NOT NULL LIMIT ?2"
        ),
        IdKind::PartNumber => concat!(
            "SELECT part_number, id FROM inventory WHERE location_id = ",
            location_of!("?1"),
            " AND part_number IS NOT NULL LIMIT ?2"
        ),
        IdKind::Upc => concat!(
            "SELECT upc14, id FROM inventory WHERE location_id = ",
            location_of!("?1"),
            " AND upc14 IS NOT NULL LIMIT ?2"
        ),
    };
    let mut stmt = r.conn().prepare_cached(sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![location, limit])?;
    let mut seen = 0i64;
    while let Some(row) = rows.next()? {
        seen += 1;
        // A value that is not text (none is written so) names nothing.
        if let Ok(value) = row.get_ref(0)?.as_str() {
            f(value, row.get(1)?);
        }
    }
    Ok(seen < limit)
}

pub fn get(r: &impl Reader, id: i64) -> Result<Option<Record>> {
    let mut stmt = r
        .conn()
        // A literal: `get` runs once per record a file names.
        .prepare_cached(concat!(
            "SELECT i.id, l.name, ",
            record_values!(),
            " FROM inventory i JOIN locations l ON l.id = i.location_id WHERE i.id = ?1"
        ))?;
    let found = stmt
        .query_row([id], |row| {
            let (mut record, attributes) = from_row(row)?;
            record.location = row.get(1)?;
            Ok((record, attributes))
        })
        .optional()?;
    match found {
        None => Ok(None),
        Some((mut record, attributes)) => {
            record.attributes = parse_attributes(&attributes)?;
            Ok(Some(record))
        }
    }
}

/// Calls `f` with each record of `ids` (sorted, repeats allowed) that
/// exists, in id order. Ids close together (a location's records, created
/// together) are read as one range of the table rather than one descent
/// each.
pub fn get_sorted(r: &impl Reader, ids: &[i64], mut f: impl FnMut(Record)) -> Result<()> {
    let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
        return Ok(());
    };
    let span = u64::try_from(last.saturating_sub(first)).unwrap_or(u64::MAX);
    if span > 2 * ids.len() as u64 {
        let mut previous = None;
        for &id in ids {
            if previous == Some(id) {
                continue;
            }
            previous = Some(id);
            if let Some(record) = get(r, id)? {
                f(record);
            }
        }
        return Ok(());
    }
    // The location by id, named here: a join would look up the location
    // of every row of the range, wanted or not.
    let mut stmt = r.conn().prepare_cached(concat!(
        "SELECT i.id, i.location_id, ",
        record_values!(),
        " FROM inventory i WHERE i.id BETWEEN ?1 AND ?2 ORDER BY i.id"
    ))?;
    let mut rows = stmt.query([first, last])?;
    let mut wanted = ids.iter().peekable();
    let mut named: Option<(i64, String)> = None;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        while wanted.next_if(|&&w| w < id).is_some() {}
        if wanted.peek() != Some(&&id) {
            continue;
        }
        let (mut record, attributes) = from_row(row)?;
        let location_id: i64 = row.get(1)?;
        record.location = match &named {
            Some((known, name)) if *known == location_id => name.clone(),
            _ => {
                let name = location_name(r, location_id)?;
                named = Some((location_id, name.clone()));
                name
            }
        };
        record.attributes = parse_attributes(&attributes)?;
        f(record);
    }
    Ok(())
}

/// The name of the location whose id is `id`.
fn location_name(r: &impl Reader, id: i64) -> Result<String> {
    let mut stmt = r
        .conn()
        .prepare_cached("SELECT name FROM locations WHERE id = ?1")?;
    stmt.query_row([id], |row| row.get(0))
        .optional()?
        .ok_or(StoreError::Corrupt {
            what: "inventory record",
            detail: format!("location {id} has no name"),
        })
}

/// Whether a location has any record. Asked of the three identifier
/// indexes (every record has an identifier): `count(*) WHERE location = ?`
/// can use none of those partial indexes and scans the whole inventory,
/// once per location of every file.
pub fn any_at(r: &impl Reader, location: &str) -> Result<bool> {
    let mut stmt = r.conn().prepare_cached(concat!(
        "SELECT EXISTS (SELECT 1 FROM inventory WHERE location_id = ",
        location_of!("?1"),
        " AND sku IS NOT NULL) OR EXISTS (SELECT 1 FROM inventory WHERE location_id = ",
        location_of!("?1"),
        " AND part_number IS NOT NULL) OR EXISTS (SELECT 1 FROM inventory WHERE location_id = ",
        location_of!("?1"),
        " AND upc14 IS NOT NULL)",
    ))?;
    Ok(stmt.query_row([location], |row| row.get::<_, bool>(0))?)
}

/// The records at a location whose quantity is not 0: what full mode may zero.
pub fn nonzero_at(r: &impl Reader, location: &str) -> Result<Vec<i64>> {
    let mut stmt = r.conn().prepare_cached(concat!(
        // Through the identifier indexes, as in `any_at`: not a scan of
        // every location's records.
        "SELECT id FROM inventory WHERE location_id = ",
        location_of!("?1"),
        " AND sku IS NOT NULL AND quantity != 0 \
         UNION SELECT id FROM inventory WHERE location_id = ",
        location_of!("?1"),
        " AND part_number IS NOT NULL AND quantity != 0 \
         UNION SELECT id FROM inventory WHERE location_id = ",
        location_of!("?1"),
        " AND upc14 IS NOT NULL AND quantity != 0 ORDER BY id",
    ))?;
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

/// The id of `location` in `locations`, added if it is new: what
/// [`Inserts::insert`] takes (a job looks it up once, not once per record).
pub fn location_id(w: &Write<'_>, location: &str) -> Result<i64> {
    let mut stmt = w.tx.prepare_cached(
        "INSERT INTO locations (name) VALUES (?1) ON CONFLICT (name) DO UPDATE SET name = name \
         RETURNING id",
    )?;
    Ok(stmt.query_row([location], |row| row.get(0))?)
}

/// Inserts new records, through one prepared statement for as long as it
/// is held (a job's worth): a statement-cache lookup per record was 2% of
/// an import's apply.
pub struct Inserts<'a> {
    stmt: rusqlite::CachedStatement<'a>,
    w: &'a Write<'a>,
}

impl<'a> Inserts<'a> {
    pub fn new(w: &'a Write<'a>) -> Result<Inserts<'a>> {
        let stmt = w.tx.prepare_cached(
            "INSERT INTO inventory (location_id, sku, part_number, upc, upc14, quantity, bin_id, ltd, \
             floor, safety_stock, currency_id, retail_price, attributes, updated_at, job_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        Ok(Inserts { stmt, w })
    }

    /// Inserts a new record at the location [`location_id`] gave and
    /// returns its id.
    pub fn insert(
        &mut self,
        location_id: i64,
        record: &Record,
        job_id: i64,
        now: &str,
    ) -> Result<i64> {
        execute_record(&mut self.stmt, &location_id, record, job_id, now)?;
        Ok(self.w.tx.last_insert_rowid())
    }
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
