use clap::Parser as _;
use hookgate_bench::args::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        // The benchmark reads its baseline children's `listen=` line from a pipe: no colours.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Some(Command::Baseline(args)) => hookgate_bench::load::baseline(args.listen).await,
        Some(Command::Durable(args)) => hookgate_bench::durable::serve(args).await,
        None => hookgate_bench::run(cli.bench).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookgate-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
