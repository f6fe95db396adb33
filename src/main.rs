//! The `hookgate` binary: parse the command line, set up logging, run the subcommand.

use anyhow::Context;
use clap::Parser;
use hookgate::config::{Cli, Command, Config, ServeArgs};
use hookgate::db::Db;
use hookgate::Gateway;
use tracing_subscriber::EnvFilter;

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
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hookgate: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    let command = cli
        .command
        .take()
        .unwrap_or(Command::Serve(ServeArgs::default()));
    match command {
        Command::Serve(args) => serve(&cli, &args).await,
        Command::PrintConfig(args) => {
            let config = Config::load(&cli, &args)?;
            println!("{config:#?}");
            Ok(())
        }
        Command::Migrate => {
            let (db, _) = open(&cli).await?;
            db.migrate().await.context("migration failed")?;
            println!("migrations applied to the {} database", db.backend_name());
            Ok(())
        }
        Command::Connections(command) => {
            let (db, config) = open(&cli).await?;
            db.migrate().await.context("migration failed")?;
            hookgate::cli::connections_command(&db, config.secret_key.as_ref(), command).await
        }
        Command::Logs(args) => {
            let (db, _) = open(&cli).await?;
            hookgate::cli::logs(&db, args).await
        }
        Command::Send(args) => hookgate::cli::send(args).await,
        Command::Bench(args) if args.query_rows.is_some() => {
            let rows = args.query_rows.unwrap_or(0);
            let timings = hookgate::bench::query_test(&args, rows).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&timings)?);
            } else {
                println!("GET /admin/ingest with {rows} stored rows (200 requests each, half paging with the cursor):");
                for t in &timings {
                    println!(
                        "  {:<58} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} items)",
                        t.query, t.p50_ms, t.p99_ms, t.max_ms, t.items
                    );
                }
            }
            Ok(())
        }
        Command::Bench(args) if args.scenario != hookgate::config::Scenario::Load => {
            let report = hookgate::bench::abuse::run(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                hookgate::bench::abuse::print(&report);
            }
            if report.missing > 0 {
                anyhow::bail!(
                    "{} acknowledged deliveries are missing from the store",
                    report.missing
                );
            }
            Ok(())
        }
        Command::Bench(args) => {
            let json = args.json;
            let report = hookgate::bench::run(args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                hookgate::bench::print(&report);
            }
            if report.missing > 0 {
                anyhow::bail!(
                    "{} acknowledged events are missing from the store",
                    report.missing
                );
            }
            Ok(())
        }
        Command::BenchBaseline { listen } => hookgate::bench::baseline(listen).await,
        Command::Keys(command) => {
            let (db, _) = open(&cli).await?;
            db.migrate().await.context("migration failed")?;
            hookgate::cli::keys_command(&db, command).await
        }
    }
}

/// Opens the database for a CLI subcommand (the file's `database_url` and `secret_key` apply
/// too).
async fn open(cli: &Cli) -> anyhow::Result<(Db, Config)> {
    let config = Config::load(cli, &ServeArgs::default())?;
    let db = Db::connect(&config.database_url, config.durability)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                hookgate::config::redact_url(&config.database_url)
            )
        })?;
    Ok((db, config))
}

async fn serve(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(cli, args)?;
    let listen = config.listen;
    let has_admin = config.admin_token.is_some();
    let has_secret_key = config.secret_key.is_some();
    let gateway = Gateway::start(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let state = &gateway.state;
    for row in state.db.list_connections().await? {
        tracing::info!(
            connection = %row.id,
            provider = %row.provider,
            enabled = row.enabled,
            "receive URL http://{local}/integrations/{}/webhook/{}",
            row.provider,
            row.id
        );
    }
    if !has_secret_key {
        tracing::warn!(
            "no secret_key configured: connection secrets are stored unencrypted in the database (set HOOKGATE_SECRET_KEY to encrypt them at rest)"
        );
    }
    if !has_admin {
        tracing::warn!(
            "no admin_token configured: the admin API answers 401 (set HOOKGATE_ADMIN_TOKEN)"
        );
    }
    tracing::info!(
        listen = %local,
        store = state.db.backend_name(),
        connections = state.registry.len(),
        "hookgate is listening"
    );
    gateway.serve(listener, shutdown_signal()).await?;
    tracing::info!("hookgate stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing open requests");
}
