//! Adjust files, the drop point's UPDATE files (SPEC §1.1), through the
//! real binary: how a file is recognised, signed changes added to the
//! counts, the row errors, never twice, stale updates, crash recovery,
//! reports, the errors CSV dropped back, and revert.

mod common;

use common::*;
use serde_json::Value;

/// A root whose store holds A/S1 = 10, A/S2 = 4 and B/S1 = 7, from a
/// refresh file named `refresh`.
fn stocked(config: &str, refresh: &str) -> Env {
    let env = Env::with_config(config);
    env.import_text(
        refresh,
        &stock_csv(&[("A", "S1", "10"), ("A", "S2", "4"), ("B", "S1", "7")]),
        0,
    );
    env
}

fn qty(env: &Env) -> std::collections::BTreeMap<(String, String), i64> {
    quantities(&env.stock(&[]))
}

#[test]
fn an_update_file_adds_signed_changes_and_rows_of_one_product_add_up() {
    let env = stocked("", "stock.csv");
    let report = env.import_text(
        "KIBO_UPDATE_261201120000.csv",
        &stock_csv(&[
            ("A", "S1", "+5"),
            ("A", "S2", "-3"),
            ("A", "S1", "2"),
            ("B", "S1", "0"),
        ]),
        0,
    );
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(report["job_type"], "adjust", "{report:#}");
    assert_eq!(report["refresh_mode"], "delta", "{report:#}");
    assert_eq!(
        qty(&env),
        expect_quantities(&[("A", "S1", 17), ("A", "S2", 1), ("B", "S1", 7)])
    );
    // The job says adjust, with before/after per item; S1 once, with the sum.
    let ids = job_ids(&report);
    let job = env.job(ids[0]);
    assert_eq!(job["type"], "adjust", "{job:#}");
    let mut seen = changes(&job);
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(seen.len(), 2, "{job:#}");
    assert_eq!(
        (seen[0].1["quantity"].clone(), seen[0].2["quantity"].clone()),
        (10.into(), 17.into())
    );
    assert_eq!(
        (seen[1].1["quantity"].clone(), seen[1].2["quantity"].clone()),
        (4.into(), 1.into())
    );
    // `jobs --type adjust` lists only adjust jobs; an unknown type is a usage error.
    let adjust_jobs = array(env.run(&["jobs", "--type", "adjust", "--json"]).json());
    assert!(!adjust_jobs.is_empty());
    assert!(
        adjust_jobs.iter().all(|j| j["type"] == "adjust"),
        "{adjust_jobs:?}"
    );
    let refresh_jobs = array(env.run(&["jobs", "--type", "refresh", "--json"]).json());
    assert!(
        refresh_jobs.iter().all(|j| j["type"] == "refresh"),
        "{refresh_jobs:?}"
    );
    assert_eq!(refresh_jobs.len(), 2);
    assert_eq!(adjust_jobs.len(), 2, "A and B: {adjust_jobs:?}");
    env.run(&["jobs", "--type", "bogus"]).code(2);
    // The terminal summary says so.
    env.write(
        "KIBO_UPDATE_261201121500.csv",
        &stock_csv(&[("B", "S1", "+1")]),
    );
    let run = env.run(&["import", "KIBO_UPDATE_261201121500.csv"]);
    run.code(0);
    assert!(run.stdout.contains("adjust job "), "{run}");
    assert_eq!(qty(&env)[&("B".into(), "S1".into())], 8);
    // The HTML page says so.
    let id = import_id(&report);
    let html = env.outbox_text(&format!("KIBO_UPDATE_261201120000.{id}.html"));
    assert!(html.contains("adjust"), "{html}");
}

