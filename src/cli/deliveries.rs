//! `hookgate deliveries [show|resend|requeue]`: the delivery log, read from the database.

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::config::GlobalArgs;
use crate::delivery::manage;
use crate::delivery::store::{self, DeliveryFilter, STATUSES};

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    pub command: Option<DeliveriesCommand>,
    #[arg(long)]
    pub endpoint: Option<String>,
    /// pending, retrying, succeeded, dead, skipped or paused.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub event_type: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Keep printing deliveries as they are created.
    #[arg(long)]
    pub follow: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// One delivery with its attempt log.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a delivery again now, whatever its status.
    Resend { id: String },
    /// Put every delivery matching the filter back in line with a fresh schedule.
    Requeue {
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        event_type: Option<String>,
    },
}

fn check_status(status: Option<&str>) -> anyhow::Result<()> {
    if let Some(s) = status {
        if !STATUSES.contains(&s) {
            bail!("--status {s:?}: use one of {}", STATUSES.join(", "));
        }
    }
    Ok(())
}

fn line(d: &store::DeliveryRow) -> String {
    format!(
        "{:<10} {} {:<16} {:<10} {:>3} {:<36} {}",
        crate::delivery::delivery_id(d.seq),
        super::format_ms(d.created_at),
        d.endpoint_id,
        d.status,
        d.attempts,
        d.event_type,
        d.last_status_code
            .map(|c| c.to_string())
            .or_else(|| d.last_error.clone())
            .unwrap_or_default()
    )
}

/// Runs `hookgate deliveries ...`.
///
/// # Errors
/// A message saying what went wrong and what to do.
pub async fn run(global: &GlobalArgs, args: DeliveriesArgs) -> anyhow::Result<()> {
    let (db, _config) = super::open_migrated(global).await?;
    let now = crate::now_ms();
    let parse_id = |id: &str| {
        crate::delivery::parse_delivery_id(id)
            .ok_or_else(|| anyhow::anyhow!("{id:?} is not a delivery id (dlv_<n>)"))
    };
    match args.command {
        Some(DeliveriesCommand::Show { id, json }) => {
            let seq = parse_id(&id)?;
            let Some(row) = store::get_delivery(&db, seq).await? else {
                bail!("no delivery {id}");
            };
            let attempts = store::attempts(&db, seq).await?;
            if json {
                let mut view = manage::delivery_view(&row);
                view["attempt_log"] = serde_json::to_value(&attempts)?;
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("{}", line(&row));
                for a in &attempts {
                    println!(
                        "  #{:<3} {} {:>5} ms  status {:<3} {}",
                        a.attempt,
                        super::format_ms(a.started_at),
                        a.duration_ms,
                        a.status_code,
                        a.error.as_deref().unwrap_or("")
                    );
                }
            }
        }
        Some(DeliveriesCommand::Resend { id }) => {
            if !store::resend(&db, parse_id(&id)?, now).await? {
                bail!("no delivery {id}");
            }
            println!("{id} queued to be sent again");
        }
        Some(DeliveriesCommand::Requeue {
            endpoint,
            status,
            event_type,
        }) => {
            check_status(status.as_deref())?;
            let filter = DeliveryFilter {
                endpoint,
                status,
                event_type,
                ..DeliveryFilter::default()
            };
            let n = store::requeue(&db, &filter, now).await?;
            println!("{n} deliveries requeued");
        }
        None => {
            check_status(args.status.as_deref())?;
            if !(1..=1000).contains(&args.limit) {
                bail!("--limit must be 1 to 1000");
            }
            let mut filter = DeliveryFilter {
                endpoint: args.endpoint,
                status: args.status,
                event_type: args.event_type,
                limit: args.limit,
                ..DeliveryFilter::default()
            };
            let mut rows = store::list_deliveries(&db, &filter).await?;
            rows.reverse();
            let mut last = rows.last().map(|r| r.seq).unwrap_or(0);
            for r in &rows {
                print_row(r, args.json);
            }
            if args.follow {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    filter.after_seq = Some(last);
                    for r in store::list_deliveries(&db, &filter).await? {
                        last = r.seq;
                        print_row(&r, args.json);
                    }
                }
            }
        }
    }
    db.close().await;
    Ok(())
}

fn print_row(r: &store::DeliveryRow, json: bool) {
    if json {
        println!("{}", manage::delivery_view(r));
    } else {
        println!("{}", line(r));
    }
}
