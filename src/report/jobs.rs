//! A report's jobs. A file can make a job per row (a manufacturer per row,
//! say), so a report never holds them all: it keeps the first
//! [`JOBS_HELD`] and counts every one by status, and where the jobs are
//! kept in the store, the JSON written reads the rest from there one row at
//! a time ([`JobSource`]). Memory stays bounded whatever the file; the JSON
//! report still lists every job (SPEC §5).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::ser::{Error as _, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::store::{queries, Store, StoreError};

/// How many jobs a report holds in memory: what the HTML page and the
/// terminal summary show, and all a `validate` report lists.
pub const JOBS_HELD: usize = 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEntry {
    pub job_id: Option<i64>,
    pub location: String,
    #[serde(rename = "manufacturerID")]
    pub manufacturer_id: Option<i64>,
    pub item_count: u64,
    pub zeroed: u64,
    pub status: String,
}

/// Where a report's jobs can be read again, in order, past the first
/// `skip`: the store, for an import.
pub trait JobSource: Send + Sync {
    fn each_after(
        &self,
        skip: u64,
        f: &mut dyn FnMut(JobEntry) -> Result<(), String>,
    ) -> Result<(), String>;
}

impl From<&queries::JobRow> for JobEntry {
    fn from(j: &queries::JobRow) -> JobEntry {
        JobEntry {
            job_id: Some(j.job_id),
            location: j.location.clone(),
            manufacturer_id: j.manufacturer_id,
            item_count: j.item_count.max(0) as u64,
            zeroed: j.zeroed.max(0) as u64,
            status: j.status.clone(),
        }
    }
}

/// An import's jobs, read again from the store file through a connection
/// of their own, so a report can be written (or printed) after the
/// pipeline's connection has moved on. Only those up to `through`, the
/// last one counted: a `revert` run meanwhile adds a job to the import,
/// which the counts (and the file's status) did not see.
pub struct ImportJobs {
    pub database: PathBuf,
    pub import_id: i64,
    pub through: i64,
}

impl JobSource for ImportJobs {
    fn each_after(
        &self,
        skip: u64,
        f: &mut dyn FnMut(JobEntry) -> Result<(), String>,
    ) -> Result<(), String> {
        let failed = |e: StoreError| format!("reading the jobs of import {}: {e}", self.import_id);
        let store = Store::open_existing(&self.database)
            .map_err(failed)?
            .ok_or_else(|| format!("the store {} is gone", self.database.display()))?;
        let mut stopped: Option<String> = None;
        let read = store.read();
        let result =
            queries::each_job_of_import(&read, self.import_id, self.through, skip, |job| {
                f(JobEntry::from(&job)).map_err(|e| {
                    stopped = Some(e);
                    StoreError::Corrupt {
                        what: "report",
                        detail: "writing stopped".into(),
                    }
                })
            });
        match (result, stopped) {
            (_, Some(e)) => Err(e),
            (Err(e), None) => Err(failed(e)),
            (Ok(()), None) => Ok(()),
        }
    }
}

/// The first [`JOBS_HELD`] jobs of a file, how many there are of each
/// status, and where the others can be read.
#[derive(Clone, Default)]
pub struct JobList {
    held: Vec<JobEntry>,
    by_status: BTreeMap<String, u64>,
    rest: Option<Arc<dyn JobSource>>,
}

impl JobList {
    pub fn new() -> JobList {
        JobList::default()
    }

    /// Counts a job, holding it while fewer than [`JOBS_HELD`] are held.
    pub fn push(&mut self, job: JobEntry) {
        *self.by_status.entry(job.status.clone()).or_default() += 1;
        if self.held.len() < JOBS_HELD {
            self.held.push(job);
        }
    }

    /// Says where the jobs past the held ones can be read when the list is
    /// written out.
    pub fn read_rest_from(&mut self, source: Arc<dyn JobSource>) {
        self.rest = Some(source);
    }

    /// The jobs held: all of them when [`JobList::total`] is at most
    /// [`JOBS_HELD`].
    pub fn held(&self) -> &[JobEntry] {
        &self.held
    }

    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// How many jobs ended (or wait) in `status`.
    pub fn count(&self, status: &str) -> u64 {
        self.by_status.get(status).copied().unwrap_or(0)
    }

