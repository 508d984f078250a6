//! Resolving: validated rows + the store → the [`Plan`].
//!
//! This is where the rules that need the store or the whole file are decided
//! (SPEC §1, §4): which record each item is, identifier conflicts, duplicate
//! items, attributes after merging, the `on_error` policies, full-mode
//! zeroing and its guard, and the split into jobs of at most
//! `items_per_job`. It only reads the store.

use std::collections::BTreeSet;

// foldhash rather than std's SipHash: the maps here hold a file's
// identifiers and record ids by the hundred thousand, and SipHash was
// 8% of a re-import. Its seed is random per process, so an uploader cannot
// pick identifiers that collide.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use crate::adjust;
use crate::config::{BelowZero, Duplicates, ImportRules, JobType, OnError, RefreshMode};
use crate::issue::{first_five, Code, Issue, Place};
use crate::model::{upc_key, Item};
use crate::plan::{Draft, JobPlan, LeftOutRow, Plan, PlannedItem};
use crate::store::queries;
use crate::store::records::{self, IdKind};
use crate::store::stage::{record_key, row_keys, Findings, Stage, StagedJob};
use crate::store::{Reader, Result};

mod matching;
use crate::validate::value::MAX_INT;
use crate::validate::{is_errors_report, Checked, CheckedRow};

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
        "the file was rejected as a whole".to_string()
    } else if !location_errors.is_empty() && rules.on_error == OnError::RejectFile {
        "the file was rejected because a location failed the full-mode check (import.on_error = reject-file)"
            .to_string()
    } else {
        "the file was rejected because some rows have errors (import.on_error = reject-file)"
            .to_string()
    };

    // The report's draft: counts, errors in file order, warnings; the rows
    // left out go to the stage, for the errors CSV.
    let max = rules.max_errors;
    let mut draft = Draft::default();
    if let Some(issue) = &checked.file_error {
        draft.push_error(issue.clone(), max);
    }
    for issue in location_errors {
        draft.push_error(issue, max);
    }
    for issue in &checked.warnings {
        draft.push_warning(issue.clone(), max);
    }
    let mut left_out_tables: BTreeSet<u16> = BTreeSet::new();
    let mut left_out = 0u64;
    let visit = |seq: u64, row: CheckedRow, found: Findings| -> Result<()> {
        let (found_errors, found_warnings) = found;
        let has_error = !row.errors.is_empty() || !found_errors.is_empty();
        let mut messages: Vec<String> = Vec::new();
        for issue in row.errors.iter().chain(&found_errors) {
            messages.push(issue.message.clone());
        }
        for issue in row.errors.iter().chain(&found_errors) {
            draft.push_error(issue.clone(), max);
        }
        if !has_error {
            let reason = if file_rejected {
                Some(file_reason.clone())
            } else {
                row.location
                    .and_then(|l| rejected_locations[l as usize].clone())
            };
            if let Some(reason) = reason {
                messages.push(format!("not applied: {reason}"));
                draft.push_error(
                    Issue::new(
                        Code::NotApplied,
                        format!("the row is valid but was not applied: {reason}"),
                    )
                    .at(row_place(checked, &row)),
                    max,
                );
            }
        }
        for issue in row.warnings.iter().chain(&found_warnings) {
            draft.push_warning(issue.clone(), max);
        }
        if !messages.is_empty() {
            left_out_tables.insert(row.table);
            left_out += 1;
            stage.push_left_out(
                seq,
                &LeftOutRow {
                    table: row.table,
                    number: row.number,
                    location: row.location.map(|l| checked.locations[l as usize].clone()),
                    error: messages.join("; "),
                },
            )?;
        }
        Ok(())
    };
    // Only rows with something to say make the draft: those with
    // validation errors or warnings, those resolving found something
    // about, and — when a location or the file is rejected — every valid
    // row ("not applied"). A clean file is not read a second time.
    let any_rejected = file_rejected || rejected_locations.iter().any(Option::is_some);
    if any_rejected || stage.flagged() + stage.found()? > stage.rows() / 4 {
        stage.for_each_row(visit)?;
    } else {
        stage.for_each_flagged_or_found(visit)?;
    }
    draft.rows_total = stage.rows();
    draft.rows_rejected = left_out;
    draft.rows_accepted = draft.rows_total - draft.rows_rejected;
    draft.errors_csv_location = checked.location_outside_columns;
    draft.errors_csv_header = errors_csv_header(checked, &left_out_tables);
    draft.errors_csv_sheets = left_out_tables.len() > 1;

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
    let At {
        checked,
        store,
        rules,
        mode,
        location_index,
        location,
        ..
    } = *at;
    stage.start_location()?;
    let wants_listed = mode == RefreshMode::Full;
    // The first row with errors, in file order: (seq, row number).
    let mut first_error: Option<(u64, u64)> = None;
    let mut note_error = |seq: u64, number: u64| {
        if first_error.is_none_or(|(s, _)| seq < s) {
            first_error = Some((seq, number));
        }
    };

    // 1. Each row's record, a window at a time.
    let mut scan = true;
    let mut after = None;
    loop {
        let window = stage.location_window(location_index, after, window_rows)?;
        let Some(&(last, _)) = window.last() else {
            break;
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
                note_error(seq, row.number);
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

    // 2. Duplicates: rows paired by the stage, told apart here.
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
            note_error(seq, row.number);
            duplicates.push((seq, (vec![issue], Vec::new())));
        }
        skip.push(seq);
        if duplicates.len() >= window_rows {
            flush(stage, &mut duplicates, &mut skip)?;
        }
        Ok(())
    })?;
    flush(stage, &mut duplicates, &mut skip)?;

    let any_error = first_error.is_some();
    let mut rejected = reject_location(rules, location, first_error.map(|e| e.1));
    let zero = full_mode_zero(at, stage, &mut rejected, location_errors, |stage, id| {
        stage.is_listed(id)
    })?;
    let guard_rejected = zero.is_none();

    // 3. The jobs, from the rows left, in file order.
    let mut jobs = JobSplitter::new(location_index, rules.items_per_job);
    let mut after = None;
    loop {
        let window = stage.location_window_to_plan(location_index, after, window_rows)?;
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
    jobs.finish_location(stage, zero, rejected.is_some(), rules.manufacturer_id)?;

    Ok(LocationFindings {
        issues: Vec::new(),
        rejected,
        any_error,
        guard_rejected,
    })
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

/// Whether full mode may zero anything at this location, whatever its
/// rows say: full mode, the file not rejected as a whole or for its rows,
/// and the location inside import.locations (outside it, its rows are
/// `unknown-location` and nothing there is changed).
fn full_mode_applies(at: &At<'_, impl Reader>, stage: &Stage) -> bool {
    let file_rejected = at.checked.file_error.is_some()
        || (at.rules.on_error == OnError::RejectFile && stage.any_row_error());
    let allowed = at
        .rules
        .locations
        .as_ref()
        .is_none_or(|list| list.iter().any(|l| l == at.location));
    at.mode == RefreshMode::Full && !file_rejected && allowed
}

/// Full mode: the records to zero — those in stock at the location that
/// no row lists (`is_listed`) — unless that is too many, which rejects
/// the location (`None`, with its `too-many-zeroed` error).
fn full_mode_zero(
    at: &At<'_, impl Reader>,
    stage: &Stage,
    rejected: &mut Option<String>,
    location_errors: &mut Vec<Issue>,
    is_listed: impl Fn(&Stage, i64) -> Result<bool>,
) -> Result<Option<Vec<i64>>> {
    if !full_mode_applies(at, stage) || rejected.is_some() {
        return Ok(Some(Vec::new()));
    }
    let nonzero = records::nonzero_at(at.store, at.location)?;
    full_mode_guard(
        at.rules,
        at.location,
        &nonzero,
        rejected,
        location_errors,
        |id| is_listed(stage, id),
    )
}

/// Full mode's guard on the records in stock at a location (`nonzero`):
/// the unlisted ones to zero, or `None` (and the location rejected) when
/// that is more than import.full_max_zero_pct of them. A location already
/// rejected zeroes nothing.
fn full_mode_guard(
    rules: &ImportRules,
    location: &str,
    nonzero: &[i64],
    rejected: &mut Option<String>,
    location_errors: &mut Vec<Issue>,
    is_listed: impl Fn(i64) -> Result<bool>,
) -> Result<Option<Vec<i64>>> {
    if rejected.is_some() {
        return Ok(Some(Vec::new()));
    }
    let mut unlisted = Vec::new();
    for &id in nonzero {
        if !is_listed(id)? {
            unlisted.push(id);
        }
    }
    if unlisted.is_empty() {
        return Ok(Some(unlisted));
    }
    let pct = unlisted.len() as f64 * 100.0 / nonzero.len() as f64;
    if pct <= rules.full_max_zero_pct {
        return Ok(Some(unlisted));
    }
    location_errors.push(
        Issue::new(
            Code::TooManyZeroed,
            format!(
                "location {location}: the file does not list {} of the {} products in stock there \
                 ({pct:.0}%), and full mode would set them all to 0; the limit \
                 (import.full_max_zero_pct) is {}%. Is the file complete? Send the whole \
                 stock list, or use delta mode",
                unlisted.len(),
                nonzero.len(),
                rules.full_max_zero_pct
            ),
        )
        .with_value(location.to_string()),
    );
    *rejected = Some(format!(
        "location {location} was rejected: the file would set {} products in stock to 0 (too-many-zeroed)",
        unlisted.len()
    ));
    Ok(None)
}

/// Where a location's jobs go as they are split: the stage, or a list the
/// stage takes afterwards (a location decided on the helper thread).
trait JobSink {
    fn take_job(&mut self, job: StagedJob) -> Result<()>;
}

impl JobSink for Stage {
    fn take_job(&mut self, job: StagedJob) -> Result<()> {
        self.push_job(&job)
    }
}

impl JobSink for Vec<StagedJob> {
    fn take_job(&mut self, job: StagedJob) -> Result<()> {
        self.push(job);
        Ok(())
    }
}

/// Splits a location's items into jobs as they come: per manufacturer, in
/// file order, at most `items_per_job` each; the zeroing rides on the
/// location's last job. A job is staged once full (the one before it, so
/// that the last is still in hand when the zeroing is added). An unchanged
/// item (`None`) still counts in its job's items.
struct JobSplitter {
    location: u32,
    items_per_job: usize,
    /// Open jobs by manufacturer, in first-seen order, and where each
    /// manufacturer's is.
    open: Vec<(Option<u32>, Vec<Option<PlannedItem>>)>,
    open_of: HashMap<Option<u32>, usize>,
    /// A full job not yet staged.
    held: Option<(Option<u32>, Vec<Option<PlannedItem>>)>,
}

/// The most jobs of a location open at once (one a manufacturer), each of
/// at most `items_per_job` items; at one more, they are staged as they are.
/// A location whose rows name a different manufacturer each would
/// otherwise hold an open job per row until its end.
const OPEN_JOBS_MAX: usize = 32;

impl JobSplitter {
    fn new(location: u32, items_per_job: usize) -> Self {
        JobSplitter {
            location,
            items_per_job: items_per_job.max(1),
            open: Vec::new(),
            open_of: HashMap::new(),
            held: None,
        }
    }

    fn push(
        &mut self,
        jobs: &mut impl JobSink,
        manufacturer_id: Option<u32>,
        item: Option<PlannedItem>,
    ) -> Result<()> {
        let index = *self.open_of.entry(manufacturer_id).or_insert_with(|| {
            self.open.push((manufacturer_id, Vec::new()));
            self.open.len() - 1
        });
        self.open[index].1.push(item);
        if self.open[index].1.len() == self.items_per_job {
            let full = std::mem::take(&mut self.open[index].1);
            if let Some(held) = self.held.replace((manufacturer_id, full)) {
                self.stage(jobs, held, Vec::new())?;
            }
        }
        if self.open.len() > OPEN_JOBS_MAX {
            // Jobs smaller than they could be, and more of them: each is
            // still one location's and one manufacturer's.
            if let Some(held) = self.held.take() {
                self.stage(jobs, held, Vec::new())?;
            }
            for job in std::mem::take(&mut self.open) {
                if !job.1.is_empty() {
                    self.stage(jobs, job, Vec::new())?;
                }
            }
            self.open_of.clear();
        }
        Ok(())
    }

    /// A row that applies, as `item` to `record` (`None`: a new one); an
    /// item that would change nothing is planned as nothing.
    fn push_row(
        &mut self,
        jobs: &mut impl JobSink,
        row: &CheckedRow,
        item: Item,
        record: Option<i64>,
        unchanged: bool,
    ) -> Result<()> {
        let planned = (!unchanged).then_some(PlannedItem {
            row: row.number,
            record,
            item,
        });
        self.push(jobs, row.manufacturer_id, planned)
    }

    /// Stages what is left, with full mode's zeroing (`None`: the guard
    /// rejected the location) unless the location was rejected.
    fn finish_location(
        self,
        jobs: &mut impl JobSink,
        zero: Option<Vec<i64>>,
        rejected: bool,
        manufacturer_id: Option<u32>,
    ) -> Result<()> {
        let zero = if rejected {
            Vec::new()
        } else {
            zero.unwrap_or_default()
        };
        self.finish(jobs, zero, manufacturer_id)
    }

    /// Stages what is left, the zeroing on the last job (a job of its own
    /// when no row of the location made one: every row was rejected, and
    /// those rows still count as listed).
    fn finish(
        mut self,
        jobs: &mut impl JobSink,
        zero: Vec<i64>,
        manufacturer_id: Option<u32>,
    ) -> Result<()> {
        let mut left: Vec<(Option<u32>, Vec<Option<PlannedItem>>)> =
            self.held.take().into_iter().collect();
        left.extend(
            std::mem::take(&mut self.open)
                .into_iter()
                .filter(|(_, items)| !items.is_empty()),
        );
        if left.is_empty() && !zero.is_empty() {
            left.push((manufacturer_id, Vec::new()));
        }
        let last = left.len().saturating_sub(1);
        let mut zero = Some(zero);
        for (index, job) in left.into_iter().enumerate() {
            let zero = if index == last {
                zero.take().unwrap_or_default()
            } else {
                Vec::new()
            };
            self.stage(jobs, job, zero)?;
        }
        Ok(())
    }

    fn stage(
        &self,
        jobs: &mut impl JobSink,
        (manufacturer_id, items): (Option<u32>, Vec<Option<PlannedItem>>),
        zero: Vec<i64>,
    ) -> Result<()> {
        let item_count = items.len() as u64;
        let plan = JobPlan {
            items: items.into_iter().flatten().collect(),
            zero,
        };
        jobs.take_job(StagedJob {
            location: self.location,
            manufacturer_id,
            item_count,
            zero_count: plan.zero.len() as u64,
            plan: plan.encode(),
        })
    }
}

/// The errors CSV's columns: the header of the table the left-out rows
/// come from; when they come from several sheets, `sheet` and then every
/// column name of those sheets, in first-seen order.
pub fn errors_csv_header(checked: &Checked, tables: &BTreeSet<u16>) -> Vec<String> {
    let names = |table: u16| -> Vec<String> {
        checked
            .tables
            .get(usize::from(table))
            .and_then(|t| t.layout.as_ref())
            .map(|l| l.names.iter().map(|n| n.trim().to_string()).collect())
            .unwrap_or_default()
    };
    if tables.len() <= 1 {
        return tables.first().map(|&t| names(t)).unwrap_or_default();
    }
    let mut header = vec!["sheet".to_string()];
    for &table in tables {
        for name in names(table) {
            if !name.is_empty() && !header.contains(&name) {
                header.push(name);
            }
        }
    }
    header
}

/// An adjust file's rows at one location (SPEC §1.1): `stale-update`
/// when a later refresh already counted them, `unknown-item` for a product
/// the location does not hold, and the rows of one product added up into
/// the first of them (the others superseded), checked against the current
/// count for `negative-stock` / `clamped-to-zero`.
fn adjust_rows(
    checked: &Checked,
    rows: &mut [CheckedRow],
    found: &mut [Found],
    store: &impl Reader,
    rules: &ImportRules,
    location: &str,
    update_stamp: Option<u64>,
) -> Result<()> {
    let usable = |rows: &[CheckedRow], found: &[Found], i: usize| {
        rows[i].is_valid() && found[i].errors.is_empty() && rows[i].item.is_some()
    };
    if let Some(stamp) = update_stamp {
        if let Some(file) = queries::last_refresh_file(store, location)? {
            if adjust::refresh_stamp(&file).is_some_and(|refreshed| refreshed > stamp) {
                for i in 0..rows.len() {
                    if usable(rows, found, i) {
                        found[i].errors.push(
                            Issue::new(
                                Code::StaleUpdate,
                                format!(
                                    "location {location} was last refreshed from {file}, which is later \
                                     than this update; the refresh already counted these movements, so \
                                     the row was not applied"
                                ),
                            )
                            .at(row_place(checked, &rows[i])),
                        );
                    }
                }
                return Ok(());
            }
        }
    }
    // Record → the rows that change it, in file order.
    let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<i64, usize> = HashMap::new();
    for i in 0..rows.len() {
        if !usable(rows, found, i) {
            continue;
        }
        match found[i].record {
            Some(record) => {
                let group = *group_of.entry(record).or_insert_with(|| {
                    groups.push((record, Vec::new()));
                    groups.len() - 1
                });
                groups[group].1.push(i);
            }
            None => {
                let describe = rows[i].ids().describe();
                found[i].errors.push(
                    Issue::new(
                        Code::UnknownItem,
                        format!(
                            "location {location} holds no product with {describe}, so there is nothing \
                             to adjust; send the product in a refresh file first, or correct the identifiers"
                        ),
                    )
                    .at(row_place(checked, &rows[i]))
                    .with_value(describe),
                );
            }
        }
    }
    for (record, members) in groups {
        let current = records::get(store, record)?.map_or(0, |r| r.quantity);
        let change: i64 = members
            .iter()
            .filter_map(|&i| rows[i].item.as_ref().map(|item| item.quantity))
            .sum();
        let result = current + change;
        let what = format!(
            "the product has {current} in stock at location {location}; this file changes it by {change:+} \
             ({}), which would leave {result}",
            row_list(members.iter().map(|&i| rows[i].number), members.len())
        );
        let error = if result < 0 && rules.adjust_below_zero == BelowZero::Reject {
            Some(Issue::new(
                Code::NegativeStock,
                format!(
                    "{what}; correct the change, or set import.adjust_below_zero = \"clamp\" to stop at 0"
                ),
            ))
        } else if result > MAX_INT {
            Some(Issue::new(
                Code::OutOfRange,
                format!("{what}; a count is at most {MAX_INT}"),
            ))
        } else {
            None
        };
        if let Some(error) = error {
            for &i in &members {
                let issue = error
                    .clone()
                    .at(Place {
                        column: Some("quantity".into()),
                        ..row_place(checked, &rows[i])
                    })
                    .with_value(change.to_string());
                found[i].errors.push(issue);
            }
            continue;
        }
        let first = members[0];
        if result < 0 {
            found[first].warnings.push(
                Issue::new(
                    Code::ClampedToZero,
                    format!(
                        "{what}; it is set to 0 instead (import.adjust_below_zero = \"clamp\")"
                    ),
                )
                .at(row_place(checked, &rows[first])),
            );
        }
        // The rows add up into the first: the summed change, the later
        // rows' other fields over the earlier ones', attributes merged.
        for &later in &members[1..] {
            found[later].superseded = true;
            let Some(item) = rows[later].item.take() else {
                continue;
            };
            if let Some(sum) = rows[first].item.as_mut() {
                sum.optionals.take_given(&item.optionals);
                for attribute in &item.attributes {
                    if !sum.attributes.contains(attribute) {
                        sum.attributes.push(attribute.clone());
                    }
                }
            }
        }
        if let Some(sum) = rows[first].item.as_mut() {
            sum.quantity = change;
        }
    }
    Ok(())
}

/// `row 7`, `rows 7, 9`, `rows 7, 9, 12, 15, 20 and 4995 more`: five rows
/// named and the rest counted. Every member of a group gets the message,
/// so naming them all would grow with the square of the group (a file
/// repeating one product 5,000 times made a 146 MB report).
fn row_list(numbers: impl Iterator<Item = u64>, count: usize) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!(
        "row{plural} {}",
        first_five(numbers.map(|n| n.to_string()), count)
    )
}

