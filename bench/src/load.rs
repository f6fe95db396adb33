//! The load test: how much verified, durably stored traffic one machine absorbs.
//!
//! The benchmark starts a real `hookgate serve` child process on a fresh store (pinned to
//! `--server-cpu` with `taskset`), and a baseline child (a minimal axum POST handler that reads
//! the body and answers 200) under the same load, so the report can give the ratio
//! gateway/baseline, which is steadier than absolute numbers on shared machines.
//!
//! Load: `--connections` closed-loop HTTP/1.1 keep-alive clients, each sending one request at a
//! time; every request is a unique event of a real provider shape, correctly signed (Stripe
//! `invoice.paid` with `Stripe-Signature`, or Clerk `user.created` with Svix headers), padded to
//! `--body-bytes`. After the load it proves zero loss (every event answered 2xx is in the store),
//! waits for the normalization backlog to drain, and checks one fire per stored event.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use hookgate_providers::{ProviderId, Secret, SignOptions};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use hookgate::db::Db;
use hookgate_providers::testkit::example_secret;

use crate::args::BenchArgs;

pub(crate) const CONNECTION: &str = "bench";

/// One side's load result.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: u64,
    pub measured_requests: u64,
    /// Peak resident memory of the server process (MiB) and its CPU use during the measured
    /// window (percent of one core).
    pub server_peak_rss_mib: f64,
    pub server_cpu_percent: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub provider: String,
    pub store: String,
    pub durability: String,
    pub connections: usize,
    pub body_bytes: usize,
    pub duration_secs: f64,
    pub gateway: LoadResult,
    pub baseline: Option<LoadResult>,
    pub ratio: Option<f64>,
    /// The durable baseline (verify, one group-committed row per event, ack after commit) on
    /// the same store and durability, and the gateway's requests/s as a share of it.
    pub durable: Option<LoadResult>,
    pub ratio_durable: Option<f64>,
    /// Acknowledged events the durable baseline did not store (its own zero-loss check).
    pub durable_missing: Option<u64>,
    /// Events answered 2xx (warm-up included) and how many of them are missing from the store.
    pub acknowledged: u64,
    pub missing: u64,
    pub stored: u64,
    pub fires: u64,
    pub max_pending_backlog: i64,
    /// From the gateway's own metrics: mean rows per group commit and mean time per batch (ms).
    pub mean_batch_rows: Option<f64>,
    pub mean_batch_ms: Option<f64>,
    /// Seconds from the end of the load until no event was pending.
    pub drain_secs: Option<f64>,
    /// Events normalized per second over the run (load start to drained).
    pub normalization_rate: Option<f64>,
    /// With `--keep-store`: where the run's store is.
    pub kept_store: Option<KeptStore>,
    /// With `--drain-dead`: the gateway had a drain pointing at a dead sink.
    pub drain_dead: bool,
    /// With `--seed-events`: the same load against a store already holding that many events.
    pub growth: Option<Growth>,
}

