//! History: what each job changed, record by record (`before`, `after`:
//! the fields that changed).
//!
//! A job's history is written as *chunks* (`job_history`, one row per job
//! and up to [`CHUNK_ENTRIES`] entries): each entry is the record's id, its
//! action and the two field sets. A row per changed record, with its own
//! two indexes, cost most of what a new record cost the store and more
//! than half of applying it; history is only ever read a job at a time
//! (`job ID`, `revert`, retention), so a job's entries are kept together.
//! Rows an earlier version wrote, one per record in `history`, are still
//! read by [`of_job`] (and pruned); nothing rewrites them.
//!
//! A field set is a compact BLOB: a version byte, then per field its index
//! in [`FIELDS`] (or 0xFF and its name) and a tagged value. Older `history`
//! rows may hold JSON objects (TEXT) instead; [`read`] takes either.

use rusqlite::params;
use rusqlite::types::ValueRef;
use serde_json::{Map, Number, Value};

use super::records::Record;
use super::{Reader, Result, StoreError, Write};

const VERSION: u8 = 1;

/// The fields a history row names, in `apply::changes` order.
const FIELDS: [&str; 11] = [
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
];
const OTHER_FIELD: u8 = 0xFF;

const NULL: u8 = 0;
const TEXT: u8 = 1;
const INT: u8 = 2;
const FLOAT: u8 = 3;
const ARRAY: u8 = 4;
const TRUE: u8 = 5;
const FALSE: u8 = 6;
/// Anything else (an object, a number beyond i64), as JSON text.
const JSON: u8 = 7;

pub fn encode(fields: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    for (name, value) in fields {
        match FIELDS.iter().position(|f| f == name) {
            Some(index) => out.push(index as u8),
            None => {
                out.push(OTHER_FIELD);
                put_bytes(&mut out, name.as_bytes());
            }
        }
        put_value(&mut out, value);
    }
    out
}

/// A `before`/`after` cell as written by either encoding; `None` when it
/// is neither (a damaged row).
pub fn read(cell: ValueRef<'_>) -> Option<Map<String, Value>> {
    match cell {
        ValueRef::Text(text) => match serde_json::from_slice(text) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        },
        ValueRef::Blob(bytes) => decode(bytes),
        _ => None,
    }
}

fn decode(bytes: &[u8]) -> Option<Map<String, Value>> {
    let (&version, mut rest) = bytes.split_first()?;
    if version != VERSION {
        return None;
    }
    let mut map = Map::new();
    while let Some((&field, tail)) = rest.split_first() {
        rest = tail;
        let name = if field == OTHER_FIELD {
            let name = take_bytes(&mut rest)?;
            String::from_utf8(name.to_vec()).ok()?
        } else {
            (*FIELDS.get(usize::from(field))?).to_string()
        };
        let value = take_value(&mut rest, 0)?;
        map.insert(name, value);
    }
    Some(map)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(true) => out.push(TRUE),
        Value::Bool(false) => out.push(FALSE),
        Value::String(s) => {
            out.push(TEXT);
            put_bytes(out, s.as_bytes());
        }
        Value::Number(n) if n.is_i64() => put_int(out, n.as_i64().unwrap_or_default()),
        Value::Number(n) if n.is_f64() => {
            out.push(FLOAT);
            out.extend_from_slice(&n.as_f64().unwrap_or_default().to_le_bytes());
        }
        Value::Array(items) => {
            out.push(ARRAY);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item);
            }
        }
        other => {
            out.push(JSON);
            put_bytes(out, other.to_string().as_bytes());
        }
    }
}

fn take_varint(rest: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        n |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn take_bytes<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_varint(rest)?).ok()?;
    if len > rest.len() {
        return None;
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    Some(bytes)
}

fn take_value(rest: &mut &[u8], depth: u32) -> Option<Value> {
    // Arrays nest only as deep as a damaged row pretends.
    if depth > 8 {
        return None;
    }
    let (&tag, tail) = rest.split_first()?;
    *rest = tail;
    Some(match tag {
        NULL => Value::Null,
        TRUE => Value::Bool(true),
        FALSE => Value::Bool(false),
        TEXT => Value::String(String::from_utf8(take_bytes(rest)?.to_vec()).ok()?),
        INT => {
            let z = take_varint(rest)?;
            Value::Number(Number::from(((z >> 1) as i64) ^ -((z & 1) as i64)))
        }
        FLOAT => {
            if rest.len() < 8 {
                return None;
            }
            let (bytes, tail) = rest.split_at(8);
            *rest = tail;
            let f = f64::from_le_bytes(bytes.try_into().ok()?);
            Value::Number(Number::from_f64(f)?)
        }
        ARRAY => {
            let count = take_varint(rest)?;
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(take_value(rest, depth + 1)?);
            }
            Value::Array(items)
        }
        JSON => serde_json::from_slice(take_bytes(rest)?).ok()?,
        _ => return None,
    })
}

