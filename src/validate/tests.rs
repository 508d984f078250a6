//! Tests of the validation entry point `check`: file bytes in; rows, items
//! and issues out (SPEC §1, §3, §4). Every test feeds a small delimited file
//! and looks at what a report would show: the code, the row as a spreadsheet
//! numbers it, the cell, the column's API name and the message.

use super::{check, Checked, CheckedRow};
use crate::columns::{normalise_header, ColumnTarget};
use crate::config::{Config, ImportRules, UpcCheck};
use crate::issue::{Code, Issue};
use crate::model::Field;
use crate::parse::Format;

// ---------------------------------------------------------------------------
// Helpers.

fn rules() -> ImportRules {
    Config::defaults().rules
}

/// `text` as a file named `stock.csv` under `rules`.
fn csv_with(rules: &ImportRules, text: &str) -> Checked {
    check("stock.csv", text.as_bytes(), rules)
}

/// `text` as a file named `stock.csv` under the default rules.
fn csv(text: &str) -> Checked {
    csv_with(&rules(), text)
}

/// The rows of a file that was read as a whole.
fn rows(checked: &Checked) -> &[CheckedRow] {
    assert!(
        checked.file_error.is_none(),
        "unexpected file error: {:#?}",
        checked.file_error
    );
    &checked.rows
}

/// The single data row of a file.
fn only_row(checked: &Checked) -> &CheckedRow {
    let rows = rows(checked);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    &rows[0]
}

/// The data row with spreadsheet row number `number`.
fn row(checked: &Checked, number: u64) -> &CheckedRow {
    rows(checked)
        .iter()
        .find(|r| r.number == number)
        .unwrap_or_else(|| panic!("no row {number} in {:#?}", checked.rows))
}

/// The one error of a rejected row.
fn the_error(row: &CheckedRow) -> &Issue {
    assert_eq!(row.errors.len(), 1, "{:#?}", row.errors);
    assert!(row.item.is_none(), "a rejected row has no item");
    &row.errors[0]
}

/// The one error of a file's single data row.
fn only_error(checked: &Checked) -> &Issue {
    the_error(only_row(checked))
}

/// The one warning of a valid row.
fn the_warning(row: &CheckedRow) -> &Issue {
    assert!(row.errors.is_empty(), "{:#?}", row.errors);
    assert_eq!(row.warnings.len(), 1, "{:#?}", row.warnings);
    &row.warnings[0]
}

/// The error that rejected the whole file.
fn file_error(checked: &Checked) -> &Issue {
    let issue = checked.file_error.as_ref().expect("the file is rejected");
    assert!(checked.rows.is_empty(), "a rejected file yields no rows");
    issue
}

/// Asserts an issue's code and where it is.
fn assert_at(issue: &Issue, code: Code, row: u64, cell: Option<&str>, column: Option<&str>) {
    assert_eq!(issue.code, code, "{issue:#?}");
    assert_eq!(issue.place.row, Some(row), "{issue:#?}");
    assert_eq!(issue.place.cell.as_deref(), cell, "{issue:#?}");
    assert_eq!(issue.place.column.as_deref(), column, "{issue:#?}");
}

/// Asserts the message mentions every one of `parts`.
fn assert_says(issue: &Issue, parts: &[&str]) {
    for part in parts {
        assert!(
            issue.message.contains(part),
            "message {:?} should mention {part:?}",
            issue.message
        );
    }
}

fn codes(issues: &[Issue]) -> Vec<Code> {
    issues.iter().map(|i| i.code).collect()
}

/// The location name a row was given.
fn location<'a>(checked: &'a Checked, row: &CheckedRow) -> Option<&'a str> {
    row.location.map(|i| checked.locations[i as usize].as_str())
}

/// The quantity of a valid row.
fn quantity(row: &CheckedRow) -> i64 {
    assert!(row.errors.is_empty(), "{:#?}", row.errors);
    row.item.as_ref().expect("a valid row has an item").quantity
}

/// The one error of `store,sku,qty,<column>` with row `11,A,5,<value>`.
fn error_in_column(column: &str, value: &str) -> Issue {
    only_error(&csv(&format!("store,sku,qty,{column}\n11,A,5,{value}\n"))).clone()
}

/// The single row of a file with a quantity of `value`.
fn quantity_file(value: &str) -> Checked {
    csv(&format!("store,sku,qty\n11,A,{value}\n"))
}

/// The single row of a file with a UPC of `value`, under `rules`.
fn upc_file(rules: &ImportRules, value: &str) -> Checked {
    csv_with(rules, &format!("store,sku,upc,qty\n11,A,{value},5\n"))
}

/// A 0xFF 0xFE byte-order mark and `text` in UTF-16LE.
fn utf16le(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

/// `n` distinct attribute names: `a0`, `a1`, …
fn attributes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("a{i}")).collect()
}

// ---------------------------------------------------------------------------
// Valid rows.

