//! The command line (SPEC §6): flags, config lookup, and the one place
//! errors become exit codes. Each command lives in a module of its own.

mod backup;
mod check_config;
mod export;
mod import;
mod imports;
mod jobs;
mod output;
mod prune;
mod retry;
mod revert;
mod run;
mod status;
mod stock;
mod summary;
mod validate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigError};
use crate::pipeline::PipelineError;
use crate::store::{Store, StoreError};

#[derive(Debug, Parser)]
#[command(
    name = "stockdrop",
    version,
    about = "Warehouse stock files → inventory refresh jobs → SQLite, with reports"
)]
pub struct Cli {
    /// Config file (else $STOCKDROP_CONFIG, ./stockdrop.toml, /etc/stockdrop/stockdrop.toml, built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: watch the inbox and process each file once its upload is complete, until SIGTERM.
    Run(run::Args),
    /// Process files now: validate, apply to the store, write reports. The originals stay where they are.
    Import(import::Args),
    /// Parse and validate only; nothing is written to the store.
    Validate(validate::Args),
    /// Recent jobs.
    Jobs(jobs::ListArgs),
    /// One job, its items and their before/after values.
    Job(jobs::ShowArgs),
    /// Recent files and their outcome.
    Imports(imports::Args),
    /// Inventory records.
    Stock(stock::Args),
    /// The whole inventory, or one location, as CSV or JSON.
    Export(export::Args),
    /// Undo a job: restore the values it replaced; refused if a later job changed the same items, unless --force.
    Revert(revert::Args),
    /// Put a file from failed/ back through the pipeline, with a new import and report.
    Retry(retry::Args),
    /// Is the daemon running, what is waiting, the last 24 hours, the last error.
    Status(status::Args),
    /// Delete originals, reports and history past their retention (retention.*).
    Prune(prune::Args),
    /// A consistent copy of the store (SQLite online backup), safe while the daemon runs.
    Backup(backup::Args),
    /// Validate the config, create and check the directories, print the effective config.
    CheckConfig(check_config::Args),
}

/// How a command ended (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// Rows, jobs or files rejected, or validation found errors.
    Rejected = 1,
    /// Usage or configuration error, unknown id.
    Usage = 2,
    /// I/O or database error.
    Operational = 3,
}

impl Exit {
    /// The worse of two outcomes.
    pub fn worst(self, other: Exit) -> Exit {
        if other as u8 > self as u8 {
            other
        } else {
            self
        }
    }
}

/// A command's failure, classified for its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Dirs(#[from] crate::dirs::DirError),
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error("{0}")]
    Io(String),
}

impl Failure {
    fn exit(&self) -> Exit {
        match self {
            Failure::Config(_) | Failure::Usage(_) => Exit::Usage,
            Failure::Dirs(
                crate::dirs::DirError::CrossDevice { .. } | crate::dirs::DirError::Overlap { .. },
            ) => Exit::Usage,
            Failure::Dirs(_) => Exit::Operational,
            Failure::Daemon(crate::daemon::DaemonError::Dirs(
                crate::dirs::DirError::CrossDevice { .. } | crate::dirs::DirError::Overlap { .. },
            )) => Exit::Usage,
            Failure::Daemon(_) => Exit::Operational,
            Failure::Store(_) | Failure::Pipeline(_) | Failure::Io(_) => Exit::Operational,
        }
    }
}

pub type CmdResult = Result<Exit, Failure>;

impl Command {
    /// Whether the answer was asked for as JSON (`--json`): then a failure
    /// is a JSON answer on stdout too, not only a line on stderr.
    fn wants_json(&self) -> bool {
        match self {
            Command::Import(a) => a.json,
            Command::Validate(a) => a.json,
            Command::Jobs(a) => a.json,
            Command::Job(a) => a.json,
            Command::Imports(a) => a.json,
            Command::Stock(a) => a.json,
            Command::Revert(a) => a.json,
            Command::Retry(a) => a.json,
            Command::Status(a) => a.json,
            Command::Prune(a) => a.json,
            // `export` prints data, not an answer; the others have no --json.
            Command::Run(_) | Command::Export(_) | Command::Backup(_) | Command::CheckConfig(_) => {
                false
            }
        }
    }
}

