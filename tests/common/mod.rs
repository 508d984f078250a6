//! Shared helpers for the black-box CLI tests: a temporary data root with a
//! `stockdrop.toml`, running the real binary in it, and reading back what it
//! left behind (reports in the outbox, the store through the listing
//! commands).
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod daemon;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

/// One finished run of the binary, printable for assertion messages.
pub struct Run {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `None` when the process was killed by a signal (e.g. an abort).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        writeln!(f, "$ {}stockdrop {}", env.concat(), self.args.join(" "))?;
        writeln!(f, "exit code: {:?}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(
            f,
            "--- stderr ---\n{}\n--------------",
            self.stderr.trim_end()
        )
    }
}

impl Run {
    /// The run of `stockdrop ARGS` with `env`, and what it left.
    pub fn new(
        env: &[(&str, &str)],
        args: &[&str],
        code: Option<i32>,
        stdout: String,
        stderr: String,
    ) -> Run {
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            code,
            stdout,
            stderr,
        }
    }

    /// Asserts the exit code, printing the whole run when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "expected exit code {expected}\n{self}"
        );
        self
    }

    /// Asserts the process did not exit successfully (crashed or failed).
    #[track_caller]
    pub fn died(&self) -> &Self {
        assert_ne!(self.code, Some(0), "expected the process to die\n{self}");
        self
    }

    /// Stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{self}"))
    }

    /// Stdout as one JSON object per non-empty line.
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("line is not JSON: {e}: {l}\n{self}"))
            })
            .collect()
    }

    /// The last JSON report line (`import --json` prints reports of
    /// recovered imports first, then the files named).
    #[track_caller]
    pub fn report(&self) -> Value {
        self.json_lines()
            .pop()
            .unwrap_or_else(|| panic!("no JSON report on stdout\n{self}"))
    }
}

/// A temporary data root with its own config, store and outbox.
pub struct Env {
    dir: TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    /// A root whose `stockdrop.toml` has no settings (all defaults, data
    /// under `<root>/var`).
    pub fn new() -> Env {
        Env::with_config("")
    }

    /// A root whose `stockdrop.toml` holds `toml`.
    pub fn with_config(toml: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("stockdrop-test-")
            .tempdir()
            .expect("create a temporary directory");
        let env = Env { dir };
        env.set_config(toml);
        env
    }

    /// Replaces the config file.
    pub fn set_config(&self, toml: &str) {
        fs::write(self.config_path(), toml).expect("write stockdrop.toml");
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.root().join("stockdrop.toml")
    }

    pub fn outbox(&self) -> PathBuf {
        self.root().join("var/outbox")
    }

    pub fn database(&self) -> PathBuf {
        self.root().join("var/stockdrop.db")
    }

