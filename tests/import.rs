//! `stockdrop import`: what a file does to the store and which reports it
//! leaves (SPEC §1, §4, §5).

mod common;

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const STOCK_KEYS: [&str; 14] = [
    "location",
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

// ---------------------------------------------------------------------------
// 1. A clean multi-location file.

#[test]
fn clean_multi_location_file_is_applied_with_one_job_per_location() {
    let env = Env::new();
    let text = lines(&[
        "location,sku,partNumber,upc,qty,bin,ltd,floor,safetyStock,currencyID,price,attributes",
        "11,S1,P1,036000291452,5,3,1.5,1,2,840,9.99,red;big",
        "11,S2,,,7,,,,,,,",
        "12,S1,,,3,,,,,,,",
        "13,S9,,,0,,,,,,,",
    ]);
    let path = env.write("stores.csv", &text);
    let run = env.import(&["stores.csv"]);
    run.code(0);
    let report = run.report();

    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(report["file"], "stores.csv");
    assert_eq!(report["format"], "csv");
    assert_eq!(report["duplicate_of"], Value::Null);
    assert_eq!(
        report["rows"],
        json!({"total": 4, "accepted": 4, "rejected": 0})
    );
    assert_eq!(report["errors"], json!([]));
    let sha = format!("{:x}", Sha256::digest(text.as_bytes()));
    assert_eq!(report["sha256"], sha.as_str());
    assert_utc_time(&report["received_at"]);
    assert_utc_time(&report["finished_at"]);
    assert_eq!(
        report_jobs(&report),
        vec![
            ("11".into(), 2, 0, "success".into()),
            ("12".into(), 1, 0, "success".into()),
            ("13".into(), 1, 0, "success".into()),
        ]
    );
    let ids = job_ids(&report);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "job ids {ids:?}");

    // Reports: <stem>.<import id>.json and .html, no errors CSV.
    let id = import_id(&report);
    assert_eq!(
        env.outbox_files(),
        vec![format!("stores.{id}.html"), format!("stores.{id}.json")]
    );
    assert_eq!(env.outbox_report("stores", id), report);
    let html = env.outbox_text(&format!("stores.{id}.html"));
    assert!(html.to_lowercase().contains("<html"), "{html}");
    assert!(html.contains("stores.csv"), "{html}");

    // The original stays where it was, unchanged.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    let stock = env.stock(&[]);
    assert_eq!(stock.len(), 4, "{stock:#?}");
    for r in &stock {
        assert_keys(r, &STOCK_KEYS);
        assert_utc_time(&r["updated_at"]);
    }
    let full = record(&stock, "11", "S1");
    assert_eq!(
        *full,
        json!({
            "location": "11", "sku": "S1", "partNumber": "P1", "upc": "036000291452",
            "quantity": 5, "binID": 3, "ltd": 1.5, "floor": 1, "safetyStock": 2,
            "currencyID": 840, "retailPrice": 9.99, "attributes": ["red", "big"],
            "updated_at": full["updated_at"], "job_id": ids[0],
            "record_id": full["record_id"],
        })
    );
    let bare = record(&stock, "11", "S2");
    for key in [
        "partNumber",
        "upc",
        "binID",
        "ltd",
        "floor",
        "safetyStock",
        "currencyID",
        "retailPrice",
    ] {
        assert_eq!(bare[key], Value::Null, "{key} of {bare:#}");
    }
    assert_eq!(bare["attributes"], json!([]));
    assert_eq!(
        quantities(&stock),
        expect_quantities(&[
            ("11", "S1", 5),
            ("11", "S2", 7),
            ("12", "S1", 3),
            ("13", "S9", 0)
        ])
    );
    assert_eq!(record(&stock, "12", "S1")["job_id"], ids[1]);
    assert_eq!(env.stock(&["--location", "12"]).len(), 1);
}

// ---------------------------------------------------------------------------
// 2. Splitting into jobs.

fn numbered_rows(location: &str, count: usize) -> String {
    let rows: Vec<(String, String, String)> = (1..=count)
        .map(|i| (location.to_string(), format!("S{i:05}"), i.to_string()))
        .collect();
    let borrowed: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(l, s, q)| (l.as_str(), s.as_str(), q.as_str()))
        .collect();
    stock_csv(&borrowed)
}

/// The skus a job changed, in order.
fn job_skus(env: &Env, job_id: i64) -> Vec<String> {
    changes(&env.job(job_id))
        .into_iter()
        .map(|(sku, _, _)| sku)
        .collect()
}

fn expected_skus(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|i| format!("S{i:05}")).collect()
}