#[test]
fn the_config_or_the_name_decides_and_refresh_names_always_refresh() {
    // A refresh-configured root: a lower-case _update_ name is an adjust file.
    let env = stocked("", "stock.csv");
    let report = env.import_text("shop_update_x.csv", &stock_csv(&[("A", "S1", "-1")]), 0);
    assert_eq!(report["job_type"], "adjust", "{report:#}");
    assert_eq!(qty(&env)[&("A".into(), "S1".into())], 9);

    // import.job_type = "adjust": any name is an adjust file, except _REFRESH_.
    let env = stocked(
        "[import]\njob_type = \"adjust\"\n",
        "KIBO_REFRESH_261201000000.csv",
    );
    let report = env.import_text("moves.csv", &stock_csv(&[("A", "S1", "3")]), 0);
    assert_eq!(report["job_type"], "adjust", "{report:#}");
    assert_eq!(qty(&env)[&("A".into(), "S1".into())], 13);
    let report = env.import_text(
        "KIBO_Refresh_261201130000.csv",
        &stock_csv(&[("A", "S1", "3")]),
        0,
    );
    assert_eq!(report["job_type"], "refresh", "{report:#}");
    assert_eq!(qty(&env)[&("A".into(), "S1".into())], 3);

    // A wrong value names the key.
    let env = Env::with_config("[import]\njob_type = \"update\"\n");
    env.write("x.csv", &stock_csv(&[("A", "S1", "1")]));
    let run = env.import(&["x.csv"]);
    run.code(2);
    assert!(run.stderr.contains("import.job_type"), "{run}");
    let env = Env::with_config("[import]\nadjust_below_zero = \"zero\"\n");
    env.write("x.csv", &stock_csv(&[("A", "S1", "1")]));
    let run = env.import(&["x.csv"]);
    run.code(2);
    assert!(run.stderr.contains("import.adjust_below_zero"), "{run}");
}

#[test]
fn refresh_files_still_refuse_signed_quantities() {
    let env = stocked("", "stock.csv");
    let report = env.import_text("stock2.csv", &stock_csv(&[("A", "S1", "-3")]), 1);
    assert_eq!(report["job_type"], "refresh", "{report:#}");
    assert_eq!(report["error_counts"]["out-of-range"], 1, "{report:#}");
}

#[test]
fn unknown_items_and_negative_stock_are_row_errors_and_nothing_is_zeroed() {
    let env = stocked("[import]\nrefresh_mode = \"full\"\n", "stock.csv");
    let report = env.import_text(
        "KIBO_UPDATE_261201120000.csv",
        &stock_csv(&[
            ("A", "S1", "-4"),
            ("A", "NEW", "5"),
            ("A", "S2", "-3"),
            ("A", "S2", "-2"),
            ("C", "S1", "1"),
        ]),
        1,
    );
    assert_eq!(report["status"], "partial", "{report:#}");
    assert_eq!(report["error_counts"]["unknown-item"], 2, "{report:#}");
    assert_eq!(report["error_counts"]["negative-stock"], 2, "{report:#}");
    let negative: Vec<&Value> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "negative-stock")
        .collect();
    let message = negative[0]["message"].as_str().unwrap();
    assert!(
        message.contains("has 4 in stock") && message.contains("-5"),
        "{message}"
    );
    for error in report["errors"].as_array().unwrap() {
        let text = error["message"].as_str().unwrap();
        assert!(!text.contains("  "), "one line of prose: {text:?}");
    }
    // Full mode does not apply: B and A/S2 keep their counts, nothing new.
    assert_eq!(
        qty(&env),
        expect_quantities(&[("A", "S1", 6), ("A", "S2", 4), ("B", "S1", 7)])
    );
    assert!(report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["zeroed"] == 0));
}

#[test]
fn clamp_sets_zero_with_a_warning() {
    let env = stocked("[import]\nadjust_below_zero = \"clamp\"\n", "stock.csv");
    let report = env.import_text(
        "KIBO_UPDATE_261201120000.csv",
        &stock_csv(&[("A", "S2", "-9")]),
        0,
    );
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(report["warning_counts"]["clamped-to-zero"], 1, "{report:#}");
    assert_eq!(qty(&env)[&("A".into(), "S2".into())], 0);
}

#[test]
fn the_same_update_is_never_applied_twice_unless_forced() {
    let env = stocked("", "stock.csv");
    let update = stock_csv(&[("A", "S1", "+1")]);
    env.import_text("KIBO_UPDATE_261201120000.csv", &update, 0);
    // A different adjust file in between: still a duplicate of the first.
    env.import_text(
        "KIBO_UPDATE_261201121000.csv",
        &stock_csv(&[("A", "S1", "+2")]),
        0,
    );
    let first = env.import_text("KIBO_UPDATE_261201120000.csv", &update, 0);
    assert_eq!(first["status"], "duplicate", "{first:#}");
    // Even under another name.
    let renamed = env.import_text("again_UPDATE_.csv", &update, 0);
    assert_eq!(renamed["status"], "duplicate", "{renamed:#}");
    assert_eq!(qty(&env)[&("A".into(), "S1".into())], 13);
    env.write("KIBO_UPDATE_261201120000.csv", &update);
    let forced = env.import(&["--force", "KIBO_UPDATE_261201120000.csv"]);
    forced.code(0);
    assert_eq!(forced.report()["status"], "applied", "{forced}");
    assert_eq!(qty(&env)[&("A".into(), "S1".into())], 14);
}

