//! Spreadsheets, JSON request bodies and ZIP archives through the real
//! binary (SPEC §3, §4.3, §4.5, §5): what each format imports, and where
//! reports say a problem is (`sheet`/`cell`, or a JSON `pointer`).
//!
//! `.xlsx` inputs are written by `rust_xlsxwriter` inside the tests, ZIP
//! archives by the `zip` crate, or field by field ([`raw_zip`]) where no
//! writer makes them (encrypted members, bombs, lying headers); `.xls` and
//! `.ods` come from `tests/fixtures/` (see its README).

mod common;

use std::io::{Cursor, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook, XlsxError};
use serde_json::{json, Value};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

// ---------------------------------------------------------------------------
// Helpers.

/// Builds a workbook with `build` and saves it as `name` in the root.
fn xlsx(
    env: &Env,
    name: &str,
    build: impl FnOnce(&mut Workbook) -> Result<(), XlsxError>,
) -> PathBuf {
    let mut workbook = Workbook::new();
    build(&mut workbook).expect("build the workbook");
    let path = env.root().join(name);
    workbook.save(&path).expect("save the workbook");
    path
}

/// A cell value for [`write_rows`].
#[derive(Clone, Copy)]
enum V<'a> {
    S(&'a str),
    N(f64),
    Blank,
}
use V::{Blank, N, S};

/// Writes `rows` into `sheet` starting at (`row`, `col`), 0-based.
fn write_rows(
    sheet: &mut rust_xlsxwriter::Worksheet,
    row: u32,
    col: u16,
    rows: &[&[V]],
) -> Result<(), XlsxError> {
    for (r, cells) in rows.iter().enumerate() {
        for (c, value) in cells.iter().enumerate() {
            let (r, c) = (row + r as u32, col + c as u16);
            match value {
                S(text) => {
                    sheet.write_string(r, c, *text)?;
                }
                N(number) => {
                    sheet.write_number(r, c, *number)?;
                }
                Blank => {}
            }
        }
    }
    Ok(())
}

/// A ZIP archive of `(name, bytes)` members, deflated.
fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(members, CompressionMethod::Deflated)
}

fn zip_with(members: &[(&str, &[u8])], method: CompressionMethod) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in members {
        writer.start_file(*name, options).expect("start member");
        writer.write_all(bytes).expect("write member");
    }
    writer.finish().expect("finish the archive").into_inner()
}

/// A committed fixture from `tests/fixtures/`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The entries of `report[list]` (`errors` or `warnings`) with `code`.
#[track_caller]
fn entries<'a>(report: &'a Value, list: &str, code: &str) -> Vec<&'a Value> {
    report[list]
        .as_array()
        .unwrap_or_else(|| panic!("report without {list}: {report:#}"))
        .iter()
        .filter(|e| e["code"] == code)
        .collect()
}

/// The one entry of `report[list]` with `code`.
#[track_caller]
fn only<'a>(report: &'a Value, list: &str, code: &str) -> &'a Value {
    let found = entries(report, list, code);
    assert_eq!(found.len(), 1, "expected one {code} in {list}: {report:#}");
    found[0]
}

/// The error at `cell` (`C5`) of `sheet`.
#[track_caller]
fn error_at<'a>(report: &'a Value, sheet: &str, cell: &str) -> &'a Value {
    report["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("report without errors: {report:#}"))
        .iter()
        .find(|e| e["sheet"] == sheet && e["cell"] == cell)
        .unwrap_or_else(|| panic!("no error at {sheet}!{cell}: {report:#}"))
}

/// The one file error of a rejected file, with its code.
#[track_caller]
fn file_error<'a>(report: &'a Value, code: &str) -> &'a Value {
    assert_eq!(report["status"], "rejected", "{report:#}");
    let errors = report["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "expected one file error: {report:#}");
    assert_eq!(errors[0]["code"], code, "{report:#}");
    &errors[0]
}

/// Asserts the outbox holds `<stem>.<id>.json` and `<stem>.<id>.html`.
#[track_caller]
fn expect_report_files(env: &Env, stem: &str, id: i64) {
    let files = env.outbox_files_of(stem);
    assert!(
        files.contains(&format!("{stem}.{id}.json"))
            && files.contains(&format!("{stem}.{id}.html")),
        "expected {stem}.{id}.json and .html in the outbox: {:?}",
        env.outbox_files()
    );
}

// ---------------------------------------------------------------------------
// 1. Several sheets; errors name the sheet and cell.

#[test]
fn two_sheet_workbook_imports_both_and_errors_name_sheet_and_cell() {
    let env = Env::new();
    xlsx(&env, "stores.xlsx", |wb| {
        let s1 = wb.add_worksheet();
        write_rows(
            s1,
            0,
            0,
            &[
                &[S("location"), S("sku"), S("qty")],
                &[N(11.0), S("A"), N(5.0)],
                &[N(11.0), S("B"), N(6.0)],
            ],
        )?;
        let s2 = wb.add_worksheet().set_name("Sheet2")?;
        write_rows(
            s2,
            0,
            0,
            &[
                &[S("location"), S("sku"), S("qty")],
                &[N(12.0), S("A"), N(1.0)],
                &[N(12.0), S("B"), N(2.0)],
                &[N(12.0), S("C"), N(3.0)],
                &[N(12.0), S("D"), S("ten")],
            ],
        )?;
        Ok(())
    });
    let run = env.import(&["stores.xlsx"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["format"], "xlsx", "{report:#}");
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(
        report["rows"],
        json!({"total": 6, "accepted": 5, "rejected": 1})
    );
    assert_eq!(
        report_jobs(&report),
        vec![
            ("11".into(), 2, 0, "success".into()),
            ("12".into(), 3, 0, "success".into()),
        ]
    );
    let error = only(&report, "errors", "not-an-integer");
    assert_eq!(error["sheet"], "Sheet2", "{error:#}");
    assert_eq!(error["cell"], "C5", "{error:#}");
    assert_eq!(error["row"], 5, "{error:#}");
    assert_eq!(error["column"], "quantity", "{error:#}");
    assert_eq!(error["value"], "ten", "{error:#}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("ten"),
        "{error:#}"
    );

    let id = import_id(&report);
    let html = env.outbox_text(&format!("stores.{id}.html"));
    assert!(html.contains("Sheet2!C5"), "{html}");
    // The row to fix goes to the errors CSV with its cells as written.
    let rows = env.outbox_csv(&format!("stores.{id}.errors.csv"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        ["12", "D", "ten"]
            .iter()
            .all(|c| rows[1].iter().any(|r| r == c)),
        "{rows:?}"
    );

    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("11", "A", 5),
            ("11", "B", 6),
            ("12", "A", 1),
            ("12", "B", 2),
            ("12", "C", 3),
        ])
    );
}

#[test]
fn cells_keep_their_sheet_columns_when_the_table_does_not_start_at_a1() {
    // The table starts at B3: column A and rows 1–2 are empty, so the
    // quantity column is D; row 4 is blank, so the bad cell is D6.
    let env = Env::new();
    xlsx(&env, "offset.xlsx", |wb| {
        let sheet = wb.add_worksheet().set_name("Counts")?;
        write_rows(
            sheet,
            2,
            1,
            &[
                &[S("Store"), S("SKU"), S("Qty")],
                &[Blank, Blank, Blank],
                &[S("11"), S("A"), N(4.0)],
                &[S("11"), S("B"), N(-2.0)],
            ],
        )?;
        Ok(())
    });
    let report = {
        let run = env.import(&["offset.xlsx"]);
        run.code(1);
        run.report()
    };
    let error = only(&report, "errors", "out-of-range");
    assert_eq!(error["sheet"], "Counts", "{error:#}");
    assert_eq!(error["cell"], "D6", "{error:#}");
    assert_eq!(error["row"], 6, "{error:#}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 4)])
    );
}

// ---------------------------------------------------------------------------
// 2. Identifiers stored as numbers.

#[test]
fn numeric_identifiers_lose_no_digits_and_upc_zeros_are_restored() {
    let env = Env::new();
    xlsx(&env, "numbers.xlsx", |wb| {
        let sheet = wb.add_worksheet();
        write_rows(
            sheet,
            0,
            0,
            &[
                &[S("Store"), S("SKU"), S("UPC"), S("Qty On Hand"), S("Part")],
                &[N(11.0), N(101010.0), N(36000291452.0), N(5.0), N(7.0)],
            ],
        )?;
        Ok(())
    });
    let run = env.import(&["numbers.xlsx"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["status"], "applied", "{report:#}");
    let warning = only(&report, "warnings", "upc-zeros-restored");
    assert_eq!(warning["sheet"], "Sheet1", "{warning:#}");
    assert_eq!(warning["cell"], "C2", "{warning:#}");
    assert_eq!(warning["value"], "36000291452", "{warning:#}");

    let stock = env.stock(&[]);
    let rec = record(&stock, "11", "101010");
    assert_eq!(rec["upc"], "036000291452", "{rec:#}");
    assert_eq!(rec["partNumber"], "7", "{rec:#}");
    assert_eq!(rec["quantity"], 5, "{rec:#}");
    // The restored UPC matches the same product given with its zero.
    assert_eq!(env.stock(&["--upc", "036000291452"]).len(), 1);
}

// ---------------------------------------------------------------------------
// 3. Quantity cells of every kind.

#[test]
fn quantity_cells_that_are_not_whole_numbers_say_what_they_held() {
    let env = Env::new();
    xlsx(&env, "kinds.xlsx", |wb| {
        let date = Format::new().set_num_format("yyyy-mm-dd");
        let sheet = wb.add_worksheet();
        write_rows(sheet, 0, 0, &[&[S("location"), S("sku"), S("qty")]])?;
        for (row, sku) in ["D1", "D2", "D3", "D4", "D5", "D6"].iter().enumerate() {
            sheet.write_string(row as u32 + 1, 0, "11")?;
            sheet.write_string(row as u32 + 1, 1, *sku)?;
        }
        sheet.write_datetime_with_format(1, 2, &ExcelDateTime::from_ymd(2026, 1, 5)?, &date)?;
        sheet.write_boolean(2, 2, true)?;
        sheet.write_formula(3, 2, Formula::new("=NA()").set_result("#N/A"))?;
        sheet.write_number(4, 2, 1.5)?;
        sheet.write_number(5, 2, 101.0)?;
        sheet.write_formula(6, 2, Formula::new("=100+1").set_result("101"))?;
        Ok(())
    });
    let run = env.import(&["kinds.xlsx"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(
        report["rows"],
        json!({"total": 6, "accepted": 2, "rejected": 4})
    );
    assert_eq!(
        entries(&report, "errors", "not-an-integer").len(),
        4,
        "{report:#}"
    );
    for (cell, held) in [
        ("C2", &["date", "2026-01-05"][..]),
        ("C3", &["TRUE"][..]),
        ("C4", &["#N/A"][..]),
        ("C5", &["1.5"][..]),
    ] {
        let error = error_at(&report, "Sheet1", cell);
        assert_eq!(error["code"], "not-an-integer", "{error:#}");
        let message = error["message"].as_str().unwrap_or_default();
        for word in held {
            assert!(message.contains(word), "{cell}: {message:?} lacks {word:?}");
        }
    }
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "D5", 101), ("11", "D6", 101)])
    );
}

