//! Resolving: validated rows + the store → the [`Plan`].
//!
//! This is where the rules that need the store or the whole file are decided
//! (SPEC §1, §4): which record each item is, identifier conflicts, duplicate
//! items, attributes after merging, the `on_error` policies, full-mode
//! zeroing and its guard, and the split into jobs of at most
//! `items_per_job`. It only reads the store.
//!
//! [`plan`] resolves the locations one after another (this module: a
//! location's rows gathered from the stage and matched, `matching`, then
//! decided: `duplicates`, `adjust_rows` for an adjust file, `full_mode`,
//! and `jobs` to split what is to be applied), then applies the
//! `on_error` policies and reads the report's `draft` off the stage.

// foldhash rather than std's SipHash: the maps here hold a file's
// identifiers and record ids by the hundred thousand, and SipHash was
// 8% of a re-import. Its seed is random per process, so an uploader cannot
// pick identifiers that collide.
use foldhash::{HashSet, HashSetExt};

use crate::adjust;
use crate::config::{Duplicates, ImportRules, JobType, OnError, RefreshMode};
use crate::issue::{Code, Issue, Place};
use crate::plan::Plan;
use crate::store::records;
use crate::store::stage::{record_key, row_keys, Findings, Stage, StagedJob};
use crate::store::{Reader, Result};
use crate::validate::{is_errors_report, Checked, CheckedRow};

mod adjust_rows;
mod draft;
mod duplicates;
mod full_mode;
mod jobs;
mod matching;

use adjust_rows::adjust_rows;
pub use draft::errors_csv_header;
use duplicates::{duplicate_issue, find_duplicates};
use full_mode::{full_mode_applies, full_mode_guard, full_mode_zero};
use jobs::{JobSink, JobSplitter};

/// Per-row findings of this step, beside the row's own validation result.
#[derive(Default, Clone)]
pub(crate) struct Found {
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
    record: Option<i64>,
    /// The record already holds everything the row would set: a refresh
    /// plans it as nothing (applying it would write no history and change
    /// nothing), so an unchanged re-import stores almost no plan.
    unchanged: bool,
    /// Replaced by a later row (`duplicates = "last-wins"`).
    superseded: bool,
}

fn row_place(checked: &Checked, row: &CheckedRow) -> Place {
    if let Some(pointer) = &row.pointer {
        return Place {
            pointer: Some(pointer.clone()),
            ..Place::default()
        };
    }
    Place {
        row: Some(row.number),
        sheet: checked
            .tables
            .get(usize::from(row.table))
            .and_then(|t| t.sheet.clone()),
        ..Place::default()
    }
}

/// What resolving one location found: per row of the location (in file
/// order), and about the location.
struct LocationFindings {
    /// Resolve-time errors and warnings of its rows, by seq (sparse: most
    /// rows have none), still to be staged (a location resolved a window
    /// at a time stages them as it goes).
    issues: Vec<(u64, Findings)>,
    rejected: Option<String>,
    any_error: bool,
    /// Rejected by the full-mode guard (`too-many-zeroed`).
    guard_rejected: bool,
}