#[test]
fn an_update_older_than_the_last_refresh_is_stale() {
    let env = stocked("", "KIBO_REFRESH_261201120000.csv");
    let report = env.import_text(
        "KIBO_UPDATE_261201110000.csv",
        &stock_csv(&[("A", "S1", "+5"), ("B", "S1", "+1")]),
        1,
    );
    assert_eq!(report["status"], "rejected", "{report:#}");
    assert_eq!(report["error_counts"]["stale-update"], 2, "{report:#}");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("KIBO_REFRESH_261201120000.csv") && !message.contains("  "),
        "{message}"
    );
    // A later update applies.
    let report = env.import_text(
        "KIBO_UPDATE_261201130000.csv",
        &stock_csv(&[("A", "S1", "+5")]),
        0,
    );
    assert_eq!(report["status"], "applied", "{report:#}");
    assert_eq!(qty(&env)[&("A".into(), "S1".into())], 15);
}

#[test]
fn an_errors_csv_dropped_back_is_an_adjust_file_again() {
    // The kind came from the config: the errors CSV's name carries it.
    let env = stocked(
        "[import]\njob_type = \"adjust\"\n",
        "KIBO_REFRESH_261201000000.csv",
    );
    let report = env.import_text(
        "moves.csv",
        &stock_csv(&[("A", "S1", "+2"), ("A", "S2", "-9"), ("B", "S1", "x")]),
        1,
    );
    let id = import_id(&report);
    let name = format!("moves.{id}_UPDATE_.errors.csv");
    assert!(
        env.outbox_files().contains(&name),
        "{:?}",
        env.outbox_files()
    );
    let mut rows = env.outbox_csv(&name);
    // Fix the two rows: the header is the file's own, then an error column.
    assert_eq!(rows.len(), 3, "{rows:?}");
    rows[1][2] = "-1".into();
    rows[2][2] = "+3".into();
    // Dropped back into a refresh-configured root: still an adjust file.
    env.set_config("");
    let fixed = render_csv(&rows);
    let again = env.import_text(&name, &fixed, 0);
    assert_eq!(again["job_type"], "adjust", "{again:#}");
    assert_eq!(again["status"], "applied", "{again:#}");
    assert_eq!(
        qty(&env),
        expect_quantities(&[("A", "S1", 12), ("A", "S2", 3), ("B", "S1", 10)])
    );
    // And only once.
    let twice = env.import_text(&name, &fixed, 0);
    assert_eq!(twice["status"], "duplicate", "{twice:#}");
}

#[test]
fn zip_members_inherit_the_archive_kind_unless_their_names_say() {
    use std::io::Write;
    let env = stocked("", "stock.csv");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("moves.csv", options).unwrap();
    zip.write_all(stock_csv(&[("A", "S1", "+1")]).as_bytes())
        .unwrap();
    zip.start_file("KIBO_REFRESH_261201130000.csv", options)
        .unwrap();
    zip.write_all(stock_csv(&[("B", "S1", "3")]).as_bytes())
        .unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    env.write_bytes("KIBO_UPDATE_261201140000.zip", &bytes);
    let run = env.import(&["KIBO_UPDATE_261201140000.zip"]);
    run.code(0);
    let reports = run.json_lines();
    assert_eq!(reports.len(), 2, "{run}");
    assert_eq!(reports[0]["job_type"], "adjust", "{run}");
    assert_eq!(reports[1]["job_type"], "refresh", "{run}");
    assert_eq!(
        qty(&env),
        expect_quantities(&[("A", "S1", 11), ("A", "S2", 4), ("B", "S1", 3)])
    );
}

#[test]
fn reverting_an_adjust_job_takes_its_change_off_the_current_count() {
    let env = stocked("", "stock.csv");
    let adjust = env.import_text(
        "KIBO_UPDATE_261201120000.csv",
        &stock_csv(&[("A", "S1", "+5")]),
        0,
    );
    // A later adjustment of the same product stays.
    env.import_text(
        "KIBO_UPDATE_261201130000.csv",
        &stock_csv(&[("A", "S1", "-2")]),
        0,
    );
    assert_eq!(qty(&env)[&("A".into(), "S1".into())], 13);
    let job = job_ids(&adjust)[0];
    let run = env.run(&["revert", &job.to_string(), "--json"]);
    run.code(0);
    assert_eq!(qty(&env)[&("A".into(), "S1".into())], 8);
}

