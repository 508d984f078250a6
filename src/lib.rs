//! stockdrop: warehouse stock files → inventory refresh jobs → a SQLite
//! inventory store, with a report for every file.
//!
//! The modules follow the pipeline a dropped file goes through:
//!
//! - [`parse`]: bytes → a format-neutral stream of cells with positions.
//! - [`validate`]: rows → validated items and issues (pure, no store).
//! - [`resolve`]: items + the store → a [`plan::Plan`]: records, conflicts,
//!   duplicates, policies, full-mode zeroing, jobs of at most 1000 items.
//! - [`apply`]: a stored plan → inventory and history, a location's jobs
//!   per transaction.
//! - [`report`]: JSON, HTML and errors CSV, written atomically.
//! - [`pipeline`]: one file through all of the above; crash recovery.
//!
//! Around them: [`config`], [`store`] (SQLite), [`cli`] (one module per
//! command), [`model`] and [`issue`] (the shared vocabulary) and
//! [`durable`] (temporary name, fsync, rename).

// A file-level `Issue` is returned once per file, never per row, so its
// size in a `Result` costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

pub mod adjust;
pub mod apply;
pub mod archive;
pub mod claim;
pub mod cli;
pub mod columns;
pub mod config;
pub mod crashpoint;
pub mod daemon;
pub mod dirs;
pub mod durable;
pub mod hook;
pub mod issue;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod names;
pub mod open;
pub mod parse;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod resolve;
pub mod retention;
pub mod revert;
pub mod store;
pub mod systemd;
pub mod validate;
pub mod watch;
