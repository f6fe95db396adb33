//! `hookgate bench` and the hidden `hookgate bench-baseline`: the load generator's arguments and
//! wiring (the generator itself is [`crate::bench`]).

use std::net::SocketAddr;

use clap::Args;
use hookgate_providers::ProviderId;

use crate::config::Durability;

/// What `hookgate bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Scenario {
    /// Closed-loop throughput and latency against a baseline server.
    #[default]
    Load,
    /// Paced normal deliveries, alone and then while `--slow-connections` clients trickle
    /// headers or bodies a byte at a time.
    Slowloris,
    /// Paced deliveries on one connection, alone and then while another connection is flooded
    /// at `--flood-factor` times its rate limit.
    Fairness,
    /// Paced provider deliveries (`--rate`) delivered to a fast local endpoint, alone and then
    /// next to a slow (10 s) and a dead endpoint: delivered/s, event → 2xx latency, drain, loss.
    Delivery,
}

/// Options of `hookgate bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// load (closed-loop throughput), slowloris or fairness (paced deliveries under attack).
    #[arg(long, value_enum, default_value_t = Scenario::Load)]
    pub scenario: Scenario,
    /// slowloris, fairness: normal deliveries per second (open loop, spread over `--senders`).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// slowloris, fairness: keep-alive connections carrying the paced normal deliveries.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,
    /// slowloris: attacker connections (half trickle headers, half trickle a body).
    #[arg(long, default_value_t = 500)]
    pub slow_connections: usize,
    /// slowloris: the shortest pause between two trickled bytes, in ms (each attacker keeps
    /// one pace between this and `--slow-max-ms`).
    #[arg(long, default_value_t = 100)]
    pub slow_min_ms: u64,
    /// slowloris: the longest pause between two trickled bytes, in ms.
    #[arg(long, default_value_t = 500)]
    pub slow_max_ms: u64,
    /// fairness: the per-connection rate limit of both connections (requests per second).
    #[arg(long, default_value_t = 200)]
    pub rate_limit: u32,
    /// fairness: the flooded connection is offered this many times its rate limit.
    #[arg(long, default_value_t = 10.0)]
    pub flood_factor: f64,
    /// fairness: client connections sending the flood.
    #[arg(long, default_value_t = 32)]
    pub flood_clients: usize,
    /// slowloris, fairness: the gateway's `header_timeout_secs` (default: the gateway's own).
    #[arg(long)]
    pub header_timeout_secs: Option<u64>,
    /// slowloris, fairness: the gateway's `body_timeout_secs` (default: the gateway's own).
    #[arg(long)]
    pub body_timeout_secs: Option<u64>,
    /// Concurrent keep-alive connections (each a closed loop: send, wait, send).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Body size in bytes (padding is added to reach it).
    #[arg(long, default_value_t = 2048)]
    pub body_bytes: usize,
    /// Event shape: stripe (invoice.paid, Stripe-Signature) or clerk (user.created, Svix headers).
    #[arg(long, default_value = "stripe")]
    pub provider: ProviderId,
    /// Store: `sqlite` (a fresh temporary file) or a `postgres://` server URL (a fresh schema in
    /// it, dropped afterwards).
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// SQLite durability for the gateway under test.
    #[arg(long, default_value = "full")]
    pub durability: Durability,
    /// CPU for the gateway and the baseline server (`taskset -c`); `none` to not pin. Run the
    /// benchmark itself under `taskset -c 0` to pin the load generator.
    #[arg(long, default_value = "1")]
    pub server_cpu: String,
    /// Skip the baseline server.
    #[arg(long)]
    pub no_baseline: bool,
    /// Run the gateway without normalization workers.
    #[arg(long)]
    pub no_workers: bool,
    /// Instead of the load test: seed this many ingest rows into a fresh store (directly, in
    /// large batches), then time filtered `GET /admin/ingest` queries against a gateway on it.
    #[arg(long)]
    pub query_rows: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `hookgate bench-baseline`.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

/// Runs `hookgate bench`: the query timings (`--query-rows`), an abuse scenario or the load test.
///
/// # Errors
/// The benchmark cannot run, or acknowledged deliveries are missing from the store.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(rows) = args.query_rows {
        let timings = crate::bench::query_test(&args, rows).await?;
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
        return Ok(());
    }
    if args.scenario == Scenario::Delivery {
        let report = crate::bench::delivery::run(&args).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            crate::bench::delivery::print(&report);
        }
        let lost = report.alone.lost + report.with_slow_and_dead.lost;
        if lost > 0 {
            anyhow::bail!("{lost} events never reached the fast endpoint");
        }
        return Ok(());
    }
    if args.scenario != Scenario::Load {
        let report = crate::bench::abuse::run(&args).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            crate::bench::abuse::print(&report);
        }
        if report.missing > 0 {
            anyhow::bail!(
                "{} acknowledged deliveries are missing from the store",
                report.missing
            );
        }
        return Ok(());
    }
    let json = args.json;
    let report = crate::bench::run(args).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        crate::bench::print(&report);
    }
    if report.missing > 0 {
        anyhow::bail!(
            "{} acknowledged events are missing from the store",
            report.missing
        );
    }
    Ok(())
}

/// Runs `hookgate bench-baseline`.
///
/// # Errors
/// The address cannot be bound.
pub async fn baseline(args: BaselineArgs) -> anyhow::Result<()> {
    crate::bench::baseline(args.listen).await
}
