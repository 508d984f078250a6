use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match stockdrop::cli::Cli::try_parse() {
        Ok(cli) => stockdrop::cli::main(cli),
        Err(error) => stockdrop::cli::usage_error(error),
    }
}