#[test]
fn large_location_is_split_into_jobs_of_1000_in_file_order() {
    let env = Env::new();
    let report = env.import_text("big.csv", &numbered_rows("A", 2500), 0);
    assert_eq!(report["status"], "applied");
    assert_eq!(
        report_jobs(&report),
        vec![
            ("A".into(), 1000, 0, "success".into()),
            ("A".into(), 1000, 0, "success".into()),
            ("A".into(), 500, 0, "success".into()),
        ]
    );
    let ids = job_ids(&report);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "job ids {ids:?}");
    assert_eq!(job_skus(&env, ids[0]), expected_skus(1..=1000));
    assert_eq!(job_skus(&env, ids[1]), expected_skus(1001..=2000));
    assert_eq!(job_skus(&env, ids[2]), expected_skus(2001..=2500));
    let stock = env.stock(&[]);
    assert_eq!(stock.len(), 2500);
    assert_eq!(record(&stock, "A", "S02500")["quantity"], 2500);
    assert_eq!(record(&stock, "A", "S01000")["job_id"], ids[0]);
    assert_eq!(record(&stock, "A", "S01001")["job_id"], ids[1]);
}

#[test]
fn items_per_job_setting_splits_smaller() {
    let env = Env::with_config("[import]\nitems_per_job = 10\n");
    let report = env.import_text("small.csv", &numbered_rows("A", 25), 0);
    let counts: Vec<u64> = report_jobs(&report).iter().map(|j| j.1).collect();
    assert_eq!(counts, vec![10, 10, 5], "{report:#}");
    let ids = job_ids(&report);
    assert_eq!(job_skus(&env, ids[0]), expected_skus(1..=10));
    assert_eq!(job_skus(&env, ids[2]), expected_skus(21..=25));
    let jobs = env.jobs();
    assert_eq!(jobs.len(), 3);
    assert!(jobs.iter().all(|j| j["status"] == "success"), "{jobs:#?}");
}

// ---------------------------------------------------------------------------
// 3. Full refresh mode.

const FULL: &str = "[import]\nrefresh_mode = \"full\"\n";

/// A full-mode root holding A: S1=5, S2=7, S3=1, S4=2 (import 1).
fn full_mode_store() -> Env {
    let env = Env::with_config(FULL);
    env.import_text(
        "day1.csv",
        &stock_csv(&[
            ("A", "S1", "5"),
            ("A", "S2", "7"),
            ("A", "S3", "1"),
            ("A", "S4", "2"),
        ]),
        0,
    );
    env
}

#[test]
fn full_mode_zeroes_items_the_file_does_not_list() {
    let env = full_mode_store();
    let report = env.import_text(
        "day2.csv",
        &stock_csv(&[("A", "S1", "6"), ("A", "S2", "8"), ("A", "S3", "1")]),
        0,
    );
    assert_eq!(report["status"], "applied");
    assert_eq!(report["refresh_mode"], "full");
    assert_eq!(
        report_jobs(&report),
        vec![("A".into(), 3, 1, "success".into())]
    );
    let stock = env.stock(&[]);
    assert_eq!(
        quantities(&stock),
        expect_quantities(&[
            ("A", "S1", 6),
            ("A", "S2", 8),
            ("A", "S3", 1),
            ("A", "S4", 0)
        ])
    );
    let job_id = job_ids(&report)[0];
    assert_eq!(record(&stock, "A", "S4")["job_id"], job_id);

    let job = env.job(job_id);
    assert_eq!(job["zeroed"], 1, "{job:#}");
    let all = changes(&job);
    let zeroed: Vec<_> = all.iter().filter(|(sku, _, _)| sku == "S4").collect();
    assert_eq!(zeroed.len(), 1, "{job:#}");
    assert_eq!(zeroed[0].1, json!({"quantity": 2}));
    assert_eq!(zeroed[0].2, json!({"quantity": 0}));
    // S3 did not change, so it has no history entry.
    assert!(all.iter().all(|(sku, _, _)| sku != "S3"), "{job:#}");
}

