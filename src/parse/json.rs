//! JSON: the Inventory Refresh API's request body — one object
//! `{manufacturerID?, locationName, items: [...]}` or an array of them —
//! read into the same tables as a spreadsheet (one per body, one row per
//! item), with a JSON Pointer for every cell so errors say
//! `/items/3/quantity`. Unknown keys are warnings.
//!
//! Memory does not follow the document: no whole-document value is built.
//! A body's keys are read with their values left as raw slices of the
//! file (`RawValue`), and its `items` array is walked one element at a
//! time, each item parsed on its own when its row is asked for. A first
//! walk over the items (values skipped, not built) checks that each is an
//! object and finds their unknown keys, so those are reported up front as
//! before.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Cell, DecimalComma, Format, Parsed, Pointers, Row, Table};
use crate::issue::{Code, Issue, Place};
use crate::model::Field;

/// The columns of every JSON table, in this order.
const COLUMNS: [Field; 13] = Field::ALL;
/// Most request bodies one file may hold (each is a table of its own).
pub const MAX_BODIES: usize = 1000;
/// Unknown keys are each reported once; past this many, no more are named.
const MAX_UNKNOWN_KEYS: usize = 100;

fn unreadable(message: String, pointer: Option<String>) -> Issue {
    Issue::new(Code::UnreadableFile, message).at(Place {
        pointer,
        ..Place::default()
    })
}

fn not_json(e: impl std::fmt::Display) -> Issue {
    unreadable(
        format!(
            "the file is not valid JSON: {e}; check the file was sent whole and is the Inventory Refresh request body"
        ),
        None,
    )
}

/// A request body's keys, each value still raw text of the file.
type Body<'a> = BTreeMap<String, &'a RawValue>;

pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, Issue> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = skip_ws(body, 0);
    let bodies: Vec<(String, Body<'_>)> = match body.get(start) {
        Some(b'[') => {
            let mut list = Vec::new();
            for (i, element) in Elements::new(body, start).enumerate() {
                let (at, _) = element.map_err(not_json)?;
                let pointer = format!("/{i}");
                if body.get(at) != Some(&b'{') {
                    return Err(unreadable(
                        "each request body must be an object with locationName and items".into(),
                        Some(pointer),
                    ));
                }
                if list.len() >= MAX_BODIES {
                    return Err(Issue::new(
                        Code::TooManyRows,
                        format!(
                            "the file holds more than {MAX_BODIES} request bodies; send at most {MAX_BODIES} per file"
                        ),
                    ));
                }
                list.push((pointer, one::<Body<'_>>(body, at)?));
            }
            list
        }
        Some(b'{') => vec![(String::new(), one::<Body<'_>>(body, start)?)],
        _ => {
            return Err(unreadable(
                "expected a JSON object {\"locationName\": …, \"items\": […]} or an array of them"
                    .into(),
                Some(String::new()),
            ))
        }
    };
    if bodies.is_empty() {
        return Err(unreadable(
            "the JSON array holds no request body; send {\"locationName\": …, \"items\": […]}"
                .into(),
            Some(String::new()),
        ));
    }
    let mut warnings = Vec::new();
    let mut unknown_seen: BTreeSet<String> = BTreeSet::new();
    let mut tables = Vec::new();
    for (prefix, fields) in bodies {
        let items = match fields.get("items") {
            Some(raw) if raw.get().starts_with('[') => *raw,
            _ => {
                return Err(unreadable(
                    "the request body has no \"items\" array".into(),
                    Some(format!("{prefix}/items")),
                ))
            }
        };
        for key in fields.keys() {
            if !matches!(key.as_str(), "locationName" | "manufacturerID" | "items")
                && remember(&mut unknown_seen, key)
            {
                warnings.push(unknown_key(key, format!("{prefix}/{}", escape(key))));
            }
        }
        // The walk that checks every item and names unknown keys.
        let items_json = items.get().as_bytes();
        for (i, element) in Elements::new(items_json, 0).enumerate() {
            let (at, end) = element.map_err(not_json)?;
            let item_pointer = format!("{prefix}/items/{i}");
            if end - at > MAX_ITEM_BYTES {
                return Err(item_too_large(i, item_pointer));
            }
            if items_json.get(at) != Some(&b'{') {
                return Err(unreadable(
                    "each item must be an object".into(),
                    Some(item_pointer),
                ));
            }
            let keys: BTreeMap<String, IgnoredAny> = one(items_json, at)?;
            for key in keys.keys() {
                if !is_item_field(key) && remember(&mut unknown_seen, key) {
                    warnings.push(unknown_key(key, format!("{item_pointer}/{}", escape(key))));
                }
            }
        }
        let body_value = |name: &str| -> Result<Option<Value>, Issue> {
            fields
                .get(name)
                .map(|raw| serde_json::from_str::<Value>(raw.get()).map_err(not_json))
                .transpose()
        };
        let location = body_value(Field::LocationName.api_name())?.map(shorten_text);
        let manufacturer = body_value(Field::ManufacturerId.api_name())?;
        let header = Row {
            number: 0,
            cells: COLUMNS
                .iter()
                .map(|f| Cell::Text(f.api_name().to_string()))
                .collect(),
            pointers: None,
        };
        let rows = ItemRows {
            json: items_json,
            elements: Elements::new(items_json, 0),
            index: 0,
            prefix,
            location,
            manufacturer,
        };
        tables.push(Table {
            sheet: None,
            decimal_comma: DecimalComma::Never,
            rows: Box::new(std::iter::once(Ok(header)).chain(rows)),
        });
    }
    Ok(Parsed {
        format: Format::Json,
        tables,
        warnings,
    })
}

/// Remembers an unknown key; true the first time (up to a cap).
fn remember(seen: &mut BTreeSet<String>, key: &str) -> bool {
    seen.len() < MAX_UNKNOWN_KEYS && seen.insert(key.to_string())
}

fn is_item_field(key: &str) -> bool {
    COLUMNS
        .iter()
        .any(|f| f.api_name() == key && !matches!(f, Field::LocationName | Field::ManufacturerId))
}

/// Parses the one JSON value that starts at `at`.
fn one<'a, T: serde::Deserialize<'a>>(json: &'a [u8], at: usize) -> Result<T, Issue> {
    let mut stream = serde_json::Deserializer::from_slice(&json[at..]).into_iter::<T>();
    match stream.next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(not_json(e)),
        None => Err(not_json("the document ends early")),
    }
}

fn skip_ws(json: &[u8], mut at: usize) -> usize {
    while json.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The elements of the JSON array that starts at `start`, one at a time:
/// where each starts and ends, without building any of them.
struct Elements<'a> {
    json: &'a [u8],
    at: usize,
    done: bool,
}

impl<'a> Elements<'a> {
    fn new(json: &'a [u8], start: usize) -> Elements<'a> {
        let at = skip_ws(json, start);
        let opened = json.get(at) == Some(&b'[');
        Elements {
            json,
            at: at + 1,
            done: !opened,
        }
    }

    fn step(&mut self) -> Result<Option<(usize, usize)>, String> {
        let at = skip_ws(self.json, self.at);
        if self.json.get(at) == Some(&b']') {
            return Ok(None);
        }
        let mut stream =
            serde_json::Deserializer::from_slice(&self.json[at..]).into_iter::<IgnoredAny>();
        match stream.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the array is not closed".into()),
        }
        let end = at + stream.byte_offset();
        let next = skip_ws(self.json, end);
        match self.json.get(next) {
            Some(b',') => self.at = next + 1,
            Some(b']') => self.at = next,
            _ => return Err("expected , or ] after an array element".into()),
        }
        Ok(Some((at, end)))
    }
}

impl Iterator for Elements<'_> {
    type Item = Result<(usize, usize), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(span)) => Some(Ok(span)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// A body's items as rows, each parsed when it is asked for.
struct ItemRows<'a> {
    json: &'a [u8],
    elements: Elements<'a>,
    index: usize,
    prefix: String,
    location: Option<Value>,
    manufacturer: Option<Value>,
}

impl ItemRows<'_> {
    fn row(&self, at: usize, i: usize) -> Result<Row, Issue> {
        let item_pointer = format!("{}/items/{i}", self.prefix);
        let item: Map<String, Value> = parse_one(self.json, at).map_err(|e| {
            unreadable(
                format!("item {i} could not be read: {e}; correct the item (a number out of range, say) and drop the file again"),
                Some(item_pointer.clone()),
            )
        })?;
        let mut cells = Vec::with_capacity(COLUMNS.len());
        let mut pointers = Vec::with_capacity(COLUMNS.len());
        for field in COLUMNS {
            let name = field.api_name();
            // The location and manufacturer belong to the body; an item
            // does not repeat them.
            let (value, pointer) = match field {
                Field::LocationName => (self.location.as_ref(), format!("{}/{name}", self.prefix)),
                Field::ManufacturerId => (
                    self.manufacturer.as_ref(),
                    format!("{}/{name}", self.prefix),
                ),
                _ => (item.get(name), format!("{item_pointer}/{name}")),
            };
            cells.push(value.map_or(Cell::Empty, cell));
            pointers.push(pointer);
        }
        Ok(Row {
            number: i as u64 + 1,
            cells,
            pointers: Some(Pointers {
                item: item_pointer,
                cells: pointers,
            }),
        })
    }
}

/// The most JSON one item may take: what a CSV record may
/// ([`super::MAX_ROW_BYTES`]). An item is built whole, as a map of values,
/// at several times its size; an item of the API is a few hundred bytes.
const MAX_ITEM_BYTES: usize = super::MAX_ROW_BYTES;

