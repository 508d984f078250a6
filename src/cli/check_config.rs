//! `stockdrop check-config`: validate the config, create and check the
//! directories and the store, print the effective config.

use super::{open_write, output, CmdResult, Exit};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, config: &Config) -> CmdResult {
    crate::dirs::prepare(&config.paths, &config.inboxes)?;
    open_write(config)?;
    let source = config
        .source
        .as_ref()
        .map_or("built-in defaults".to_string(), |p| p.display().to_string());
    output::println_or_fail(&format!(
        "# stockdrop: config OK (from {source}); directories and store are ready\n{}",
        config.to_toml()
    ))?;
    Ok(Exit::Success)
}