#[test]
fn a_failed_formula_is_no_sku_and_no_location() {
    let env = Env::new();
    // A VLOOKUP that found nothing leaves #N/A in the cell: stored as text
    // it would become a product or a location named "#N/A".
    xlsx(&env, "lookups.xlsx", |wb| {
        let sheet = wb.add_worksheet();
        write_rows(sheet, 0, 0, &[&[S("location"), S("sku"), S("qty")]])?;
        sheet.write_string(1, 0, "11")?;
        sheet.write_formula(1, 1, Formula::new("=NA()").set_result("#N/A"))?;
        sheet.write_number(1, 2, 4.0)?;
        sheet.write_formula(2, 0, Formula::new("=NA()").set_result("#N/A"))?;
        sheet.write_string(2, 1, "E2")?;
        sheet.write_number(2, 2, 5.0)?;
        sheet.write_string(3, 0, "11")?;
        sheet.write_string(3, 1, "E3")?;
        sheet.write_number(3, 2, 6.0)?;
        Ok(())
    });
    let run = env.import(&["lookups.xlsx"]);
    run.code(1);
    let report = run.report();
    assert_eq!(
        report["rows"],
        json!({"total": 3, "accepted": 1, "rejected": 2}),
        "{report:#}"
    );
    for (cell, code) in [("B2", "missing-identifier"), ("A3", "missing-location")] {
        let error = error_at(&report, "Sheet1", cell);
        assert_eq!(error["code"], code, "{error:#}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains("#N/A"), "{cell}: {message}");
    }
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "E3", 6)])
    );
}

/// Rewrites one part of an xlsx (a zip) through `edit`, keeping the rest.
fn edit_xlsx_part(path: &Path, part: &str, edit: impl Fn(String) -> String) {
    let bytes = std::fs::read(path).expect("read the workbook");
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("open the workbook");
    let mut out = ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("a part");
        let name = entry.name().expect("a part name").to_string();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read a part");
        if name == part {
            content = edit(String::from_utf8(content).expect("XML")).into_bytes();
        }
        out.start_file(name, SimpleFileOptions::default())
            .expect("start a part");
        out.write_all(&content).expect("write a part");
    }
    let out = out.finish().expect("finish the workbook").into_inner();
    std::fs::write(path, out).expect("write the workbook");
}

#[test]
fn an_error_value_calamine_does_not_name_is_that_cells_error_not_an_unreadable_sheet() {
    // calamine 0.38.0 knows seven error values; any other one in a cell
    // (Excel 365's #SPILL! and #CALC! from dynamic arrays, the
    // #GETTING_DATA rust_xlsxwriter itself writes) made the whole sheet
    // unreadable (patches/calamine/PATCH.md).
    let env = Env::new();
    let path = xlsx(&env, "spills.xlsx", |wb| {
        let sheet = wb.add_worksheet();
        write_rows(sheet, 0, 0, &[&[S("location"), S("sku"), S("qty")]])?;
        sheet.write_string(1, 0, "11")?;
        // Written as an error (t="e") by rust_xlsxwriter as it is.
        sheet.write_formula(
            1,
            1,
            Formula::new("=WEBSERVICE(\"x\")").set_result("#GETTING_DATA"),
        )?;
        sheet.write_number(1, 2, 4.0)?;
        sheet.write_string(2, 0, "11")?;
        sheet.write_string(2, 1, "F3")?;
        // Text results, made errors below: as Excel writes a spill that
        // is blocked, and an array formula that came to nothing.
        sheet.write_formula(2, 2, Formula::new("=SEQUENCE(3)").set_result("SPILL-MARK"))?;
        sheet.write_formula(
            3,
            0,
            Formula::new("=FILTER(A1:A2,A1:A2=0)").set_result("CALC-MARK"),
        )?;
        sheet.write_string(3, 1, "F4")?;
        sheet.write_number(3, 2, 5.0)?;
        sheet.write_string(4, 0, "11")?;
        sheet.write_string(4, 1, "F5")?;
        sheet.write_number(4, 2, 6.0)?;
        Ok(())
    });
    edit_xlsx_part(&path, "xl/worksheets/sheet1.xml", |xml| {
        assert!(
            xml.contains("SPILL-MARK") && xml.contains("CALC-MARK"),
            "{xml}"
        );
        xml.replace(" t=\"str\"", " t=\"e\"")
            .replace("SPILL-MARK", "#SPILL!")
            .replace("CALC-MARK", "#CALC!")
    });
    let run = env.import(&["spills.xlsx"]);
    run.code(1);
    let report = run.report();
    assert_eq!(
        report["rows"],
        json!({"total": 4, "accepted": 1, "rejected": 3}),
        "{report:#}"
    );
    for (cell, code, held) in [
        ("B2", "missing-identifier", "#GETTING_DATA"),
        ("C3", "not-an-integer", "#SPILL!"),
        ("A4", "missing-location", "#CALC!"),
    ] {
        let error = error_at(&report, "Sheet1", cell);
        assert_eq!(error["code"], code, "{error:#}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(held), "{cell}: {message}");
    }
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "F5", 6)])
    );
}

// ---------------------------------------------------------------------------
// 4. Title rows and merged cells above or in the header.

#[test]
fn header_is_found_below_titles_and_merged_cells() {
    let env = Env::new();
    xlsx(&env, "titled.xlsx", |wb| {
        let plain = Format::new();
        // Sheet "Titled": a merged title over A1:D1, a merged "Stock"
        // group title over C2:D2, the header on row 3.
        let s1 = wb.add_worksheet().set_name("Titled")?;
        s1.merge_range(0, 0, 0, 3, "Weekly stock count, week 48", &plain)?;
        s1.merge_range(1, 2, 1, 3, "Stock", &plain)?;
        write_rows(
            s1,
            2,
            0,
            &[
                &[S("Store"), S("SKU"), S("Qty On Hand"), S("Price")],
                &[N(11.0), S("T1"), N(3.0), N(1.25)],
                &[N(11.0), S("T2"), S("x"), N(2.5)],
            ],
        )?;
        // Sheet "Merged": the quantity header itself merged over C1:D1.
        let s2 = wb.add_worksheet().set_name("Merged")?;
        write_rows(s2, 0, 0, &[&[S("Store"), S("SKU")]])?;
        s2.merge_range(0, 2, 0, 3, "Qty On Hand", &plain)?;
        write_rows(
            s2,
            1,
            0,
            &[&[N(12.0), S("M1"), N(8.0)], &[N(12.0), S("M2"), N(0.0)]],
        )?;
        Ok(())
    });
    let run = env.import(&["titled.xlsx"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(
        report["rows"],
        json!({"total": 4, "accepted": 3, "rejected": 1})
    );
    // Rows are the sheet's own numbers, title rows included.
    let error = only(&report, "errors", "not-an-integer");
    assert_eq!(
        (&error["sheet"], &error["cell"], &error["row"]),
        (&json!("Titled"), &json!("C5"), &json!(5)),
        "{error:#}"
    );
    assert!(
        entries(&report, "warnings", "no-header").is_empty(),
        "{report:#}"
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "T1", 3), ("12", "M1", 8), ("12", "M2", 0)])
    );
}

// ---------------------------------------------------------------------------
// 5. Which sheets are read.