/// Builds the plan for `checked`, whose rows are in `stage`, reading the
/// store through `store`. One location's rows are in memory at a time:
/// its jobs go into the stage as they are planned, the rows left out too;
/// what the plan keeps is the report's draft and a flag per location.
/// `progress` is told (rows resolved, rows in all) after each location.
pub fn plan(
    checked: &Checked,
    stage: &mut Stage,
    store: &impl Reader,
    rules: &ImportRules,
    file_name: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<Plan> {
    let _snapshot = crate::store::snapshot(store)?;
    // An adjust file never zeroes anything (SPEC §1.1): refresh mode does
    // not apply to it.
    let job_type = rules.job_type;
    let update_stamp = match job_type {
        JobType::Adjust => adjust::update_stamp(file_name),
        JobType::Refresh => None,
    };
    let mode = if is_errors_report(file_name) || job_type == JobType::Adjust {
        RefreshMode::Delta
    } else {
        rules.refresh_mode
    };
    let mut rejected_locations: Vec<Option<String>> = vec![None; checked.locations.len()];
    let mut location_errors: Vec<Issue> = Vec::new();
    let mut any_row_error = stage.any_row_error();
    let mut guard_rejected = false;

    let file = File {
        checked,
        store,
        rules,
        mode,
        update_stamp,
    };
    let mut resolved = 0;
    resolve_locations(
        &file,
        stage,
        &mut location_errors,
        |stage, location_index, findings| {
            resolved += stage.rows_at(location_index).0;
            progress(resolved, stage.rows());
            any_row_error |= findings.any_error;
            guard_rejected |= findings.guard_rejected;
            rejected_locations[location_index as usize] = findings.rejected;
            stage.push_found(location_index, findings.issues)
        },
    )?;

    // The on_error policies, now that every row's errors are known.
    let rows_rejected_file = rules.on_error == OnError::RejectFile && any_row_error;
    if checked.file_error.is_some() || rows_rejected_file {
        // The full-mode check is not reached for a file rejected anyway.
        location_errors.clear();
        guard_rejected = false;
    }
    let file_rejected = checked.file_error.is_some()
        || rows_rejected_file
        || (guard_rejected && rules.on_error == OnError::RejectFile);
    let file_reason = if checked.file_error.is_some() {
        "the file was rejected as a whole"
    } else if !location_errors.is_empty() && rules.on_error == OnError::RejectFile {
        "the file was rejected because a location failed the full-mode check (import.on_error = reject-file)"
    } else {
        "the file was rejected because some rows have errors (import.on_error = reject-file)"
    };
    let verdict = draft::Verdict {
        location_errors,
        rejected_locations: &rejected_locations,
        file_rejected: file_rejected.then_some(file_reason),
    };
    let (draft, left_out) = draft::draft(checked, stage, rules, verdict)?;

    Ok(Plan {
        mode,
        job_type,
        draft,
        locations: checked.locations.clone(),
        rejected: rejected_locations.iter().map(Option::is_some).collect(),
        file_rejected,
        left_out,
    })
}

/// A location whose rows take more than this staged (encoded; up to ten
/// times as much decoded: each text is a `String`), or are more than
/// [`IN_MEMORY_ROWS`], is resolved a window of rows at a time — one
/// warehouse's whole stock list of millions of rows; a smaller one is held
/// in memory while it is resolved, which is faster. 12 MiB is about
/// 130,000 rows of the benchmark's shape, some 120 MiB held.
const IN_MEMORY_BYTES: u64 = 12 * 1024 * 1024;
/// Rows count too: a row held costs up to 1.6 KB whatever it staged (its
/// item, what was found about it), and a row of a sku and a count stages
/// in 27 bytes, so 12 MiB of those (450,000 rows) took 735 MiB held.
const IN_MEMORY_ROWS: u64 = 100_000;
const WINDOW_ROWS: usize = 20_000;

/// Whether a location of `rows` rows taking `bytes` staged is resolved a
/// window at a time, and the window's size. `STOCKDROP_RESOLVE_WINDOW=N`
/// in the environment windows every location of more than `N` rows, `N`
/// at a time: how tests make small files take the windowed way.
fn windowing(rows: u64, bytes: u64) -> Option<usize> {
    static FORCED: std::sync::LazyLock<Option<usize>> = std::sync::LazyLock::new(|| {
        std::env::var("STOCKDROP_RESOLVE_WINDOW")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    });
    match *FORCED {
        Some(n) => (rows > n as u64).then_some(n.max(1)),
        None => (bytes > IN_MEMORY_BYTES || rows > IN_MEMORY_ROWS).then_some(WINDOW_ROWS),
    }
}

/// The file being resolved, and what it is resolved against.
struct File<'a, R> {
    checked: &'a Checked,
    store: &'a R,
    rules: &'a ImportRules,
    mode: RefreshMode,
    update_stamp: Option<u64>,
}

impl<'a, R> File<'a, R> {
    fn at(&self, location_index: u32) -> At<'a, R> {
        At {
            checked: self.checked,
            store: self.store,
            rules: self.rules,
            mode: self.mode,
            location_index,
            location: &self.checked.locations[location_index as usize],
            update_stamp: self.update_stamp,
        }
    }
}

