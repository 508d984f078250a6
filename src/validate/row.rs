//! One data row → an item, or the errors that stop it (SPEC §1, §4.2, §4.3).

use crate::config::{ImportRules, JobType, UpcCheck as UpcPolicy};
use crate::issue::{column_letters, first_five, shown, Code, Issue, Place};
use crate::model::{Field, Identifiers, Item, Optionals};
use crate::parse::{Cell, DecimalComma, Row};

use super::header::Layout;
use super::upc::{self, UpcCheck};
use super::value::{self, MAX_INT};
use crate::model::MAX_LEN;

/// Most attributes on one row and on one item after merging (SPEC §1).
pub const MAX_ATTRIBUTES: usize = 63;

/// What a row is checked against.
pub struct Context<'a> {
    pub layout: &'a Layout,
    pub rules: &'a ImportRules,
    pub sheet: Option<&'a str>,
    pub decimal_comma: DecimalComma,
    /// The location for rows whose location cell is empty or absent: from
    /// the file name, else `import.default_location`.
    pub fallback_location: Option<&'a str>,
}

/// A checked row.
pub struct RowResult {
    pub location: Option<String>,
    pub manufacturer_id: Option<u32>,
    /// A rejected row's identifiers (a valid row's are in its item).
    pub ids: Identifiers,
    pub item: Option<Box<Item>>,
    pub errors: Vec<Issue>,
    pub warnings: Vec<Issue>,
}

struct RowChecker<'a, 'r> {
    ctx: &'a Context<'a>,
    row: &'r Row,
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
}

impl<'a, 'r> RowChecker<'a, 'r> {
    fn place(&self, col: usize, field: Field) -> Place {
        if let Some(pointers) = &self.row.pointers {
            return Place {
                pointer: pointers.cells.get(col).cloned(),
                column: Some(field.api_name().to_string()),
                ..Place::default()
            };
        }
        Place {
            row: Some(self.row.number),
            sheet: self.ctx.sheet.map(str::to_string),
            cell: Some(format!("{}{}", column_letters(col), self.row.number)),
            column: Some(field.api_name().to_string()),
            pointer: None,
        }
    }

    fn row_place(&self, field: Option<Field>) -> Place {
        if let Some(pointers) = &self.row.pointers {
            return Place {
                pointer: Some(pointers.item.clone()),
                column: field.map(|f| f.api_name().to_string()),
                ..Place::default()
            };
        }
        Place {
            row: Some(self.row.number),
            sheet: self.ctx.sheet.map(str::to_string),
            cell: None,
            column: field.map(|f| f.api_name().to_string()),
            pointer: None,
        }
    }

    fn cell(&self, field: Field) -> Option<(usize, &'r Cell)> {
        let col = self.ctx.layout.column(field)?;
        Some((col, self.row.cells.get(col).unwrap_or(&Cell::Empty)))
    }

    fn error(&mut self, col: usize, field: Field, code: Code, raw: &Cell, message: String) {
        let issue = Issue::new(code, message)
            .at(self.place(col, field))
            .with_value(raw.to_text());
        self.errors.push(issue);
    }

    fn warn(&mut self, col: usize, field: Field, code: Code, raw: &Cell, message: String) {
        let issue = Issue::new(code, message)
            .at(self.place(col, field))
            .with_value(raw.to_text());
        self.warnings.push(issue);
    }

    /// A text field: trimmed, at most 255 characters; `None` when empty.
    fn text(&mut self, field: Field) -> Option<String> {
        let (col, cell) = self.cell(field)?;
        // A failed formula (a VLOOKUP's `#N/A`) names no product and no
        // location: taken as text it would create a record called `#N/A`.
        if let Cell::Error(e) = cell {
            let code = if field == Field::LocationName {
                Code::MissingLocation
            } else {
                Code::MissingIdentifier
            };
            let message = format!(
                "{} holds the spreadsheet error {e} (a formula that failed); fix the formula, \
                 or paste the values, and save again",
                field.api_name()
            );
            self.error(col, field, code, cell, message);
            return None;
        }
        let text = value::trimmed(cell)?;
        // A character is at least a byte: only a long value needs counting.
        if text.len() > MAX_LEN && text.chars().count() > MAX_LEN {
            self.error(
                col,
                field,
                Code::ValueTooLong,
                cell,
                format!(
                    "{} is {} characters long; at most {MAX_LEN} are allowed",
                    field.api_name(),
                    text.chars().count()
                ),
            );
            return None;
        }
        Some(text.into_owned())
    }