#[test]
fn full_mode_guard_rejects_a_location_that_would_lose_over_half_its_stock() {
    let env = full_mode_store();
    env.import_text("other.csv", &stock_csv(&[("B", "T1", "4")]), 0);
    let before = env.stock(&[]);
    let jobs_before = env.jobs().len();

    // A: lists 1 of 4 in-stock records (75% would be zeroed); B: complete.
    let report = env.import_text(
        "truncated.csv",
        &stock_csv(&[("A", "S1", "9"), ("B", "T1", "5")]),
        1,
    );
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(report["error_counts"]["too-many-zeroed"], 1, "{report:#}");
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["code"] == "too-many-zeroed" && e["value"] == "A"),
        "{report:#}"
    );
    let jobs = report_jobs(&report);
    assert!(
        jobs.contains(&("A".into(), 1, 0, "rejected".into())),
        "{jobs:?}"
    );
    assert!(
        jobs.contains(&("B".into(), 1, 0, "success".into())),
        "{jobs:?}"
    );

    let after = env.stock(&[]);
    let mut expected = quantities(&before);
    expected.insert(("B".into(), "T1".into()), 5);
    assert_eq!(quantities(&after), expected, "A must be untouched");
    assert_eq!(
        record(&after, "A", "S1"),
        record(&before, "A", "S1"),
        "A/S1 must not change"
    );
    assert_eq!(env.jobs().len(), jobs_before + 2);

    // A file for A alone is rejected as a whole.
    let report = env.import_text("only-a.csv", &stock_csv(&[("A", "S2", "1")]), 1);
    assert_eq!(report["status"], "rejected", "{report:#}");
    assert_eq!(quantities(&env.stock(&[])), expected);
}

#[test]
fn full_mode_guard_allows_exactly_the_limit_and_ignores_zero_records() {
    let env = full_mode_store();
    // S3 and S4 go to 0 by a delta-named file first: 2 in-stock records left.
    env.import_text(
        "zero.errors.csv",
        &stock_csv(&[("A", "S3", "0"), ("A", "S4", "0")]),
        0,
    );
    // Lists S1 only: zeroes 1 of the 2 records in stock (50%, the limit).
    let report = env.import_text("half.csv", &stock_csv(&[("A", "S1", "3")]), 0);
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(
        report_jobs(&report),
        vec![("A".into(), 1, 1, "success".into())]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("A", "S1", 3),
            ("A", "S2", 0),
            ("A", "S3", 0),
            ("A", "S4", 0)
        ])
    );
}

#[test]
fn full_mode_counts_a_rejected_row_as_listed() {
    let env = full_mode_store();
    let report = env.import_text(
        "day2.csv",
        &stock_csv(&[("A", "S1", "6"), ("A", "S2", "x"), ("A", "S3", "2")]),
        1,
    );
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(
        report_errors(&report),
        vec![(Some(3), "not-an-integer".into())]
    );
    assert_eq!(
        report_jobs(&report),
        vec![("A".into(), 2, 1, "success".into())]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("A", "S1", 6),
            ("A", "S2", 7),
            ("A", "S3", 2),
            ("A", "S4", 0)
        ])
    );
}

#[test]
fn full_mode_zeroes_unlisted_records_even_when_every_listed_row_is_rejected() {
    // Store: A has S1..S4 in stock. The file names A with S1, S2 and S3,
    // all three rows invalid: they count as listed, so only S4 (1 of 4,
    // under the 50% guard) is not listed and must be set to 0.
    let env = full_mode_store();
    let report = env.import_text(
        "day2.csv",
        &stock_csv(&[("A", "S1", "x"), ("A", "S2", "x"), ("A", "S3", "x")]),
        1,
    );
    assert_eq!(report["error_counts"]["not-an-integer"], 3, "{report:#}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("A", "S1", 5),
            ("A", "S2", 7),
            ("A", "S3", 1),
            ("A", "S4", 0)
        ]),
        "{report:#}"
    );
    let zeroed: u64 = report_jobs(&report).iter().map(|j| j.2).sum();
    assert_eq!(zeroed, 1, "{report:#}");
    assert_eq!(report["status"], "partial", "{report:#}");
}

#[test]
fn full_mode_never_touches_a_location_outside_import_locations() {
    // Location 13 is in the store from before import.locations was set.
    let env = Env::new();
    env.import_text(
        "seed.csv",
        &stock_csv(&[("13", "S1", "10"), ("13", "S2", "20")]),
        0,
    );
    env.set_config("[import]\nrefresh_mode = \"full\"\nlocations = [\"11\", \"12\"]\n");
    let report = env.import_text("day2.csv", &stock_csv(&[("13", "S1", "10")]), 1);
    assert_eq!(report["error_counts"]["unknown-location"], 1, "{report:#}");
    assert_eq!(report["status"], "rejected", "{report:#}");
    let zeroed: u64 = report_jobs(&report).iter().map(|j| j.2).sum();
    assert_eq!(zeroed, 0, "{report:#}");
    assert!(report_jobs(&report).is_empty(), "{report:#}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("13", "S1", 10), ("13", "S2", 20)]),
        "{report:#}"
    );
}

#[test]
fn full_mode_applies_a_dropped_back_errors_csv_as_delta() {
    let env = full_mode_store();
    let report = env.import_text("day1.1.errors.csv", &stock_csv(&[("A", "S2", "70")]), 0);
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(report["refresh_mode"], "delta", "{report:#}");
    assert_eq!(
        report_jobs(&report),
        vec![("A".into(), 1, 0, "success".into())]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("A", "S1", 5),
            ("A", "S2", 70),
            ("A", "S3", 1),
            ("A", "S4", 2)
        ])
    );
}

