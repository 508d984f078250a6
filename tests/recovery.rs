//! Crash safety (SPEC §2): an `import` killed at a crash point is finished,
//! from its stored plan, by the next `import`; no job is applied twice and
//! every file ends with exactly one report.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::Value;

/// Imports `name` with `STOCKDROP_CRASH_AT=point`, expecting the process to
/// die there.
#[track_caller]
fn import_crashing_at(env: &Env, point: &str, name: &str) -> Run {
    let run = env.import_with(&[("STOCKDROP_CRASH_AT", point)], &[name]);
    run.died();
    assert!(
        run.stdout.trim().is_empty(),
        "a crashed import prints no report\n{run}"
    );
    run
}

/// Imports another file, which first finishes what the crash left; returns
/// (the recovered report of `crashed_file`, the report of the new file).
#[track_caller]
fn import_after_crash(env: &Env, crashed_file: &str) -> (Value, Value) {
    env.write("next.csv", &stock_csv(&[("Z", "N1", "1")]));
    let run = env.import(&["next.csv"]);
    assert!(run.code.is_some_and(|c| c == 0 || c == 1), "{run}");
    let reports = run.json_lines();
    assert_eq!(reports.len(), 2, "recovered report, then next.csv\n{run}");
    assert_eq!(reports[0]["file"], crashed_file, "{run}");
    assert_eq!(reports[1]["file"], "next.csv", "{run}");
    assert_eq!(reports[1]["status"], "applied", "{run}");
    (reports[0].clone(), reports[1].clone())
}

/// Asserts that exactly one JSON report exists for `stem`, and returns it.
#[track_caller]
fn only_report_of(env: &Env, stem: &str) -> Value {
    let json: Vec<String> = env
        .outbox_files_of(stem)
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(
        json.len(),
        1,
        "one JSON report for {stem}; outbox: {:?}",
        env.outbox_files()
    );
    let id: i64 = json[0]
        .trim_start_matches(&format!("{stem}."))
        .trim_end_matches(".json")
        .parse()
        .expect("<stem>.<import id>.json");
    env.outbox_report(stem, id)
}

/// Asserts every successful job of `report` changed each record at most
/// once, and that no record was changed by two of its jobs; returns the
/// number of changes per job id.
#[track_caller]
fn assert_applied_once(env: &Env, report: &Value) -> BTreeMap<i64, usize> {
    let mut seen: BTreeMap<i64, i64> = BTreeMap::new();
    let mut per_job = BTreeMap::new();
    for job_id in job_ids(report) {
        let job = env.job(job_id);
        let all = job["changes"].as_array().expect("changes array");
        for change in all {
            let record = change["record_id"].as_i64().expect("record_id");
            if let Some(other) = seen.insert(record, job_id) {
                panic!("record {record} changed by job {other} and again by job {job_id}: {job:#}");
            }
        }
        per_job.insert(job_id, all.len());
    }
    per_job
}

#[test]
fn import_aborted_after_plan_is_finished_by_the_next_import() {
    let env = Env::new();
    env.write(
        "first.csv",
        &stock_csv(&[("A", "S1", "5"), ("A", "S2", "6"), ("B", "S1", "7")]),
    );
    import_crashing_at(&env, "after-plan", "first.csv");
    assert!(
        env.outbox_files_of("first").is_empty(),
        "{:?}",
        env.outbox_files()
    );
    assert!(
        env.stock(&[]).is_empty(),
        "nothing applied before the crash"
    );

    let (recovered, _) = import_after_crash(&env, "first.csv");
    assert_eq!(recovered["status"], "applied", "{recovered:#}");
    assert_eq!(
        report_jobs(&recovered),
        vec![
            ("A".into(), 2, 0, "success".into()),
            ("B".into(), 1, 0, "success".into()),
        ]
    );
    assert_eq!(only_report_of(&env, "first"), recovered);
    let per_job = assert_applied_once(&env, &recovered);
    assert_eq!(per_job.values().copied().collect::<Vec<_>>(), [2, 1]);
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("A", "S1", 5),
            ("A", "S2", 6),
            ("B", "S1", 7),
            ("Z", "N1", 1)
        ])
    );
    let imports = env.imports();
    let first = imports.iter().find(|i| i["file"] == "first.csv").unwrap();
    assert_eq!(first["status"], "applied");
    assert_utc_time(&first["finished_at"]);
}