    /// Writes a file into the root; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        self.write_bytes(name, text.as_bytes())
    }

    /// Writes raw bytes into the root (archives, workbooks); returns the
    /// path.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root().join(name);
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Reads a file under the root.
    pub fn read(&self, name: &str) -> String {
        let path = self.root().join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// As [`Listings::run`], with extra environment variables.
    pub fn run_with(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stockdrop"));
        command
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .current_dir(self.root());
        // Keep the caller's environment from leaking into the test.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("STOCKDROP") || key == "RUST_LOG" {
                command.env_remove(&*key);
            }
        }
        command.env("NO_COLOR", "1");
        command.envs(env.iter().copied());
        let output = command.output().expect("run the stockdrop binary");
        Run::new(
            env,
            args,
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `import --json FILES…`.
    pub fn import(&self, files: &[&str]) -> Run {
        self.import_with(&[], files)
    }

    /// `import --json ARGS…` with extra environment variables.
    pub fn import_with(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut all = vec!["import", "--json"];
        all.extend_from_slice(args);
        self.run_with(env, &all)
    }

    /// Writes `name` with `text` and imports it, expecting `code`; returns
    /// its report.
    #[track_caller]
    pub fn import_text(&self, name: &str, text: &str, code: i32) -> Value {
        self.write(name, text);
        let run = self.import(&[name]);
        run.code(code);
        run.report()
    }

    /// `stock --json [FILTERS…]`.
    #[track_caller]
    pub fn stock(&self, filters: &[&str]) -> Vec<Value> {
        let mut args = vec!["stock"];
        args.extend_from_slice(filters);
        array(self.listing(&args))
    }

    /// The names of the report files in the outbox, sorted (empty when
    /// there is no outbox). The outbox's `index.html`, which lists them, is
    /// left out (tests/outbox_index.rs checks it).
    pub fn outbox_files(&self) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.outbox()) {
            Ok(entries) => entries
                .map(|e| e.expect("read outbox entry").file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| n != "index.html")
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// The outbox files whose names start with `<stem>.`.
    pub fn outbox_files_of(&self, stem: &str) -> Vec<String> {
        let prefix = format!("{stem}.");
        self.outbox_files()
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// The text of an outbox file.
    #[track_caller]
    pub fn outbox_text(&self, name: &str) -> String {
        let path = self.outbox().join(name);
        fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "read {}: {e}; outbox holds {:?}",
                path.display(),
                self.outbox_files()
            )
        })
    }

    /// The JSON report `<stem>.<import id>.json` from the outbox.
    #[track_caller]
    pub fn outbox_report(&self, stem: &str, import_id: i64) -> Value {
        let name = format!("{stem}.{import_id}.json");
        let text = self.outbox_text(&name);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}\n{text}"))
    }

    /// The rows of an outbox CSV (the errors CSV), header first, with the
    /// UTF-8 BOM removed.
    #[track_caller]
    pub fn outbox_csv(&self, name: &str) -> Vec<Vec<String>> {
        parse_csv(&self.outbox_text(name))
    }
}

/// The listing commands, for any data root that can run the binary: [`Env`]
/// here, and roots whose commands run with a deadline.
pub trait Listings {
    /// Runs `stockdrop --config <root>/stockdrop.toml ARGS` in the root.
    fn run(&self, args: &[&str]) -> Run;

    /// Runs a listing command with `--json`, expecting exit code 0.
    #[track_caller]
    fn listing(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.run(&all);
        run.code(0);
        run.json()
    }

    /// `jobs --json --limit 10000`, newest first.
    #[track_caller]
    fn jobs(&self) -> Vec<Value> {
        array(self.listing(&["jobs", "--limit", "10000"]))
    }

    /// `job ID --json`.
    #[track_caller]
    fn job(&self, id: i64) -> Value {
        self.listing(&["job", &id.to_string()])
    }

    /// `imports --json`, newest first.
    #[track_caller]
    fn imports(&self) -> Vec<Value> {
        array(self.listing(&["imports"]))
    }
}

impl Listings for Env {
    fn run(&self, args: &[&str]) -> Run {
        self.run_with(&[], args)
    }
}

/// A JSON value that must be an array.
#[track_caller]
pub fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other:#}"),
    }
}

/// Lines joined into file text with a final newline.
pub fn lines(rows: &[&str]) -> String {
    let mut text = rows.join("\n");
    text.push('\n');
    text
}

/// A CSV of `location,sku,qty` rows, one per `(location, sku, qty)`.
pub fn stock_csv(rows: &[(&str, &str, &str)]) -> String {
    let mut text = String::from("location,sku,qty\n");
    for (location, sku, qty) in rows {
        text.push_str(&format!("{location},{sku},{qty}\n"));
    }
    text
}

/// Parses CSV text (BOM removed, rows of any width).
#[track_caller]
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("bad CSV: {e}\n{text}"))
                .iter()
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// Renders rows as CSV text (for writing an edited errors CSV back).
pub fn render_csv(rows: &[Vec<String>]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    for row in rows {
        writer.write_record(row).expect("write CSV row");
    }
    String::from_utf8(writer.into_inner().expect("flush CSV")).expect("UTF-8 CSV")
}

