//! `stockdrop run [--once]`: the daemon, until SIGTERM or SIGINT; SIGHUP
//! reloads the configuration. `--once` exits with the code of the worst
//! file it processed, as `import` does.

use std::path::Path;

use tokio::signal::unix::{signal, SignalKind};

use super::{import::exit_for, open_read, CmdResult, Exit, Failure};
use crate::config::Config;
use crate::daemon::{self, RunOptions};
use crate::store::queries;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Process the files in the inbox once they have settled, then exit
    /// (0 all applied or duplicate, 1 a file partial or rejected, 3 failed).
    #[arg(long)]
    once: bool,
    /// With --once: how long to wait, past watch.settle_ms, for files still
    /// being written (changing, or held open); they are then left in the
    /// inbox for the next run.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "once")]
    wait: u64,
}

pub fn run(args: Args, config_path: Option<&Path>, config: &Config) -> CmdResult {
    // The imports this run makes are those after the newest one now.
    let before = match (args.once, open_read(config)?) {
        (true, Some(store)) => queries::last_import_id(&store.read())?,
        _ => 0,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Io(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        // Installed before anything else, so an early SIGTERM is a clean stop.
        let mut terminate = signal(SignalKind::terminate()).map_err(|e| Failure::Io(e.to_string()))?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| Failure::Io(e.to_string()))?;
        let shutdown = async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM: finishing the file in hand, then stopping"),
                _ = interrupt.recv() => tracing::info!("SIGINT: finishing the file in hand, then stopping"),
            }
        };
        let options = RunOptions {
            once: args.once,
            once_wait: std::time::Duration::from_secs(args.wait),
            reload_from: Some(config_path.map(Path::to_path_buf)),
        };
        daemon::run(config.clone(), options, shutdown).await?;
        Ok::<(), Failure>(())
    })?;
    if !args.once {
        return Ok(Exit::Success);
    }
    let Some(store) = open_read(config)? else {
        return Ok(Exit::Success);
    };
    let statuses = queries::statuses_after(&store.read(), before)?;
    Ok(statuses
        .keys()
        .map(|status| exit_for(status))
        .fold(Exit::Success, Exit::worst))
}