    /// Jobs counted but neither held nor readable again: what a written
    /// list leaves out.
    pub fn left_out(&self) -> u64 {
        match self.rest {
            Some(_) => 0,
            None => self.total() - self.held.len() as u64,
        }
    }
}

impl FromIterator<JobEntry> for JobList {
    fn from_iter<I: IntoIterator<Item = JobEntry>>(iter: I) -> JobList {
        let mut list = JobList::new();
        for job in iter {
            list.push(job);
        }
        list
    }
}

impl fmt::Debug for JobList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobList")
            .field("held", &self.held)
            .field("by_status", &self.by_status)
            .field("rest", &self.rest.is_some())
            .finish()
    }
}

impl PartialEq for JobList {
    fn eq(&self, other: &JobList) -> bool {
        self.held == other.held && self.by_status == other.by_status
    }
}

/// An array of every job: those held, then the rest read from where they
/// are kept, one at a time.
impl Serialize for JobList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for job in &self.held {
            seq.serialize_element(job)?;
        }
        if let Some(rest) = &self.rest {
            if self.total() > self.held.len() as u64 {
                let mut failed: Option<S::Error> = None;
                rest.each_after(self.held.len() as u64, &mut |job| {
                    seq.serialize_element(&job).map_err(|e| {
                        let text = e.to_string();
                        failed = Some(e);
                        text
                    })
                })
                .map_err(|text| failed.take().unwrap_or_else(|| S::Error::custom(text)))?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for JobList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JobList, D::Error> {
        Ok(Vec::<JobEntry>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u64) -> JobEntry {
        JobEntry {
            job_id: Some(n as i64),
            location: format!("L{}", n % 3),
            manufacturer_id: None,
            item_count: n,
            zeroed: 0,
            status: if n.is_multiple_of(2) {
                "success"
            } else {
                "failed"
            }
            .into(),
        }
    }

    /// Reads jobs `0..n` again, as the store would.
    struct Numbered(u64);
    impl JobSource for Numbered {
        fn each_after(
            &self,
            skip: u64,
            f: &mut dyn FnMut(JobEntry) -> Result<(), String>,
        ) -> Result<(), String> {
            (skip..self.0).try_for_each(|n| f(job(n)))
        }
    }

    #[test]
    fn holds_the_first_jobs_and_counts_them_all() {
        let list: JobList = (0..2500).map(job).collect();
        assert_eq!(list.held().len(), JOBS_HELD);
        assert_eq!(list.held()[999], job(999));
        assert_eq!(list.total(), 2500);
        assert_eq!(list.count("success"), 1250);
        assert_eq!(list.count("failed"), 1250);
        assert_eq!(list.count("pending"), 0);
        assert_eq!(list.left_out(), 1500);
    }

    #[test]
    fn writes_every_job_reading_past_the_held_ones_from_the_source() {
        let mut list: JobList = (0..2500).map(job).collect();
        list.read_rest_from(Arc::new(Numbered(2500)));
        assert_eq!(list.left_out(), 0);
        let text = serde_json::to_string(&list).unwrap();
        let back: Vec<JobEntry> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, (0..2500).map(job).collect::<Vec<_>>());
        // Without a source, only the held ones.
        let alone: JobList = (0..2500).map(job).collect();
        let back: Vec<JobEntry> =
            serde_json::from_str(&serde_json::to_string(&alone).unwrap()).unwrap();
        assert_eq!(back.len(), JOBS_HELD);
    }

    #[test]
    fn a_source_that_fails_fails_the_writing() {
        struct Broken;
        impl JobSource for Broken {
            fn each_after(
                &self,
                _: u64,
                _: &mut dyn FnMut(JobEntry) -> Result<(), String>,
            ) -> Result<(), String> {
                Err("the store is gone".into())
            }
        }
        let mut list: JobList = (0..1001).map(job).collect();
        list.read_rest_from(Arc::new(Broken));
        let err = serde_json::to_string(&list).unwrap_err();
        assert!(err.to_string().contains("the store is gone"), "{err}");
    }
}