/// The `duplicate-item` finding of `subject`, one of two rows that name one
/// product: `earlier` and `later` in file order. Under `last-wins` it is
/// the earlier row's warning; under `reject`, either row's error.
fn duplicate_issue(
    checked: &Checked,
    policy: Duplicates,
    earlier: &CheckedRow,
    later: &CheckedRow,
    subject: &CheckedRow,
) -> Issue {
    let describe = later.ids().describe();
    // Rows of different sheets (or items of different bodies) are named
    // with where they are: "rows 2 and 2" would say nothing.
    let (a, b) = if earlier.table == later.table {
        (earlier.number.to_string(), later.number.to_string())
    } else {
        let name = |row: &CheckedRow| match row_place(checked, row) {
            Place {
                sheet: Some(sheet), ..
            } => format!("{} of sheet \"{sheet}\"", row.number),
            place => place.human().trim_start_matches("row ").to_string(),
        };
        (name(earlier), name(later))
    };
    let message = match policy {
        Duplicates::LastWins => {
            format!("row {a} names the same product as row {b} ({describe}); the later row wins")
        }
        Duplicates::Reject => format!(
            "rows {a} and {b} name the same product ({describe}); keep one row per product and location"
        ),
    };
    Issue::new(Code::DuplicateItem, message).at(row_place(checked, subject))
}

