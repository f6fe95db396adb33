//! `hookgate logs`: the ingest log, read from the database directly.

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use hookgate_providers::ProviderId;

use super::format_ms;
use crate::config::GlobalArgs;
use crate::db::{IngestFilter, Outcome};

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(long)]
    pub connection: Option<String>,
    #[arg(long, value_enum)]
    pub outcome: Option<Outcome>,
    #[arg(long)]
    pub provider: Option<ProviderId>,
    /// How many records to show first.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Keep printing new records as they arrive.
    #[arg(long, short)]
    pub follow: bool,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `hookgate logs`: the newest `limit` records oldest first, then with `--follow` new ones
/// as they arrive (polling every 500 ms).
///
/// # Errors
/// The database cannot be opened or read.
pub async fn run(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<()> {
    let (db, _) = super::open_store(global).await?;
    let mut filter = IngestFilter {
        connection: args.connection.clone(),
        provider: args.provider.map(|p| p.as_str().to_owned()),
        outcome: args.outcome.map(|o| o.as_str().to_owned()),
        limit: args.limit.clamp(1, 10_000),
        ..IngestFilter::default()
    };
    let mut first = db.list_ingest(&filter).await?;
    first.reverse();
    let mut stdout = std::io::stdout();
    if !args.json {
        writeln!(
            stdout,
            "{:<26} {:<24} {:<11} {:<18} {:<9} {:<4} {:<34} REASON",
            "ID", "RECEIVED (UTC)", "PROVIDER", "CONNECTION", "OUTCOME", "HTTP", "EVENT"
        )?;
    }
    let mut last = None;
    for item in &first {
        print_item(&mut stdout, item, args.json)?;
        last = Some(item.id.clone());
    }
    if !args.follow {
        return Ok(());
    }
    // Follow from the newest record seen (or from now when there was none).
    filter.after_id = Some(last.unwrap_or_else(|| ulid::Ulid::new().to_string()));
    filter.limit = 500;
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        for item in db.list_ingest(&filter).await? {
            print_item(&mut stdout, &item, args.json)?;
            filter.after_id = Some(item.id.clone());
        }
        stdout.flush()?;
    }
}

fn print_item(
    out: &mut impl std::io::Write,
    item: &crate::db::rows::IngestSummary,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(item)?)?;
        return Ok(());
    }
    let event = match (&item.event_type, &item.event_id) {
        (Some(t), Some(id)) => format!("{t} {id}"),
        (Some(t), None) => t.clone(),
        _ => "-".into(),
    };
    writeln!(
        out,
        "{:<26} {:<24} {:<11} {:<18} {:<9} {:<4} {:<34} {}",
        item.id,
        format_ms(item.received_at),
        item.provider,
        item.connection_id,
        item.outcome,
        item.http_status,
        truncate(&event, 34),
        item.reason.as_deref().unwrap_or(""),
    )?;
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