#[test]
fn a_valid_row_becomes_an_item_with_every_field() {
    let checked = csv(
        "store,mfr id,sku,part number,upc,qty,bin,ltd,floor,safety stock,currency id,price,attributes\n\
         11,7,A1,P-1,036000291452,5,3,2.5,1,2,978,9.99,red;blue\n",
    );
    assert_eq!(checked.format, Format::Csv);
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    let row = only_row(&checked);
    assert_eq!(row.number, 2);
    assert!(row.errors.is_empty() && row.warnings.is_empty(), "{row:#?}");
    assert_eq!(location(&checked, row), Some("11"));
    assert_eq!(row.manufacturer_id, Some(7));
    let item = row.item.as_ref().expect("valid");
    assert_eq!(&item.ids, row.ids());
    assert_eq!(item.ids.sku.as_deref(), Some("A1"));
    assert_eq!(item.ids.part_number.as_deref(), Some("P-1"));
    assert_eq!(item.ids.upc.as_deref(), Some("036000291452"));
    assert_eq!(item.quantity, 5);
    let o = &item.optionals;
    assert_eq!(o.bin_id, Some(3));
    assert_eq!(o.ltd, Some(2.5));
    assert_eq!(o.floor, Some(1));
    assert_eq!(o.safety_stock, Some(2));
    assert_eq!(o.currency_id, Some(978));
    assert_eq!(o.retail_price, Some(9.99));
    assert_eq!(item.attributes, ["red", "blue"]);
    assert!(!checked.location_outside_columns);
}

#[test]
fn optional_fields_left_empty_are_not_carried() {
    let checked = csv("store,sku,upc,qty,bin,price,attributes\n11,A,,0,,,\n");
    let item = only_row(&checked).item.as_ref().expect("valid");
    assert_eq!(item.quantity, 0);
    assert_eq!(item.ids.upc, None);
    assert_eq!(item.optionals, Default::default());
    assert!(item.attributes.is_empty());
}

#[test]
fn manufacturer_id_falls_back_to_the_config() {
    let mut rules = rules();
    rules.manufacturer_id = Some(42);
    let checked = csv_with(&rules, "store,mfrid,sku,qty\n11,,A,5\n11,7,B,5\n");
    assert_eq!(row(&checked, 2).manufacturer_id, Some(42));
    assert_eq!(row(&checked, 3).manufacturer_id, Some(7));
}

#[test]
fn integers_accept_what_spreadsheets_write() {
    for (value, expected) in [("101", 101), ("101.0", 101), ("+7", 7), ("\" 12 \"", 12)] {
        assert_eq!(
            quantity(only_row(&quantity_file(value))),
            expected,
            "{value}"
        );
    }
    assert_eq!(
        quantity(only_row(&quantity_file("2147483647"))),
        2_147_483_647
    );
}

#[test]
fn rejected_rows_keep_their_identifiers() {
    let checked = csv("store,sku,part,upc,qty\n11,A,P,036000291452,lots\n");
    let row = only_row(&checked);
    assert!(row.item.is_none());
    assert_eq!(row.ids().sku.as_deref(), Some("A"));
    assert_eq!(row.ids().part_number.as_deref(), Some("P"));
    assert_eq!(row.ids().upc.as_deref(), Some("036000291452"));
    assert_eq!(location(&checked, row), Some("11"));
}

#[test]
fn one_bad_row_does_not_stop_the_others() {
    let checked = csv("store,sku,qty\n11,A,5\n11,B,x\n11,C,7\n");
    assert_eq!(rows(&checked).len(), 3);
    assert_eq!(quantity(row(&checked, 2)), 5);
    assert_eq!(the_error(row(&checked, 3)).code, Code::NotAnInteger);
    assert_eq!(quantity(row(&checked, 4)), 7);
}

// ---------------------------------------------------------------------------
// Row errors.

#[test]
fn missing_identifier() {
    let checked = csv("store,sku,part,upc,qty\n11,,,,5\n");
    let issue = only_error(&checked);
    assert_at(issue, Code::MissingIdentifier, 2, None, None);
    assert_says(issue, &["sku", "upc"]);
    assert!(only_row(&checked).ids().is_empty());
}

#[test]
fn missing_quantity() {
    let checked = quantity_file("");
    let issue = only_error(&checked);
    assert_at(
        issue,
        Code::MissingQuantity,
        2,
        Some("C2"),
        Some("quantity"),
    );
    assert_says(issue, &["quantity"]);
    assert_eq!(only_row(&checked).ids().sku.as_deref(), Some("A"));
}

#[test]
fn missing_trailing_cells_are_empty() {
    let issue = only_error(&csv("store,sku,qty\n11,A\n")).clone();
    assert_at(
        &issue,
        Code::MissingQuantity,
        2,
        Some("C2"),
        Some("quantity"),
    );
}

#[test]
fn not_an_integer_fraction() {
    let checked = quantity_file("1.5");
    let issue = only_error(&checked);
    assert_at(issue, Code::NotAnInteger, 2, Some("C2"), Some("quantity"));
    assert_says(issue, &["whole number", "got '1.5'"]);
    assert_eq!(issue.value.as_deref(), Some("1.5"));
}