/// A command line clap refused (an unknown flag, `--status bogus`): its
/// message names the valid values; exit 2, and a JSON answer on stdout
/// when `--json` was asked for. Help and version print as usual.
pub fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    let _ = error.print();
    if std::env::args().any(|a| a == "--json") {
        // clap's text, on one line, without its "error:" and help hint.
        let text = error.render().to_string();
        let message = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
            .collect::<Vec<_>>()
            .join(" ");
        let message = message.strip_prefix("error: ").unwrap_or(&message);
        let _ = output::json(&serde_json::json!({
            "error": message,
            "exit_code": Exit::Usage as u8,
        }));
    }
    ExitCode::from(Exit::Usage as u8)
}

pub fn main(cli: Cli) -> ExitCode {
    let env_config = std::env::var("STOCKDROP_CONFIG").ok();
    let path = config::locate(cli.config.as_deref(), env_config.as_deref());
    let json = cli.command.wants_json();
    let result = Config::load(path.as_deref(), None)
        .map_err(Failure::from)
        .and_then(|config| {
            crate::logging::init(&config, matches!(cli.command, Command::Run(_)));
            dispatch(cli.command, path.as_deref(), &config)
        });
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(failure) => {
            eprintln!("stockdrop: {failure}");
            let exit = failure.exit();
            if json {
                // Best effort: the exit code and stderr already say it.
                let _ = output::json(&serde_json::json!({
                    "error": failure.to_string(),
                    "exit_code": exit as u8,
                }));
            }
            ExitCode::from(exit as u8)
        }
    }
}

fn dispatch(command: Command, config_path: Option<&Path>, config: &Config) -> CmdResult {
    match command {
        Command::Run(args) => run::run(args, config_path, config),
        Command::Import(args) => import::run(args, config),
        Command::Validate(args) => validate::run(args, config),
        Command::Jobs(args) => jobs::list(args, config),
        Command::Job(args) => jobs::show(args, config),
        Command::Imports(args) => imports::run(args, config),
        Command::Stock(args) => stock::run(args, config),
        Command::Export(args) => export::run(args, config),
        Command::Revert(args) => revert::run(args, config),
        Command::Retry(args) => retry::run(args, config),
        Command::Status(args) => status::run(args, config),
        Command::Prune(args) => prune::run(args, config),
        Command::Backup(args) => backup::run(args, config),
        Command::CheckConfig(args) => check_config::run(args, config),
    }
}

/// Opens the store for reading; `None` before the first import.
fn open_read(config: &Config) -> Result<Option<Store>, Failure> {
    Ok(Store::open_existing(&config.paths.database)?)
}

/// Opens an existing store for writing; `None` before the first import.
fn open_existing_write(config: &Config) -> Result<Option<Store>, Failure> {
    if !config.paths.database.exists() {
        return Ok(None);
    }
    Ok(Some(Store::open(&config.paths.database)?))
}

/// Opens (creating) the store for writing, with its folder.
fn open_write(config: &Config) -> Result<Store, Failure> {
    create_parent(&config.paths.database)?;
    Ok(Store::open(&config.paths.database)?)
}

fn create_parent(path: &Path) -> Result<(), Failure> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::Io(format!("cannot create {}: {e}", parent.display())))?;
    }
    Ok(())
}

/// `--inbox NAME` of the read commands: `None` for all inboxes; a name the
/// config does not have is a usage error listing those it has (an inbox
/// removed from the config still shows its history by its name only if it
/// is declared again).
fn inbox_filter<'a>(config: &Config, name: Option<&'a str>) -> Result<Option<&'a str>, Failure> {
    match name {
        None => Ok(None),
        Some(name) => config
            .select_inbox(Some(name))
            .map(|_| Some(name))
            .map_err(Failure::Usage),
    }
}