    /// An integer field within `min..=MAX_INT`; `None` when empty or bad.
    fn integer(&mut self, field: Field, min: i64) -> Option<i64> {
        let (col, cell) = self.cell(field)?;
        if !value::is_filled(cell) {
            return None;
        }
        let rule = if min < 0 {
            "a whole number, signed for a change (+5, 5 or -3)"
        } else if min == 0 {
            "a whole number, 0 or more"
        } else {
            "a whole number, 1 or more"
        };
        match value::integer(cell, self.ctx.decimal_comma) {
            Ok(n) if n < min => {
                let message = format!(
                    "{} must be {min} or more; got {}",
                    field.api_name(),
                    cell.to_text().trim()
                );
                self.error(col, field, Code::OutOfRange, cell, message);
                None
            }
            Ok(n) if n > MAX_INT => {
                let message = format!(
                    "{} must be at most {MAX_INT}; got {}",
                    field.api_name(),
                    cell.to_text().trim()
                );
                self.error(col, field, Code::OutOfRange, cell, message);
                None
            }
            Ok(n) => Some(n),
            Err(got) => {
                let message = format!("{} must be {rule}; {got}", field.api_name());
                self.error(col, field, Code::NotAnInteger, cell, message);
                None
            }
        }
    }

    /// A decimal field; `non_negative` for prices.
    fn number(&mut self, field: Field, non_negative: bool) -> Option<f64> {
        let (col, cell) = self.cell(field)?;
        if !value::is_filled(cell) {
            return None;
        }
        match value::number(cell, self.ctx.decimal_comma) {
            Ok(n) if non_negative && n < 0.0 => {
                let message = format!(
                    "{} must be 0 or more; got {}",
                    field.api_name(),
                    cell.to_text().trim()
                );
                self.error(col, field, Code::OutOfRange, cell, message);
                None
            }
            Ok(n) => Some(n),
            Err(got) => {
                let example = match self.ctx.decimal_comma {
                    DecimalComma::Never => "12.5",
                    DecimalComma::Allowed => "12,5 or 12.5",
                    DecimalComma::Only => "12,5 (csv.decimal)",
                };
                let message = format!(
                    "{} must be a number such as {example}; {got}",
                    field.api_name()
                );
                self.error(col, field, Code::NotANumber, cell, message);
                None
            }
        }
    }

    /// A sku or partNumber. One that a spreadsheet holds as a number is
    /// read without `.0` but gets `identifier-as-number`: the leading zeros
    /// of `00123` are gone by then, and nothing here can tell them back.
    fn identifier(&mut self, field: Field) -> Option<String> {
        let value = self.text(field)?;
        let (col, cell) = self.cell(field)?;
        if self.row.pointers.is_none() && matches!(cell, Cell::Int(_) | Cell::Float(_)) {
            let message = format!(
                "{} {value} is stored as a number in the spreadsheet, so any leading zeros \
                 (00123) are lost; it was read as {value}. Format the column as Text, retype \
                 the values with their zeros and save again",
                field.api_name()
            );
            self.warn(col, field, Code::IdentifierAsNumber, cell, message);
        }
        Some(value)
    }