#[test]
fn not_an_integer_thousands_separator() {
    let checked = quantity_file("\"1,000\"");
    let issue = only_error(&checked);
    assert_at(issue, Code::NotAnInteger, 2, Some("C2"), Some("quantity"));
    assert_says(issue, &["got '1,000'"]);
}

#[test]
fn not_an_integer_text() {
    for value in ["ten", "#N/A", "TRUE", "5e2"] {
        let checked = quantity_file(value);
        let issue = only_error(&checked);
        assert_at(issue, Code::NotAnInteger, 2, Some("C2"), Some("quantity"));
        assert_says(issue, &[&format!("got '{value}'")]);
    }
}

#[test]
fn not_an_integer_dot_thousands_in_a_semicolon_file() {
    let checked = csv("store;sku;qty\n11;A;1.000\n");
    let issue = only_error(&checked);
    assert_at(issue, Code::NotAnInteger, 2, Some("C2"), Some("quantity"));
    assert_says(issue, &["got '1.000'"]);
}

#[test]
fn not_an_integer_in_an_optional_field() {
    let issue = error_in_column("floor", "2.5");
    assert_at(&issue, Code::NotAnInteger, 2, Some("D2"), Some("floor"));
    assert_says(&issue, &["got '2.5'"]);
}

#[test]
fn not_a_number() {
    let issue = error_in_column("price", "abc");
    assert_at(&issue, Code::NotANumber, 2, Some("D2"), Some("retailPrice"));
    assert_says(&issue, &["number", "got 'abc'"]);
    let issue = error_in_column("ltd", "inf");
    assert_at(&issue, Code::NotANumber, 2, Some("D2"), Some("ltd"));
}

#[test]
fn decimal_comma_is_not_a_number_in_a_comma_file() {
    let issue = error_in_column("price", "\"12,5\"");
    assert_at(&issue, Code::NotANumber, 2, Some("D2"), Some("retailPrice"));
    assert_says(&issue, &["got '12,5'"]);
}

#[test]
fn decimal_comma_is_a_number_in_a_semicolon_file() {
    let checked = csv("store;sku;qty;price;ltd\n11;A;5;12,5;0.25\n");
    let item = only_row(&checked).item.as_ref().expect("valid");
    assert_eq!(item.optionals.retail_price, Some(12.5));
    assert_eq!(item.optionals.ltd, Some(0.25));
}

#[test]
fn out_of_range_negative_quantity() {
    let checked = quantity_file("-3");
    let issue = only_error(&checked);
    assert_at(issue, Code::OutOfRange, 2, Some("C2"), Some("quantity"));
    assert_says(issue, &["0 or more", "-3"]);
    assert_eq!(issue.value.as_deref(), Some("-3"));
}

#[test]
fn out_of_range_bin_zero() {
    let issue = error_in_column("bin", "0");
    assert_at(&issue, Code::OutOfRange, 2, Some("D2"), Some("binID"));
    assert_says(&issue, &["1 or more", "got 0"]);
}

#[test]
fn out_of_range_negative_price() {
    let issue = error_in_column("price", "-1.5");
    assert_at(&issue, Code::OutOfRange, 2, Some("D2"), Some("retailPrice"));
    assert_says(&issue, &["0 or more", "-1.5"]);
}

#[test]
fn out_of_range_above_the_api_maximum() {
    for value in ["2147483648", "99999999999999999999"] {
        let checked = quantity_file(value);
        let issue = only_error(&checked);
        assert_at(issue, Code::OutOfRange, 2, Some("C2"), Some("quantity"));
        assert_says(issue, &["2147483647", value]);
    }
}

#[test]
fn value_too_long() {
    let long = "x".repeat(256);
    let checked = csv(&format!("store,sku,qty\n11,{long},5\n"));
    let issue = only_error(&checked);
    assert_at(issue, Code::ValueTooLong, 2, Some("B2"), Some("sku"));
    assert_says(issue, &["256", "255"]);
    let fits = "x".repeat(255);
    let checked = csv(&format!("store,sku,qty\n11,{fits},5\n"));
    assert_eq!(only_row(&checked).ids().sku.as_deref(), Some(fits.as_str()));
}

#[test]
fn upc_invalid() {
    for value in ["03600029145A", "1234567", "123456789012345"] {
        let checked = upc_file(&rules(), value);
        let issue = only_error(&checked);
        assert_at(issue, Code::UpcInvalid, 2, Some("C2"), Some("upc"));
        assert_says(issue, &["8, 12, 13 or 14 digits", &format!("'{value}'")]);
        assert_eq!(issue.value.as_deref(), Some(value));
    }
}

#[test]
fn upc_scientific() {
    let checked = upc_file(&rules(), "1.23457E+11");
    let issue = only_error(&checked);
    assert_at(issue, Code::UpcScientific, 2, Some("C2"), Some("upc"));
    assert_says(issue, &["1.23457E+11", "scientific"]);
}

#[test]
fn upc_valid_lengths_pass() {
    for value in [
        "96385074",
        "036000291452",
        "4006381333931",
        "10036000291459",
    ] {
        let checked = upc_file(&rules(), value);
        let row = only_row(&checked);
        assert!(row.errors.is_empty() && row.warnings.is_empty(), "{row:#?}");
        assert_eq!(row.ids().upc.as_deref(), Some(value));
    }
}