// ---------------------------------------------------------------------------
// 4. Identifier conflicts.

#[test]
fn row_whose_identifiers_name_two_records_is_an_identifier_conflict() {
    let env = Env::new();
    env.import_text(
        "base.csv",
        &lines(&["location,sku,upc,qty", "A,S1,036000291452,5", "A,S2,,7"]),
        0,
    );
    let before = env.stock(&[]);
    let report = env.import_text(
        "conflict.csv",
        &lines(&["location,sku,upc,qty", "A,S3,,1", "A,S2,036000291452,9"]),
        1,
    );
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(
        report_errors(&report),
        vec![(Some(3), "identifier-conflict".into())]
    );
    assert_eq!(
        report["rows"],
        json!({"total": 2, "accepted": 1, "rejected": 1})
    );
    assert_eq!(
        report_jobs(&report),
        vec![("A".into(), 1, 0, "success".into())]
    );

    let after = env.stock(&[]);
    assert_eq!(
        quantities(&after),
        expect_quantities(&[("A", "S1", 5), ("A", "S2", 7), ("A", "S3", 1)])
    );
    assert_eq!(record(&after, "A", "S1"), record(&before, "A", "S1"));
    assert_eq!(record(&after, "A", "S2"), record(&before, "A", "S2"));
    let id = import_id(&report);
    let errors_csv = env.outbox_csv(&format!("conflict.{id}.errors.csv"));
    assert_eq!(errors_csv.len(), 2, "{errors_csv:?}");
    assert_eq!(errors_csv[1][..4], ["A", "S2", "036000291452", "9"]);
}

// ---------------------------------------------------------------------------
// 5. UPC forms.

#[test]
fn upc_given_with_12_then_13_digits_is_one_product() {
    let env = Env::new();
    env.import_text(
        "one.csv",
        &lines(&["location,upc,qty", "A,036000291452,5"]),
        0,
    );
    let report = env.import_text(
        "two.csv",
        &lines(&["location,upc,qty", "A,0036000291452,11"]),
        0,
    );
    assert_eq!(report["status"], "applied", "{report:#}");
    let stock = env.stock(&[]);
    assert_eq!(stock.len(), 1, "{stock:#?}");
    assert_eq!(stock[0]["quantity"], 11);
    for form in ["036000291452", "0036000291452", "00036000291452"] {
        let found = env.stock(&["--upc", form]);
        assert_eq!(found.len(), 1, "stock --upc {form}: {found:#?}");
        assert_eq!(found[0]["quantity"], 11);
    }
    assert!(env.stock(&["--upc", "036000291453"]).is_empty());
    let job = env.job(job_ids(&report)[0]);
    let all = changes(&job);
    assert_eq!(all.len(), 1, "{job:#}");
    assert_eq!(all[0].1, json!({"quantity": 5}));
    assert_eq!(all[0].2, json!({"quantity": 11}));
}

// ---------------------------------------------------------------------------
// 8. The errors CSV, fixed and dropped back.

#[test]
fn errors_csv_lists_bad_rows_neutralises_formulas_and_can_be_fixed_and_reimported() {
    let env = Env::new();
    let report = env.import_text(
        "mixed.csv",
        &lines(&[
            "location,sku,qty,note",
            "A,S1,5,ok",
            "A,=cmd,x,\"=HYPERLINK(\"\"http://x\"\")\"",
            "A,S3,-3,@SUM(A1)",
            "B,S4,2,",
        ]),
        1,
    );
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(
        report_errors(&report),
        vec![
            (Some(3), "not-an-integer".into()),
            (Some(4), "out-of-range".into())
        ]
    );
    let id = import_id(&report);
    let name = format!("mixed.{id}.errors.csv");
    assert!(
        env.outbox_files().contains(&name),
        "{:?}",
        env.outbox_files()
    );
    let mut rows = env.outbox_csv(&name);
    assert_eq!(rows.len(), 3, "header plus the two bad rows: {rows:?}");
    assert_eq!(rows[0], ["location", "sku", "qty", "note", "error"]);
    assert_eq!(
        rows[1][..4],
        ["A", "'=cmd", "x", "'=HYPERLINK(\"http://x\")"]
    );
    assert_eq!(rows[2][..4], ["A", "S3", "-3", "'@SUM(A1)"]);
    assert!(rows[1][4].contains('x'), "error names the value: {rows:?}");
    assert!(!rows[2][4].is_empty());

    // A clerk fixes the quantities and drops the file back.
    rows[1][2] = "4".into();
    rows[2][2] = "3".into();
    env.write(&name, &render_csv(&rows));
    let run = env.import(&[&name]);
    run.code(0);
    let back = run.report();
    assert_eq!(back["status"], "applied", "{back:#}");
    assert_eq!(back["rows"]["accepted"], 2);
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("A", "=cmd", 4),
            ("A", "S1", 5),
            ("A", "S3", 3),
            ("B", "S4", 2)
        ])
    );
}

