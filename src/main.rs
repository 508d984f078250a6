use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = stockdrop::cli::Cli::parse();
    stockdrop::cli::main(cli)
}
