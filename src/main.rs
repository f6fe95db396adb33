//! The `hookgate` binary: parse the command line, set up logging, run the subcommand.

use clap::Parser;
use hookgate::cli::Cli;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's allocator: the receive path and the store's worker thread
/// allocate and free on different threads all the time, and glibc's arenas spent about a sixth
/// of the gateway's CPU in `malloc`, `free` and their consolidation (see the README's
/// Performance section for the figures).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match hookgate::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