#[test]
fn upc_check_digit_is_a_warning_by_default() {
    let checked = upc_file(&rules(), "036000291453");
    let row = only_row(&checked);
    let issue = the_warning(row);
    assert_at(issue, Code::UpcCheckDigit, 2, Some("C2"), Some("upc"));
    assert_says(issue, &["036000291453", "check digit"]);
    let item = row.item.as_ref().expect("a warning does not reject");
    assert_eq!(item.ids.upc.as_deref(), Some("036000291453"));
}

#[test]
fn upc_check_digit_is_an_error_when_configured() {
    let mut rules = rules();
    rules.upc_check = UpcCheck::Error;
    let checked = upc_file(&rules, "036000291453");
    let row = only_row(&checked);
    assert_at(
        the_error(row),
        Code::UpcCheckDigit,
        2,
        Some("C2"),
        Some("upc"),
    );
    assert!(row.warnings.is_empty());
    assert_eq!(row.ids().sku.as_deref(), Some("A"));
}

#[test]
fn upc_check_digit_error_keeps_the_upc_as_a_listed_identifier() {
    let mut rules = rules();
    rules.upc_check = UpcCheck::Error;
    let checked = csv_with(&rules, "store,upc,qty\n11,036000291453,5\n");
    let row = only_row(&checked);
    assert_eq!(the_error(row).code, Code::UpcCheckDigit);
    assert_eq!(row.ids().upc.as_deref(), Some("036000291453"));
}

#[test]
fn upc_check_digit_is_not_checked_when_off() {
    let mut rules = rules();
    rules.upc_check = UpcCheck::Off;
    let checked = upc_file(&rules, "036000291453");
    let row = only_row(&checked);
    assert!(row.errors.is_empty() && row.warnings.is_empty(), "{row:#?}");
    let item = row.item.as_ref().expect("valid");
    assert_eq!(item.ids.upc.as_deref(), Some("036000291453"));
}

#[test]
fn upc_zeros_restored() {
    let checked = upc_file(&rules(), "36000291452");
    let row = only_row(&checked);
    let issue = the_warning(row);
    assert_at(issue, Code::UpcZerosRestored, 2, Some("C2"), Some("upc"));
    assert_says(issue, &["36000291452", "036000291452"]);
    assert_eq!(issue.value.as_deref(), Some("36000291452"));
    let item = row.item.as_ref().expect("a warning does not reject");
    assert_eq!(item.ids.upc.as_deref(), Some("036000291452"));
    assert_eq!(row.ids().upc.as_deref(), Some("036000291452"));
}

#[test]
fn missing_location() {
    let checked = csv("store,sku,qty\n,A,5\n");
    let row = only_row(&checked);
    let issue = the_error(row);
    assert_at(
        issue,
        Code::MissingLocation,
        2,
        Some("A2"),
        Some("locationName"),
    );
    assert_says(issue, &["location"]);
    assert_eq!(row.location, None);
    assert_eq!(row.ids().sku.as_deref(), Some("A"));
}

#[test]
fn unknown_location_from_a_column() {
    let mut rules = rules();
    rules.locations = Some(vec!["11".into(), "12".into()]);
    let checked = csv_with(&rules, "store,sku,qty\n11,A,5\n13,B,5\n");
    assert_eq!(quantity(row(&checked, 2)), 5);
    let rejected = row(&checked, 3);
    let issue = the_error(rejected);
    assert_at(
        issue,
        Code::UnknownLocation,
        3,
        Some("A3"),
        Some("locationName"),
    );
    assert_says(issue, &["'13'", "allowed: '11', '12'"]);
    assert_eq!(issue.value.as_deref(), Some("13"));
    assert_eq!(location(&checked, rejected), Some("13"));
}

#[test]
fn unknown_location_from_the_default() {
    let mut rules = rules();
    rules.locations = Some(vec!["11".into()]);
    rules.default_location = Some("99".into());
    let checked = csv_with(&rules, "sku,qty\nA,5\n");
    let issue = only_error(&checked);
    assert_at(issue, Code::UnknownLocation, 2, None, Some("locationName"));
    assert_says(issue, &["'99'"]);
}

#[test]
fn too_many_attributes() {
    let cell = attributes(64).join(";");
    let issue = error_in_column("attributes", &cell);
    assert_at(
        &issue,
        Code::TooManyAttributes,
        2,
        Some("D2"),
        Some("attributes"),
    );
    assert_says(&issue, &["63", "64"]);
}

/// A cell of 100,000 distinct attributes is refused at the 64th, not
/// after comparing each with all the others.
#[test]
fn a_cell_of_a_hundred_thousand_attributes_is_refused_at_the_first_too_many() {
    let cell = attributes(100_000).join(";");
    let issue = error_in_column("attributes", &cell);
    assert_eq!(issue.code, Code::TooManyAttributes);
    assert_says(&issue, &["63", "64th"]);
    assert!(issue.message.len() < 300, "{}", issue.message);
    assert!(issue
        .value
        .as_ref()
        .is_some_and(|v| v.chars().count() <= 301));
}