/// `duplicate-item`: two valid rows of one location that share an
/// identifier or resolve to the same record.
fn find_duplicates(
    checked: &Checked,
    rows: &[CheckedRow],
    found: &mut [Found],
    policy: Duplicates,
) {
    // Each row against the latest earlier row it shares a key with, in
    // file order (a row with several gets them in order of those rows).
    for (index, other) in duplicate_pairs(rows, found) {
        let row = &rows[index];
        let issue = |subject| duplicate_issue(checked, policy, &rows[other], row, subject);
        match policy {
            Duplicates::LastWins => {
                if !found[other].superseded {
                    found[other].superseded = true;
                    found[other].warnings.push(issue(&rows[other]));
                }
            }
            Duplicates::Reject => {
                let has_duplicate_error =
                    |f: &Found| f.errors.iter().any(|e| e.code == Code::DuplicateItem);
                if !has_duplicate_error(&found[other]) {
                    found[other].errors.push(issue(&rows[other]));
                }
                if !has_duplicate_error(&found[index]) {
                    found[index].errors.push(issue(row));
                }
            }
        }
    }
}

/// What two rows of a location may share: an identifier (a UPC as
/// [`upc_key`]) or the record they resolved to.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum DuplicateKey<'a> {
    Id(IdKind, &'a str),
    Record(i64),
}