/// One field of a record, as history compares and writes it.
#[derive(PartialEq)]
enum Field<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    /// Not finite counts as unset, as JSON has it.
    Float(Option<f64>),
    List(&'a [String]),
}

impl Field<'_> {
    fn unset(&self) -> bool {
        match self {
            Field::Text(v) => v.is_none(),
            Field::Int(v) => v.is_none(),
            Field::Float(v) => v.is_none(),
            Field::List(v) => v.is_empty(),
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Field::Text(Some(s)) => {
                out.push(TEXT);
                put_bytes(out, s.as_bytes());
            }
            Field::Int(Some(i)) => put_int(out, *i),
            Field::Float(Some(f)) => {
                out.push(FLOAT);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Field::List(items) => {
                out.push(ARRAY);
                put_varint(out, items.len() as u64);
                for item in *items {
                    out.push(TEXT);
                    put_bytes(out, item.as_bytes());
                }
            }
            Field::Text(None) | Field::Int(None) | Field::Float(None) => out.push(NULL),
        }
    }
}

fn put_int(out: &mut Vec<u8>, i: i64) {
    out.push(INT);
    // Zigzag: small negatives stay small.
    put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
}

/// A record's fields in [`FIELDS`] order.
fn fields(r: &Record) -> [Field<'_>; 11] {
    let o = &r.optionals;
    let float = |f: Option<f64>| Field::Float(f.filter(|f| f.is_finite()));
    [
        Field::Text(r.ids.sku.as_deref()),
        Field::Text(r.ids.part_number.as_deref()),
        Field::Text(r.ids.upc.as_deref()),
        Field::Int(Some(r.quantity)),
        Field::Int(o.bin_id),
        float(o.ltd),
        Field::Int(o.floor),
        Field::Int(o.safety_stock),
        Field::Int(o.currency_id),
        float(o.retail_price),
        Field::List(&r.attributes),
    ]
}

const QUANTITY: usize = 3;

/// The fields that differ between `before` and `after`, encoded: (before,
/// after), or `None` when nothing differs. A record with no identifier
/// before is being created: only the fields it has are written (and its
/// quantity, even 0). The same as encoding `apply::changes`, without
/// building its maps: this runs once per record a job writes.
pub fn diff(before: &Record, after: &Record) -> Option<(Vec<u8>, Vec<u8>)> {
    let created = before.ids.is_empty();
    let mut old = Vec::with_capacity(if created { 1 } else { 32 });
    let mut new = Vec::with_capacity(96);
    old.push(VERSION);
    new.push(VERSION);
    for (index, (b, a)) in fields(before).iter().zip(fields(after).iter()).enumerate() {
        let forced = created && index == QUANTITY;
        if forced || (b != a && !(created && a.unset())) {
            if !created {
                old.push(index as u8);
                b.put(&mut old);
            }
            new.push(index as u8);
            a.put(&mut new);
        }
    }
    (new.len() > 1).then_some((old, new))
}

/// How many entries one `job_history` row holds at most: a job's items
/// fit in one; full mode's zeroing on a location's last job can add many.
pub const CHUNK_ENTRIES: usize = 1000;
const CHUNK_VERSION: u8 = 1;
const ACTIONS: [&str; 5] = ["create", "update", "zero", "adjust", "revert"];

/// A job's history as it is written: entries gathered and written a chunk
/// at a time, inside the transaction that applies the job.
pub struct Journal {
    job_id: i64,
    chunk: i64,
    entries: usize,
    buf: Vec<u8>,
}

impl Journal {
    pub fn new(job_id: i64) -> Self {
        Journal {
            job_id,
            chunk: 0,
            entries: 0,
            buf: Vec::new(),
        }
    }

    /// Adds one record's change (`before`/`after` from [`diff`]), writing
    /// a chunk when it is full.
    pub fn add(
        &mut self,
        w: &Write<'_>,
        record_id: i64,
        action: &str,
        before: &[u8],
        after: &[u8],
    ) -> Result<()> {
        if self.buf.is_empty() {
            self.buf.push(CHUNK_VERSION);
        }
        let action = ACTIONS.iter().position(|a| *a == action).unwrap_or(0);
        put_varint(&mut self.buf, record_id as u64);
        self.buf.push(action as u8);
        put_bytes(&mut self.buf, before);
        put_bytes(&mut self.buf, after);
        self.entries += 1;
        if self.entries == CHUNK_ENTRIES {
            self.flush(w)?;
        }
        Ok(())
    }