/// A long cell is quoted shortened in the message and the value: a report
/// keeps up to 10,000 issues.
#[test]
fn a_long_value_is_quoted_shortened() {
    let long = "z".repeat(20_000);
    let issue = only_error(&quantity_file(&long)).clone();
    assert_eq!(issue.code, Code::NotAnInteger);
    assert_says(&issue, &["20000 characters"]);
    assert!(issue.message.len() < 400, "{}", issue.message);
    assert!(issue
        .value
        .as_ref()
        .is_some_and(|v| v.chars().count() == 301));
}

#[test]
fn sixty_three_attributes_fit_after_duplicates_merge() {
    let mut list = attributes(63);
    list.push("a0".into());
    list.push("a1".into());
    let checked = csv(&format!(
        "store,sku,qty,attributes\n11,A,5,{}\n",
        list.join("|")
    ));
    let item = only_row(&checked).item.as_ref().expect("valid");
    assert_eq!(item.attributes, attributes(63));
}

#[test]
fn attributes_split_on_semicolon_or_bar_dropping_empties_and_duplicates() {
    let checked = csv("store,sku,qty,attributes\n11,A,5, red ;;blue| |red|green;\n");
    let item = only_row(&checked).item.as_ref().expect("valid");
    assert_eq!(item.attributes, ["red", "blue", "green"]);
}

#[test]
fn a_too_long_location_is_only_value_too_long() {
    let long = "L".repeat(256);
    let checked = csv(&format!("store,sku,qty\n{long},A,5\n"));
    let issue = only_error(&checked);
    assert_at(
        issue,
        Code::ValueTooLong,
        2,
        Some("A2"),
        Some("locationName"),
    );
}

// ---------------------------------------------------------------------------
// File errors.

#[test]
fn missing_column_quantity() {
    let checked = csv("Store,SKU,Description\n11,A,thing\n");
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::MissingColumn);
    assert_eq!(issue.place.row, Some(1));
    assert_says(
        issue,
        &["quantity", "\"Store\"", "\"SKU\"", "\"Description\""],
    );
}

#[test]
fn missing_column_identifier() {
    let checked = csv("Store,Qty,Description\n11,5,thing\n");
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::MissingColumn);
    assert_says(issue, &["identifier", "sku", "\"Qty\""]);
}

#[test]
fn missing_column_location_without_any_other_source() {
    let checked = csv("sku,qty\nA,5\n");
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::MissingColumn);
    assert_says(issue, &["location", "import.default_location"]);
}

#[test]
fn missing_column_location_when_the_file_name_does_not_match() {
    let mut rules = rules();
    rules.location_from_filename = Some(regex::Regex::new(r"^store(?P<location>\d+)").unwrap());
    let checked = check("stock.csv", b"sku,qty\nA,5\n", &rules);
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::MissingColumn);
    assert_says(issue, &["location", "file name"]);
}

#[test]
fn no_header_row_is_missing_column() {
    let checked = csv("hello\nworld\n");
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::MissingColumn);
    assert_says(issue, &["header", "\"hello\"", "quantity"]);
}

#[test]
fn ambiguous_column() {
    let checked = csv("store,sku,On Hand,Available\n11,A,5,4\n");
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::AmbiguousColumn);
    assert_eq!(issue.place.cell.as_deref(), Some("D1"));
    assert_says(
        issue,
        &["\"On Hand\"", "\"Available\"", "quantity", "ignore"],
    );
}

#[test]
fn ambiguous_column_resolved_by_ignoring_one() {
    let mut rules = rules();
    rules
        .columns
        .insert(normalise_header("Available"), ColumnTarget::Ignore);
    let checked = csv_with(&rules, "store,sku,On Hand,Available\n11,A,5,4\n");
    assert_eq!(quantity(only_row(&checked)), 5);
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
}

#[test]
fn unsupported_format() {
    let checked = check("stock.doc", b"store,sku,qty\n11,A,5\n", &rules());
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::UnsupportedFormat);
    assert_says(issue, &[".doc", ".csv"]);
}

#[test]
fn unreadable_empty_file() {
    let checked = check("stock.csv", b"", &rules());
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::UnreadableFile);
    assert_says(issue, &["empty"]);
}

#[test]
fn unreadable_text_named_as_a_workbook() {
    let checked = check("stock.xlsx", b"store,sku,qty\n11,A,5\n", &rules());
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::UnreadableFile);
    assert_says(issue, &[".xlsx", "plain text"]);
}

#[test]
fn file_too_large() {
    let text = "store,sku,qty\n11,A,5\n";
    let mut rules = rules();
    rules.max_file_bytes = text.len() as u64 - 1;
    let issue = file_error(&csv_with(&rules, text)).clone();
    assert_eq!(issue.code, Code::FileTooLarge);
    assert_says(&issue, &["import.max_file_bytes"]);
    rules.max_file_bytes = text.len() as u64;
    assert_eq!(rows(&csv_with(&rules, text)).len(), 1);
}