// ---------------------------------------------------------------------------
// 9. on_error policies.

const POLICY_FILE: &[(&str, &str, &str)] = &[
    ("A", "S1", "1"),
    ("A", "S2", "x"),
    ("A", "S3", "3"),
    ("B", "S1", "4"),
];

#[test]
fn reject_location_rejects_every_job_of_the_location_with_a_bad_row() {
    let env = Env::with_config("[import]\non_error = \"reject-location\"\nitems_per_job = 1\n");
    let report = env.import_text("policy.csv", &stock_csv(POLICY_FILE), 1);
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(
        report_jobs(&report),
        vec![
            ("A".into(), 1, 0, "rejected".into()),
            ("A".into(), 1, 0, "rejected".into()),
            ("B".into(), 1, 0, "success".into()),
        ]
    );
    assert_eq!(
        report_errors(&report),
        vec![
            (Some(2), "not-applied".into()),
            (Some(3), "not-an-integer".into()),
            (Some(4), "not-applied".into()),
        ]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("B", "S1", 4)])
    );
    let id = import_id(&report);
    let rows = env.outbox_csv(&format!("policy.{id}.errors.csv"));
    let skus: Vec<&str> = rows[1..].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(skus, ["S1", "S2", "S3"], "{rows:?}");
    let statuses: Vec<String> = env
        .jobs()
        .iter()
        .map(|j| j["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["success", "rejected", "rejected"]);
}

#[test]
fn reject_file_applies_nothing() {
    let env = Env::with_config("[import]\non_error = \"reject-file\"\n");
    let report = env.import_text("policy.csv", &stock_csv(POLICY_FILE), 1);
    assert_eq!(report["status"], "rejected", "{report:#}");
    assert!(
        report_jobs(&report).iter().all(|j| j.3 == "rejected"),
        "{report:#}"
    );
    assert_eq!(report["error_counts"]["not-applied"], 3, "{report:#}");
    assert_eq!(report["rows"]["accepted"], 0, "{report:#}");
    assert!(env.stock(&[]).is_empty());
    let imports = env.imports();
    assert_eq!(imports[0]["status"], "rejected");
}

// ---------------------------------------------------------------------------
// 10. Duplicate items in one file.

const DUPLICATE_ROWS: &[(&str, &str, &str)] = &[
    ("A", "S1", "1"),
    ("A", "S2", "2"),
    ("A", "S1", "3"),
    ("B", "S1", "4"),
];

#[test]
fn two_rows_for_one_item_are_both_rejected() {
    let env = Env::new();
    let report = env.import_text("dups.csv", &stock_csv(DUPLICATE_ROWS), 1);
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(
        report_errors(&report),
        vec![
            (Some(2), "duplicate-item".into()),
            (Some(4), "duplicate-item".into())
        ]
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("A", "S2", 2), ("B", "S1", 4)])
    );
}

#[test]
fn last_wins_keeps_the_later_row_with_a_warning() {
    let env = Env::with_config("[import]\nduplicates = \"last-wins\"\n");
    let report = env.import_text("dups.csv", &stock_csv(DUPLICATE_ROWS), 0);
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(report["errors"], json!([]));
    assert!(
        warning_codes(&report).contains(&"duplicate-item".to_string()),
        "{report:#}"
    );
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("A", "S1", 3), ("A", "S2", 2), ("B", "S1", 4)])
    );
}