#[test]
fn instructions_sheet_is_skipped_with_no_header_and_data_is_imported() {
    let env = Env::new();
    xlsx(&env, "with-instructions.xlsx", |wb| {
        let help = wb.add_worksheet().set_name("Instructions")?;
        write_rows(
            help,
            0,
            0,
            &[
                &[S("How to fill in this workbook")],
                &[S("One row per item; quantities are counts on hand.")],
                &[S("Send it back by Friday.")],
            ],
        )?;
        let data = wb.add_worksheet().set_name("Data")?;
        write_rows(
            data,
            0,
            0,
            &[
                &[S("Store"), S("SKU"), S("Qty")],
                &[N(11.0), S("A"), N(1.0)],
                &[N(11.0), S("B"), N(2.0)],
            ],
        )?;
        Ok(())
    });
    let run = env.import(&["with-instructions.xlsx"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["status"], "applied", "{report:#}");
    let warning = only(&report, "warnings", "no-header");
    assert_eq!(warning["sheet"], "Instructions", "{warning:#}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 1), ("11", "B", 2)])
    );
}

#[test]
fn workbook_without_any_header_is_rejected() {
    let env = Env::new();
    xlsx(&env, "no-header.xlsx", |wb| {
        let s1 = wb.add_worksheet().set_name("Read me")?;
        write_rows(s1, 0, 0, &[&[S("Nothing to see here")]])?;
        let s2 = wb.add_worksheet().set_name("Numbers")?;
        write_rows(
            s2,
            0,
            0,
            &[&[S("A"), S("5"), S("zz")], &[S("B"), S("6"), S("yy")]],
        )?;
        Ok(())
    });
    let run = env.import(&["no-header.xlsx"]);
    run.code(1);
    let report = run.report();
    file_error(&report, "missing-column");
    assert_eq!(report["jobs"], json!([]), "{report:#}");
    assert_eq!(env.stock(&[]), Vec::<Value>::new());
}

#[test]
fn hidden_sheets_are_skipped() {
    let env = Env::new();
    xlsx(&env, "hidden.xlsx", |wb| {
        let s1 = wb.add_worksheet();
        write_rows(
            s1,
            0,
            0,
            &[
                &[S("location"), S("sku"), S("qty")],
                &[N(11.0), S("A"), N(1.0)],
            ],
        )?;
        let s2 = wb.add_worksheet().set_name("Old counts")?;
        write_rows(
            s2,
            0,
            0,
            &[
                &[S("location"), S("sku"), S("qty")],
                &[N(99.0), S("Z"), N(9.0)],
            ],
        )?;
        s2.set_hidden(true);
        Ok(())
    });
    let run = env.import(&["hidden.xlsx"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(
        report_jobs(&report),
        vec![("11".into(), 1, 0, "success".into())]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 1)])
    );
}

#[test]
fn sheet_names_selects_the_sheets_read() {
    let env = Env::with_config("[sheet]\nnames = [\"Sheet2\"]\n");
    xlsx(&env, "select.xlsx", |wb| {
        let s1 = wb.add_worksheet();
        write_rows(
            s1,
            0,
            0,
            &[
                &[S("location"), S("sku"), S("qty")],
                &[N(11.0), S("A"), N(1.0)],
            ],
        )?;
        let s2 = wb.add_worksheet().set_name("Sheet2")?;
        write_rows(
            s2,
            0,
            0,
            &[
                &[S("location"), S("sku"), S("qty")],
                &[N(12.0), S("B"), N(2.0)],
            ],
        )?;
        Ok(())
    });
    let run = env.import(&["select.xlsx"]);
    run.code(0);
    let report = run.report();
    assert_eq!(
        report_jobs(&report),
        vec![("12".into(), 1, 0, "success".into())]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("12", "B", 2)])
    );
}

#[test]
fn max_rows_counts_the_rows_of_every_sheet() {
    let env = Env::with_config("[import]\nmax_rows = 4\n");
    xlsx(&env, "rows.xlsx", |wb| {
        for (name, location) in [("Sheet1", 11.0), ("Sheet2", 12.0)] {
            let sheet = wb.add_worksheet().set_name(name)?;
            write_rows(
                sheet,
                0,
                0,
                &[
                    &[S("location"), S("sku"), S("qty")],
                    &[N(location), S("A"), N(1.0)],
                    &[N(location), S("B"), N(1.0)],
                    &[N(location), S("C"), N(1.0)],
                ],
            )?;
        }
        Ok(())
    });
    let run = env.import(&["rows.xlsx"]);
    run.code(1);
    file_error(&run.report(), "too-many-rows");
    assert_eq!(env.stock(&[]), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------
// 6. The location from the sheet name.

/// Sheets "11" and "12", each with SKU and quantity but no location column.
fn by_sheet_workbook(env: &Env) {
    xlsx(env, "by-sheet.xlsx", |wb| {
        for (name, sku, qty) in [("11", "A", 3.0), ("12", "B", 4.0)] {
            let sheet = wb.add_worksheet().set_name(name)?;
            write_rows(
                sheet,
                0,
                0,
                &[&[S("SKU"), S("Qty On Hand")], &[S(sku), N(qty)]],
            )?;
        }
        Ok(())
    });
}

#[test]
fn location_from_sheet_takes_the_location_from_the_sheet_name() {
    let env = Env::with_config("[import]\nlocation_from_sheet = true\n");
    by_sheet_workbook(&env);
    let run = env.import(&["by-sheet.xlsx"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(
        report_jobs(&report),
        vec![
            ("11".into(), 1, 0, "success".into()),
            ("12".into(), 1, 0, "success".into()),
        ]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 3), ("12", "B", 4)])
    );

    // Without the setting the same workbook names no location.
    let env = Env::new();
    by_sheet_workbook(&env);
    let run = env.import(&["by-sheet.xlsx"]);
    run.code(1);
    let error = file_error(&run.report(), "missing-column").clone();
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("location"),
        "{error:#}"
    );
}

// ---------------------------------------------------------------------------
// 7. .xls and .ods (committed fixtures), and the shipped samples.

#[test]
fn xls_fixture_imports_with_its_quantities() {
    let env = Env::new();
    std::fs::copy(fixture("store21.xls"), env.root().join("store21.xls")).expect("copy fixture");
    let run = env.import(&["store21.xls"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["format"], "xls", "{report:#}");
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("21", "X-1", 5), ("21", "X-2", 0), ("21", "101010", 12)])
    );
    let stock = env.stock(&[]);
    assert_eq!(record(&stock, "21", "X-1")["retailPrice"], 1.5);
}

/// Damaged `.xls` files found by the fault suite's mutations: one whose
/// sector chain loops (calamine 0.38 allocated until the process aborted),
/// one that tripped an assertion inside calamine (a panic). Each is one
/// clear report, and the process lives to say so.
#[test]
fn damaged_xls_files_are_one_report_not_a_crash() {
    for name in ["damaged-chain.xls", "damaged-assert.xls"] {
        let env = Env::new();
        std::fs::copy(fixture(name), env.root().join(name)).expect("copy fixture");
        let run = env.import(&[name]);
        run.code(1);
        let report = run.report();
        assert_eq!(report["status"], "rejected", "{name}: {report:#}");
        assert_eq!(
            report["errors"][0]["code"], "unreadable-file",
            "{name}: {report:#}"
        );
        assert!(
            report["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("damaged")),
            "{name}: {report:#}"
        );
    }
}

#[test]
fn ods_fixture_imports_with_its_quantities() {
    let env = Env::new();
    std::fs::copy(fixture("store22.ods"), env.root().join("store22.ods")).expect("copy fixture");
    let run = env.import(&["store22.ods"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["format"], "ods", "{report:#}");
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("22", "Y-1", 7), ("22", "Y-2", 0), ("22", "Y-3", 30)])
    );
}

#[test]
fn spreadsheet_json_and_zip_samples_import() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let env = Env::new();
    let files: Vec<String> = [
        "two-sheets.xlsx",
        "store13.ods",
        "api-request.json",
        "stores.zip",
    ]
    .iter()
    .map(|name| samples.join(name).display().to_string())
    .collect();
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let run = env.import(&args);
    run.code(0);
    let reports = run.json_lines();
    let by_file: Vec<(String, String)> = reports
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        by_file,
        [
            "two-sheets.xlsx",
            "store13.ods",
            "api-request.json",
            "store14.csv",
            "store15.csv"
        ]
        .iter()
        .map(|f| (f.to_string(), "applied".to_string()))
        .collect::<Vec<_>>()
    );
    let two_sheets = &reports[0];
    assert_eq!(
        report_jobs(two_sheets),
        vec![
            ("11".into(), 3, 0, "success".into()),
            ("12".into(), 2, 0, "success".into()),
        ]
    );
    assert_eq!(
        entries(two_sheets, "warnings", "upc-zeros-restored").len(),
        3,
        "{two_sheets:#}"
    );
    let stock = env.stock(&[]);
    assert_eq!(record(&stock, "11", "A-100")["upc"], "036000291452");
    assert_eq!(record(&stock, "12", "A-100")["quantity"], 14);
    assert_eq!(record(&stock, "13", "D-301")["quantity"], 48);
    assert_eq!(record(&stock, "WH1", "101010")["quantity"], 101);
    assert_eq!(record(&stock, "WH1", "101010")["partNumber"], "101010");
    assert_eq!(record(&stock, "15", "C-4")["quantity"], 22);
}

// ---------------------------------------------------------------------------
// 8. JSON request bodies.

#[test]
fn json_api_body_imports_numbers_and_numeric_strings() {
    let env = Env::new();
    let body = json!({
        "locationName": "WH1",
        "items": [
            {"partNumber": "101010", "sku": "101010", "quantity": "101"},
            {"sku": 101011, "quantity": 12},
            {"sku": "101012", "quantity": 7.0, "binID": "3", "retailPrice": "4.50"},
            {"sku": "101013", "upc": "036000291452", "quantity": 0,
             "attributes": ["clearance", "summer"]}
        ]
    });
    let report = env.import_text("request.json", &body.to_string(), 0);
    assert_eq!(report["format"], "json", "{report:#}");
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(
        report["rows"],
        json!({"total": 4, "accepted": 4, "rejected": 0})
    );
    assert_eq!(report["warnings"], json!([]), "{report:#}");
    let stock = env.stock(&[]);
    assert_eq!(
        quantities(&stock),
        expect_quantities(&[
            ("WH1", "101010", 101),
            ("WH1", "101011", 12),
            ("WH1", "101012", 7),
            ("WH1", "101013", 0),
        ])
    );
    let rec = record(&stock, "WH1", "101012");
    assert_eq!(rec["binID"], 3, "{rec:#}");
    assert_eq!(rec["retailPrice"], 4.5, "{rec:#}");
    let rec = record(&stock, "WH1", "101013");
    assert_eq!(rec["upc"], "036000291452", "{rec:#}");
    assert_eq!(rec["attributes"], json!(["clearance", "summer"]), "{rec:#}");
}