    fn upc(&mut self) -> Option<String> {
        let (col, cell) = self.cell(Field::Upc)?;
        let text = value::trimmed(cell)?;
        match upc::check(&text) {
            UpcCheck::Scientific => {
                let message = format!(
                    "upc '{}' is in scientific notation, so its digits are lost; format the column as \
                     Text in the spreadsheet, retype the UPCs and save again",
                    shown(&text)
                );
                self.error(col, Field::Upc, Code::UpcScientific, cell, message);
                None
            }
            UpcCheck::Invalid => {
                let message = match text.chars().count() {
                    n if n <= 100 => {
                        format!("upc must be 8, 12, 13 or 14 digits; got '{text}' ({n} characters)")
                    }
                    _ => format!("upc must be 8, 12, 13 or 14 digits; got '{}'", shown(&text)),
                };
                self.error(col, Field::Upc, Code::UpcInvalid, cell, message);
                None
            }
            UpcCheck::Valid(digits) | UpcCheck::Restored(digits) => {
                if digits != text {
                    let message = format!(
                        "upc '{text}' had lost its leading zeros (a spreadsheet stored it as a number); \
                         read as {digits}"
                    );
                    self.warn(col, Field::Upc, Code::UpcZerosRestored, cell, message);
                }
                let policy = self.ctx.rules.upc_check;
                if policy != UpcPolicy::Off && !upc::check_digit_ok(&digits) {
                    let message = format!(
                        "upc {digits} has a wrong check digit; check it was typed correctly"
                    );
                    if policy == UpcPolicy::Error {
                        // The row is rejected, but its UPC still names a
                        // product: in full mode that product counts as listed.
                        self.error(col, Field::Upc, Code::UpcCheckDigit, cell, message);
                        return Some(digits);
                    }
                    self.warn(col, Field::Upc, Code::UpcCheckDigit, cell, message);
                }
                Some(digits)
            }
        }
    }