/// A location is matched by range scans of its identifiers when the file
/// lists a good part of it, and by point lookups when it holds far more
/// records than the file has rows: both give the same answers.
#[test]
fn matching_against_a_small_and_a_large_location_gives_the_same_answers() {
    for extra in [0usize, 3000] {
        let env = Env::new();
        let mut base = vec![
            "location,sku,upc,qty".to_string(),
            "A,S1,036000291452,5".into(),
            "A,S2,,7".into(),
            "A,S4,,2".into(),
        ];
        base.extend((0..extra).map(|n| format!("A,X{n:05},,1")));
        env.import_text(
            "base.csv",
            &lines(&base.iter().map(String::as_str).collect::<Vec<_>>()),
            0,
        );
        let report = env.import_text(
            "conflict.csv",
            &lines(&[
                "location,sku,upc,qty",
                "A,S3,,1",
                "A,S2,036000291452,9",
                "A,S4,,6",
                "A,S1,036000291452,5",
            ]),
            1,
        );
        assert_eq!(
            report_errors(&report),
            vec![(Some(3), "identifier-conflict".into())],
            "with {extra} more records"
        );
        assert_eq!(
            report["rows"],
            json!({"total": 4, "accepted": 3, "rejected": 1}),
            "with {extra} more records"
        );
        let after = env.stock(&[]);
        let q = quantities(&after);
        for (sku, quantity) in [("S1", 5), ("S2", 7), ("S3", 1), ("S4", 6)] {
            assert_eq!(
                q[&("A".to_string(), sku.to_string())],
                quantity,
                "{sku}, with {extra} more records"
            );
        }
        assert_eq!(q.len(), 4 + extra);
    }
}

/// A reader that panics (calamine has, on damaged workbooks) rejects only
/// its file, with a report that says so; the next file imports as usual.
#[test]
fn a_reader_that_panics_rejects_its_file_with_a_report() {
    let env = Env::new();
    env.write("a.csv", &lines(&["location,sku,qty", "A,S1,5"]));
    let run = env.import_with(&[("STOCKDROP_CRASH_AT", "panic-while-reading")], &["a.csv"]);
    assert_eq!(run.code, Some(1), "{run}");
    let report: Value = serde_json::from_str(&run.stdout).expect("a JSON report");
    assert_eq!(report["status"], "rejected", "{report:#}");
    assert_eq!(report["errors"][0]["code"], "unreadable-file", "{report:#}");
    assert!(env.stock(&[]).is_empty());
    env.import_text("b.csv", &lines(&["location,sku,qty", "A,S1,5"]), 0);
    assert_eq!(env.stock(&[]).len(), 1);
}

/// A location of many rows is resolved a window at a time (duplicates
/// found through the stage); `STOCKDROP_RESOLVE_WINDOW=2` sends even these
/// small files that way, two rows at a time. Both ways give the same
/// reports and the same stock, file after file.
#[test]
fn a_location_resolved_a_window_at_a_time_gives_the_same_answers() {
    let files: [(&str, &str, &[&str]); 8] = [
        (
            "[import]\nduplicates = \"last-wins\"\n",
            "seed.csv",
            &[
                "location,sku,upc,qty,attributes",
                "A,S1,036000291452,5,red",
                "A,S2,,7,",
                "A,S3,,1,",
                "A,S4,,2,",
                "A,S2,,8,",
                "B,S1,,3,",
                "A,S5,,4,",
                "A,S2,,9,wool",
            ],
        ),
        (
            "[import]\nduplicates = \"reject\"\n",
            "dups.csv",
            &[
                "location,sku,upc,qty",
                "A,S6,,1",
                "A,S1,,5",
                "A,S7,,2",
                "A,S6,,3",
                "A,S9,036000291452,4",
                "A,S8,,x",
            ],
        ),
        (
            "[import]\nduplicates = \"last-wins\"\n",
            "conflict.csv",
            &[
                "location,sku,upc,qty",
                "A,S3,,1",
                "A,S2,036000291452,9",
                "A,S4,,6",
                "A,,036000291452,6",
                "A,S5,,4",
            ],
        ),
        (
            "[import]\nrefresh_mode = \"full\"\nfull_max_zero_pct = 100\n",
            "full.csv",
            &["location,sku,qty", "A,S1,6", "A,S2,9", "A,S9,1", "A,S1,7"],
        ),
        (
            // Chains of duplicates through different identifiers: a row
            // is paired with the latest earlier row of each of its keys.
            "[import]\nduplicates = \"last-wins\"\n",
            "chain.csv",
            &[
                "location,sku,upc,qty",
                "A,S6,012345678905,1",
                "A,S7,012345678905,2",
                "A,S7,,3",
                "A,S6,,4",
                "A,S8,012345678905,5",
                "A,S6,,6",
            ],
        ),
        (
            "[import]\nduplicates = \"reject\"\n",
            "chain-reject.csv",
            &[
                "location,sku,upc,qty",
                "A,T6,012345678912,1",
                "A,T7,012345678912,2",
                "A,T7,,3",
                "A,T6,,4",
                "A,T9,,5",
                "A,T8,012345678912,6",
            ],
        ),
        (
            // Rows naming one record by different identifiers (the sku of
            // the record, then its UPC) are duplicates too.
            "[import]\nduplicates = \"last-wins\"\n",
            "record.csv",
            &[
                "location,sku,upc,qty",
                "A,S1,,11",
                "A,,036000291452,12",
                "A,S4,,13",
                "A,S1,,14",
                "A,,036000291452,15",
            ],
        ),
        (
            "[import]\non_error = \"reject-location\"\n",
            "reject.csv",
            &[
                "location,sku,qty",
                "A,S1,1",
                "A,S2,x",
                "A,S3,2",
                "B,S1,4",
                "B,S2,5",
            ],
        ),
    ];
    let windowed = Env::new();
    let whole = Env::new();
    for (config, name, rows) in files {
        let mut reports = Vec::new();
        for (env, window) in [(&whole, None), (&windowed, Some("2"))] {
            env.set_config(config);
            env.write(name, &lines(rows));
            let vars: Vec<(&str, &str)> = window
                .map(|w| vec![("STOCKDROP_RESOLVE_WINDOW", w)])
                .unwrap_or_default();
            let run = env.import_with(&vars, &[name]);
            let report: Value = serde_json::from_str(&run.stdout)
                .unwrap_or_else(|_| panic!("a JSON report for {name}\n{run}"));
            reports.push((
                run.code,
                report["status"].clone(),
                report["rows"].clone(),
                report_errors(&report),
                report["warnings"].clone(),
                report_jobs(&report),
                quantities(&env.stock(&[])),
            ));
        }
        assert_eq!(
            reports[0], reports[1],
            "{name}: whole location, then a window at a time"
        );
    }
}