#[test]
fn json_errors_and_warnings_carry_pointers() {
    let env = Env::new();
    let body = json!({
        "locationName": "WH1",
        "requestId": "abc-1",
        "items": [
            {"sku": "A", "quantity": 1, "colour": "red"},
            {"sku": "B", "quantity": 2},
            {"sku": "C", "quantity": 3},
            {"sku": "D", "quantity": "ten"}
        ]
    });
    let run = {
        env.write("bad.json", &body.to_string());
        env.import(&["bad.json"])
    };
    run.code(1);
    let report = run.report();
    assert_eq!(report["status"], "partial", "{report:#}");
    let error = only(&report, "errors", "not-an-integer");
    assert_eq!(error["pointer"], "/items/3/quantity", "{error:#}");
    assert_eq!(error["row"], Value::Null, "{error:#}");
    assert_eq!(error["sheet"], Value::Null, "{error:#}");
    assert_eq!(error["cell"], Value::Null, "{error:#}");
    assert_eq!(error["value"], "ten", "{error:#}");
    let pointers: Vec<&Value> = entries(&report, "warnings", "unknown-column")
        .iter()
        .map(|w| &w["pointer"])
        .collect();
    assert!(
        pointers.contains(&&json!("/items/0/colour")) && pointers.contains(&&json!("/requestId")),
        "{report:#}"
    );
    let id = import_id(&report);
    let html = env.outbox_text(&format!("bad.{id}.html"));
    assert!(html.contains("/items/3/quantity"), "{html}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("WH1", "A", 1), ("WH1", "B", 2), ("WH1", "C", 3)])
    );
}

#[test]
fn json_array_of_bodies_is_one_file_with_array_pointers() {
    let env = Env::new();
    let bodies = json!([
        {"locationName": "11", "items": [{"sku": "A", "quantity": 5}]},
        {"locationName": "12", "manufacturerID": 7,
         "items": [{"sku": "A", "quantity": -1}, {"sku": "B", "quantity": "9"}]}
    ]);
    env.write("bodies.json", &bodies.to_string());
    let run = env.import(&["bodies.json"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["status"], "partial", "{report:#}");
    let error = only(&report, "errors", "out-of-range");
    assert_eq!(error["pointer"], "/1/items/0/quantity", "{error:#}");
    assert_eq!(
        report_jobs(&report),
        vec![
            ("11".into(), 1, 0, "success".into()),
            ("12".into(), 1, 0, "success".into()),
        ]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 5), ("12", "B", 9)])
    );
}

#[test]
fn json_items_beyond_1000_are_split_into_jobs() {
    let env = Env::new();
    let items: Vec<Value> = (0..2500)
        .map(|i| json!({"sku": format!("S{i:04}"), "quantity": i}))
        .collect();
    let body = json!({"locationName": "WH1", "items": items});
    let report = env.import_text("big.json", &body.to_string(), 0);
    assert_eq!(report["status"], "applied");
    assert_eq!(
        report_jobs(&report),
        vec![
            ("WH1".into(), 1000, 0, "success".into()),
            ("WH1".into(), 1000, 0, "success".into()),
            ("WH1".into(), 500, 0, "success".into()),
        ]
    );
    assert_eq!(env.stock(&[]).len(), 2500);
}

#[test]
fn invalid_json_is_unreadable() {
    let env = Env::new();
    let report = env.import_text(
        "cut.json",
        "{\"locationName\": \"WH1\", \"items\": [{\"sku\": \"A\", \"quan",
        1,
    );
    let error = file_error(&report, "unreadable-file");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("JSON"),
        "{error:#}"
    );
    assert_eq!(report["format"], "json", "{report:#}");
}

#[test]
fn json_pointers_escape_slash_and_tilde_in_keys() {
    let env = Env::new();
    let body = json!({
        "locationName": "WH1",
        "items": [{"sku": "A", "quantity": 1, "qty/unit": "ea", "x~y": 2}]
    });
    let report = env.import_text("keys.json", &body.to_string(), 0);
    let pointers: Vec<&Value> = entries(&report, "warnings", "unknown-column")
        .iter()
        .map(|w| &w["pointer"])
        .collect();
    assert!(
        pointers.contains(&&json!("/items/0/qty~1unit"))
            && pointers.contains(&&json!("/items/0/x~0y")),
        "{report:#}"
    );
}

// ---------------------------------------------------------------------------
// 9. ZIP archives.

#[test]
fn zip_members_are_imported_each_with_its_own_report() {
    let env = Env::new();
    let a = stock_csv(&[("11", "A", "1"), ("11", "B", "2")]);
    let b = stock_csv(&[("12", "C", "3")]);
    env.write_bytes(
        "stores.zip",
        &zip_of(&[("a.csv", a.as_bytes()), ("b.csv", b.as_bytes())]),
    );
    let run = env.import(&["stores.zip"]);
    run.code(0);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 2, "{run}");
    assert_eq!(reports[0]["file"], "a.csv");
    assert_eq!(reports[1]["file"], "b.csv");
    for report in &reports {
        assert_eq!(report["status"], "applied", "{report:#}");
        assert_eq!(report["format"], "csv", "{report:#}");
    }
    let (id_a, id_b) = (import_id(&reports[0]), import_id(&reports[1]));
    assert_ne!(id_a, id_b);
    expect_report_files(&env, "a", id_a);
    expect_report_files(&env, "b", id_b);
    assert_eq!(env.outbox_report("a", id_a), reports[0]);
    assert!(
        env.outbox_files_of("stores").is_empty(),
        "{:?}",
        env.outbox_files()
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 1), ("11", "B", 2), ("12", "C", 3)])
    );
    assert_eq!(env.imports().len(), 2);
}

/// An archive's members share one `import.max_locations`: each location
/// costs a transaction, and a thousand members of the most locations each
/// would hold the daemon for an hour.
#[test]
fn zip_members_share_the_location_limit() {
    let env = Env::with_config("[import]\nmax_locations = 5\n");
    let a = stock_csv(&[("11", "A", "1"), ("12", "A", "1"), ("13", "A", "1")]);
    let b = stock_csv(&[("14", "A", "2"), ("15", "A", "2"), ("14", "B", "2")]);
    let c = stock_csv(&[("11", "C", "3"), ("16", "C", "3")]);
    env.write_bytes(
        "stores.zip",
        &zip_of(&[
            ("a.csv", a.as_bytes()),
            ("b.csv", b.as_bytes()),
            ("c.csv", c.as_bytes()),
        ]),
    );
    let check = |reports: &[Value]| {
        assert_eq!(reports.len(), 3);
        assert_eq!(reports[0]["status"], "applied", "{:#}", reports[0]);
        assert_eq!(reports[1]["status"], "applied", "{:#}", reports[1]);
        let rejected = &reports[2];
        assert_eq!(rejected["status"], "rejected", "{rejected:#}");
        assert_eq!(
            report_errors(rejected),
            [(Some(2), "too-many-locations".to_string())],
            "{rejected:#}"
        );
        // Counted per file, as each is imported (and costs) on its own:
        // location 11 again is one more.
        let message = rejected["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.contains("the archive's files name more than 5 locations in all")
                && message.contains("the files before this one name 5")
                && message.contains("'11'"),
            "{message}"
        );
    };
    let preview = env.run_with(&[], &["validate", "--json", "stores.zip"]);
    check(&preview.json_lines());
    let run = env.import(&["stores.zip"]);
    run.code(1);
    check(&run.json_lines());
    assert_eq!(env.stock(&[]).len(), 6);
    // Each file alone is within the limit.
    env.write("c.csv", &c);
    env.import(&["c.csv"]).code(0);
}

#[test]
fn zip_member_path_cannot_put_a_report_outside_the_outbox() {
    let env = Env::new();
    let text = stock_csv(&[("11", "E", "4")]);
    env.write_bytes("evil.zip", &zip_of(&[("../../evil.csv", text.as_bytes())]));
    let run = env.import(&["evil.zip"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["file"], "evil.csv", "{report:#}");
    let id = import_id(&report);
    expect_report_files(&env, "evil", id);
    // Nothing called evil.* anywhere above the outbox.
    for dir in [env.root().to_path_buf(), env.root().join("var")] {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let name = entry.expect("entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                name == "evil.zip" || !name.starts_with("evil"),
                "{name} written into {}",
                dir.display()
            );
        }
    }
    if let Some(parent) = env.root().parent() {
        assert!(!parent.join(format!("evil.{id}.json")).exists());
    }
}

#[test]
fn nested_zip_member_is_unsupported() {
    let env = Env::new();
    let inner = zip_of(&[("c.csv", stock_csv(&[("13", "C", "1")]).as_bytes())]);
    let a = stock_csv(&[("11", "A", "1")]);
    env.write_bytes(
        "outer.zip",
        &zip_of(&[("a.csv", a.as_bytes()), ("inner.zip", &inner)]),
    );
    let run = env.import(&["outer.zip"]);
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 2, "{run}");
    assert_eq!(reports[0]["file"], "a.csv");
    assert_eq!(reports[0]["status"], "applied");
    assert_eq!(reports[1]["file"], "inner.zip");
    file_error(&reports[1], "unsupported-format");
    expect_report_files(&env, "inner", import_id(&reports[1]));
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 1)])
    );
}

