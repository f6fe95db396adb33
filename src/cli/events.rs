//! `hookgate events`: trigger fires, read from the database directly. It shows the newest ones
//! (or those after `--cursor`), then with `--follow` new ones as they are made, as the
//! `/v1/events/stream` Server-Sent Events stream does. `--json` prints each fire as the events
//! API shows it, one per line.

use std::io::Write as _;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::format_ms;
use crate::config::GlobalArgs;
use crate::db::rows::FireRow;
use crate::db::FireFilter;

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only fires of this trigger, e.g. `stripe.invoice.paid`.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only fires of this workspace.
    #[arg(long)]
    pub workspace: Option<String>,
    /// How many fires to show first: the newest ones (0 with --follow: only new ones).
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Show the fires after this one (a fire's id, the events API's cursor) instead of the
    /// newest, oldest first.
    #[arg(long)]
    pub cursor: Option<i64>,
    /// Keep printing new fires as they are made.
    #[arg(long, short)]
    pub follow: bool,
    /// Print JSON lines (the events API's shape) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `hookgate events`.
///
/// # Errors
/// Bad options, or the database cannot be opened or read.
pub async fn run(global: &GlobalArgs, args: EventsArgs) -> anyhow::Result<()> {
    if !(0..=10_000).contains(&args.limit) {
        bail!("--limit must be between 0 and 10000");
    }
    if args.cursor.is_some_and(|c| c < 0) {
        bail!("--cursor must be a fire id (0 or more)");
    }
    let (db, _) = super::open_store(global).await?;
    let mut filter = FireFilter {
        after_seq: args.cursor.unwrap_or(0),
        trigger_id: args.event_type.clone(),
        workspace: args.workspace.clone(),
        limit: args.limit,
        newest: args.cursor.is_none(),
        ..FireFilter::default()
    };
    // Read before the first page, so a fire made in between is not skipped by --follow.
    let latest = db.latest_fire_seq().await?;
    let first = if args.limit > 0 {
        db.list_fires(&filter).await?
    } else {
        Vec::new()
    };
    let mut stdout = std::io::stdout();
    if !args.json {
        writeln!(
            stdout,
            "{:<8} {:<24} {:<12} {:<36} {:<32} IDEMPOTENCY KEY",
            "ID", "FIRED (UTC)", "WORKSPACE", "EVENT TYPE", "EMAIL"
        )?;
    }
    for fire in &first {
        print_fire(&mut stdout, fire, args.json)?;
    }
    if !args.follow {
        return Ok(());
    }
    filter.after_seq = match (first.last(), args.cursor) {
        (Some(fire), _) => fire.seq,
        (None, Some(cursor)) => cursor,
        (None, None) => latest,
    };
    filter.newest = false;
    filter.limit = 500;
    stdout.flush()?;
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        for fire in db.list_fires(&filter).await? {
            print_fire(&mut stdout, &fire, args.json)?;
            filter.after_seq = fire.seq;
        }
        stdout.flush()?;
    }
}

fn print_fire(out: &mut impl std::io::Write, fire: &FireRow, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", crate::http::api::fire_json(fire))?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<8} {:<24} {:<12} {:<36} {:<32} {}",
        fire.seq,
        format_ms(fire.created_at),
        fire.workspace,
        fire.trigger_id,
        fire.email.as_deref().unwrap_or("-"),
        fire.idempotency_key
    )?;
    Ok(())
}