/// The record of `location` with `sku`; panics unless exactly one.
#[track_caller]
pub fn record<'a>(stock: &'a [Value], location: &str, sku: &str) -> &'a Value {
    let found: Vec<&Value> = stock
        .iter()
        .filter(|r| r["location"] == location && r["sku"] == sku)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one record for location {location} sku {sku} in {:#}",
        Value::Array(stock.to_vec())
    );
    found[0]
}

/// `(location, sku) → quantity` for every record; panics on a repeated key
/// (one product recorded twice).
#[track_caller]
pub fn quantities(stock: &[Value]) -> BTreeMap<(String, String), i64> {
    let mut map = BTreeMap::new();
    for r in stock {
        let key = (
            r["location"].as_str().unwrap_or_default().to_string(),
            r["sku"].as_str().unwrap_or_default().to_string(),
        );
        let qty = r["quantity"].as_i64().expect("integer quantity");
        assert!(
            map.insert(key.clone(), qty).is_none(),
            "record {key:?} appears twice in {:#}",
            Value::Array(stock.to_vec())
        );
    }
    map
}

/// The expected quantities map from `(location, sku, quantity)` triples.
pub fn expect_quantities(rows: &[(&str, &str, i64)]) -> BTreeMap<(String, String), i64> {
    rows.iter()
        .map(|(l, s, q)| ((l.to_string(), s.to_string()), *q))
        .collect()
}

/// The report's jobs as `(location, item_count, zeroed, status)`.
pub fn report_jobs(report: &Value) -> Vec<(String, u64, u64, String)> {
    report["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("report without jobs: {report:#}"))
        .iter()
        .map(|j| {
            (
                j["location"].as_str().unwrap_or_default().to_string(),
                j["item_count"].as_u64().expect("item_count"),
                j["zeroed"].as_u64().expect("zeroed"),
                j["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The report's job ids (each must be an integer).
#[track_caller]
pub fn job_ids(report: &Value) -> Vec<i64> {
    report["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("report without jobs: {report:#}"))
        .iter()
        .map(|j| {
            j["job_id"]
                .as_i64()
                .unwrap_or_else(|| panic!("job_id is not an integer: {j}"))
        })
        .collect()
}

/// The report's errors as `(row, code)`.
pub fn report_errors(report: &Value) -> Vec<(Option<u64>, String)> {
    report["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("report without errors: {report:#}"))
        .iter()
        .map(|e| {
            (
                e["row"].as_u64(),
                e["code"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The report's warning codes.
pub fn warning_codes(report: &Value) -> Vec<String> {
    report["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("report without warnings: {report:#}"))
        .iter()
        .map(|w| w["code"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The report's `import_id`.
#[track_caller]
pub fn import_id(report: &Value) -> i64 {
    report["import_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("report without an integer import_id: {report:#}"))
}

/// Asserts that `object` has every key in `keys`.
#[track_caller]
pub fn assert_keys(object: &Value, keys: &[&str]) {
    let map = object
        .as_object()
        .unwrap_or_else(|| panic!("expected a JSON object, got {object:#}"));
    let missing: Vec<&&str> = keys.iter().filter(|k| !map.contains_key(**k)).collect();
    assert!(missing.is_empty(), "missing keys {missing:?} in {object:#}");
}

/// Asserts an RFC 3339 UTC timestamp (`YYYY-MM-DDTHH:MM:SS[.fff]Z`).
#[track_caller]
pub fn assert_utc_time(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("expected a timestamp, got {value}"));
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && (text.ends_with('Z') || text.ends_with("+00:00"));
    assert!(shape_ok, "not an RFC 3339 UTC timestamp: {text}");
}

/// `job ID --json` changes as `(sku, before, after)`.
pub fn changes(job: &Value) -> Vec<(String, Value, Value)> {
    job["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("job without changes: {job:#}"))
        .iter()
        .map(|c| {
            (
                c["sku"].as_str().unwrap_or_default().to_string(),
                c["before"].clone(),
                c["after"].clone(),
            )
        })
        .collect()
}