#[test]
fn encrypted_zip_member_is_unsupported() {
    let env = Env::new();
    let secret = stock_csv(&[("11", "S", "1")]);
    let open = stock_csv(&[("12", "O", "2")]);
    // Bit 0 of the general-purpose flags marks a member encrypted (ZIP
    // 2.0 "traditional" encryption); no writer here encrypts, so the
    // archive is written by hand.
    let bytes = raw_zip(&[
        RawMember::stored("secret.csv", secret.as_bytes()).encrypted(),
        RawMember::stored("open.csv", open.as_bytes()),
    ]);
    env.write_bytes("locked.zip", &bytes);
    let run = env.import(&["locked.zip"]);
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 2, "{run}");
    assert_eq!(reports[0]["file"], "secret.csv");
    let error = file_error(&reports[0], "unsupported-format");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("encrypted"),
        "{error:#}"
    );
    assert_eq!(reports[1]["file"], "open.csv");
    assert_eq!(reports[1]["status"], "applied");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("12", "O", 2)])
    );
}

#[test]
fn zip_with_more_than_1000_members_is_too_large() {
    let env = Env::new();
    let text = stock_csv(&[("11", "A", "1")]);
    let names: Vec<String> = (0..1001).map(|i| format!("m{i:04}.csv")).collect();
    let members: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), text.as_bytes()))
        .collect();
    env.write_bytes("many.zip", &zip_with(&members, CompressionMethod::Stored));
    let run = env.import(&["many.zip"]);
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 1, "one report for the archive: {run}");
    assert_eq!(reports[0]["file"], "many.zip");
    file_error(&reports[0], "archive-too-large");
    assert_eq!(env.stock(&[]), Vec::<Value>::new());
}

#[test]
fn zip_past_max_unzipped_bytes_is_too_large() {
    let env = Env::with_config("[import]\nmax_unzipped_bytes = 4096\n");
    let mut text = String::from("location,sku,qty\n");
    for i in 0..400 {
        text.push_str(&format!("11,SKU{i:05},1\n"));
    }
    assert!(text.len() > 4096);
    env.write_bytes("big.zip", &zip_of(&[("big.csv", text.as_bytes())]));
    let run = env.import(&["big.zip"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["file"], "big.zip");
    file_error(&report, "archive-too-large");
}

#[test]
fn zip_of_a_workbook_and_a_json_body_imports_each() {
    let env = Env::new();
    let mut workbook = Workbook::new();
    write_rows(
        workbook.add_worksheet(),
        0,
        0,
        &[
            &[S("Store"), S("SKU"), S("Qty")],
            &[N(11.0), S("X"), N(2.0)],
        ],
    )
    .expect("write sheet");
    let xlsx_bytes = workbook.save_to_buffer().expect("workbook bytes");
    let body = json!({"locationName": "12", "items": [{"sku": "J", "quantity": "3"}]}).to_string();
    env.write_bytes(
        "mixed.zip",
        &zip_of(&[
            ("exports/store11.xlsx", &xlsx_bytes),
            ("store12.json", body.as_bytes()),
        ]),
    );
    let run = env.import(&["mixed.zip"]);
    run.code(0);
    let reports = run.json_lines();
    let formats: Vec<(&Value, &Value, &Value)> = reports
        .iter()
        .map(|r| (&r["file"], &r["format"], &r["status"]))
        .collect();
    assert_eq!(
        formats,
        vec![
            (&json!("store11.xlsx"), &json!("xlsx"), &json!("applied")),
            (&json!("store12.json"), &json!("json"), &json!("applied")),
        ],
        "{run}"
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "X", 2), ("12", "J", 3)])
    );
}

#[test]
fn zip_without_stock_files_gets_one_report() {
    let env = Env::new();
    env.write_bytes(
        "docs.zip",
        &zip_of(&[
            ("notes.pdf", b"%PDF-1.4 not stock"),
            ("photo.png", b"\x89PNG"),
        ]),
    );
    let run = env.import(&["docs.zip"]);
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 1, "{run}");
    assert_eq!(reports[0]["file"], "docs.zip");
    let error = file_error(&reports[0], "unsupported-format");
    assert_eq!(
        error["message"],
        "the archive holds no stock file (CSV, workbook or JSON); it has: notes.pdf, photo.png"
    );
}

#[test]
fn zip_member_larger_than_its_header_says_is_refused() {
    // Declares 100 bytes, inflates to about 1 MiB.
    let env = Env::new();
    let (size, data) = deflated_zeros(4096);
    let liar = RawMember {
        name: "liar.csv".into(),
        method: 8,
        flags: 0,
        crc: crc32_of_zeros(size),
        size: 100,
        data,
    };
    env.write_bytes("liar.zip", &raw_zip(&[liar]));
    let run = env.import(&["liar.zip"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["file"], "liar.csv", "{report:#}");
    assert_eq!(report["status"], "rejected", "{report:#}");
    let code = report["errors"][0]["code"].as_str().unwrap_or_default();
    assert!(
        code == "archive-too-large" || code == "unreadable-file",
        "{report:#}"
    );
    assert_eq!(env.stock(&[]), Vec::<Value>::new());
}

#[test]
fn encrypted_member_in_a_workbook_is_unsupported() {
    // SPEC 4.5: ZIP files and ZIP-based workbooks are checked from their
    // central directory; encrypted members are `unsupported-format`.
    let env = Env::new();
    let mut workbook = Workbook::new();
    write_rows(
        workbook.add_worksheet(),
        0,
        0,
        &[
            &[S("Store"), S("SKU"), S("Qty")],
            &[N(11.0), S("X"), N(2.0)],
        ],
    )
    .expect("write sheet");
    let original = workbook.save_to_buffer().expect("workbook bytes");
    let mut archive = zip::ZipArchive::new(Cursor::new(&original)).expect("read workbook");
    let mut members = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("member");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).expect("inflate member");
        let name = file.name().expect("member name").into_owned();
        let member = RawMember::stored(&name, &bytes);
        members.push(if name == "xl/worksheets/sheet1.xml" {
            member.encrypted()
        } else {
            member
        });
    }
    env.write_bytes("locked.xlsx", &raw_zip(&members));
    let run = env.import(&["locked.xlsx"]);
    run.code(1);
    file_error(&run.report(), "unsupported-format");
}

#[test]
fn zip_member_over_max_file_bytes_is_too_large() {
    let env = Env::with_config("[import]\nmax_file_bytes = 2000\n");
    let mut big = String::from("location,sku,qty\n");
    for i in 0..300 {
        big.push_str(&format!("11,SKU{i:05},1\n"));
    }
    let small = stock_csv(&[("12", "A", "1")]);
    let bytes = zip_of(&[("big.csv", big.as_bytes()), ("small.csv", small.as_bytes())]);
    assert!(bytes.len() < 2000, "the archive itself is within the limit");
    env.write_bytes("members.zip", &bytes);
    let run = env.import(&["members.zip"]);
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 2, "{run}");
    assert_eq!(reports[0]["file"], "big.csv");
    file_error(&reports[0], "file-too-large");
    assert_eq!(reports[1]["status"], "applied");
}

/// A ZIP bomb written by hand (deflating 200 MiB through the `zip` crate
/// takes many seconds in a debug build): `stock.csv`, a real deflate
/// stream of 200 MiB of zeros in about 1.3 MB (159:1), with its true size
/// and CRC in both headers, after `extra` stored members.
fn bomb(extra: &[(&str, &[u8])]) -> Vec<u8> {
    let (size, data) = deflated_zeros(BOMB_PAIRS);
    let mut members: Vec<RawMember> = extra
        .iter()
        .map(|(name, bytes)| RawMember::stored(name, bytes))
        .collect();
    members.push(RawMember {
        name: "stock.csv".into(),
        method: 8,
        flags: 0,
        crc: crc32_of_zeros(size),
        size: u32::try_from(size).expect("size fits the header"),
        data,
    });
    let bytes = raw_zip(&members);
    // The zip crate reads it as what it claims: 200 MiB of zeros.
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).expect("a valid archive");
    let member = archive.by_name("stock.csv").expect("bomb member");
    assert_eq!(member.size(), size);
    assert!(member.compressed_size() * 100 < size);
    let mut first = Vec::new();
    member
        .take(1 << 16)
        .read_to_end(&mut first)
        .expect("inflate the start");
    assert!(first.len() == 1 << 16 && first.iter().all(|&b| b == 0));
    bytes
}

/// 812,850 matches of 258 bytes, plus one literal: 200 MiB and a bit.
const BOMB_PAIRS: u64 = 812_850;

/// A raw deflate stream of `1 + 258 * pairs` zero bytes: one fixed-Huffman
/// block holding a literal 0 and then `pairs` copies of (length 258,
/// distance 1). Returns (uncompressed size, stream).
fn deflated_zeros(pairs: u64) -> (u64, Vec<u8>) {
    let mut bits = BitWriter::default();
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE = 01, fixed Huffman codes
    bits.code(0x30, 8); // literal 0
    for _ in 0..pairs {
        bits.code(0xC5, 8); // length symbol 285: 258 bytes
        bits.code(0, 5); // distance symbol 0: distance 1
    }
    bits.code(0, 7); // end of block (256)
    (1 + 258 * pairs, bits.finish())
}