/// A row's keys, each in its own slot (sku, partNumber, UPC, record).
fn duplicate_keys<'a>(row: &'a CheckedRow, found: &Found) -> [Option<DuplicateKey<'a>>; KEY_SLOTS] {
    let ids = row.ids();
    [
        ids.sku.as_deref().map(|v| DuplicateKey::Id(IdKind::Sku, v)),
        ids.part_number
            .as_deref()
            .map(|v| DuplicateKey::Id(IdKind::PartNumber, v)),
        ids.upc
            .as_deref()
            .map(|v| DuplicateKey::Id(IdKind::Upc, upc_key(v))),
        found.record.map(DuplicateKey::Record),
    ]
}

const KEY_SLOTS: usize = 4;

/// Every (row, earlier row) of a location where the earlier one is the
/// latest valid row before it to share one of its keys, in file order of
/// the row and then of the earlier row, each pair once. Rows with errors
/// take no part.
///
/// Found by sorting the keys' hashes rather than in a map from each key to
/// its latest row: a location of 100,000 rows made maps of 16 MB, larger
/// than the CPU's cache, and a probe per key cost a miss (a third of a
/// 5M-row file's resolve). Sorted, equal keys lie side by side, and a
/// hash shared by different keys (seeded per process, so no file can aim
/// for it) is told apart by comparing the keys themselves.
fn duplicate_pairs(rows: &[CheckedRow], found: &[Found]) -> Vec<(usize, usize)> {
    use std::hash::BuildHasher;
    let hasher = foldhash::fast::RandomState::default();
    duplicate_pairs_by(rows, found, |key| hasher.hash_one(key))
}