/// Resolves every location, handing each one's findings to `take` and
/// staging its jobs, both in location order. A refresh location small
/// enough to hold is gathered here (its rows from the stage, matched
/// against the store) while the one before it is decided on a helper
/// thread (each row compared with its record, duplicates, the full-mode
/// guard, the split into jobs): the second core works while the store is
/// read. The two locations in hand take at most [`IN_MEMORY_BYTES`]
/// staged together, as one may alone.
fn resolve_locations<R: Reader>(
    file: &File<'_, R>,
    stage: &mut Stage,
    location_errors: &mut Vec<Issue>,
    mut take: impl FnMut(&Stage, u32, LocationFindings) -> Result<()>,
) -> Result<()> {
    let count = file.checked.locations.len() as u32;
    // A file of one location has nothing to overlap; an adjust file's
    // rows are checked against the store's counts (`adjust_rows`), which
    // only this thread reads.
    let pipelined = count > 1 && file.rules.job_type == JobType::Refresh;
    let (checked, rules) = (file.checked, file.rules);
    // The helper reads the records its locations name through a
    // connection of its own at this thread's snapshot: reading them was a
    // third of this thread's work. Without one, this thread reads them.
    let twin = match pipelined {
        true => crate::store::twin::at_same_snapshot(file.store),
        false => None,
    };
    let helper_reads = twin.is_some();
    std::thread::scope(|scope| {
        let (to_helper, inbox) = std::sync::mpsc::sync_channel::<(u32, Gathered)>(1);
        let (outbox, from_helper) = std::sync::mpsc::sync_channel::<Result<Decided>>(1);
        let helper = pipelined.then(|| {
            std::thread::Builder::new()
                .name("stockdrop-resolve".into())
                .spawn_scoped(scope, move || {
                    for (location_index, mut gathered) in inbox {
                        let apart = Apart {
                            checked,
                            rules,
                            location_index,
                            location: &checked.locations[location_index as usize],
                        };
                        let mut jobs: Vec<StagedJob> = Vec::new();
                        let read = match &twin {
                            Some(twin) => gathered.named.read_records(twin),
                            None => Ok(()),
                        };
                        let decided = read.and_then(|()| decide(&apart, gathered, &mut jobs)).map(
                            |mut decided| {
                                decided.jobs = jobs;
                                decided
                            },
                        );
                        if outbox.send(decided).is_err() {
                            break;
                        }
                    }
                })
        });
        // No thread to be had (the service's task limit, say): one
        // location at a time on this one, as with a single location.
        let mut helper = match helper {
            Some(Err(e)) => {
                tracing::warn!(error = %e, "resolving on one thread: no helper thread");
                None
            }
            Some(Ok(thread)) => Some(thread),
            None => None,
        };
        let pipelined = helper.is_some();
        // The location on the helper thread. It was handed over only if
        // it and the next location fit the budget together, so the next
        // can be gathered while it is decided.
        let mut in_flight: Option<u32> = None;
        let mut receive = |stage: &mut Stage,
                           location_errors: &mut Vec<Issue>,
                           location_index: u32|
         -> Result<LocationFindings> {
            let decided = match from_helper.recv() {
                Ok(decided) => decided?,
                // The helper is gone without an answer: it panicked, and
                // so does this thread, as if it had decided the location.
                Err(_) => match helper.take().map(|h| h.join()) {
                    Some(Err(panic)) => std::panic::resume_unwind(panic),
                    _ => return Err(not_decided(location_index)),
                },
            };
            for job in &decided.jobs {
                stage.push_job(job)?;
            }
            location_errors.extend(decided.location_errors);
            Ok(decided.findings)
        };
        // A location held in memory while it is resolved: its staged
        // bytes; `None` for one resolved a window at a time.
        let held_whole = |stage: &Stage, location_index: u32| {
            let (rows, bytes) = stage.rows_at(location_index);
            windowing(rows, bytes).is_none().then_some((rows, bytes))
        };
        for location_index in 0..count {
            let at = file.at(location_index);
            let held = match held_whole(stage, location_index) {
                Some(held) if pipelined => held,
                _ => {
                    if let Some(held_index) = in_flight.take() {
                        let findings = receive(stage, location_errors, held_index)?;
                        take(stage, held_index, findings)?;
                    }
                    let findings = plan_location(&at, stage, location_errors)?;
                    take(stage, location_index, findings)?;
                    continue;
                }
            };
            let mut gathered = gather(&at, stage)?;
            if let Some(held_index) = in_flight.take() {
                let findings = receive(stage, location_errors, held_index)?;
                take(stage, held_index, findings)?;
            }
            // Decided on the helper only when the next location can be
            // gathered meanwhile; otherwise here: handing the rows over
            // (and freeing them on another thread) is all it would add.
            let next = (location_index + 1 < count)
                .then(|| held_whole(stage, location_index + 1))
                .flatten();
            let (rows, bytes) = held;
            let here = next.is_none_or(|(next_rows, next_bytes)| {
                bytes + next_bytes > IN_MEMORY_BYTES || rows + next_rows > IN_MEMORY_ROWS
            });
            if here || !helper_reads {
                gathered.named.read_records(at.store)?;
            }
            if here {
                let decided = decide(&at.apart(), gathered, stage)?;
                location_errors.extend(decided.location_errors);
                take(stage, location_index, decided.findings)?;
                continue;
            }
            // The helper waits for work whenever nothing is in flight.
            to_helper
                .send((location_index, gathered))
                .map_err(|_| not_decided(location_index))?;
            in_flight = Some(location_index);
        }
        if let Some(held_index) = in_flight {
            let findings = receive(stage, location_errors, held_index)?;
            take(stage, held_index, findings)?;
        }
        Ok(())
    })
}