#[test]
fn import_aborted_after_first_commit_is_finished_with_its_original_plan() {
    let env = Env::new();
    env.import_text("before.csv", &stock_csv(&[("A", "S1", "1")]), 0);
    env.write(
        "three.csv",
        &stock_csv(&[
            ("A", "S1", "5"),
            ("A", "S2", "6"),
            ("B", "S1", "7"),
            ("B", "S2", "8"),
            ("C", "S1", "9"),
            ("C", "S2", "x"),
        ]),
    );
    import_crashing_at(&env, "after-commit-1", "three.csv");
    assert!(
        env.outbox_files_of("three").is_empty(),
        "{:?}",
        env.outbox_files()
    );
    // The first location is committed, the others are not.
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("A", "S1", 5), ("A", "S2", 6)])
    );
    let planned: Vec<(i64, String, i64)> = env
        .jobs()
        .iter()
        .rev()
        .skip(1) // before.csv's job
        .map(|j| {
            (
                j["job_id"].as_i64().unwrap(),
                j["location"].as_str().unwrap().to_string(),
                j["item_count"].as_i64().unwrap(),
            )
        })
        .collect();
    let planned_locations: Vec<(&str, i64)> =
        planned.iter().map(|(_, l, n)| (l.as_str(), *n)).collect();
    assert_eq!(planned_locations, [("A", 2), ("B", 2), ("C", 1)]);

    // A config that would plan the file very differently.
    env.set_config("[import]\nitems_per_job = 1\non_error = \"reject-file\"\n");
    let (recovered, _) = import_after_crash(&env, "three.csv");
    assert_eq!(recovered["status"], "partial", "{recovered:#}");
    assert_eq!(
        recovered["error_counts"]["not-an-integer"], 1,
        "{recovered:#}"
    );
    assert_eq!(
        report_jobs(&recovered),
        vec![
            ("A".into(), 2, 0, "success".into()),
            ("B".into(), 2, 0, "success".into()),
            ("C".into(), 1, 0, "success".into()),
        ]
    );
    let planned_ids: Vec<i64> = planned.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(
        job_ids(&recovered),
        planned_ids,
        "the stored jobs, not new ones"
    );
    assert_eq!(only_report_of(&env, "three"), recovered);

    // Exactly one change per item: A's job was not applied again.
    let per_job = assert_applied_once(&env, &recovered);
    assert_eq!(per_job.values().copied().collect::<Vec<_>>(), [2, 2, 1]);
    let a_job = env.job(planned_ids[0]);
    let a_changes = changes(&a_job);
    let s1 = a_changes.iter().find(|(sku, _, _)| sku == "S1").unwrap();
    assert_eq!(
        (s1.1["quantity"].clone(), s1.2["quantity"].clone()),
        (1.into(), 5.into())
    );

    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[
            ("A", "S1", 5),
            ("A", "S2", 6),
            ("B", "S1", 7),
            ("B", "S2", 8),
            ("C", "S1", 9),
            ("Z", "N1", 1),
        ])
    );

    // Running the same import again does not apply it a second time.
    let again = env.import(&["three.csv"]);
    again.code(0);
    let again = again.report();
    assert_eq!(again["status"], "duplicate", "{again:#}");
    assert_eq!(again["duplicate_of"], recovered["import_id"]);
}

#[test]
fn import_aborted_after_reports_ends_with_exactly_one_report() {
    let env = Env::new();
    env.write(
        "late.csv",
        &stock_csv(&[("A", "S1", "5"), ("A", "S2", "x"), ("B", "S1", "7")]),
    );
    import_crashing_at(&env, "after-reports", "late.csv");
    // The store already holds the applied jobs.
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("A", "S1", 5), ("B", "S1", 7)])
    );

    let (recovered, _) = import_after_crash(&env, "late.csv");
    assert_eq!(recovered["status"], "partial", "{recovered:#}");
    let id = import_id(&recovered);
    assert_eq!(only_report_of(&env, "late"), recovered);
    let errors_csv: Vec<String> = env
        .outbox_files_of("late")
        .into_iter()
        .filter(|n| n.ends_with(".errors.csv"))
        .collect();
    assert_eq!(errors_csv, [format!("late.{id}.errors.csv")]);
    let per_job = assert_applied_once(&env, &recovered);
    assert_eq!(per_job.values().copied().collect::<Vec<_>>(), [1, 1]);
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("A", "S1", 5), ("B", "S1", 7), ("Z", "N1", 1)])
    );
    let imports = env.imports();
    let late = imports.iter().find(|i| i["file"] == "late.csv").unwrap();
    assert_eq!(late["status"], "partial");
    assert_utc_time(&late["finished_at"]);

    // Nothing is left to finish: a further import reports only its own file.
    env.write("later.csv", &stock_csv(&[("Y", "L1", "2")]));
    let run = env.import(&["later.csv"]);
    run.code(0);
    assert_eq!(run.json_lines().len(), 1, "{run}");
    assert_eq!(only_report_of(&env, "late"), recovered);
}