/// A file of several locations is resolved a location ahead (one read
/// from the store while the one before it is decided on a second
/// thread): the jobs still come in location order, one location's
/// findings never reach another, and a location whose full-mode guard
/// trips between two that apply changes nothing while they do.
#[test]
fn locations_resolved_side_by_side_keep_their_order_and_their_own_findings() {
    let env = Env::new();
    let mut seed = vec!["location,sku,qty"];
    let rows: Vec<String> = ["A", "B", "C", "D"]
        .iter()
        .flat_map(|l| (1..=4).map(move |n| format!("{l},S{n},{n}")))
        .collect();
    seed.extend(rows.iter().map(String::as_str));
    env.import_text("seed.csv", &lines(&seed), 0);

    env.set_config(
        "[import]\nrefresh_mode = \"full\"\nfull_max_zero_pct = 50\nduplicates = \"last-wins\"\n",
    );
    // A: every product, one repeated (the later row wins). B: one product
    // left out (25%: zeroed). C: three of four left out (75%: the guard
    // rejects C). D: every product.
    let report = env.import_text(
        "full.csv",
        &lines(&[
            "location,sku,qty",
            "A,S1,10",
            "B,S1,20",
            "C,S1,30",
            "D,S1,40",
            "A,S2,11",
            "B,S2,21",
            "D,S2,41",
            "A,S3,12",
            "B,S3,22",
            "D,S3,42",
            "A,S4,13",
            "D,S4,43",
            "A,S1,14",
        ]),
        1,
    );
    let errors = report_errors(&report);
    let guard: Vec<&(Option<u64>, String)> =
        errors.iter().filter(|e| e.1 == "too-many-zeroed").collect();
    assert_eq!(guard.len(), 1, "{report:#}");
    let text = report.to_string();
    assert!(text.contains("location C"), "{report:#}");
    let jobs = report_jobs(&report);
    let located: Vec<(&str, &str)> = jobs.iter().map(|j| (j.0.as_str(), j.3.as_str())).collect();
    assert_eq!(
        located,
        [
            ("A", "success"),
            ("B", "success"),
            ("C", "rejected"),
            ("D", "success")
        ],
        "{report:#}"
    );
    assert_eq!(jobs[1].2, 1, "B zeroes the product it left out: {report:#}");
    assert_eq!(warning_codes(&report), ["duplicate-item"], "{report:#}");
    let ids: Vec<u64> = report["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job_id"].as_u64().expect("job_id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{report:#}");

    let stock = quantities(&env.stock(&[]));
    let q = |l: &str, s: &str| stock[&(l.to_string(), s.to_string())];
    assert_eq!((q("A", "S1"), q("A", "S4")), (14, 13));
    assert_eq!((q("B", "S1"), q("B", "S4")), (20, 0));
    assert_eq!(
        (q("C", "S1"), q("C", "S2"), q("C", "S4")),
        (1, 2, 4),
        "C is rejected whole"
    );
    assert_eq!(q("D", "S4"), 43);
}