fn not_decided(location_index: u32) -> crate::store::StoreError {
    crate::store::StoreError::Corrupt {
        what: "resolve",
        detail: format!("location {location_index} was not decided"),
    }
}

/// One location of one file being resolved, and what it is resolved
/// against.
struct At<'a, R> {
    checked: &'a Checked,
    store: &'a R,
    rules: &'a ImportRules,
    mode: RefreshMode,
    location_index: u32,
    location: &'a str,
    update_stamp: Option<u64>,
}

/// Resolves one location's rows and stages its jobs: matching, conflicts,
/// duplicates, `reject-location`, full-mode zeroing and its guard, the
/// split into jobs.
fn plan_location(
    at: &At<'_, impl Reader>,
    stage: &mut Stage,
    location_errors: &mut Vec<Issue>,
) -> Result<LocationFindings> {
    let (rows, bytes) = stage.rows_at(at.location_index);
    if at.rules.job_type == JobType::Adjust && (rows > IN_MEMORY_ROWS || bytes > IN_MEMORY_BYTES) {
        return Ok(adjust_too_large(at, rows, bytes, location_errors));
    }
    if let (JobType::Refresh, Some(window)) = (at.rules.job_type, windowing(rows, bytes)) {
        // Once per large location (a file has few), not per location.
        tracing::debug!(
            location = at.location,
            rows,
            bytes,
            window,
            "resolving a large location a window at a time"
        );
        return plan_large_location(at, stage, window, location_errors);
    }
    plan_location_in_memory(at, stage, location_errors)
}

/// An update file's location over [`IN_MEMORY_ROWS`] or the in-memory
/// budget: rejected (its rows `not-applied`), with a location error saying
/// to split the file. Nothing of it is read.
fn adjust_too_large(
    at: &At<'_, impl Reader>,
    rows: u64,
    bytes: u64,
    location_errors: &mut Vec<Issue>,
) -> LocationFindings {
    let location = at.location;
    location_errors.push(
        Issue::new(
            Code::TooManyRows,
            format!(
                "location {location} has {rows} rows ({:.1} MiB) in this update file; an update file \
                 changes at most {IN_MEMORY_ROWS} rows and {} MiB of one location, as they are summed \
                 per product in memory: split the file, or send the location's whole stock as a \
                 refresh file",
                bytes as f64 / (1024.0 * 1024.0),
                IN_MEMORY_BYTES >> 20
            ),
        )
        .with_value(location.to_string()),
    );
    LocationFindings {
        issues: Vec::new(),
        rejected: Some(format!(
            "location {location} was rejected: it has more rows than one update file may change \
             (too-many-rows)"
        )),
        any_error: false,
        guard_rejected: false,
    }
}

/// A large refresh location, in bounded memory whatever its size: a
/// window of rows at a time is matched against the store (each row's
/// record and whether it is unchanged go to the stage, and so do the keys
/// of each row that can be a duplicate: its identifiers and its record);
/// the stage pairs rows that share a key (`Stage::duplicate_pairs`); the
/// jobs are then built from a second pass over the rows. What rows have
/// to say is staged as it is found: nothing held grows with the location,
/// even when the file repeats one product throughout.
fn plan_large_location(
    at: &At<'_, impl Reader>,
    stage: &mut Stage,
    window_rows: usize,
    location_errors: &mut Vec<Issue>,
) -> Result<LocationFindings> {
    stage.start_location()?;
    let mut first_error = FirstError::default();
    match_windows(at, stage, window_rows, &mut first_error)?;
    stage_duplicates(at, stage, window_rows, &mut first_error)?;
    let mut rejected = reject_location(at.rules, at.location, first_error.number());
    let zero = full_mode_zero(at, stage, &mut rejected, location_errors, |stage, id| {
        stage.is_listed(id)
    })?;
    let guard_rejected = zero.is_none();
    jobs_from_windows(at, stage, window_rows, zero, rejected.is_some())?;
    Ok(LocationFindings {
        issues: Vec::new(),
        rejected,
        any_error: first_error.0.is_some(),
        guard_rejected,
    })
}

