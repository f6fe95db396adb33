//! The command line: one file per subcommand, each holding its arguments (clap) and its handler.
//! Output is for people: tables and clear one-line errors. The gateway's settings themselves
//! (flags, environment, file) are [`crate::config`]'s.

pub mod backup;
pub mod connections;
pub mod contacts;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod fire;
pub mod keys;
pub mod listen;
pub mod logs;
pub mod logs_show;
pub mod migrate;
pub mod print_config;
pub mod purge;
pub mod replay;
pub mod send;
pub mod serve;
pub mod triggers;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{redact_url, Config, GlobalArgs, ServeArgs};
use crate::db::Db;

/// hookgate: an inbound webhook gateway. Verifies, durably stores and normalizes webhooks from
/// Stripe, Clerk, Shopify, Stytch, Supabase, WorkOS, RevenueCat and Brevo.
#[derive(Debug, Parser)]
#[command(name = "hookgate", version = crate::VERSION, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default command).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration with secrets redacted.
    PrintConfig(ServeArgs),
    /// Manage connections in the database.
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// Manage the endpoints events are delivered to.
    #[command(subcommand)]
    Endpoints(endpoints::EndpointsCommand),
    /// The delivery log: list, show, resend, requeue.
    Deliveries(deliveries::DeliveriesArgs),
    /// Follow a running gateway's events and post each one, signed, to a local URL.
    Listen(listen::ListenArgs),
    /// Show the ingest log, newest last; `logs show <id>` shows one record in full.
    Logs(logs::LogsArgs),
    /// Run normalization again for a stored event (idempotent: it never fires twice).
    Replay(replay::ReplayArgs),
    /// Look up contacts.
    #[command(subcommand)]
    Contacts(contacts::ContactsCommand),
    /// Show trigger fires, newest last; `--follow` prints new ones as they are made.
    Events(events::EventsArgs),
    /// Remove what is past its retention (`[retention]`) now; `--dry-run` only counts it.
    Purge(purge::PurgeArgs),
    /// Copy the SQLite database to a new file, consistently, while the gateway runs.
    Backup(backup::BackupArgs),
    /// Sign a fixture the way its provider would and POST it to a receive URL.
    Send(send::SendArgs),
    /// Manage API keys for the events API.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Define custom triggers and list the trigger catalog.
    #[command(subcommand)]
    Triggers(triggers::TriggersCommand),
    /// Fire a custom trigger (stored for the gateway's pipeline).
    Fire(fire::FireArgs),
}

/// Runs the parsed command line (`serve` when no subcommand is given).
///
/// # Errors
/// A message saying what went wrong and what to do.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli { global, command } = cli;
    match command.unwrap_or_else(|| Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve::run(&global, &args).await,
        Command::PrintConfig(args) => print_config::run(&global, &args),
        Command::Migrate => migrate::run(&global).await,
        Command::Connections(command) => connections::run(&global, command).await,
        Command::Endpoints(command) => endpoints::run(&global, command).await,
        Command::Deliveries(args) => deliveries::run(&global, args).await,
        Command::Listen(args) => listen::run(args).await,
        Command::Logs(args) => logs::run(&global, args).await,
        Command::Replay(args) => replay::run(&global, args).await,
        Command::Contacts(command) => contacts::run(&global, command).await,
        Command::Events(args) => events::run(&global, args).await,
        Command::Backup(args) => backup::run(&global, args).await,
        Command::Purge(args) => purge::run(&global, args).await,
        Command::Send(args) => send::run(args).await,
        Command::Keys(command) => keys::run(&global, command).await,
        Command::Triggers(command) => triggers::run(&global, command).await,
        Command::Fire(args) => fire::run(&global, args).await,
    }
}

/// Opens the store for a subcommand that works on the database directly (the file's
/// `database_url` and `secret_key` apply too).
///
/// # Errors
/// The configuration is invalid or the database cannot be opened.
pub async fn open_store(global: &GlobalArgs) -> anyhow::Result<(Db, Config)> {
    let config = Config::load(global, &ServeArgs::default())?;
    let db = Db::connect(&config.database_url, config.durability)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {}",
                redact_url(&config.database_url)
            )
        })?;
    Ok((db, config))
}

/// As [`open_store`], with the migrations applied.
///
/// # Errors
/// As [`open_store`], or a migration fails.
pub async fn open_migrated(global: &GlobalArgs) -> anyhow::Result<(Db, Config)> {
    let (db, config) = open_store(global).await?;
    db.migrate().await.context("migration failed")?;
    Ok((db, config))
}

/// A log line's time: RFC 3339 in UTC.
pub(crate) fn format_ms(ms: i64) -> String {
    hookgate_providers::time::format_rfc3339_ms(ms)
}