/// A file naming more locations than `import.max_locations` allows (a
/// product column taken for the location, say) is rejected as a whole
/// before anything is resolved, saying which row went over; a file within
/// the limit, however often it repeats its locations, is applied.
#[test]
fn a_file_naming_too_many_locations_is_rejected_whole() {
    let env = Env::with_config("[import]\nmax_locations = 2\n");
    env.write(
        "stores.csv",
        &lines(&["location,sku,qty", "A,S1,1", "B,S1,2", "A,S2,3", "B,S2,4"]),
    );
    let run = env.import(&["stores.csv"]);
    run.code(0);
    assert_eq!(env.stock(&[]).len(), 4);

    env.write(
        "skus.csv",
        &lines(&[
            "location,sku,qty",
            "A,S1,5",
            "B,S1,6",
            "A,S3,7",
            "S4,S4,8",
            "C,S5,9",
        ]),
    );
    let run = env.import(&["skus.csv"]);
    run.code(1);
    let report = run.report();
    assert_eq!(report["status"], "rejected", "{report:#}");
    assert_eq!(
        report_errors(&report),
        [(Some(5), "too-many-locations".to_string())],
        "{report:#}"
    );
    let message = report["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("'S4'") && message.contains("import.max_locations"),
        "{message}"
    );
    // Nothing of it was applied.
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("A", "S1", 1),
            ("A", "S2", 3),
            ("B", "S1", 2),
            ("B", "S2", 4)
        ])
    );
}

/// A location whose rows name many manufacturers (a job each) does not
/// keep a job open for every one of them until its end: past 32 open
/// jobs they are staged as they are. Every row is still applied.
#[test]
fn many_manufacturers_in_one_location_are_split_into_jobs_as_they_come() {
    let env = Env::new();
    let mut rows = vec!["location,manufacturerID,sku,qty".to_string()];
    for i in 0..80 {
        rows.push(format!("A,{},S{i},{}", i % 40 + 1, i + 1));
    }
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    env.write("makers.csv", &lines(&rows));
    let run = env.import(&["makers.csv"]);
    run.code(0);
    let jobs = report_jobs(&run.report());
    assert_eq!(jobs.iter().map(|j| j.1).sum::<u64>(), 80, "{jobs:?}");
    // Held open to the end, 40 jobs of two items each; staged as they
    // came, more and smaller ones.
    assert!(jobs.len() > 40, "{jobs:?}");
    let stock = quantities(&env.stock(&[]));
    assert_eq!(stock.len(), 80);
    assert!((0..80).all(|i| stock[&("A".to_string(), format!("S{i}"))] == i + 1));
}

/// A file can make a job per row; reports hold the first 1,000 jobs and
/// count the rest, and the JSON report (and `import --json`) still lists
/// every one, read back from the store as it is written.
#[test]
fn a_file_of_more_jobs_than_a_report_holds_lists_them_all_in_its_json() {
    let env = Env::new();
    let mut rows = vec!["location,manufacturerID,sku,qty".to_string()];
    for i in 0..1234 {
        rows.push(format!("L{},{i},S{i},{}", i % 3, i % 9));
    }
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    env.write("makers.csv", &lines(&rows));

    let preview = env.run_with(&[], &["validate", "--json", "makers.csv"]);
    preview.code(0);
    let preview = preview.report();
    assert_eq!(array(preview["jobs"].clone()).len(), 1000);
    assert_eq!(preview["jobs_truncated"], true);

    let run = env.import(&["makers.csv"]);
    run.code(0);
    let printed = run.report();
    let id = import_id(&printed);
    let written = env.outbox_report("makers", id);
    let ids = job_ids(&written);
    for report in [&printed, &written] {
        let ids = job_ids(report);
        assert_eq!(ids.len(), 1234);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order");
        assert_eq!(report["jobs_truncated"], false);
        assert_eq!(report["status"], "applied");
    }
    let jobs = report_jobs(&written);
    assert!(jobs.iter().all(|j| j.1 == 1 && j.3 == "success"));

    let page = env.outbox_text(&format!("makers.{id}.html"));
    assert_eq!(page.matches("<td class=\"st-success\">").count(), 1000);
    assert!(
        page.contains("… and 234 more jobs; the JSON report lists them all."),
        "{page}"
    );

    // `imports` gives the ids as runs; its JSON lists each.
    let listed = env.run_with(&[], &["imports"]);
    listed.code(0);
    assert!(
        listed
            .stdout
            .contains(&format!("  {}-{}  ", ids[0], ids[1233])),
        "{listed}"
    );
    let listed = env.run_with(&[], &["imports", "--json"]);
    assert_eq!(array(listed.json()[0]["jobs"].clone()).len(), 1234);

    // The terminal summary lists the first fifty.
    env.write("makers2.csv", &lines(&rows).replace("S1,", "T1,"));
    let text = env.run_with(&[], &["import", "makers2.csv"]);
    text.code(0);
    assert!(
        text.stdout
            .contains("\n  … 1184 more jobs in the JSON report"),
        "{text}"
    );
}