    /// Writes what is gathered; call before the job's transaction commits.
    pub fn flush(&mut self, w: &Write<'_>) -> Result<()> {
        if self.entries == 0 {
            return Ok(());
        }
        let mut stmt = w.tx.prepare_cached(
            "INSERT INTO job_history (job_id, chunk, entries) VALUES (?1, ?2, ?3)",
        )?;
        stmt.execute(params![self.job_id, self.chunk, self.buf])?;
        self.chunk += 1;
        self.entries = 0;
        self.buf.clear();
        Ok(())
    }
}

/// One record's change by a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub record_id: i64,
    pub action: String,
    pub before: Map<String, Value>,
    pub after: Map<String, Value>,
}

fn corrupt(job_id: i64, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "history entry",
        detail: format!("job {job_id}: {detail}"),
    }
}

/// A job's history, in the order it was written: rows of an earlier
/// version first (a job has one kind or the other), then its chunks.
pub fn of_job(r: &impl Reader, job_id: i64) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut stmt = r.conn().prepare_cached(
        "SELECT record_id, action, before, after FROM history WHERE job_id = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([job_id])?;
    while let Some(row) = rows.next()? {
        let record_id: i64 = row.get(0)?;
        let field = |i| -> Result<Map<String, Value>> {
            read(row.get_ref(i)?).ok_or_else(|| corrupt(job_id, format!("record {record_id}")))
        };
        out.push(Entry {
            record_id,
            action: row.get(1)?,
            before: field(2)?,
            after: field(3)?,
        });
    }
    for_each_chunk(r, job_id, |mut rest| {
        while !rest.is_empty() {
            let (record_id, action, before, after) =
                take_entry(&mut rest).ok_or_else(|| corrupt(job_id, "damaged chunk"))?;
            let field =
                |bytes| decode(bytes).ok_or_else(|| corrupt(job_id, format!("record {record_id}")));
            out.push(Entry {
                record_id,
                action: action.to_string(),
                before: field(before)?,
                after: field(after)?,
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// The records a job changed (without decoding what it changed).
pub fn records_of_job(r: &impl Reader, job_id: i64) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut stmt = r
        .conn()
        .prepare_cached("SELECT record_id FROM history WHERE job_id = ?1 ORDER BY id")?;
    let ids = stmt
        .query_map([job_id], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    out.extend(ids);
    for_each_chunk(r, job_id, |mut rest| {
        while !rest.is_empty() {
            let (record_id, ..) =
                take_entry(&mut rest).ok_or_else(|| corrupt(job_id, "damaged chunk"))?;
            out.push(record_id);
        }
        Ok(())
    })?;
    Ok(out)
}

/// (job id, record id) of every history entry, by job: what a check of
/// the whole store (or a test) counts.
pub fn all_entries(r: &impl Reader) -> Result<Vec<(i64, i64)>> {
    let mut stmt = r
        .conn()
        .prepare("SELECT job_id FROM history UNION SELECT job_id FROM job_history ORDER BY 1")?;
    let jobs = stmt
        .query_map([], |row| row.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::new();
    for job in jobs {
        out.extend(
            records_of_job(r, job)?
                .into_iter()
                .map(|record| (job, record)),
        );
    }
    Ok(out)
}

/// Calls `f` with the entries of each of a job's chunks (after the chunk's
/// version byte), in order.
fn for_each_chunk(
    r: &impl Reader,
    job_id: i64,
    mut f: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut stmt = r
        .conn()
        .prepare_cached("SELECT entries FROM job_history WHERE job_id = ?1 ORDER BY chunk")?;
    let mut rows = stmt.query([job_id])?;
    while let Some(row) = rows.next()? {
        let bytes = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
        match bytes.split_first() {
            Some((&CHUNK_VERSION, rest)) => f(rest)?,
            _ => return Err(corrupt(job_id, "unknown chunk version")),
        }
    }
    Ok(())
}

/// One entry of a chunk: (record id, action, before, after).
fn take_entry<'a>(rest: &mut &'a [u8]) -> Option<(i64, &'static str, &'a [u8], &'a [u8])> {
    let record_id = i64::try_from(take_varint(rest)?).ok()?;
    let (&action, tail) = rest.split_first()?;
    *rest = tail;
    let action = ACTIONS.get(usize::from(action))?;
    let before = take_bytes(rest)?;
    let after = take_bytes(rest)?;
    Some((record_id, action, before, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: i64) -> Record {
        Record {
            id,
            location: "Boston".into(),
            ids: crate::model::Identifiers {
                sku: Some("SKU-1".into()),
                part_number: None,
                upc: Some("012345678905".into()),
            },
            quantity: 4,
            optionals: crate::model::Optionals {
                bin_id: Some(7),
                ltd: Some(1.5),
                floor: None,
                safety_stock: Some(-2),
                currency_id: Some(840),
                retail_price: Some(f64::NAN),
            },
            attributes: vec!["red".into(), "M".into()],
        }
    }

    /// The direct encoding decodes to exactly what encoding
    /// `apply::changes`' maps gives, for a created record, an update of
    /// each field, and no change at all.
    #[test]
    fn diff_is_changes_encoded() {
        let base = record(1);
        let created_from = Record {
            ids: Default::default(),
            quantity: 0,
            optionals: Default::default(),
            attributes: Vec::new(),
            ..base.clone()
        };
        let mut zero_created = base.clone();
        zero_created.quantity = 0;
        let mut pairs = vec![
            (created_from.clone(), base.clone()),
            (created_from, zero_created),
            (base.clone(), base.clone()),
        ];
        let edits: [fn(&mut Record); 8] = [
            |r| r.quantity = 0,
            |r| r.ids.part_number = Some("P".into()),
            |r| r.ids.sku = None,
            |r| r.optionals.ltd = Some(2.0),
            |r| r.optionals.floor = Some(3),
            |r| r.optionals.retail_price = Some(9.99),
            |r| r.attributes.push("cotton".into()),
            |r| r.attributes.clear(),
        ];
        for edit in edits {
            let mut after = base.clone();
            edit(&mut after);
            pairs.push((base.clone(), after));
        }
        for (before, after) in pairs {
            let (mut old, new) = crate::apply::changes(&before, &after);
            if before.ids.is_empty() {
                // A created record's `before` is written empty.
                old.clear();
            }
            match diff(&before, &after) {
                None => assert!(new.is_empty(), "{new:?}"),
                Some((b, a)) => {
                    assert_eq!(decode(&b), Some(old));
                    assert_eq!(decode(&a), Some(new));
                }
            }
        }
    }

    #[test]
    fn chunk_entries_round_trip_and_damage_is_refused() {
        let mut buf = Vec::new();
        put_varint(&mut buf, 300);
        buf.push(3);
        put_bytes(&mut buf, &[VERSION]);
        put_bytes(&mut buf, &[VERSION, 3, INT, 4]);
        let mut rest = &buf[..];
        let (id, action, before, after) = take_entry(&mut rest).unwrap();
        assert_eq!((id, action), (300, "adjust"));
        assert_eq!(decode(before), Some(Map::new()));
        assert_eq!(decode(after).unwrap()["quantity"], json!(2));
        assert!(rest.is_empty());
        let mut cut = &buf[..buf.len() - 1];
        assert_eq!(take_entry(&mut cut), None);
        let mut bad = &[1u8, 9, 0, 0][..];
        assert_eq!(take_entry(&mut bad), None);
    }

    #[test]
    fn every_kind_of_value_round_trips() {
        let Value::Object(map) = json!({
            "sku": "SKU-0000013", "partNumber": null, "upc": "500075517354",
            "quantity": 0, "binID": 7402, "ltd": 16.0, "floor": -3,
            "safetyStock": i64::MAX, "currencyID": i64::MIN, "retailPrice": 92.99,
            "attributes": ["black", "L"], "odd": {"nested": true}, "flag": false,
            "big": u64::MAX,
        }) else {
            unreachable!()
        };
        let bytes = encode(&map);
        assert_eq!(read(ValueRef::Blob(&bytes)), Some(map.clone()));
        let text = Value::Object(map.clone()).to_string();
        assert_eq!(read(ValueRef::Text(text.as_bytes())), Some(map));
        // A created record's `after`, as the benchmark writes them.
        let Value::Object(created) = json!({
            "attributes": ["black"], "binID": 7402, "currencyID": 840, "floor": 1,
            "ltd": 16.0, "partNumber": "W868734-X5", "quantity": 1, "retailPrice": 92.99,
            "safetyStock": 22, "sku": "SKU-0000013", "upc": "500075517354",
        }) else {
            unreachable!()
        };
        let (compact, text) = (
            encode(&created).len(),
            Value::Object(created).to_string().len(),
        );
        assert!(compact * 2 < text, "{compact} vs {text}");
        assert_eq!(read(ValueRef::Blob(&[])), None);
        assert_eq!(read(ValueRef::Blob(&[VERSION, 0, TEXT, 200])), None);
        assert_eq!(read(ValueRef::Blob(&[VERSION, 42, NULL])), None);
    }
}