/// Deflate's bit order: values least-significant bit first, Huffman codes
/// most-significant bit first.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    count: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.count;
        self.count += count;
        while self.count >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.count -= 8;
        }
    }

    fn code(&mut self, code: u32, len: u32) {
        let reversed = code.reverse_bits() >> (32 - len);
        self.put(reversed, len);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// CRC-32 (IEEE) of `data`, bit by bit: for small members.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// CRC-32 of `n` zero bytes without touching them: zeros only shift the
/// register, a linear map over GF(2), raised to the n-th power by squaring
/// (zlib's `crc32_combine` method).
fn crc32_of_zeros(mut n: u64) -> u32 {
    fn times(matrix: &[u32; 32], mut vector: u32) -> u32 {
        let mut sum = 0;
        let mut i = 0;
        while vector != 0 {
            if vector & 1 != 0 {
                sum ^= matrix[i];
            }
            vector >>= 1;
            i += 1;
        }
        sum
    }
    fn square(matrix: &[u32; 32]) -> [u32; 32] {
        let mut result = [0u32; 32];
        for (i, row) in result.iter_mut().enumerate() {
            *row = times(matrix, matrix[i]);
        }
        result
    }
    // One zero bit.
    let mut op = [0u32; 32];
    op[0] = 0xEDB8_8320;
    for (i, row) in op.iter_mut().enumerate().skip(1) {
        *row = 1 << (i - 1);
    }
    // One zero byte.
    for _ in 0..3 {
        op = square(&op);
    }
    let mut register = 0xFFFF_FFFFu32;
    while n > 0 {
        if n & 1 == 1 {
            register = times(&op, register);
        }
        op = square(&op);
        n >>= 1;
    }
    !register
}

#[test]
fn crc_of_zeros_matches_the_plain_crc() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    for n in [0u64, 1, 7, 8, 1000, 4097] {
        assert_eq!(crc32_of_zeros(n), crc32(&vec![0; n as usize]), "{n} zeros");
    }
}

/// One member of a hand-written archive.
struct RawMember {
    name: String,
    /// 0 stored, 8 deflated.
    method: u16,
    flags: u16,
    crc: u32,
    /// Uncompressed size.
    size: u32,
    /// The member's data as stored in the archive.
    data: Vec<u8>,
}

impl RawMember {
    fn stored(name: &str, bytes: &[u8]) -> RawMember {
        RawMember {
            name: name.into(),
            method: 0,
            flags: 0,
            crc: crc32(bytes),
            size: u32::try_from(bytes.len()).expect("small member"),
            data: bytes.to_vec(),
        }
    }

    /// Sets bit 0 of the general-purpose flags: "encrypted".
    fn encrypted(mut self) -> RawMember {
        self.flags |= 1;
        self
    }
}

/// A ZIP archive written field by field (APPNOTE 4.3.7, 4.3.12, 4.3.16).
fn raw_zip(members: &[RawMember]) -> Vec<u8> {
    fn u16le(out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32le(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut central = Vec::new();
    for m in members {
        let offset = u32::try_from(out.len()).expect("small archive");
        let name_len = u16::try_from(m.name.len()).expect("short name");
        let compressed = u32::try_from(m.data.len()).expect("small member");
        // Local file header.
        u32le(&mut out, 0x0403_4b50);
        u16le(&mut out, 20); // version needed
        u16le(&mut out, m.flags);
        u16le(&mut out, m.method);
        u16le(&mut out, 0); // time
        u16le(&mut out, 0x21); // date: 1980-01-01
        u32le(&mut out, m.crc);
        u32le(&mut out, compressed);
        u32le(&mut out, m.size);
        u16le(&mut out, name_len);
        u16le(&mut out, 0); // extra length
        out.extend_from_slice(m.name.as_bytes());
        out.extend_from_slice(&m.data);
        // Central directory header.
        u32le(&mut central, 0x0201_4b50);
        u16le(&mut central, 20); // version made by
        u16le(&mut central, 20); // version needed
        u16le(&mut central, m.flags);
        u16le(&mut central, m.method);
        u16le(&mut central, 0);
        u16le(&mut central, 0x21);
        u32le(&mut central, m.crc);
        u32le(&mut central, compressed);
        u32le(&mut central, m.size);
        u16le(&mut central, name_len);
        u16le(&mut central, 0); // extra length
        u16le(&mut central, 0); // comment length
        u16le(&mut central, 0); // disk number
        u16le(&mut central, 0); // internal attributes
        u32le(&mut central, 0); // external attributes
        u32le(&mut central, offset);
        central.extend_from_slice(m.name.as_bytes());
    }
    let central_offset = u32::try_from(out.len()).expect("small archive");
    let central_size = u32::try_from(central.len()).expect("small directory");
    let count = u16::try_from(members.len()).expect("few members");
    out.extend_from_slice(&central);
    // End of central directory.
    u32le(&mut out, 0x0605_4b50);
    u16le(&mut out, 0);
    u16le(&mut out, 0);
    u16le(&mut out, count);
    u16le(&mut out, count);
    u32le(&mut out, central_size);
    u32le(&mut out, central_offset);
    u16le(&mut out, 0);
    out
}

/// Imports `name`, expecting one `archive-too-large` report, quickly.
fn expect_bomb_refused(env: &Env, name: &str) {
    let started = Instant::now();
    let run = env.import(&[name]);
    let took = started.elapsed();
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 1, "{run}");
    assert_eq!(reports[0]["file"], name);
    file_error(&reports[0], "archive-too-large");
    assert!(
        took < Duration::from_secs(10),
        "refusing the bomb took {took:?}"
    );
    assert_eq!(env.stock(&[]), Vec::<Value>::new());
}

#[test]
fn zip_bomb_is_refused_quickly() {
    let env = Env::new();
    env.write_bytes("bomb.zip", &bomb(&[]));
    expect_bomb_refused(&env, "bomb.zip");
}

#[test]
fn zip_bomb_named_xlsx_is_refused_quickly() {
    let env = Env::new();
    let workbook_xml: &[u8] = b"<?xml version=\"1.0\"?><workbook/>";
    let types: &[u8] = b"<?xml version=\"1.0\"?><Types/>";
    env.write_bytes(
        "bomb.xlsx",
        &bomb(&[
            ("[Content_Types].xml", types),
            ("xl/workbook.xml", workbook_xml),
        ]),
    );
    expect_bomb_refused(&env, "bomb.xlsx");
}

// ---------------------------------------------------------------------------
// 10. Content sniffing.

#[test]
fn xlsx_renamed_csv_is_read_as_a_workbook() {
    let env = Env::new();
    let path = xlsx(&env, "real.xlsx", |wb| {
        let sheet = wb.add_worksheet();
        write_rows(
            sheet,
            0,
            0,
            &[
                &[S("location"), S("sku"), S("qty")],
                &[N(11.0), S("W"), N(6.0)],
            ],
        )?;
        Ok(())
    });
    std::fs::rename(&path, env.root().join("export.csv")).expect("rename");
    let run = env.import(&["export.csv"]);
    run.code(0);
    let report = run.report();
    assert_eq!(report["format"], "xlsx", "{report:#}");
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "W", 6)])
    );
}

#[test]
fn text_named_xlsx_is_unreadable_and_says_it_is_text() {
    let env = Env::new();
    let report = env.import_text("stock.xlsx", &stock_csv(&[("11", "A", "1")]), 1);
    let error = file_error(&report, "unreadable-file");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("plain text"),
        "{error:#}"
    );
}

#[test]
fn csv_starting_with_a_brace_is_still_csv() {
    let env = Env::new();
    let text = lines(&["{Weekly count}", "location,sku,qty", "11,A,5", "11,B,6"]);
    let report = env.import_text("brace.csv", &text, 0);
    assert_eq!(report["format"], "csv", "{report:#}");
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 5), ("11", "B", 6)])
    );
}

// ---------------------------------------------------------------------------
// 11. validate on archives.

#[test]
fn validate_prints_one_report_per_zip_member_and_writes_nothing() {
    let env = Env::new();
    let a = stock_csv(&[("11", "A", "1")]);
    let b = stock_csv(&[("12", "B", "x")]);
    env.write_bytes(
        "check.zip",
        &zip_of(&[("a.csv", a.as_bytes()), ("b.csv", b.as_bytes())]),
    );
    let run = env.run(&["validate", "--json", "check.zip"]);
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 2, "{run}");
    assert_eq!(reports[0]["file"], "a.csv");
    assert_eq!(reports[0]["status"], "applied", "{:#}", reports[0]);
    assert_eq!(reports[1]["file"], "b.csv");
    assert_eq!(reports[1]["status"], "rejected", "{:#}", reports[1]);
    let error = only(&reports[1], "errors", "not-an-integer");
    assert_eq!(error["cell"], "C2", "{error:#}");
    assert_eq!(env.outbox_files(), Vec::<String>::new());
    assert!(!env.database().exists(), "validate created the store");
}

// ---------------------------------------------------------------------------
// 10. Files written by other programs than Excel (see tests/fixtures/README).

