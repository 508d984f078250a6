use std::process::ExitCode;

use clap::Parser;

// mimalloc rather than the system allocator: a large import allocates and
// frees a few small values per cell on two threads (the reading thread
// and the store writer), and glibc's allocator was 10-13% of its time
// (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match stockdrop::cli::Cli::try_parse() {
        Ok(cli) => stockdrop::cli::main(cli),
        Err(error) => stockdrop::cli::usage_error(error),
    }
}