/// An adjust file across two locations, killed at each crash point, then
/// finished by the next import: every count moves exactly once — whether
/// its name or the config made it an adjust file.
#[test]
fn a_crashed_adjust_import_moves_each_count_once() {
    let by_name = (
        "",
        "stock.csv",
        "KIBO_UPDATE_261201120000.csv",
        "next.csv",
        "later.csv",
    );
    let by_config = (
        "[import]\njob_type = \"adjust\"\n",
        "stock_REFRESH_.csv",
        "moves.csv",
        "next_REFRESH_.csv",
        "later_REFRESH_.csv",
    );
    for (config, refresh, name, next, later) in [by_name, by_config] {
        for point in [
            "after-plan",
            "after-commit-1",
            "after-commit-2",
            "after-reports",
        ] {
            let point = format!("{point} ({name})");
            let crash_at = point.split(' ').next().unwrap_or_default();
            let env = stocked(config, refresh);
            env.write(name, &stock_csv(&[("A", "S1", "+5"), ("B", "S1", "-2")]));
            let run = env.import_with(&[("STOCKDROP_CRASH_AT", crash_at)], &[name]);
            run.died();
            // The next import finishes the stored plan first.
            env.write(next, &stock_csv(&[("Z", "N1", "1")]));
            let run = env.import(&[next]);
            run.code(0);
            let reports = run.json_lines();
            assert_eq!(reports.len(), 2, "{point}: {run}");
            assert_eq!(reports[0]["file"], name, "{point}: {run}");
            assert_eq!(reports[0]["job_type"], "adjust", "{point}: {run}");
            assert_eq!(reports[0]["status"], "applied", "{point}: {run}");
            // And again: nothing more to finish.
            env.write(later, &stock_csv(&[("Y", "L1", "1")]));
            env.import(&[later]).code(0);
            assert_eq!(
                qty(&env),
                expect_quantities(&[
                    ("A", "S1", 15),
                    ("A", "S2", 4),
                    ("B", "S1", 5),
                    ("Y", "L1", 1),
                    ("Z", "N1", 1)
                ]),
                "{point}"
            );
            // Sent again, it is a duplicate.
            let again = env.import(&[name]);
            again.code(0);
            assert_eq!(again.report()["status"], "duplicate", "{point}: {again}");
            assert_eq!(qty(&env)[&("A".into(), "S1".into())], 15, "{point}");
        }
    }
}

/// One product on every row of an update file: each row gets the
/// `negative-stock` error, and each message names a few rows and counts
/// the rest (naming them all made the report grow with the square of the
/// rows: 146 MB for 5,000).
#[test]
fn a_product_repeated_on_many_rows_gets_messages_of_a_bounded_size() {
    let env = stocked("", "stock.csv");
    let rows: Vec<(&str, &str, &str)> = vec![("A", "S2", "-1"); 3_000];
    let report = env.import_text("KIBO_UPDATE_261201120000.csv", &stock_csv(&rows), 1);
    assert_eq!(
        report["error_counts"]["negative-stock"], 3_000,
        "{report:#}"
    );
    let message = report["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("rows 2, 3, 4, 5, 6 and 2995 more") && message.len() < 400,
        "{message}"
    );
    assert_eq!(qty(&env)[&("A".into(), "S2".into())], 4);
}

/// An update file's location of more rows than one update may change is
/// rejected with `too-many-rows` (its rows are summed per product in
/// memory); the file's other locations are applied.
#[test]
fn an_update_location_over_the_row_limit_is_rejected_and_the_others_applied() {
    let env = stocked("", "stock.csv");
    let mut rows: Vec<(&str, &str, &str)> = vec![("A", "S1", "+1"); 100_001];
    rows.push(("B", "S1", "+2"));
    let report = env.import_text("KIBO_UPDATE_261201120000.csv", &stock_csv(&rows), 1);
    assert_eq!(report["status"], "partial", "{report:#}");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors[0]["code"], "too-many-rows", "{:#}", errors[0]);
    let message = errors[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("location A has 100001 rows") && message.contains("split the file"),
        "{message}"
    );
    assert_eq!(
        report["error_counts"]["not-applied"], 100_001,
        "{:#}",
        report["error_counts"]
    );
    assert_eq!(
        qty(&env),
        expect_quantities(&[("A", "S1", 10), ("A", "S2", 4), ("B", "S1", 9)])
    );
}