/// [`duplicate_pairs`] with the keys hashed by `hash`.
fn duplicate_pairs_by(
    rows: &[CheckedRow],
    found: &[Found],
    hash: impl Fn(&DuplicateKey<'_>) -> u64,
) -> Vec<(usize, usize)> {
    let eligible = |i: usize| rows[i].is_valid() && found[i].errors.is_empty();
    // (hash, row * KEY_SLOTS + slot): sorted, a key's rows in file order.
    let mut keyed: Vec<(u64, usize)> = Vec::with_capacity(rows.len() * KEY_SLOTS);
    for index in (0..rows.len()).filter(|&i| eligible(i)) {
        for (slot, key) in duplicate_keys(&rows[index], &found[index])
            .iter()
            .enumerate()
        {
            if let Some(key) = key {
                keyed.push((hash(key), index * KEY_SLOTS + slot));
            }
        }
    }
    keyed.sort_unstable();
    let key_at = |code: usize| {
        duplicate_keys(&rows[code / KEY_SLOTS], &found[code / KEY_SLOTS])[code % KEY_SLOTS]
    };
    let mut pairs = Vec::new();
    for run in keyed.chunk_by(|a, b| a.0 == b.0) {
        for (j, &(_, later)) in run.iter().enumerate().skip(1) {
            let key = key_at(later);
            // The nearest earlier entry of the same key: the one before it,
            // unless the hash is shared by another key.
            if let Some(&(_, earlier)) = run[..j].iter().rev().find(|&&(_, e)| key_at(e) == key) {
                pairs.push((later / KEY_SLOTS, earlier / KEY_SLOTS));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identifiers;

    fn row(number: u64, sku: &str, part: &str, upc: &str) -> CheckedRow {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        CheckedRow {
            table: 0,
            number,
            pointer: None,
            location: Some(0),
            manufacturer_id: None,
            ids: Identifiers {
                sku: some(sku),
                part_number: some(part),
                upc: some(upc),
            },
            item: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// What a map from each key to its latest row finds: the definition
    /// `duplicate_pairs` keeps.
    fn by_map(rows: &[CheckedRow], found: &[Found]) -> Vec<(usize, usize)> {
        let mut latest: HashMap<DuplicateKey<'_>, usize> = HashMap::new();
        let mut pairs = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            if !row.is_valid() || !found[index].errors.is_empty() {
                continue;
            }
            let mut earlier: Vec<usize> = duplicate_keys(row, &found[index])
                .into_iter()
                .flatten()
                .filter_map(|key| latest.insert(key, index))
                .collect();
            earlier.sort_unstable();
            earlier.dedup();
            pairs.extend(earlier.into_iter().map(|other| (index, other)));
        }
        pairs
    }

    fn sample() -> (Vec<CheckedRow>, Vec<Found>) {
        let mut rows = vec![
            row(2, "A", "P1", "036000291452"),
            row(3, "B", "P2", ""),
            // The same UPC written with its leading zero dropped, and
            // partNumber P1 again: two keys, one earlier row.
            row(4, "C", "P1", "36000291452"),
            row(5, "B", "", ""),
            // A value shared across kinds is no duplicate.
            row(6, "P2", "B", ""),
            row(7, "D", "", ""),
            row(8, "E", "", ""),
            // Rows 3 and 5's sku, and row 7's record.
            row(9, "B", "", ""),
            row(10, "F", "", ""),
            // An invalid row takes no part, nor does one with a finding.
            row(11, "A", "", ""),
            row(12, "A", "", ""),
        ];
        rows[9].errors.push(Issue::new(Code::NotAnInteger, "bad"));
        let mut found = vec![Found::default(); rows.len()];
        found[5].record = Some(40);
        found[7].record = Some(40);
        found[8].record = Some(40);
        found[10]
            .errors
            .push(Issue::new(Code::DuplicateItem, "seen"));
        (rows, found)
    }

    #[test]
    fn each_row_meets_the_latest_earlier_row_of_each_key() {
        let (rows, found) = sample();
        let pairs = duplicate_pairs(&rows, &found);
        assert_eq!(pairs, vec![(2, 0), (3, 1), (7, 3), (7, 5), (8, 7)]);
        assert_eq!(pairs, by_map(&rows, &found));
    }

    #[test]
    fn keys_of_one_hash_are_told_apart_by_their_values() {
        // Every key hashed alike: the sort puts them all in one run, and
        // only comparing the keys finds the pairs.
        let (rows, found) = sample();
        assert_eq!(
            duplicate_pairs_by(&rows, &found, |_| 7),
            by_map(&rows, &found)
        );
        let two = |key: &DuplicateKey<'_>| match key {
            DuplicateKey::Id(_, v) => v.len() as u64 % 2,
            DuplicateKey::Record(r) => *r as u64 % 2,
        };
        assert_eq!(
            duplicate_pairs_by(&rows, &found, two),
            by_map(&rows, &found)
        );
    }

    #[test]
    fn many_rows_of_repeated_keys_agree_with_the_map() {
        let rows: Vec<CheckedRow> = (0..5_000u64)
            .map(|n| {
                let sku = format!("S{}", (n * 7919) % 613);
                let part = format!("P{}", (n * 104_729) % 1_201);
                let upc = if n % 3 == 0 {
                    format!("{:012}", n % 97)
                } else {
                    String::new()
                };
                row(n + 2, &sku, &part, &upc)
            })
            .collect();
        let mut found = vec![Found::default(); rows.len()];
        for (n, f) in found.iter_mut().enumerate() {
            if n % 5 == 0 {
                f.record = Some((n % 211) as i64);
            }
        }
        let pairs = duplicate_pairs(&rows, &found);
        assert!(pairs.len() > 4_000);
        assert_eq!(pairs, by_map(&rows, &found));
        assert_eq!(duplicate_pairs_by(&rows, &found, |_| 1), pairs);
    }
}