/// A child server process, killed on drop.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl ServerProcess {
    pub(crate) fn spawn(mut cmd: Command) -> anyhow::Result<ServerProcess> {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the server process")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listen=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                } else if line.contains("ERROR") || line.starts_with("hookgate:") {
                    eprintln!("server: {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .context("the server did not report its address")?
            .parse()
            .context("the server printed an unreadable address")?;
        Ok(ServerProcess { child, addr })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set (VmHWM) in MiB.
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// User + system CPU seconds so far.
    pub(crate) fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let after = stat.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
            f.iter().filter_map(|t| t.parse::<f64>().ok()).sum()
        });
        ticks / 100.0
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hookgate serve` on `config` and the store at `url`, pinned like every server of the run,
/// with the store's durability and, unless asked otherwise, its normalization workers.
pub(crate) fn gateway_command(
    args: &BenchArgs,
    exe: &std::path::Path,
    config: &std::path::Path,
    url: &str,
) -> Command {
    let mut cmd = pinned(&args.server_cpu, exe);
    cmd.arg("--config")
        .arg(config)
        .arg("--database-url")
        .arg(url)
        .arg("serve")
        .arg("--durability")
        .arg(args.durability.as_str());
    if args.no_workers {
        cmd.arg("--no-workers");
    }
    cmd.env("RUST_LOG", "warn,hookgate=info");
    cmd
}
fn pinned(cpu: &str, program: &std::path::Path) -> Command {
    if cpu != "none" && which("taskset") {
        let mut cmd = Command::new("taskset");
        cmd.arg("-c").arg(cpu).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn which(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Builds unique, signed requests of one provider's shape.
pub(crate) struct Generator {
    provider: ProviderId,
    /// The connection id the requests are sent to.
    connection: String,
    run: String,
    padding: String,
}

impl Generator {
    pub(crate) fn new(provider: ProviderId, body_bytes: usize) -> Self {
        Self::for_connection(provider, body_bytes, CONNECTION)
    }

    pub(crate) fn for_connection(
        provider: ProviderId,
        body_bytes: usize,
        connection: &str,
    ) -> Self {
        // The random half of a ULID: two generators made in the same millisecond (the fairness
        // scenario's victim and flood) still get different event ids.
        let run = ulid::Ulid::new().to_string().to_lowercase()[16..].to_owned();
        let mut g = Generator {
            provider,
            connection: connection.to_owned(),
            run,
            padding: String::new(),
        };
        let base = g.body(0, 0).len();
        g.padding = "x".repeat(body_bytes.saturating_sub(base));
        g
    }

    pub(crate) fn event_id(&self, conn: usize, n: u64) -> String {
        match self.provider {
            ProviderId::Clerk => format!("msg_{}{conn:03}{n:09}", self.run),
            _ => format!("evt_{}_{conn}_{n}", self.run),
        }
    }

    pub(crate) fn body(&self, conn: usize, n: u64) -> String {
        let customer = (conn as u64 * 1_000_003 + n) % 5000;
        match self.provider {
            ProviderId::Clerk => format!(
                r#"{{"data":{{"id":"user_{run}{conn}x{n}","object":"user","first_name":"Bench","last_name":"User{customer}","primary_email_address_id":"idn_{customer}","email_addresses":[{{"id":"idn_{customer}","email_address":"bench{customer}@example.com","verification":{{"status":"verified"}}}}],"created_at":1760433151482,"updated_at":1760433151482,"padding":"{pad}"}},"event_attributes":{{"http_request":{{"client_ip":"192.0.2.1","user_agent":"bench"}}}},"instance_id":"ins_bench","object":"event","timestamp":1760433151482,"type":"user.created"}}"#,
                run = self.run,
                pad = self.padding
            ),
            _ => format!(
                r#"{{"id":"{id}","object":"event","api_version":"2025-08-27.basil","created":{created},"data":{{"object":{{"id":"in_{run}{conn}x{n}","object":"invoice","amount_due":2900,"amount_paid":2900,"currency":"usd","customer":"cus_bench{customer}","customer_email":"bench{customer}@example.com","customer_name":"Bench User","status":"paid","livemode":false,"parent":{{"subscription_details":{{"subscription":"sub_bench{customer}"}}}},"padding":"{pad}"}}}},"livemode":false,"pending_webhooks":1,"request":{{"id":null,"idempotency_key":null}},"type":"invoice.paid"}}"#,
                id = self.event_id(conn, n),
                created = 1_760_000_000 + n,
                run = self.run,
                pad = self.padding
            ),
        }
    }

    /// The receive path of the generator's connection.
    pub(crate) fn path(&self) -> String {
        format!(
            "/integrations/{}/webhook/{}",
            self.provider, self.connection
        )
    }

    pub(crate) fn secret(&self) -> &'static str {
        example_secret(self.provider)
    }

    pub(crate) fn request(
        &self,
        conn: usize,
        n: u64,
        authority: &str,
    ) -> anyhow::Result<(String, hyper::Request<Full<Bytes>>)> {
        let id = self.event_id(conn, n);
        let body = self.body(conn, n);
        let options = SignOptions {
            now_ms: hookgate::now_ms(),
            delivery_id: Some(id.clone()),
            ..SignOptions::default()
        };
        let signed =
            self.provider
                .adapter()
                .sign(body.as_bytes(), &Secret::new(self.secret()), &options)?;
        let mut builder = hyper::Request::post(self.path())
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in signed.headers {
            builder = builder.header(name, value);
        }
        Ok((id, builder.body(Full::new(Bytes::from(body)))?))
    }
}

/// Latencies in microseconds, from 1 µs to 60 s, 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// What one client connection measured.
struct ClientResult {
    histogram: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    acknowledged: Vec<String>,
}

async fn client(
    conn: usize,
    addr: SocketAddr,
    gen: Arc<Generator>,
    measure_from: Instant,
    stop_at: Instant,
) -> ClientResult {
    let mut result = ClientResult {
        histogram: new_histogram(),
        statuses: BTreeMap::new(),
        errors: 0,
        acknowledged: Vec::new(),
    };
    let authority = addr.to_string();
    let mut n = 0u64;
    'reconnect: while Instant::now() < stop_at {
        let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
            result.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, connection)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            result.errors += 1;
            continue;
        };
        tokio::spawn(connection);
        while Instant::now() < stop_at {
            let Ok((id, request)) = gen.request(conn, n, &authority) else {
                result.errors += 1;
                return result;
            };
            n += 1;
            let started = Instant::now();
            let Ok(response) = sender.send_request(request).await else {
                result.errors += 1;
                continue 'reconnect;
            };
            let status = response.status().as_u16();
            let close = response
                .headers()
                .get(http::header::CONNECTION)
                .is_some_and(|v| v == "close");
            if response.into_body().collect().await.is_err() {
                result.errors += 1;
                continue 'reconnect;
            }
            let elapsed = started.elapsed();
            if (200..300).contains(&status) {
                result.acknowledged.push(id);
            }
            if started >= measure_from {
                let micros = u64::try_from(elapsed.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let _ = result.histogram.record(micros);
                *result.statuses.entry(status).or_default() += 1;
            }
            if close {
                continue 'reconnect;
            }
        }
    }
    result
}

/// Drives closed-loop load against `server` and measures it.
async fn load(
    server: &ServerProcess,
    gen: &Arc<Generator>,
    args: &BenchArgs,
) -> (LoadResult, Vec<String>) {
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let tasks: Vec<_> = (0..args.connections)
        .map(|c| {
            tokio::spawn(client(
                c,
                server.addr,
                Arc::clone(gen),
                measure_from,
                stop_at,
            ))
        })
        .collect();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = server.cpu_secs();
    let mut histogram = new_histogram();
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    let mut acknowledged = Vec::new();
    for task in tasks {
        if let Ok(r) = task.await {
            let _ = histogram.add(&r.histogram);
            for (s, c) in r.statuses {
                *statuses.entry(s).or_default() += c;
            }
            errors += r.errors;
            acknowledged.extend(r.acknowledged);
        }
    }
    let cpu = server.cpu_secs() - cpu_before;
    let measured = histogram.len();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    (
        LoadResult {
            requests_per_sec: measured as f64 / duration.as_secs_f64(),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: histogram.max() as f64 / 1000.0,
            statuses,
            errors,
            measured_requests: measured,
            server_peak_rss_mib: server.peak_rss_mib(),
            server_cpu_percent: 100.0 * cpu / duration.as_secs_f64(),
        },
        acknowledged,
    )
}

/// A fresh store for the run: (URL for the gateway, handle for checks, cleanup).
pub(crate) async fn fresh_store(
    args: &BenchArgs,
    dir: &std::path::Path,
) -> anyhow::Result<(String, Db, Option<(String, String)>)> {
    if args.store == "sqlite" {
        let url = format!("sqlite://{}", dir.join("bench.db").display());
        let db = Db::connect(&url, hookgate::db::Durability::Full).await?;
        db.migrate().await?;
        return Ok((url, db, None));
    }
    if !args.store.starts_with("postgres") {
        bail!("--store must be sqlite or a postgres:// URL");
    }
    let schema = format!("hg_bench_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = sqlx::PgPool::connect(&args.store)
        .await
        .context("cannot reach PostgreSQL")?;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let sep = if args.store.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}options=-c%20search_path%3D{schema}", args.store);
    let db = Db::connect_postgres_schema(&args.store, &schema).await?;
    db.migrate().await?;
    Ok((url, db, Some((args.store.clone(), schema))))
}

/// Where a store kept with `--keep-store` is: the SQLite file, or the schema in the PostgreSQL
/// database given with `--store` (not repeated here: its URL may hold a password).
#[derive(Debug, Clone, Serialize)]
pub struct KeptStore {
    pub sqlite_path: Option<std::path::PathBuf>,
    pub postgres_schema: Option<String>,
}

/// Keeps the run's store instead of removing it: the temporary directory stays, the schema
/// is not dropped.
pub(crate) fn keep_store(dir: tempfile::TempDir, cleanup: Option<(String, String)>) -> KeptStore {
    let dir = dir.keep();
    match cleanup {
        Some((_, schema)) => KeptStore {
            sqlite_path: None,
            postgres_schema: Some(schema),
        },
        None => KeptStore {
            sqlite_path: Some(dir.join("bench.db")),
            postgres_schema: None,
        },
    }
}

/// Drops the PostgreSQL schema `fresh_store` made (nothing to do for SQLite: the temporary
/// directory goes with it).
pub(crate) async fn drop_store(cleanup: Option<(String, String)>) {
    if let Some((server, schema)) = cleanup {
        if let Ok(admin) = sqlx::PgPool::connect(&server).await {
            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&admin)
                .await;
        }
    }
}

/// Runs the benchmark and prints the report.
///
/// # Errors
/// The servers cannot start or the store cannot be reached.
/// `--drain-dead`: a drain of every record kind whose sink refuses connections (port 9, the
/// discard port, is closed on loopback), so every batch fails and the feed only grows.
const DEAD_DRAIN: &str =
    "[[drains]]\nid = \"dead\"\nkind = \"otlp_http\"\nurl = \"http://127.0.0.1:9\"\n";

pub async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let provider = args.provider;
    if !matches!(provider, ProviderId::Stripe | ProviderId::Clerk) {
        bail!("--provider must be stripe or clerk");
    }
    if args.connections == 0 || args.duration <= 0.0 {
        bail!("--connections and --duration must be positive");
    }
    let exe = crate::gateway_binary(&args)?;
    let bench_exe = std::env::current_exe().context("cannot find the hookgate-bench binary")?;
    let dir = tempfile::tempdir()?;
    let gen = Arc::new(Generator::new(provider, args.body_bytes));

    let baseline = if args.no_baseline {
        None
    } else {
        eprintln!(
            "bench: baseline (minimal axum POST handler) for {:.0} s + {:.0} s warm-up…",
            args.duration, args.warmup
        );
        let mut cmd = pinned(&args.server_cpu, &bench_exe);
        cmd.args(["baseline", "--listen", "127.0.0.1:0"]);
        let server = ServerProcess::spawn(cmd)?;
        let (result, _) = load(&server, &gen, &args).await;
        Some(result)
    };

    let (durable, durable_missing) = if args.no_baseline || args.no_durable {
        (None, None)
    } else {
        let (result, missing) = durable_baseline(&args, &bench_exe, &gen).await?;
        (Some(result), Some(missing))
    };

    let empty = gateway_phase(&args, &exe, &gen, dir, None).await?;
    let growth = match args.seed_events {
        Some(events) => {
            let seeded =
                gateway_phase(&args, &exe, &gen, tempfile::tempdir()?, Some(events)).await?;
            let (seed, queries) = seeded
                .seeded
                .context("the seeded run reports its seeding")?;
            Some(Growth {
                ratio_to_empty: seeded.result.requests_per_sec
                    / empty.result.requests_per_sec.max(1e-9),
                seeded: seed,
                gateway: seeded.result,
                acknowledged: seeded.acknowledged,
                missing: seeded.missing,
                stored: seeded.stored,
                fires: seeded.fires,
                drain_secs: seeded.drain_secs,
                queries,
            })
        }
        None => None,
    };
    let ratio = baseline
        .as_ref()
        .map(|b| empty.result.requests_per_sec / b.requests_per_sec.max(1e-9));
    let ratio_durable = durable
        .as_ref()
        .map(|d| empty.result.requests_per_sec / d.requests_per_sec.max(1e-9));
    Ok(Report {
        provider: provider.to_string(),
        store: if args.store == "sqlite" {
            "sqlite".into()
        } else {
            "postgres".into()
        },
        durability: args.durability.to_string(),
        connections: args.connections,
        body_bytes: gen.body(0, 0).len(),
        duration_secs: args.duration,
        gateway: empty.result,
        baseline,
        ratio,
        durable,
        ratio_durable,
        durable_missing,
        acknowledged: empty.acknowledged,
        missing: empty.missing,
        stored: empty.stored,
        fires: empty.fires,
        max_pending_backlog: empty.max_backlog,
        mean_batch_rows: empty.mean_batch_rows,
        mean_batch_ms: empty.mean_batch_ms,
        drain_secs: empty.drain_secs,
        normalization_rate: empty.normalization_rate,
        kept_store: empty.kept_store,
        drain_dead: args.drain_dead,
        growth,
    })
}

/// One gateway run under the load and what the store shows after it.
struct Phase {
    result: LoadResult,
    acknowledged: u64,
    missing: u64,
    stored: u64,
    fires: u64,
    max_backlog: i64,
    mean_batch_rows: Option<f64>,
    mean_batch_ms: Option<f64>,
    drain_secs: Option<f64>,
    normalization_rate: Option<f64>,
    kept_store: Option<KeptStore>,
    /// With a seeded store: its seeding and the admin queries timed on it after the load.
    seeded: Option<(crate::growth::Seeded, Vec<QueryTiming>)>,
}

/// The gateway on a fresh store in `dir` (seeded with `seed` events first, if given) under
/// the load: zero loss, the drain and the fires checked after it.
async fn gateway_phase(
    args: &BenchArgs,
    exe: &std::path::Path,
    gen: &Arc<Generator>,
    dir: tempfile::TempDir,
    seed: Option<u64>,
) -> anyhow::Result<Phase> {
    let provider = args.provider;
    let (url, db, cleanup) = fresh_store(args, dir.path()).await?;
    let seeded = match seed {
        Some(events) => {
            eprintln!("bench: seeding {events} events into a fresh store…");
            Some(
                crate::growth::seed(
                    &args.store,
                    &dir.path().join("bench.db"),
                    CONNECTION,
                    events,
                )
                .await?,
            )
        }
        None => None,
    };
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN_TOKEN}\"\nrate_limit_per_sec = 1000000\n[[connections]]\nid = \"{CONNECTION}\"\nprovider = \"{provider}\"\nsecrets = [\"{}\"]\n{}",
            gen.secret(),
            if args.drain_dead { DEAD_DRAIN } else { "" }
        ),
    )?;
    let cmd = gateway_command(args, exe, &config, &url);
    eprintln!(
        "bench: hookgate on {} ({} durability)…",
        if cleanup.is_some() {
            "postgres"
        } else {
            "sqlite"
        },
        args.durability
    );
    let gateway = ServerProcess::spawn(cmd)?;
    let started = Instant::now();
    let sampler_db = db.clone();
    let sampler = tokio::spawn(async move {
        let mut max = 0;
        loop {
            if let Ok(p) = sampler_db.pending_count().await {
                max = max.max(p);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            if sampler_db.pending_count().await.is_err() {
                return max;
            }
        }
    });
    let (result, acknowledged) = load(&gateway, gen, args).await;
    let load_ended = Instant::now();
    let (mean_batch_rows, mean_batch_ms) = batch_stats(gateway.addr).await;
    sampler.abort();
    let max_backlog = sampler
        .await
        .unwrap_or(0)
        .max(db.pending_count().await.unwrap_or(0));

    // Zero loss: every event answered 2xx is stored.
    eprintln!(
        "bench: checking {} acknowledged events against the store…",
        acknowledged.len()
    );
    // A seeded store also holds the seeded events: the checks count only what the load left.
    let seeded_file = seeded.as_ref().map(|_| dir.path().join("bench.db"));
    let stored: HashSet<String> = match &seeded_file {
        Some(path) => crate::growth::live_event_ids(path, CONNECTION).await?,
        None => db.stored_event_ids(CONNECTION).await?,
    }
    .into_iter()
    .collect();
    let missing = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .count() as u64;

    // Drain: wait until nothing is pending (bounded), then count fires.
    let mut drain_secs = None;
    let mut normalization_rate = None;
    if !args.no_workers {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if db.pending_count().await? == 0 {
                let drained = Instant::now();
                drain_secs = Some((drained - load_ended).as_secs_f64());
                normalization_rate = Some(stored.len() as f64 / (drained - started).as_secs_f64());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let fires = match &seeded_file {
        Some(path) => crate::growth::live_fire_count(path).await?,
        None => db.fire_count().await?,
    };
    let fires = u64::try_from(fires).unwrap_or(0);
    let seeded = match seeded {
        Some(seeded) => {
            eprintln!("bench: timing admin ingest queries on the seeded store…");
            Some((seeded, time_queries(gateway.addr, &SEEDED_QUERIES).await?))
        }
        None => None,
    };
    drop(gateway);
    db.close().await;
    let kept_store = if args.keep_store {
        Some(keep_store(dir, cleanup))
    } else {
        drop_store(cleanup).await;
        None
    };
    Ok(Phase {
        result,
        acknowledged: acknowledged.len() as u64,
        missing,
        stored: stored.len() as u64,
        fires,
        max_backlog,
        mean_batch_rows,
        mean_batch_ms,
        drain_secs,
        normalization_rate,
        kept_store,
        seeded,
    })
}

/// Runs the durable baseline on a fresh store of the run's kind and durability under the same
/// load: its result and how many acknowledged events it failed to store.
async fn durable_baseline(
    args: &BenchArgs,
    bench_exe: &std::path::Path,
    gen: &Arc<Generator>,
) -> anyhow::Result<(LoadResult, u64)> {
    eprintln!(
        "bench: durable baseline (verify, one group-committed row per event, {} durability) for {:.0} s + {:.0} s warm-up…",
        args.durability, args.duration, args.warmup
    );
    let dir = tempfile::tempdir()?;
    // A fresh store like the gateway's (on PostgreSQL its own schema); the baseline makes its
    // one table there.
    let (url, db, cleanup) = fresh_store(args, dir.path()).await?;
    db.close().await;
    let url = if cleanup.is_some() {
        url
    } else {
        format!("sqlite://{}", dir.path().join("durable.db").display())
    };
    let mut cmd = pinned(&args.server_cpu, bench_exe);
    cmd.args(["durable", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(&url)
        .args(["--durability", args.durability.as_str()])
        .args(["--provider", &args.provider.to_string()])
        .args(["--secret", gen.secret()]);
    let server = ServerProcess::spawn(cmd)?;
    let (result, acknowledged) = load(&server, gen, args).await;
    drop(server);
    let stored = u64::try_from(crate::durable::stored(&url).await?).unwrap_or(0);
    drop_store(cleanup).await;
    let missing = (acknowledged.len() as u64).saturating_sub(stored);
    Ok((result, missing))
}

/// Mean rows per batch and mean batch time from the gateway's `/metrics`.
async fn batch_stats(addr: SocketAddr) -> (Option<f64>, Option<f64>) {
    let Ok(text) = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .and_then(|r| r.error_for_status())
    else {
        return (None, None);
    };
    let text = text.text().await.unwrap_or_default();
    let value = |name: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
    };
    let rows = value("hookgate_ingest_batch_rows_sum ");
    let batches = value("hookgate_ingest_batch_rows_count ");
    let seconds = value("hookgate_ingest_batch_commit_seconds_sum ");
    match (rows, batches, seconds) {
        (Some(r), Some(b), Some(s)) if b > 0.0 => (Some(r / b), Some(1000.0 * s / b)),
        _ => (None, None),
    }
}

/// The admin token of every gateway the benchmark starts.
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// The admin queries timed on `--query-rows`' store.
const QUERY_TEST_QUERIES: [&str; 7] = [
    "/admin/ingest?limit=50",
    "/admin/ingest?connection=conn-3&limit=50",
    "/admin/ingest?outcome=rejected&limit=50",
    "/admin/ingest?status=ignored&limit=50",
    "/admin/ingest?event_type=customer.created&limit=50",
    "/admin/ingest?provider=clerk&connection=conn-1&limit=50",
    // The worst case: a filter that matches nothing has to look at every row it cannot skip.
    "/admin/ingest?event_type=no.such.type&limit=50",
];

/// The admin queries timed on `--seed-events`' store after the load.
const SEEDED_QUERIES: [&str; 7] = [
    "/admin/ingest?limit=50",
    "/admin/ingest?connection=bench&limit=50",
    "/admin/ingest?outcome=rejected&limit=50",
    "/admin/ingest?status=ignored&limit=50",
    "/admin/ingest?event_type=customer.created&limit=50",
    "/admin/ingest?provider=stripe&connection=bench&limit=50",
    "/admin/ingest?event_type=no.such.type&limit=50",
];

/// Times each query 200 times against the gateway at `addr`, half of them paging on with the
/// cursor, as an operator scrolling back would.
async fn time_queries(addr: SocketAddr, queries: &[&str]) -> anyhow::Result<Vec<QueryTiming>> {
    let client = reqwest::Client::new();
    let mut timings = Vec::new();
    for q in queries {
        let mut histogram = new_histogram();
        let mut items = 0;
        let mut cursor: Option<String> = None;
        for i in 0..200 {
            let path = match (&cursor, i % 2) {
                (Some(c), 1) => format!("{q}&cursor={c}"),
                _ => (*q).to_owned(),
            };
            let t = Instant::now();
            let response = client
                .get(format!("http://{addr}{path}"))
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await?
                .error_for_status()?;
            let page: serde_json::Value = response.json().await?;
            let _ = histogram.record(
                u64::try_from(t.elapsed().as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1),
            );
            items = page["items"].as_array().map_or(0, Vec::len);
            cursor = page["next_cursor"].as_str().map(str::to_owned);
        }
        timings.push(QueryTiming {
            query: (*q).to_owned(),
            items,
            p50_ms: histogram.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: histogram.max() as f64 / 1000.0,
        });
    }
    Ok(timings)
}

/// The gateway against a store already holding `--seed-events` events.
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    pub seeded: crate::growth::Seeded,
    pub gateway: LoadResult,
    /// Requests/s on the seeded store / requests/s on the empty one.
    pub ratio_to_empty: f64,
    pub acknowledged: u64,
    pub missing: u64,
    pub stored: u64,
    pub fires: u64,
    pub drain_secs: Option<f64>,
    /// Admin ingest queries on the seeded store, after the load.
    pub queries: Vec<QueryTiming>,
}

/// Latency of one admin query shape.
#[derive(Debug, Clone, Serialize)]
pub struct QueryTiming {
    pub query: String,
    pub items: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Seeds `rows` ingest rows (8 connections, every outcome and status, small bodies) and times
/// filtered admin queries through a gateway on that store.
///
/// # Errors
/// The store or the gateway cannot be started.
pub async fn query_test(args: &BenchArgs, rows: u64) -> anyhow::Result<Vec<QueryTiming>> {
    use hookgate::db::{IngestKind, NewIngest};
    let exe = crate::gateway_binary(args)?;
    let dir = tempfile::tempdir()?;
    let (url, db, cleanup) = fresh_store(args, dir.path()).await?;
    let started = Instant::now();
    let base_ms = hookgate::now_ms() - i64::try_from(rows).unwrap_or(0);
    let body = Bytes::from_static(br#"{"id":"evt_seed","type":"invoice.paid","object":"event"}"#);
    let mut written = 0u64;
    while written < rows {
        let n = (rows - written).min(400);
        let batch: Vec<NewIngest> = (0..n)
            .map(|i| {
                let k = written + i;
                let kind = match k % 20 {
                    0 => IngestKind::Rejected,
                    1 => IngestKind::Ignored,
                    _ => IngestKind::Accepted,
                };
                let ms = base_ms + i64::try_from(k).unwrap_or(0);
                NewIngest {
                    id: ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or(0), u128::from(k))
                        .to_string(),
                    kind,
                    received_at: ms,
                    connection_id: format!("conn-{}", k % 8),
                    provider: if k % 2 == 0 { "stripe" } else { "clerk" },
                    workspace: Some("default".into()),
                    http_status: if kind == IngestKind::Rejected {
                        401
                    } else {
                        200
                    },
                    event_id: (kind != IngestKind::Rejected).then(|| format!("evt_seed_{k}")),
                    event_type: Some(
                        [
                            "invoice.paid",
                            "customer.created",
                            "user.created",
                            "checkout.session.completed",
                        ][(k % 4) as usize]
                            .into(),
                    ),
                    reason: (kind == IngestKind::Rejected).then(|| "signature_mismatch".into()),
                    client_addr: Some("192.0.2.10".into()),
                    path: "/integrations/stripe/webhook/conn".into(),
                    headers: "[]".into(),
                    body: body.clone(),
                    body_size: i64::try_from(body.len()).unwrap_or(0),
                    body_truncated: false,
                    read_us: Some(10),
                    verify_us: Some(5),
                }
            })
            .collect();
        db.write_batch(&batch).await?;
        written += n;
        if written % 100_000 < 400 {
            eprintln!(
                "bench: seeded {written} of {rows} rows ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    // A store that grew to this size in service has planner statistics (PostgreSQL's
    // autovacuum); a bulk load has none until it is analyzed.
    db.analyze().await?;
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN_TOKEN}\"\n"),
    )?;
    let mut cmd = gateway_command(args, &exe, &config, &url);
    if !args.no_workers {
        // The seeded rows are not real events; nothing should process them.
        cmd.arg("--no-workers");
    }
    let gateway = ServerProcess::spawn(cmd)?;
    let timings = time_queries(gateway.addr, &QUERY_TEST_QUERIES).await?;
    drop(gateway);
    db.close().await;
    drop_store(cleanup).await;
    Ok(timings)
}

/// The human-readable report.
pub fn print(report: &Report) {
    let line = |name: &str, r: &LoadResult| {
        println!(
            "{name:<9} {:>9.0} req/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  rss {:>6.1} MiB  cpu {:>4.0} %  statuses {:?}  errors {}",
            r.requests_per_sec, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.server_peak_rss_mib, r.server_cpu_percent, r.statuses, r.errors
        );
    };
    println!(
        "hookgate-bench: {} events of {} bytes, {} connections, {} s measured, store {} ({})",
        report.provider,
        report.body_bytes,
        report.connections,
        report.duration_secs,
        report.store,
        report.durability
    );
    if report.drain_dead {
        println!("drain     one drain (every record kind) pointing at a dead sink");
    }
    if let Some(b) = &report.baseline {
        line("baseline", b);
    }
    line("gateway", &report.gateway);
    if let Some(d) = &report.durable {
        line("durable", d);
    }
    if let Some(ratio) = report.ratio {
        println!("ratio     gateway/baseline = {:.1} %", ratio * 100.0);
    }
    if let Some(ratio) = report.ratio_durable {
        println!(
            "ratio     gateway/durable  = {:.1} %  (durable baseline lost {} acknowledged events)",
            ratio * 100.0,
            report.durable_missing.unwrap_or(0)
        );
    }
    println!(
        "loss      {} acknowledged, {} stored, {} missing{}",
        report.acknowledged,
        report.stored,
        report.missing,
        if report.missing == 0 {
            " (zero loss)"
        } else {
            "  <-- LOSS"
        }
    );
    if let (Some(rows), Some(ms)) = (report.mean_batch_rows, report.mean_batch_ms) {
        println!("commits   {rows:.1} rows per group commit on average, {ms:.2} ms per batch");
    }
    match (report.drain_secs, report.normalization_rate) {
        (Some(d), Some(r)) => println!(
            "pipeline  {} fires for {} stored events; max backlog {}; drained {:.2} s after the load; {:.0} events/s normalized",
            report.fires, report.stored, report.max_pending_backlog, d, r
        ),
        _ => println!("pipeline  not measured (no workers, or the backlog did not drain within 300 s); {} fires", report.fires),
    }
    if let Some(g) = &report.growth {
        println!(
            "growth    store seeded with {} events ({:.0} MiB, {:.0} s to seed):",
            g.seeded.events, g.seeded.store_mib, g.seeded.seconds
        );
        line("seeded", &g.gateway);
        println!(
            "ratio     seeded/empty     = {:.1} %;  loss: {} acknowledged, {} missing;  {} fires for {} stored events;  drained {}",
            g.ratio_to_empty * 100.0,
            g.acknowledged,
            g.missing,
            g.fires,
            g.stored,
            g.drain_secs
                .map_or_else(|| "not measured".to_owned(), |d| format!("{d:.2} s after the load"))
        );
        for t in &g.queries {
            println!(
                "  {:<58} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} items)",
                t.query, t.p50_ms, t.p99_ms, t.max_ms, t.items
            );
        }
    }
}

/// `hookgate-bench baseline`: read the body, answer 200 with a small JSON body.
///
/// # Errors
/// The address cannot be bound.
pub async fn baseline(listen: SocketAddr) -> anyhow::Result<()> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/integrations/{provider}/webhook/{id}",
        post(|body: Bytes| async move {
            let _ = body.len();
            axum::Json(serde_json::json!({"status": "accepted", "id": "baseline"}))
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "baseline is listening");
    axum::serve(listener, app).await?;
    Ok(())
}