#[test]
fn too_many_rows() {
    let mut rules = rules();
    rules.max_rows = 2;
    let issue = file_error(&csv_with(&rules, "store,sku,qty\n11,A,1\n11,B,2\n11,C,3\n")).clone();
    assert_eq!(issue.code, Code::TooManyRows);
    assert_says(&issue, &["import.max_rows"]);
    assert_eq!(
        rows(&csv_with(&rules, "store,sku,qty\n11,A,1\n11,B,2\n")).len(),
        2
    );
}

// ---------------------------------------------------------------------------
// Warnings.

#[test]
fn unknown_column_warning() {
    let checked = csv("store,sku,qty,Description\n11,A,5,thing\n");
    assert_eq!(codes(&checked.warnings), [Code::UnknownColumn]);
    let issue = &checked.warnings[0];
    assert_at(
        issue,
        Code::UnknownColumn,
        1,
        Some("D1"),
        Some("Description"),
    );
    assert_says(issue, &["\"Description\"", "[columns]"]);
    assert_eq!(quantity(only_row(&checked)), 5);
}

#[test]
fn extra_cells_warning() {
    let checked = csv("store,sku,qty\n11,A,5,oops\n11,B,6,,\n");
    let issue = the_warning(row(&checked, 2));
    assert_at(issue, Code::ExtraCells, 2, None, None);
    assert_says(issue, &["4", "3"]);
    assert_eq!(quantity(row(&checked, 2)), 5);
    assert!(row(&checked, 3).warnings.is_empty(), "empty trailing cells");
}

#[test]
fn extra_cells_beyond_the_named_header_cells() {
    let checked = csv("store,sku,qty,\n11,A,5,oops\n");
    assert_eq!(the_warning(only_row(&checked)).code, Code::ExtraCells);
}

#[test]
fn encoding_fallback_warning() {
    let checked = check("stock.csv", b"store,sku,qty\n11,Caf\xE9,5\n", &rules());
    assert_eq!(codes(&checked.warnings), [Code::EncodingFallback]);
    assert_says(&checked.warnings[0], &["Windows-1252", "UTF-8"]);
    assert_eq!(only_row(&checked).ids().sku.as_deref(), Some("Café"));
}

#[test]
fn empty_sheet_warning() {
    let checked = csv("store,sku,qty\n");
    assert!(rows(&checked).is_empty());
    assert_eq!(codes(&checked.warnings), [Code::EmptySheet]);
    assert_says(&checked.warnings[0], &["no data rows"]);
}

#[test]
fn an_errors_report_dropped_back_has_no_unknown_error_column() {
    let text = "store,sku,qty,error\n11,A,5,quantity must be 0 or more\n";
    let checked = check("stock.17.errors.csv", text.as_bytes(), &rules());
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    assert_eq!(quantity(only_row(&checked)), 5);
    assert_eq!(codes(&csv(text).warnings), [Code::UnknownColumn]);
}

// ---------------------------------------------------------------------------
// Headers.

#[test]
fn header_below_a_title_row() {
    let checked = csv("Weekly stock report,,\nStore,SKU,Qty On Hand\n11,A,x\n11,B,4\n");
    let issue = the_error(row(&checked, 3));
    assert_at(issue, Code::NotAnInteger, 3, Some("C3"), Some("quantity"));
    assert_eq!(quantity(row(&checked, 4)), 4);
    assert_eq!(rows(&checked).len(), 2);
}

#[test]
fn header_aliases_from_the_spec() {
    let cases = [
        ("Store,SKU,Qty On Hand", "sku X1"),
        ("Store #,Item SKU,Qty_On-Hand", "sku X1"),
        ("Location ID,Part No.,QOH", "partNumber X1"),
        ("Warehouse,MPN,Available Qty", "partNumber X1"),
        ("Site,Barcode,On-Hand", "upc X1"),
        ("store_number,UPC Code,Quantity On Hand", "upc X1"),
    ];
    for (header, ids) in cases {
        let mut rules = rules();
        rules.upc_check = UpcCheck::Off;
        let value = if ids.starts_with("upc") {
            "036000291452"
        } else {
            "X1"
        };
        let checked = csv_with(&rules, &format!("{header}\n11,{value},5\n"));
        assert!(
            checked.warnings.is_empty(),
            "{header}: {:#?}",
            checked.warnings
        );
        let row = only_row(&checked);
        assert_eq!(quantity(row), 5, "{header}");
        assert_eq!(location(&checked, row), Some("11"), "{header}");
        assert_eq!(row.ids().describe(), ids.replace("X1", value), "{header}");
    }
}

#[test]
fn header_aliases_for_optional_fields() {
    let checked = csv(
        "Loc,SKU,Qty,Bin,Min Qty,Safety,Currency ID,Retail,Attrs,Mfr ID\n\
         11,A,5,2,1,3,840,4.5,x,9\n",
    );
    let row = only_row(&checked);
    let item = row.item.as_ref().expect("valid");
    assert_eq!(item.optionals.bin_id, Some(2));
    assert_eq!(item.optionals.floor, Some(1));
    assert_eq!(item.optionals.safety_stock, Some(3));
    assert_eq!(item.optionals.currency_id, Some(840));
    assert_eq!(item.optionals.retail_price, Some(4.5));
    assert_eq!(item.attributes, ["x"]);
    assert_eq!(row.manufacturer_id, Some(9));
}