/// The first row with errors at a location, in file order: (seq, row
/// number).
#[derive(Default)]
struct FirstError(Option<(u64, u64)>);

impl FirstError {
    fn note(&mut self, seq: u64, number: u64) {
        if self.0.is_none_or(|(s, _)| seq < s) {
            self.0 = Some((seq, number));
        }
    }

    fn number(&self) -> Option<u64> {
        self.0.map(|(_, number)| number)
    }
}

/// A large location's first pass, a window of rows at a time: each row's
/// record, and what the later passes need of it staged (its keys, the
/// record it names, whether it is skipped, what was found).
fn match_windows(
    at: &At<'_, impl Reader>,
    stage: &mut Stage,
    window_rows: usize,
    first_error: &mut FirstError,
) -> Result<()> {
    let At {
        checked,
        store,
        mode,
        location_index,
        location,
        ..
    } = *at;
    let wants_listed = mode == RefreshMode::Full;
    let mut scan = true;
    let mut after = None;
    loop {
        let window = stage.location_window(location_index, after, window_rows)?;
        let Some(&(last, _)) = window.last() else {
            return Ok(());
        };
        after = Some(last);
        let (seqs, rows): (Vec<u64>, Vec<CheckedRow>) = window.into_iter().unzip();
        let mut found: Vec<Found> = vec![Found::default(); rows.len()];
        let mut listed: HashSet<i64> = HashSet::new();
        let mut named = matching::match_rows(
            checked,
            &rows,
            &mut found,
            store,
            location,
            &mut listed,
            &mut scan,
        )?;
        named.read_records(store)?;
        matching::check_named(checked, &rows, &mut found, location, named)?;
        if wants_listed {
            stage.push_listed(listed)?;
        }
        // Staged a window at a time: one statement each, not one a row.
        let mut keys: Vec<(Vec<u8>, u64)> = Vec::with_capacity(rows.len() * 4);
        let mut verdicts: Vec<(u64, i64, bool)> = Vec::new();
        let mut skip: Vec<u64> = Vec::new();
        let mut issues: Vec<(u64, Findings)> = Vec::new();
        for ((seq, row), found) in seqs.into_iter().zip(&rows).zip(found) {
            if let Some(record) = found.record {
                verdicts.push((seq, record, found.unchanged));
            }
            if !row.errors.is_empty() || !found.errors.is_empty() {
                first_error.note(seq, row.number);
                skip.push(seq);
            } else {
                // Only a valid row with no error found claims its keys, as
                // in `find_duplicates`.
                keys.extend(row_keys(row).into_iter().flatten().map(|k| (k, seq)));
                keys.extend(found.record.map(|r| (record_key(r), seq)));
            }
            if !found.errors.is_empty() || !found.warnings.is_empty() {
                issues.push((seq, (found.errors, found.warnings)));
            }
        }
        stage.push_keys(&keys)?;
        stage.push_verdicts(&verdicts)?;
        stage.push_skip(skip)?;
        stage.push_found(location_index, issues)?;
    }
}