    fn attributes(&mut self) -> Vec<String> {
        let Some((col, cell)) = self.cell(Field::Attributes) else {
            return Vec::new();
        };
        let Some(text) = value::trimmed(cell) else {
            return Vec::new();
        };
        let mut list: Vec<String> = Vec::new();
        for part in text
            .split([';', '|'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            if part.chars().count() > MAX_LEN {
                let message = format!(
                    "an attribute is {} characters long; at most {MAX_LEN} are allowed",
                    part.chars().count()
                );
                self.error(col, Field::Attributes, Code::ValueTooLong, cell, message);
                return Vec::new();
            }
            if !list.iter().any(|a| a == part) {
                list.push(part.to_string());
            }
            // Found over the limit at the first attribute too many: counting
            // a cell of 100,000 distinct ones would compare each with all.
            if list.len() > MAX_ATTRIBUTES {
                break;
            }
        }
        if list.len() > MAX_ATTRIBUTES {
            let message = format!(
                "a row may carry at most {MAX_ATTRIBUTES} attributes; this one has more (the {}th is '{}')",
                list.len(),
                shown(&list[MAX_ATTRIBUTES])
            );
            self.error(
                col,
                Field::Attributes,
                Code::TooManyAttributes,
                cell,
                message,
            );
            return Vec::new();
        }
        list
    }

    fn location(&mut self) -> Option<String> {
        let cell_filled = self
            .cell(Field::LocationName)
            .is_some_and(|(_, cell)| value::trimmed(cell).is_some());
        let from_cell = self.text(Field::LocationName);
        if cell_filled && from_cell.is_none() {
            return None; // Already reported (too long); a filled cell has no fallback.
        }
        let location = from_cell.or_else(|| self.ctx.fallback_location.map(str::to_string));
        let Some(location) = location else {
            let place = self.row_place(Some(Field::LocationName));
            self.errors.push(
                Issue::new(
                    Code::MissingLocation,
                    "the row has no location; fill in the location column",
                )
                .at(match self.ctx.layout.column(Field::LocationName) {
                    Some(col) => self.place(col, Field::LocationName),
                    None => place,
                }),
            );
            return None;
        };
        if let Some(valid) = &self.ctx.rules.locations {
            if !valid.contains(&location) {
                let place = match self.ctx.layout.column(Field::LocationName) {
                    Some(col) => self.place(col, Field::LocationName),
                    None => self.row_place(Some(Field::LocationName)),
                };
                self.errors.push(
                    Issue::new(
                        Code::UnknownLocation,
                        format!(
                            "location '{location}' is not one this file may change (allowed: {}); check for a typo",
                            allowed_locations(valid)
                        ),
                    )
                    .at(place)
                    .with_value(location.clone()),
                );
                // Kept: the row still names that location for the policies.
            }
        }
        Some(location)
    }
}

pub fn check_row(ctx: &Context<'_>, row: &Row) -> RowResult {
    let mut c = RowChecker {
        ctx,
        row,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    // The header's width ends at its last named cell: a value under an
    // empty header cell is an extra cell too.
    let width = ctx
        .layout
        .names
        .iter()
        .rposition(|name| !name.trim().is_empty())
        .map_or(0, |i| i + 1);
    let used = row
        .cells
        .iter()
        .rposition(|cell| !cell.is_blank())
        .map_or(0, |i| i + 1);
    if used > width {
        c.warnings.push(
            Issue::new(
                Code::ExtraCells,
                format!("the row has {used} cells but the header has {width}; the extra cells were ignored"),
            )
            .at(c.row_place(None)),
        );
    }
    let location = c.location();
    let manufacturer_id = c
        .integer(Field::ManufacturerId, 0)
        .map(|v| v as u32)
        .or(ctx.rules.manufacturer_id);
    let ids = Identifiers {
        sku: c.identifier(Field::Sku),
        part_number: c.identifier(Field::PartNumber),
        upc: c.upc(),
    };
    let id_errors = c.errors.iter().any(|e| {
        matches!(
            e.place.column.as_deref(),
            Some("sku" | "partNumber" | "upc")
        )
    });
    if ids.is_empty() && !id_errors {
        c.errors.push(
            Issue::new(
                Code::MissingIdentifier,
                "the row has no sku, partNumber or upc; fill in at least one",
            )
            .at(c.row_place(None)),
        );
    }
    // An adjust file's quantity is a change: signed (SPEC §1.1).
    let quantity = if ctx.rules.job_type == JobType::Adjust {
        c.integer(Field::Quantity, -MAX_INT)
    } else {
        c.integer(Field::Quantity, 0)
    };
    if quantity.is_none()
        && !c
            .errors
            .iter()
            .any(|e| e.place.column.as_deref() == Some("quantity"))
    {
        let place = match ctx.layout.column(Field::Quantity) {
            Some(col) => c.place(col, Field::Quantity),
            None => c.row_place(Some(Field::Quantity)),
        };
        let message = if ctx.rules.job_type == JobType::Adjust {
            "the row has no quantity; fill in the change (+5, 5 or -3; 0 changes nothing)"
        } else {
            "the row has no quantity; fill in the count on hand (0 or more)"
        };
        c.errors.push(
            Issue::new(Code::MissingQuantity, message)
                .at(place)
                .with_value(""),
        );
    }
    let optionals = Optionals {
        bin_id: c.integer(Field::BinId, 1),
        ltd: c.number(Field::Ltd, false),
        floor: c.integer(Field::Floor, 0),
        safety_stock: c.integer(Field::SafetyStock, 0),
        currency_id: c.integer(Field::CurrencyId, 0),
        retail_price: c.number(Field::RetailPrice, true),
    };
    let attributes = c.attributes();
    // A valid row's identifiers live in its item only (a file's rows are
    // held in memory until planned: no second copy of every SKU).
    let (ids, item) = match quantity {
        Some(quantity) if c.errors.is_empty() => (
            Identifiers::default(),
            Some(Box::new(Item {
                ids,
                quantity,
                optionals,
                attributes,
            })),
        ),
        _ => (ids, None),
    };
    RowResult {
        location,
        manufacturer_id,
        ids,
        item,
        errors: c.errors,
        warnings: c.warnings,
    }
}

/// The locations an inbox may change (`import.locations`), as a sender
/// reads them in a report: quoted, the first five and a count of the rest.
fn allowed_locations(valid: &[String]) -> String {
    first_five(valid.iter().map(|l| format!("'{l}'")), valid.len())
}