/// What `stock31.csv` holds, once a spreadsheet has had it: the sku zeros
/// are gone (123, 456), the UPC zero is restored.
#[track_caller]
fn expect_stock31(env: &Env, report: &Value, name: &str) {
    assert_eq!(report["status"], "applied", "{name}: {report:#}");
    let stock = env.stock(&[]);
    assert_eq!(
        quantities(&stock),
        expect_quantities(&[("31", "123", 5), ("31", "456", 0), ("31", "A-7", 12)]),
        "{name}"
    );
    let first = record(&stock, "31", "123");
    assert_eq!(first["upc"], "036000291452", "{name}");
    assert_eq!(first["retailPrice"], 19.99, "{name}");
    assert_eq!(record(&stock, "31", "456")["retailPrice"], 2.5, "{name}");
    assert_eq!(
        record(&stock, "31", "A-7")["retailPrice"],
        1250.75,
        "{name}"
    );
    // The skus arrived as numbers: each says so, naming its cell.
    let warned: Vec<&str> = entries(report, "warnings", "identifier-as-number")
        .iter()
        .map(|w| w["cell"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(warned, ["B2", "B3"], "{name}: {report:#}");
}

fn import_fixture(name: &str) -> (Env, Value) {
    let env = Env::new();
    std::fs::copy(fixture(name), env.root().join(name)).expect("copy fixture");
    let run = env.import(&[name]);
    run.code(0);
    let report = run.report();
    (env, report)
}

#[test]
fn gnumeric_xlsx_fixture_imports_its_stock() {
    let (env, report) = import_fixture("gnumeric-stock31.xlsx");
    assert_eq!(report["format"], "xlsx");
    expect_stock31(&env, &report, "gnumeric-stock31.xlsx");
}

#[test]
fn gnumeric_xls_fixture_imports_its_stock() {
    let (env, report) = import_fixture("gnumeric-stock31.xls");
    assert_eq!(report["format"], "xls");
    expect_stock31(&env, &report, "gnumeric-stock31.xls");
}

#[test]
fn gnumeric_ods_fixture_imports_its_stock() {
    let (env, report) = import_fixture("gnumeric-stock31.ods");
    assert_eq!(report["format"], "ods");
    expect_stock31(&env, &report, "gnumeric-stock31.ods");
}

#[test]
fn libreoffice_xlsx_fixture_imports_its_stock() {
    let (env, report) = import_fixture("libreoffice-stock31.xlsx");
    assert_eq!(report["format"], "xlsx");
    expect_stock31(&env, &report, "libreoffice-stock31.xlsx");
}

#[test]
fn libreoffice_xls_fixture_imports_its_stock() {
    let (env, report) = import_fixture("libreoffice-stock31.xls");
    assert_eq!(report["format"], "xls");
    expect_stock31(&env, &report, "libreoffice-stock31.xls");
}

#[test]
fn libreoffice_ods_fixture_imports_its_stock() {
    let (env, report) = import_fixture("libreoffice-stock31.ods");
    assert_eq!(report["format"], "ods");
    expect_stock31(&env, &report, "libreoffice-stock31.ods");
}

/// The upstream bug the ODS reader works around: when calamine reads
/// Gnumeric's `.ods`, this fails, and `parse::ods` can go back to calamine.
#[test]
fn calamine_still_rejects_gnumeric_ods() {
    let bytes = std::fs::read(fixture("gnumeric-stock31.ods")).expect("fixture");
    let opened = calamine::open_workbook_auto_from_rs(Cursor::new(bytes));
    assert!(
        opened.is_err(),
        "calamine now reads Gnumeric's ODS: parse::ods may be replaced by calamine's reader"
    );
}

/// calamine's own test workbooks whose parts are not where Excel puts them
/// (Windows separators; a main part at the package root): read as the
/// workbooks they are, not as archives. Neither is a stock list, so each
/// is refused for its content, quoting its first row.
#[test]
fn workbooks_with_parts_elsewhere_are_read_as_workbooks() {
    for (name, first_cell) in [
        ("issue_530.xlsx", "报表导出人："),
        ("minimal_package.xlsx", "ARREST BOOKINGS for 01/30/17"),
    ] {
        let env = Env::new();
        std::fs::copy(fixture(name), env.root().join(name)).expect("copy fixture");
        let run = env.import(&[name]);
        run.code(1);
        let reports = run.json_lines();
        assert_eq!(
            reports.len(),
            1,
            "{name}: one file, not archive members: {run}"
        );
        let report = &reports[0];
        assert_eq!(report["format"], "xlsx", "{name}: {report:#}");
        let error = file_error(report, "missing-column");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.contains(first_cell), "{name}: {message}");
    }
}

/// The same workbooks with their stock columns mapped: they import.
#[test]
fn workbook_with_parts_at_the_package_root_imports_with_columns_mapped() {
    let env = Env::with_config(
        "[import]\ndefault_location = \"7\"\non_error = \"reject-rows\"\n\
         [columns]\n\"BKG_NUM\" = \"sku\"\n\"ARR_DIV\" = \"quantity\"\n",
    );
    std::fs::copy(fixture("minimal_package.xlsx"), env.root().join("m.xlsx")).expect("copy");
    let run = env.import(&["m.xlsx"]);
    let report = run.report();
    assert_eq!(report["format"], "xlsx", "{report:#}");
    assert!(
        report["rows"]["accepted"].as_u64().unwrap_or(0) > 0,
        "{report:#}"
    );
}

/// Excel's "Unicode Text" from a European locale: UTF-16 with a BOM, tab
/// separated, decimal commas.
fn unicode_text(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.replace('\n', "\r\n").encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

#[test]
fn unicode_text_with_decimal_commas_imports_and_1000_is_ambiguous() {
    let env = Env::new();
    env.write_bytes(
        "stock.txt",
        &unicode_text("Store\tSKU\tQty\tPrice\n41\tA\t5\t19,99\n41\tB\t6\t1,000\n41\tC\t7\t2.5\n"),
    );
    let run = env.import(&["stock.txt"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["rows"]["accepted"], 2, "{report:#}");
    let error = only(&report, "errors", "not-a-number");
    assert_eq!(error["cell"], "D3", "{error:#}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("csv.decimal"), "{message}");
    let stock = env.stock(&[]);
    assert_eq!(record(&stock, "41", "A")["retailPrice"], 19.99);
    assert_eq!(record(&stock, "41", "C")["retailPrice"], 2.5);
}

#[test]
fn csv_decimal_comma_reads_1000_as_one() {
    let env = Env::with_config("[csv]\ndecimal = \",\"\n");
    env.write_bytes(
        "stock.txt",
        &unicode_text("Store\tSKU\tQty\tPrice\n41\tA\t5\t19,99\n41\tB\t6\t1,000\n"),
    );
    env.import(&["stock.txt"]).code(0);
    let stock = env.stock(&[]);
    assert_eq!(record(&stock, "41", "A")["retailPrice"], 19.99);
    assert_eq!(record(&stock, "41", "B")["retailPrice"], 1.0);
}

#[test]
fn validate_of_an_archive_without_stock_files_says_rejected() {
    let env = Env::new();
    env.write_bytes(
        "docs.zip",
        &zip_of(&[
            ("notes.pdf", b"%PDF-1.4 not stock"),
            ("photo.png", b"\x89PNG"),
        ]),
    );
    let run = env.run_with(&[], &["validate", "--json", "docs.zip"]);
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 1, "{run}");
    let error = file_error(&reports[0], "unsupported-format");
    // The same words as `import`'s (zip_without_stock_files_gets_one_report).
    assert_eq!(
        error["message"],
        "the archive holds no stock file (CSV, workbook or JSON); it has: notes.pdf, photo.png"
    );
}

// ---------------------------------------------------------------------------
// 11. Small files that would cost the server its memory or its life.

/// Runs the binary with `args` and returns (exit code or signal, peak
/// resident memory in KiB) of that one child, from `wait4`.
fn run_measured(env: &Env, args: &[&str]) -> (Result<i32, i32>, u64) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_stockdrop"))
        .arg("--config")
        .arg(env.config_path())
        .args(args)
        .current_dir(env.root())
        .env_remove("STOCKDROP_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run the stockdrop binary");
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    let mut status: libc::c_int = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; the pointers are to live locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    std::mem::forget(child);
    let outcome = if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(libc::WTERMSIG(status))
    };
    (outcome, u64::try_from(usage.ru_maxrss).unwrap_or(0))
}

/// Most resident memory a small hostile file may cost, in KiB.
const SMALL_PEAK_KIB: u64 = 96 * 1024;

#[test]
fn sheet_with_cells_in_a1_and_xfd1048576_is_a_report_not_a_crash() {
    let env = Env::new();
    // Only the two far-apart cells: the attacker's 5 KB file.
    let path = xlsx(&env, "corners.xlsx", |wb| {
        let sheet = wb.add_worksheet();
        sheet.write_string(0, 0, "x")?;
        sheet.write_string(1_048_575, 16_383, "y")?;
        Ok(())
    });
    assert!(std::fs::metadata(&path).expect("file").len() < 10_000);
    let (outcome, peak) = run_measured(&env, &["import", "--json", "corners.xlsx"]);
    assert_eq!(outcome, Ok(1), "a report and exit 1, not a signal");
    assert!(peak < SMALL_PEAK_KIB, "peak RSS {peak} KiB");
    let report = env.outbox_report("corners", 1);
    assert_eq!(report["status"], "rejected", "{report:#}");

    // A real stock list with one stray cell at the far corner: the list
    // imports, the stray cell's row is reported.
    let env = Env::new();
    xlsx(&env, "stray.xlsx", |wb| {
        let sheet = wb.add_worksheet();
        write_rows(
            sheet,
            0,
            0,
            &[
                &[S("store"), S("sku"), S("qty")],
                &[N(11.0), S("A"), N(3.0)],
            ],
        )?;
        sheet.write_string(1_048_575, 16_383, "y")?;
        Ok(())
    });
    let (outcome, peak) = run_measured(&env, &["import", "--json", "stray.xlsx"]);
    assert_eq!(outcome, Ok(1), "partial: a report and exit 1");
    assert!(peak < SMALL_PEAK_KIB, "peak RSS {peak} KiB");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "A", 3)])
    );
}

/// `{"locationName":"1","items":[{},{},…]}`: `size` bytes of JSON.
fn empty_items_body(size: usize) -> Vec<u8> {
    let mut body = br#"{"locationName":"1","items":["#.to_vec();
    while body.len() < size {
        body.extend_from_slice(b"{},");
    }
    body.extend_from_slice(b"{}]}");
    body
}

