//! Full mode (SPEC §1): which records a location's file leaves out and
//! so zeroes, and the guard that refuses to zero too many.

use super::At;
use crate::config::{ImportRules, OnError, RefreshMode};
use crate::issue::{Code, Issue};
use crate::store::records;
use crate::store::stage::Stage;
use crate::store::{Reader, Result};

/// Whether full mode may zero anything at this location, whatever its
/// rows say: full mode, the file not rejected as a whole or for its rows,
/// and the location inside import.locations (outside it, its rows are
/// `unknown-location` and nothing there is changed).
pub(super) fn full_mode_applies(at: &At<'_, impl Reader>, stage: &Stage) -> bool {
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
pub(super) fn full_mode_zero(
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
pub(super) fn full_mode_guard(
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