/// A large location's duplicates: rows paired by the stage from their
/// keys, told apart here, and the rows a duplicate leaves out skipped.
fn stage_duplicates(
    at: &At<'_, impl Reader>,
    stage: &mut Stage,
    window_rows: usize,
    first_error: &mut FirstError,
) -> Result<()> {
    let At {
        checked,
        rules,
        location_index,
        ..
    } = *at;
    let last_wins = rules.duplicates == Duplicates::LastWins;
    let mut duplicates: Vec<(u64, Findings)> = Vec::new();
    let mut skip: Vec<u64> = Vec::new();
    let flush = |stage: &Stage, duplicates: &mut Vec<(u64, Findings)>, skip: &mut Vec<u64>| {
        stage.push_skip(skip.drain(..))?;
        stage.push_found(location_index, duplicates.drain(..))
    };
    let row_at = |stage: &Stage, seq: u64| -> Result<CheckedRow> {
        stage
            .row_at(i64::from(location_index), seq)?
            .ok_or_else(|| crate::store::StoreError::Corrupt {
                what: "staged row",
                detail: format!("row {seq} of a duplicate pair is not staged"),
            })
    };
    stage.duplicate_pairs(last_wins, |seq, partner, partner_earlier| {
        let (row, other) = (row_at(stage, seq)?, row_at(stage, partner)?);
        let (earlier, later) = if partner_earlier {
            (&other, &row)
        } else {
            (&row, &other)
        };
        let issue = duplicate_issue(checked, rules.duplicates, earlier, later, &row);
        if last_wins {
            duplicates.push((seq, (Vec::new(), vec![issue])));
        } else {
            first_error.note(seq, row.number);
            duplicates.push((seq, (vec![issue], Vec::new())));
        }
        skip.push(seq);
        if duplicates.len() >= window_rows {
            flush(stage, &mut duplicates, &mut skip)?;
        }
        Ok(())
    })?;
    flush(stage, &mut duplicates, &mut skip)
}

/// A large location's jobs, from the rows left, in file order, a window
/// at a time; the zeroing (`zero`) rides on the last.
fn jobs_from_windows(
    at: &At<'_, impl Reader>,
    stage: &mut Stage,
    window_rows: usize,
    zero: Option<Vec<i64>>,
    rejected: bool,
) -> Result<()> {
    let mut jobs = JobSplitter::new(at.location_index, at.rules.items_per_job);
    let mut after = None;
    loop {
        let window = stage.location_window_to_plan(at.location_index, after, window_rows)?;
        let Some(&(last, _, _)) = window.last() else {
            break;
        };
        after = Some(last);
        for (_, mut row, verdict) in window {
            if !row.errors.is_empty() {
                continue;
            }
            let Some(item) = row.item.take() else {
                continue;
            };
            let (record, unchanged) = verdict.map_or((None, false), |(r, u)| (Some(r), u));
            jobs.push_row(stage, &row, *item, record, unchanged)?;
        }
    }
    jobs.finish_location(stage, zero, rejected, at.rules.manufacturer_id)
}

/// A location whose rows are held in memory while it is resolved: a
/// refresh location of at most [`IN_MEMORY_BYTES`] staged, or an adjust file's
/// (SPEC §1.1: rows of one product are summed).
fn plan_location_in_memory(
    at: &At<'_, impl Reader>,
    stage: &mut Stage,
    location_errors: &mut Vec<Issue>,
) -> Result<LocationFindings> {
    let mut gathered = gather(at, stage)?;
    gathered.named.read_records(at.store)?;
    if at.rules.job_type == JobType::Adjust {
        // Adjusting reads each row's record: the comparison first.
        let named = std::mem::take(&mut gathered.named);
        matching::check_named(
            at.checked,
            &gathered.rows,
            &mut gathered.found,
            at.location,
            named,
        )?;
        adjust_rows(
            at.checked,
            &mut gathered.rows,
            &mut gathered.found,
            at.store,
            at.rules,
            at.location,
            at.update_stamp,
        )?;
    }
    let decided = decide(&at.apart(), gathered, stage)?;
    location_errors.extend(decided.location_errors);
    Ok(decided.findings)
}

/// What resolving a location in memory needs from the stage and the
/// store: its rows, what matching them found, and for full mode the
/// records in stock there.
struct Gathered {
    seqs: Vec<u64>,
    rows: Vec<CheckedRow>,
    found: Vec<Found>,
    /// Records the rows name (valid or not), for full mode.
    listed: HashSet<i64>,
    /// The records the rows name, to read (on the thread that decides)
    /// and compare with the rows.
    named: matching::Named,
    /// The first row with errors and no identifier (not staged): (seq, number).
    idless_error: Option<(u64, u64)>,
    /// Full mode: the records in stock at the location (`None`: nothing
    /// is zeroed here, whatever the rows say).
    nonzero: Option<Vec<i64>>,
}

