//! Splitting a location's planned items into jobs of at most
//! `items_per_job` (SPEC §1), per manufacturer, staged as they fill.

use foldhash::{HashMap, HashMapExt};

use crate::model::Item;
use crate::plan::{JobPlan, PlannedItem};
use crate::store::stage::{Stage, StagedJob};
use crate::store::Result;
use crate::validate::CheckedRow;

/// Where a location's jobs go as they are split: the stage, or a list the
/// stage takes afterwards (a location decided on the helper thread).
pub(super) trait JobSink {
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
pub(super) struct JobSplitter {
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
pub(super) const OPEN_JOBS_MAX: usize = 32;

impl JobSplitter {
    pub(super) fn new(location: u32, items_per_job: usize) -> Self {
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
    pub(super) fn push_row(
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
    pub(super) fn finish_location(
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
