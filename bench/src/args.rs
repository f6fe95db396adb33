//! The command line of `hookgate-bench`: the benchmark's options, and the hidden `baseline` and
//! `durable` subcommands the benchmark starts its baseline servers with.

use std::net::SocketAddr;

use clap::Args;
use hookgate_providers::ProviderId;

use hookgate::db::Durability;

/// `hookgate-bench`: how much verified, durably stored traffic one machine absorbs, and how the
/// gateway holds under abusive clients.
#[derive(Debug, clap::Parser)]
#[command(
    name = "hookgate-bench",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(flatten)]
    pub bench: BenchArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The benchmark's baseline: a minimal axum server that reads the body and answers 200.
    #[command(hide = true)]
    Baseline(BaselineArgs),
    /// The benchmark's durable baseline: the same HTTP stack and verification, then one
    /// group-committed row per event, answered after the commit.
    #[command(hide = true)]
    Durable(DurableArgs),
}

/// What `hookgate-bench` measures.
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

/// Options of `hookgate-bench`.
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
    /// delivery: the fast endpoint's `max_in_flight` (concurrent requests to it, and as many
    /// deliveries claimed ahead).
    #[arg(long, default_value_t = 16)]
    pub max_in_flight: u32,
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
    /// Skip both baseline servers (the bare one and the durable one).
    #[arg(long)]
    pub no_baseline: bool,
    /// Skip only the durable baseline (one verified, group-committed row per event).
    #[arg(long)]
    pub no_durable: bool,
    /// Run the gateway without normalization workers.
    #[arg(long)]
    pub no_workers: bool,
    /// Instead of the load test: seed this many ingest rows into a fresh store (directly, in
    /// large batches), then time filtered `GET /admin/ingest` queries against a gateway on it.
    #[arg(long)]
    pub query_rows: Option<u64>,
    /// Load test: run the gateway a second time, on a SQLite store already holding this many
    /// events (ingest rows with 2 KiB bodies, fires, contacts, seeded directly), and report its
    /// throughput next to the empty store's and the admin ingest queries' latency on it.
    #[arg(long)]
    pub seed_events: Option<u64>,
    /// Load test: configure a drain (`[[drains]]`, every record kind) that points at a dead
    /// sink (a closed loopback port), to measure what a failing drain costs receiving.
    #[arg(long)]
    pub drain_dead: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// The `hookgate` binary to benchmark (default: the one next to this binary, as
    /// `cargo build --release --workspace` leaves them).
    #[arg(long)]
    pub hookgate: Option<std::path::PathBuf>,
    /// Load test: keep the store after the run (a SQLite file in a directory that is not
    /// removed, or the PostgreSQL schema) and name it in the report, so that it can be inspected.
    #[arg(long)]
    pub keep_store: bool,
}

/// Options of `hookgate-bench baseline`.
#[derive(Debug, Clone, Args)]
pub struct BaselineArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

/// Options of `hookgate-bench durable`.
#[derive(Debug, Clone, Args)]
pub struct DurableArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// `sqlite://<file>` or a `postgres://` URL (its `search_path` picks the schema).
    #[arg(long)]
    pub database_url: String,
    #[arg(long, default_value = "full")]
    pub durability: Durability,
    #[arg(long, default_value = "stripe")]
    pub provider: ProviderId,
    /// The signing secret the load is signed with.
    #[arg(long)]
    pub secret: String,
}