#[test]
fn configured_column_aliases() {
    let mut rules = rules();
    rules.columns.insert(
        normalise_header("Stock On Hand"),
        ColumnTarget::Field(Field::Quantity),
    );
    rules
        .columns
        .insert(normalise_header("Artikel"), ColumnTarget::Field(Field::Sku));
    let checked = csv_with(&rules, "Filiale,Artikel,Stock On Hand,Store\nx,A,5,11\n");
    // "Filiale" is unknown; the configured aliases are read.
    assert_eq!(codes(&checked.warnings), [Code::UnknownColumn]);
    let row = only_row(&checked);
    assert_eq!(quantity(row), 5);
    assert_eq!(row.ids().sku.as_deref(), Some("A"));
    assert_eq!(location(&checked, row), Some("11"));
}

#[test]
fn header_cells_are_trimmed_and_case_insensitive() {
    let checked = csv("  STORE , Sku ,  qty  \n11,A,5\n");
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    assert_eq!(quantity(only_row(&checked)), 5);
}

// ---------------------------------------------------------------------------
// Encodings, line ends and row numbers.

#[test]
fn utf8_byte_order_mark_is_dropped() {
    let checked = csv("\u{feff}sku,qty,store\nA,x,11\n");
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    assert_at(
        only_error(&checked),
        Code::NotAnInteger,
        2,
        Some("B2"),
        Some("quantity"),
    );
}

#[test]
fn utf16le_with_byte_order_mark() {
    let bytes = utf16le("store,sku,qty\r\n11,Café,5\r\n11,B,x\r\n");
    let checked = check("stock.csv", &bytes, &rules());
    assert!(checked.warnings.is_empty(), "{:#?}", checked.warnings);
    assert_eq!(row(&checked, 2).ids().sku.as_deref(), Some("Café"));
    assert_eq!(quantity(row(&checked, 2)), 5);
    assert_at(
        the_error(row(&checked, 3)),
        Code::NotAnInteger,
        3,
        Some("C3"),
        Some("quantity"),
    );
}

#[test]
fn utf16le_semicolon_file_keeps_the_decimal_comma() {
    let bytes = utf16le("store;sku;qty;price\r\n11;A;5;12,5\r\n");
    let checked = check("stock.txt", &bytes, &rules());
    let item = only_row(&checked).item.as_ref().expect("valid");
    assert_eq!(item.optionals.retail_price, Some(12.5));
}

#[test]
fn crlf_line_ends() {
    let checked = csv("store,sku,qty\r\n11,A,5\r\n11,B,1.5\r\n");
    assert_eq!(quantity(row(&checked, 2)), 5);
    let issue = the_error(row(&checked, 3));
    assert_at(issue, Code::NotAnInteger, 3, Some("C3"), Some("quantity"));
    assert_eq!(issue.value.as_deref(), Some("1.5"));
}

#[test]
fn cr_only_line_ends() {
    let checked = csv("store,sku,qty\r11,A,5\r11,B,1.5\r");
    let issue = the_error(row(&checked, 3));
    assert_at(issue, Code::NotAnInteger, 3, Some("C3"), Some("quantity"));
}

#[test]
fn a_quoted_newline_keeps_the_start_line_as_row_number() {
    let checked = csv("store,sku,qty,note\n11,A,x,\"two\nlines\"\n11,B,y,z\n");
    let numbers: Vec<u64> = rows(&checked).iter().map(|r| r.number).collect();
    assert_eq!(numbers, [2, 4]);
    assert_at(
        the_error(row(&checked, 2)),
        Code::NotAnInteger,
        2,
        Some("C2"),
        Some("quantity"),
    );
    assert_at(
        the_error(row(&checked, 4)),
        Code::NotAnInteger,
        4,
        Some("C4"),
        Some("quantity"),
    );
}

#[test]
fn blank_lines_are_skipped_but_counted() {
    let checked = csv("store,sku,qty\n\n11,A,5\n,,\n  \n11,B,x\n");
    let numbers: Vec<u64> = rows(&checked).iter().map(|r| r.number).collect();
    assert_eq!(numbers, [3, 6]);
    assert_at(
        the_error(row(&checked, 6)),
        Code::NotAnInteger,
        6,
        Some("C6"),
        Some("quantity"),
    );
}

#[test]
fn blank_lines_before_the_header_are_counted() {
    let checked = csv("\n\nstore,sku,qty\n11,A,x\n");
    assert_at(
        only_error(&checked),
        Code::NotAnInteger,
        4,
        Some("C4"),
        Some("quantity"),
    );
}

#[test]
fn tab_and_pipe_delimited_files() {
    for d in ["\t", "|"] {
        let text = format!("store{d}sku{d}qty{d}price\n11{d}A{d}5{d}2.5\n");
        let checked = csv(&text);
        let item = only_row(&checked).item.as_ref().expect("valid");
        assert_eq!(item.quantity, 5, "{d:?}");
        assert_eq!(item.optionals.retail_price, Some(2.5), "{d:?}");
    }
}