/// Reads a location's rows from the stage and matches them against the
/// store: every read [`decide`] needs, so that it can run apart from both.
fn gather(at: &At<'_, impl Reader>, stage: &Stage) -> Result<Gathered> {
    let staged = stage.location_rows(at.location_index)?;
    let (seqs, rows) = (staged.seqs, staged.rows);
    let mut found: Vec<Found> = vec![Found::default(); rows.len()];
    let mut listed: HashSet<i64> = HashSet::new();
    let named = matching::match_rows(
        at.checked,
        &rows,
        &mut found,
        at.store,
        at.location,
        &mut listed,
        &mut true,
    )?;
    let nonzero = match full_mode_applies(at, stage) {
        true => Some(records::nonzero_at(at.store, at.location)?),
        false => None,
    };
    Ok(Gathered {
        seqs,
        rows,
        found,
        listed,
        named,
        idless_error: staged.first_idless_error,
        nonzero,
    })
}

/// One location being resolved, without the store: what [`decide`]
/// needs, and can take to another thread.
struct Apart<'a> {
    checked: &'a Checked,
    rules: &'a ImportRules,
    location_index: u32,
    location: &'a str,
}

impl<R> At<'_, R> {
    fn apart(&self) -> Apart<'_> {
        Apart {
            checked: self.checked,
            rules: self.rules,
            location_index: self.location_index,
            location: self.location,
        }
    }
}

/// What deciding a location found, and the `too-many-zeroed` error its
/// full-mode guard raised, if any.
struct Decided {
    findings: LocationFindings,
    location_errors: Vec<Issue>,
    /// The location's jobs, when they were split into a list rather than
    /// straight into the stage.
    jobs: Vec<StagedJob>,
}

/// The rules that need no store, on a location's gathered rows:
/// duplicates (refresh), `reject-location`, full mode's guard, the split
/// into jobs (into `jobs`).
fn decide(apart: &Apart<'_>, gathered: Gathered, jobs: &mut impl JobSink) -> Result<Decided> {
    let Apart {
        checked,
        rules,
        location_index,
        location,
    } = *apart;
    let Gathered {
        seqs,
        mut rows,
        mut found,
        listed,
        named,
        idless_error,
        nonzero,
    } = gathered;
    matching::check_named(checked, &rows, &mut found, location, named)?;
    if rules.job_type == JobType::Refresh {
        find_duplicates(checked, &rows, &mut found, rules.duplicates);
    }
    let has_error = |i: usize| !rows[i].errors.is_empty() || !found[i].errors.is_empty();
    let any_error = idless_error.is_some() || (0..rows.len()).any(has_error);
    // The first row with errors in file order, held or not.
    let held = (0..rows.len())
        .find(|&i| has_error(i))
        .map(|i| (seqs[i], rows[i].number));
    let bad = match (held, idless_error) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut rejected = reject_location(rules, location, bad.map(|b| b.1));
    let mut location_errors = Vec::new();
    let zero = match nonzero {
        None => Some(Vec::new()),
        Some(nonzero) => full_mode_guard(
            rules,
            location,
            &nonzero,
            &mut rejected,
            &mut location_errors,
            |id| Ok(listed.contains(&id)),
        )?,
    };
    let guard_rejected = zero.is_none();

    let refresh = rules.job_type == JobType::Refresh;
    let mut splitter = JobSplitter::new(location_index, rules.items_per_job);
    for (index, row) in rows.iter_mut().enumerate() {
        if has_error_or_superseded(row, &found[index]) {
            continue;
        }
        let Some(item) = row.item.take() else {
            continue;
        };
        let unchanged = refresh && found[index].unchanged;
        splitter.push_row(jobs, row, *item, found[index].record, unchanged)?;
    }
    splitter.finish_location(jobs, zero, rejected.is_some(), rules.manufacturer_id)?;

    let issues = found
        .into_iter()
        .zip(seqs)
        .filter(|(f, _)| !f.errors.is_empty() || !f.warnings.is_empty())
        .map(|(f, seq)| (seq, (f.errors, f.warnings)))
        .collect();
    Ok(Decided {
        findings: LocationFindings {
            issues,
            rejected,
            any_error,
            guard_rejected,
        },
        location_errors,
        jobs: Vec::new(),
    })
}

fn has_error_or_superseded(row: &CheckedRow, found: &Found) -> bool {
    !row.errors.is_empty() || !found.errors.is_empty() || found.superseded
}

/// `reject-location`: the location is rejected when one of its rows
/// (`first_bad`, the first in file order) has errors.
fn reject_location(rules: &ImportRules, location: &str, first_bad: Option<u64>) -> Option<String> {
    if rules.on_error != OnError::RejectLocation {
        return None;
    }
    first_bad.map(|number| {
        format!(
            "location {location} was rejected because row {number} has errors (import.on_error = reject-location)"
        )
    })
}