#[test]
fn an_unchanged_item_is_stored_as_nothing_yet_counts_and_recovers() {
    // The seed sets S1 and S2; the re-import changes S2 only. Its stored
    // plan holds S2 alone (S1 is what the record already is), yet the job
    // counts both items, and recovery from that plan gives the same stock.
    let env = Env::new();
    env.write(
        "seed.csv",
        &stock_csv(&[("A", "S1", "5"), ("A", "S2", "6")]),
    );
    env.import(&["seed.csv"]).code(0);
    env.write(
        "again.csv",
        &stock_csv(&[("A", "S1", "5"), ("A", "S2", "9")]),
    );
    import_crashing_at(&env, "after-plan", "again.csv");
    let db = rusqlite::Connection::open(env.database()).expect("open the store");
    let (count, plan): (i64, Vec<u8>) = db
        .query_row(
            "SELECT item_count, plan FROM jobs WHERE status = 'pending'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the pending job");
    drop(db);
    let plan = stockdrop::plan::JobPlan::decode(&plan).expect("a stored plan");
    assert_eq!(count, 2);
    let skus: Vec<_> = plan.items.iter().map(|p| p.item.ids.sku.clone()).collect();
    assert_eq!(skus, [Some("S2".to_string())]);

    let (recovered, _) = import_after_crash(&env, "again.csv");
    assert_eq!(recovered["status"], "applied", "{recovered:#}");
    assert_eq!(
        report_jobs(&recovered),
        vec![("A".into(), 2, 0, "success".into())]
    );
    let per_job = assert_applied_once(&env, &recovered);
    assert_eq!(per_job.values().copied().collect::<Vec<_>>(), [1]);
    assert_eq!(
        quantities(&env.stock(&[])),
        expect_quantities(&[("A", "S1", 5), ("A", "S2", 9), ("Z", "N1", 1)])
    );
}

#[test]
fn a_large_import_killed_while_checkpointed_on_another_thread_is_finished() {
    // 60,000 items: applying copies the WAL into the database on a thread
    // of its own (from 50,000), which the crash stops wherever it is.
    let env = Env::new();
    let rows: Vec<(String, String, String)> = ["A", "B", "C"]
        .iter()
        .flat_map(|l| {
            (0..20_000).map(move |i| (l.to_string(), format!("S{i}"), (i % 50 + 1).to_string()))
        })
        .collect();
    let refs: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(l, s, q)| (l.as_str(), s.as_str(), q.as_str()))
        .collect();
    env.write("large.csv", &stock_csv(&refs));
    import_crashing_at(&env, "after-commit-2", "large.csv");
    let per_location = || -> Vec<(String, i64, i64)> {
        let db = rusqlite::Connection::open(env.database()).unwrap();
        let ok: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let mut stmt = db
            .prepare(
                "SELECT l.name, count(*), sum(i.quantity) FROM inventory i \
                 JOIN locations l ON l.id = i.location_id GROUP BY l.name ORDER BY l.name",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    // Each of the 20,000 quantities 1..=50 400 times.
    let sum = 400 * (1..=50).sum::<i64>();
    assert_eq!(
        per_location(),
        [("A".into(), 20_000, sum), ("B".into(), 20_000, sum)]
    );
    let (recovered, _) = import_after_crash(&env, "large.csv");
    assert_eq!(recovered["status"], "applied", "{recovered:#}");
    assert_eq!(recovered["rows"]["accepted"], 60_000, "{recovered:#}");
    assert_eq!(
        per_location(),
        [
            ("A".into(), 20_000, sum),
            ("B".into(), 20_000, sum),
            ("C".into(), 20_000, sum),
            ("Z".into(), 1, 1),
        ]
    );
    assert_eq!(only_report_of(&env, "large"), recovered);
}