// ---------------------------------------------------------------------------
// Cells.

#[test]
fn one_leading_apostrophe_is_dropped() {
    let checked = csv("store,sku,part,qty\n'11,'00123,''P,'5\n");
    let row = only_row(&checked);
    assert_eq!(row.ids().sku.as_deref(), Some("00123"));
    assert_eq!(row.ids().part_number.as_deref(), Some("'P"));
    assert_eq!(location(&checked, row), Some("11"));
    assert_eq!(quantity(row), 5);
}

#[test]
fn cells_are_trimmed() {
    let checked = csv("store,sku,qty,attributes\n  11 , A1 , 5 ,\" x ; y \"\n");
    let row = only_row(&checked);
    assert_eq!(location(&checked, row), Some("11"));
    assert_eq!(row.ids().sku.as_deref(), Some("A1"));
    let item = row.item.as_ref().expect("valid");
    assert_eq!(item.quantity, 5);
    assert_eq!(item.attributes, ["x", "y"]);
}

#[test]
fn a_blank_identifier_cell_is_absent() {
    let checked = csv("store,sku,part,qty\n11,   ,P,5\n");
    let row = only_row(&checked);
    assert_eq!(row.ids().sku, None);
    assert_eq!(row.ids().part_number.as_deref(), Some("P"));
}

// ---------------------------------------------------------------------------
// Locations.

#[test]
fn location_from_a_column() {
    let checked = csv("store,sku,qty\n11,A,5\n12,B,6\n11,C,7\n");
    assert_eq!(checked.locations, ["11", "12"]);
    assert_eq!(location(&checked, row(&checked, 4)), Some("11"));
    assert_eq!(location(&checked, row(&checked, 3)), Some("12"));
    assert!(!checked.location_outside_columns);
}

#[test]
fn location_from_the_file_name() {
    let mut rules = rules();
    rules.location_from_filename = Some(regex::Regex::new(r"^store(?P<location>\d+)").unwrap());
    let checked = check("store12.csv", b"sku,qty\nA,5\n", &rules);
    let row = only_row(&checked);
    assert_eq!(location(&checked, row), Some("12"));
    assert_eq!(quantity(row), 5);
    assert!(checked.location_outside_columns);
}

#[test]
fn location_from_the_default() {
    let mut rules = rules();
    rules.default_location = Some("11".into());
    let checked = csv_with(&rules, "sku,qty\nA,5\n");
    assert_eq!(location(&checked, only_row(&checked)), Some("11"));
    assert!(checked.location_outside_columns);
}

#[test]
fn the_file_name_wins_over_the_default() {
    let mut rules = rules();
    rules.default_location = Some("11".into());
    rules.location_from_filename = Some(regex::Regex::new(r"^store(?P<location>\d+)").unwrap());
    let checked = check("store12.csv", b"sku,qty\nA,5\n", &rules);
    assert_eq!(location(&checked, only_row(&checked)), Some("12"));
    let checked = check("other.csv", b"sku,qty\nA,5\n", &rules);
    assert_eq!(location(&checked, only_row(&checked)), Some("11"));
}

#[test]
fn a_location_cell_wins_over_the_fallback() {
    let mut rules = rules();
    rules.location_from_filename = Some(regex::Regex::new(r"^store(?P<location>\d+)").unwrap());
    let checked = check("store12.csv", b"store,sku,qty\n11,A,5\n,B,6\n", &rules);
    assert_eq!(location(&checked, row(&checked, 2)), Some("11"));
    assert_eq!(location(&checked, row(&checked, 3)), Some("12"));
    let mut rules = self::rules();
    rules.default_location = Some("99".into());
    let checked = csv_with(&rules, "store,sku,qty\n11,A,5\n,B,6\n");
    assert_eq!(location(&checked, row(&checked, 2)), Some("11"));
    assert_eq!(location(&checked, row(&checked, 3)), Some("99"));
}

#[test]
fn too_many_locations() {
    let mut rules = rules();
    rules.max_locations = 2;
    let text = "store,sku,qty\n11,A,1\n12,A,2\n11,B,3\n12,B,4\n";
    assert_eq!(rows(&csv_with(&rules, text)).len(), 4);
    let issue = file_error(&csv_with(&rules, &format!("{text}13,A,5\n"))).clone();
    assert_eq!(issue.code, Code::TooManyLocations);
    assert_eq!(issue.place.row, Some(6));
    assert_says(&issue, &["import.max_locations", "'13'"]);
}

#[test]
fn a_row_that_cannot_be_read_before_the_header_is_the_error_given() {
    // A title row of more cells than a record may have: the reason the
    // header was never reached, not "the first row reads: (nothing)".
    let text = format!(
        "{}\nlocation,sku,qty\nA,S1,1\n",
        vec!["t"; 70_000].join(",")
    );
    let checked = csv_with(&rules(), &text);
    let issue = file_error(&checked);
    assert_eq!(issue.code, Code::UnreadableFile, "{issue:?}");
    assert_says(issue, &["line 1", "cells"]);
}