#[test]
fn small_zip_of_a_huge_json_body_is_refused_with_little_memory() {
    let env = Env::new();
    let zipped = zip_of(&[("body.json", &empty_items_body(10 * 1024 * 1024))]);
    assert!(zipped.len() < 64 * 1024, "{} bytes", zipped.len());
    env.write_bytes("bomb.zip", &zipped);
    let (outcome, peak) = run_measured(&env, &["import", "--json", "bomb.zip"]);
    assert_eq!(outcome, Ok(1));
    assert!(peak < SMALL_PEAK_KIB, "peak RSS {peak} KiB");
    let report = env.outbox_report("bomb", 1);
    file_error(&report, "archive-too-large");
}

#[test]
fn max_rows_stops_a_json_body_while_it_is_read() {
    let env = Env::with_config("[import]\nmax_rows = 1000\n");
    env.write_bytes("body.json", &empty_items_body(1024 * 1024));
    let (outcome, peak) = run_measured(&env, &["import", "--json", "body.json"]);
    assert_eq!(outcome, Ok(1));
    assert!(peak < SMALL_PEAK_KIB, "peak RSS {peak} KiB");
    file_error(&env.outbox_report("body", 1), "too-many-rows");
}

#[test]
fn small_member_that_expands_past_100_to_1_is_refused() {
    let env = Env::new();
    // 200 KiB of one repeated row: a few hundred bytes deflated.
    let row = "11,A,1\n".repeat(30_000);
    let text = format!("store,sku,qty\n{row}");
    env.write_bytes("rows.zip", &zip_of(&[("rows.csv", text.as_bytes())]));
    let run = env.import(&["rows.zip"]);
    run.code(1);
    let report = run.report();
    let error = file_error(&report, "archive-too-large");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("100:1"),
        "{error:#}"
    );
}

/// A forged `.xls`: a compound file whose `Workbook` stream has one sheet
/// with number cells at `cells` (row, column).
fn forged_xls(cells: &[(u16, u16)]) -> Vec<u8> {
    fn record(typ: u16, body: &[u8]) -> Vec<u8> {
        let mut r = typ.to_le_bytes().to_vec();
        r.extend_from_slice(&u16::try_from(body.len()).expect("short").to_le_bytes());
        r.extend_from_slice(body);
        r
    }
    // BOF (BIFF8, workbook globals), a BOUNDSHEET naming sheet "S" at the
    // offset of the sheet's BOF, EOF; then the sheet.
    let bof = |kind: u16| {
        let mut body = 0x0600u16.to_le_bytes().to_vec();
        body.extend_from_slice(&kind.to_le_bytes());
        body.extend_from_slice(&[0; 12]);
        record(0x0809, &body)
    };
    let mut globals = bof(0x0005);
    let sheet_name = b"S";
    // BOUNDSHEET: the sheet BOF's offset, flags, name length, name flags,
    // name; the sheet starts after it and the globals' EOF.
    let boundsheet_record_len = 4 + 4 + 2 + 1 + 1 + sheet_name.len();
    let sheet_offset = u32::try_from(globals.len() + boundsheet_record_len + 4).expect("small");
    let mut boundsheet = sheet_offset.to_le_bytes().to_vec();
    boundsheet.extend_from_slice(&[0, 0]);
    boundsheet.push(u8::try_from(sheet_name.len()).expect("short"));
    boundsheet.push(0);
    boundsheet.extend_from_slice(sheet_name);
    globals.extend(record(0x0085, &boundsheet));
    globals.extend(record(0x000A, &[]));
    let mut stream = globals;
    stream.extend(bof(0x0010));
    for &(row, col) in cells {
        let mut body = row.to_le_bytes().to_vec();
        body.extend_from_slice(&col.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.extend_from_slice(&1.0f64.to_le_bytes());
        stream.extend(record(0x0203, &body));
    }
    stream.extend(record(0x000A, &[]));
    let mut file = cfb::CompoundFile::create(Cursor::new(Vec::new())).expect("cfb");
    file.create_stream("/Workbook")
        .expect("stream")
        .write_all(&stream)
        .expect("write");
    file.flush().expect("flush");
    file.into_inner().into_inner()
}

#[test]
fn xls_with_cells_far_apart_is_a_report_not_a_crash() {
    // The forged file is one calamine opens: two cells close together are
    // read (and refused for want of a header).
    let env = Env::new();
    env.write_bytes("near.xls", &forged_xls(&[(0, 0), (1, 1)]));
    let run = env.import(&["near.xls"]);
    run.code(1);
    file_error(&run.report(), "missing-column");

    let env = Env::new();
    env.write_bytes("far.xls", &forged_xls(&[(0, 0), (65_535, 65_535)]));
    let (outcome, peak) = run_measured(&env, &["import", "--json", "far.xls"]);
    assert_eq!(outcome, Ok(1), "a report and exit 1, not a signal");
    assert!(peak < SMALL_PEAK_KIB, "peak RSS {peak} KiB");
    let report = env.outbox_report("far", 1);
    let error = file_error(&report, "unreadable-file");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("stray cells"),
        "{error:#}"
    );
}

/// `rows` rows of stock for location 41, after a header, with CRLF line
/// ends: over the 64 KiB that is read before a file is streamed from disk.
fn long_stock(rows: usize, name_of: impl Fn(usize) -> String) -> String {
    let mut text = String::from("Store,SKU,Qty,partNumber\n");
    for i in 0..rows {
        text.push_str(&format!("41,S{i},{i},{}\n", name_of(i)));
    }
    text.replace('\n', "\r\n")
}

#[test]
fn a_large_file_is_read_from_disk_with_its_encoding_and_line_numbers() {
    // Windows-1252: the only é (0xE9) is some 140 KiB in, past the 64 KiB
    // head, so only the streamed UTF-8 check can see it; the bad quantity
    // is past the head too.
    let env = Env::new();
    let text = long_stock(8000, |i| {
        if i == 6000 {
            "Caf\u{e9}".into()
        } else {
            format!("n{i}")
        }
    })
    .replace("41,S4000,4000,", "41,S4000,four,");
    assert!(text.len() > 128 * 1024);
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
    env.write_bytes("big.csv", &bytes);
    let run = env.import(&["big.csv"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["rows"]["accepted"], 7999, "{report:#}");
    only(&report, "warnings", "encoding-fallback");
    let error = only(&report, "errors", "not-an-integer");
    // Line 1 is the header: S4000 is on line 4002.
    assert_eq!(error["row"], 4002, "{error:#}");
    let stock = env.stock(&[]);
    assert_eq!(record(&stock, "41", "S6000")["partNumber"], "Café");

    // The same rows as UTF-16 ("Unicode Text"), tab-separated.
    let env = Env::new();
    let text = long_stock(8000, |i| format!("n{i}\u{e9}")).replace(',', "\t");
    env.write_bytes("big.txt", &unicode_text(&text.replace("\r\n", "\n")));
    env.import(&["big.txt"]).code(0);
    let stock = env.stock(&[]);
    assert_eq!(stock.len(), 8000);
    assert_eq!(record(&stock, "41", "S7999")["partNumber"], "n7999é");
}

#[test]
fn a_record_over_a_mebibyte_rejects_the_file_saying_where() {
    // A quote opened on line 3 and never closed: the rest of the file
    // would be one record.
    let env = Env::new();
    let mut text = long_stock(100, |i| format!("n{i}"));
    text.insert_str(text.find("41,S1,").unwrap_or(0), "41,Q,1,\"open\r\n");
    text.push_str(&"x,y,z\r\n".repeat(200_000));
    env.write("open.csv", &text);
    let run = env.import(&["open.csv"]);
    run.code(1);
    let report = run.report();
    let error = file_error(&report, "unreadable-file");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("line 3") && message.contains("1 MiB"),
        "{error:#}"
    );
    assert!(env.stock(&[]).is_empty());
}

/// A product on two sheets of one location: the message names each row
/// with its sheet ("rows 2 and 2" would say nothing).
#[test]
fn duplicates_on_different_sheets_are_named_with_their_sheets() {
    let env = Env::with_config("[import]\nduplicates = \"reject\"\n");
    xlsx(&env, "two.xlsx", |wb| {
        for name in ["North", "South"] {
            let sheet = wb.add_worksheet().set_name(name)?;
            write_rows(
                sheet,
                0,
                0,
                &[
                    &[S("store"), S("sku"), S("qty")],
                    &[S("11"), S("A1"), N(3.0)],
                ],
            )?;
        }
        Ok(())
    });
    let run = env.import(&["two.xlsx"]);
    let report = run.report();
    let entries = entries(&report, "errors", "duplicate-item");
    assert!(!entries.is_empty(), "{report:#}");
    let message = entries[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("rows 2 of sheet \"North\" and 2 of sheet \"South\""),
        "{message}"
    );
}

/// Two members under one path: the `zip` crate keeps one entry per name,
/// so one of them would be lost without a word. The archive is refused.
#[test]
fn zip_members_sharing_a_path_refuse_the_archive() {
    let env = Env::new();
    let a = stock_csv(&[("11", "A", "1")]);
    let b = stock_csv(&[("12", "B", "2")]);
    env.write_bytes(
        "twice.zip",
        &raw_zip(&[
            RawMember::stored("dup.csv", a.as_bytes()),
            RawMember::stored("dup.csv", b.as_bytes()),
        ]),
    );
    let run = env.import(&["twice.zip"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["status"], "rejected", "{report:#}");
    let message = report["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("two members share a path"), "{message}");
    assert!(env.stock(&[]).is_empty());
    // Distinct paths with one file name are two files.
    env.write_bytes(
        "apart.zip",
        &raw_zip(&[
            RawMember::stored("north/dup.csv", a.as_bytes()),
            RawMember::stored("south/dup.csv", b.as_bytes()),
        ]),
    );
    env.import(&["apart.zip"]).code(0);
    assert_eq!(env.stock(&[]).len(), 2);
}