fn item_too_large(i: usize, pointer: String) -> Issue {
    unreadable(
        format!(
            "item {i} takes more than {} MiB of JSON, far more than an item of the Inventory \
             Refresh API; check the item, or what made the file, and drop it again",
            MAX_ITEM_BYTES >> 20
        ),
        Some(pointer),
    )
}

/// A text longer than any field may be is cut to one character past the
/// limit: it is refused (`value-too-long`) all the same, and the body's
/// location is copied into each of its items' rows.
fn shorten_text(value: Value) -> Value {
    match value {
        Value::String(mut s) => {
            crate::issue::truncate_chars(&mut s, crate::model::MAX_LEN + 1);
            Value::String(s)
        }
        other => other,
    }
}

fn parse_one<T: DeserializeOwned>(json: &[u8], at: usize) -> Result<T, String> {
    let mut stream = serde_json::Deserializer::from_slice(&json[at..]).into_iter::<T>();
    match stream.next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("the document ends early".into()),
    }
}

impl Iterator for ItemRows<'_> {
    type Item = Result<Row, Issue>;

    fn next(&mut self) -> Option<Self::Item> {
        let (at, _) = match self.elements.next()? {
            Ok(span) => span,
            Err(e) => return Some(Err(not_json(e))),
        };
        let i = self.index;
        self.index += 1;
        Some(self.row(at, i))
    }
}

/// A key as a JSON Pointer token (RFC 6901): `~` is `~0`, `/` is `~1`.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn unknown_key(key: &str, pointer: String) -> Issue {
    Issue::new(
        Code::UnknownColumn,
        format!("\"{key}\" is not a field of the Inventory Refresh request and was ignored"),
    )
    .at(Place {
        pointer: Some(pointer),
        column: Some(key.to_string()),
        ..Place::default()
    })
}

fn cell(value: &Value) -> Cell {
    match value {
        Value::Null => Cell::Empty,
        Value::Bool(b) => Cell::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cell::Int(i),
            None => n
                .as_f64()
                .map_or_else(|| Cell::Text(n.to_string()), Cell::Float),
        },
        Value::String(s) if s.trim().is_empty() => Cell::Empty,
        Value::String(s) => Cell::Text(s.clone()),
        // attributes: an array of strings, joined as a cell would hold them.
        Value::Array(list) if list.iter().all(Value::is_string) => Cell::Text(
            list.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("|"),
        ),
        other => Cell::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(json: &str) -> Vec<Row> {
        let parsed = parse(json.as_bytes()).unwrap();
        parsed
            .tables
            .into_iter()
            .flat_map(|t| t.rows.map(Result::unwrap).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn items_are_walked_one_by_one() {
        let rows = rows(
            r#" { "locationName" : "7", "items" : [ {"sku":"A","quantity":1} ,
            {"sku":"B","quantity":"2"}, {} ] } "#,
        );
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[1].cells[0], Cell::Text("7".into()));
        assert_eq!(rows[3].number, 3);
        assert_eq!(
            rows[2].pointers.as_ref().unwrap().item,
            "/items/1".to_string()
        );
    }

    #[test]
    fn an_item_of_more_json_than_a_record_may_hold_is_refused() {
        let many_keys: String = (0..200_000).map(|i| format!(r#""k{i}":1,"#)).collect();
        let text = format!(
            r#"{{"locationName":"7","items":[{{"sku":"A","quantity":1}},{{{many_keys}"sku":"B"}}]}}"#
        );
        let err = parse(text.as_bytes()).err().expect("refused");
        assert_eq!(err.code, Code::UnreadableFile);
        assert_eq!(err.place.pointer.as_deref(), Some("/items/1"));
        assert!(
            err.message.contains("more than 1 MiB of JSON"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_long_location_is_cut_once_not_copied_whole_into_every_item() {
        let long = "ü".repeat(100_000);
        let rows = rows(&format!(
            r#"{{"locationName":"{long}","items":[{{"sku":"A","quantity":1}},{{"sku":"B","quantity":2}}]}}"#
        ));
        let Cell::Text(location) = &rows[1].cells[0] else {
            panic!("{:?}", rows[1].cells[0]);
        };
        // One character past the limit: still refused as too long.
        assert_eq!(location.chars().count(), crate::model::MAX_LEN + 1);
        assert_eq!(rows[2].cells[0], rows[1].cells[0]);
    }

    #[test]
    fn an_array_of_bodies_is_one_table_each() {
        let text = r#"[{"locationName":"1","items":[{"sku":"A","quantity":1}]},
                       {"locationName":"2","items":[]}]"#;
        let parsed = parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.tables.len(), 2);
    }

    #[test]
    fn a_non_object_item_is_named_by_its_pointer() {
        let err = parse(br#"{"locationName":"1","items":[{}, 5]}"#)
            .err()
            .unwrap();
        assert_eq!(err.place.pointer.as_deref(), Some("/items/1"));
    }
}
