//! JSON: the Inventory Refresh API's request body — one object
//! `{manufacturerID?, locationName, items: [...]}` or an array of them —
//! read into the same tables as a spreadsheet (one per body, one row per
//! item), with a JSON Pointer for every cell so errors say
//! `/items/3/quantity`. Unknown keys are warnings.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{Cell, Format, Parsed, Pointers, Row, Table};
use crate::issue::{Code, Issue, Place};
use crate::model::Field;

/// The columns of every JSON table, in this order.
const COLUMNS: [Field; 13] = Field::ALL;

fn unreadable(message: String, pointer: Option<String>) -> Issue {
    Issue::new(Code::UnreadableFile, message).at(Place {
        pointer,
        ..Place::default()
    })
}

pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, Issue> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        unreadable(
            format!(
                "the file is not valid JSON: {e}; check the file was sent whole and is the Inventory Refresh request body"
            ),
            None,
        )
    })?;
    let bodies: Vec<(String, &Value)> =
        match &value {
            Value::Array(list) => list
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("/{i}"), v))
                .collect(),
            Value::Object(_) => vec![(String::new(), &value)],
            _ => return Err(unreadable(
                "expected a JSON object {\"locationName\": …, \"items\": […]} or an array of them"
                    .into(),
                Some(String::new()),
            )),
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
    for (prefix, body) in bodies {
        let Value::Object(fields) = body else {
            return Err(unreadable(
                "each request body must be an object with locationName and items".into(),
                Some(prefix),
            ));
        };
        let Some(Value::Array(items)) = fields.get("items") else {
            return Err(unreadable(
                "the request body has no \"items\" array".into(),
                Some(format!("{prefix}/items")),
            ));
        };
        for key in fields.keys() {
            if !matches!(key.as_str(), "locationName" | "manufacturerID" | "items")
                && unknown_seen.insert(key.clone())
            {
                warnings.push(unknown_key(key, format!("{prefix}/{}", escape(key))));
            }
        }
        let header = Row {
            number: 0,
            cells: COLUMNS
                .iter()
                .map(|f| Cell::Text(f.api_name().to_string()))
                .collect(),
            pointers: None,
        };
        let mut rows = vec![header];
        for (i, item) in items.iter().enumerate() {
            let item_pointer = format!("{prefix}/items/{i}");
            let Value::Object(item_fields) = item else {
                return Err(unreadable(
                    "each item must be an object".into(),
                    Some(item_pointer),
                ));
            };
            for key in item_fields.keys() {
                let known = COLUMNS.iter().any(|f| {
                    f.api_name() == key && !matches!(f, Field::LocationName | Field::ManufacturerId)
                });
                if !known && unknown_seen.insert(key.clone()) {
                    warnings.push(unknown_key(key, format!("{item_pointer}/{}", escape(key))));
                }
            }
            let mut cells = Vec::with_capacity(COLUMNS.len());
            let mut pointers = Vec::with_capacity(COLUMNS.len());
            for field in COLUMNS {
                let name = field.api_name();
                // The location and manufacturer belong to the body; an item
                // does not repeat them.
                let (value, pointer) = match field {
                    Field::LocationName | Field::ManufacturerId => {
                        (fields.get(name), format!("{prefix}/{name}"))
                    }
                    _ => (item_fields.get(name), format!("{item_pointer}/{name}")),
                };
                cells.push(value.map_or(Cell::Empty, cell));
                pointers.push(pointer);
            }
            rows.push(Row {
                number: i as u64 + 1,
                cells,
                pointers: Some(Pointers {
                    item: item_pointer,
                    cells: pointers,
                }),
            });
        }
        tables.push(Table {
            sheet: None,
            decimal_comma: false,
            rows: Box::new(rows.into_iter().map(Ok)),
        });
    }
    Ok(Parsed {
        format: Format::Json,
        tables,
        warnings,
    })
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
