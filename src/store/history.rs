//! How a history row holds the fields a job changed (`before`, `after`).
//!
//! Rows written before this encoding hold JSON objects (TEXT); rows written
//! now hold a compact BLOB: a version byte, then per field its index in
//! [`FIELDS`] (or 0xFF and its name) and a tagged value. A created record's
//! `after` is most of a history row's size, so this is most of what a new
//! record costs the store (about 190 bytes of JSON, about 85 here). Both
//! are read by [`read`]; nothing rewrites old rows.

use rusqlite::types::ValueRef;
use serde_json::{Map, Number, Value};

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
        Value::Number(n) if n.is_i64() => {
            out.push(INT);
            let i = n.as_i64().unwrap_or_default();
            // Zigzag: small negatives stay small.
            put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
