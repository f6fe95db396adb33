//! `hookgate-bench --scenario slowloris|fairness`: do abusive clients stop normal deliveries?
//!
//! Both scenarios measure the same thing twice. Normal deliveries are paced: `--rate` requests
//! per second, open loop over `--senders` keep-alive connections, each request a unique,
//! correctly signed event of the `--provider` shape. A request's latency counts from when it was
//! due, not from when it was sent, so a stalled server shows up as latency instead of as fewer
//! requests (no coordinated omission). The first phase runs them alone, the second under attack;
//! the report gives both phases' percentiles and statuses, their p99 ratio, what the attack did,
//! and the zero-loss check (every delivery answered 2xx is in the store).
//!
//! - `slowloris`: `--slow-connections` attackers, half sending request headers a byte at a time
//!   and never finishing them, half sending complete headers that announce a large body and then
//!   the body a byte at a time (half of those to the receive URL, half to an admin route). An
//!   attacker the server cuts off reconnects while the attack lasts,
//!   so the attack keeps its size through the measured phase; afterwards the benchmark waits
//!   (bounded) for the server to cut every remaining one and reports when it did.
//! - `fairness`: two connections with the same `--rate-limit`. The victim, `bench`, gets the
//!   paced deliveries; the other, `flood`, is offered `--flood-factor` times its limit by
//!   `--flood-clients` clients. The flood is paced too, so the load generator spends no more
//!   than it must and does not starve its own victim senders.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hookgate_providers::ProviderId;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use hookgate::config::{DEFAULT_BODY_TIMEOUT_SECS, DEFAULT_HEADER_TIMEOUT_SECS};

use crate::args::{BenchArgs, Scenario};
use crate::load::{
    drop_store, fresh_store, gateway_command, new_histogram, Generator, ServerProcess, CONNECTION,
};

/// The connection the fairness scenario floods.
const FLOOD_CONNECTION: &str = "flood";
/// The body a slow-body attacker announces: under the default `max_body_bytes`, so it is not
/// refused up front with 413 and the server has to wait for it.
const SLOW_BODY_BYTES: usize = 1_000_000;
/// Generator connection numbers of the second phase, so its event ids differ from the first's.
const SECOND_PHASE: usize = 1000;

/// Paced deliveries in one phase. Statuses and errors cover every request of the phase (warm-up
/// included); the latencies cover the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub measured_requests: u64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: u64,
}

impl Phase {
    /// Whether every request of the phase got a 2xx.
    pub fn all_2xx(&self) -> bool {
        self.errors == 0 && self.statuses.keys().all(|s| (200..300).contains(s))
    }
}

/// What happened to one kind of slowloris attacker.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttackStats {
    /// Connections opened: the first ones and the reconnects after the server cut one.
    pub opened: u64,
    /// Connections the server closed.
    pub closed_by_server: u64,
    /// Connections still open when the benchmark stopped waiting for the server to close them.
    pub still_open_at_end: u64,
    /// Seconds from opening a connection to the server closing it.
    pub closed_after_min_secs: Option<f64>,
    pub closed_after_p50_secs: Option<f64>,
    pub closed_after_max_secs: Option<f64>,
    /// Statuses the server answered before closing (408 for a body that took too long).
    pub answered: BTreeMap<u16, u64>,
    pub connect_errors: u64,
}

/// The slowloris attack.
#[derive(Debug, Clone, Serialize)]
pub struct SlowlorisStats {
    pub connections: usize,
    pub byte_every_min_ms: u64,
    pub byte_every_max_ms: u64,
    pub header_timeout_secs: u64,
    pub body_timeout_secs: u64,
    /// Attacker connections open at the least and most during the attacked phase.
    pub open_during_phase_min: u64,
    pub open_during_phase_max: u64,
    pub slow_headers: AttackStats,
    pub slow_bodies: AttackStats,
}

/// The flood in the fairness scenario.
#[derive(Debug, Clone, Serialize)]
pub struct FloodStats {
    pub rate_limit_per_sec: u32,
    pub clients: usize,
    pub target_per_sec: f64,
    /// Requests the flood clients actually sent per second in the measured window, and that as
    /// a multiple of the rate limit.
    pub offered_per_sec: f64,
    pub offered_factor: f64,
    /// Wall-clock seconds from the first flood request to the last answer: longer than the
    /// phase when the clients fell behind their pace.
    pub elapsed_secs: f64,
    pub statuses: BTreeMap<u16, u64>,
    pub errors: u64,
}

/// The report of `slowloris` and `fairness`.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub provider: String,
    pub store: String,
    pub rate: f64,
    pub senders: usize,
    pub duration_secs: f64,
    pub unattacked: Phase,
    pub attacked: Phase,
    /// Attacked p99 over unattacked p99.
    pub p99_ratio: f64,
    /// Whether every normal delivery of both phases got a 2xx.
    pub all_deliveries_2xx: bool,
    pub slowloris: Option<SlowlorisStats>,
    pub flood: Option<FloodStats>,
    /// Normal deliveries answered 2xx, and how many of them are missing from the store.
    pub acknowledged: u64,
    pub stored: u64,
    pub missing: u64,
}

/// What a group of paced clients measured.
pub(super) struct Tally {
    histogram: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    /// Requests due in the measured window.
    measured_sent: u64,
    pub(super) acknowledged: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            histogram: new_histogram(),
            statuses: BTreeMap::new(),
            errors: 0,
            measured_sent: 0,
            acknowledged: Vec::new(),
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.histogram.add(&other.histogram);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.errors += other.errors;
        self.measured_sent += other.measured_sent;
        self.acknowledged.extend(other.acknowledged);
    }

    pub(super) fn phase(&self, window: Duration) -> Phase {
        let ms = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1000.0;
        Phase {
            measured_requests: self.histogram.len(),
            requests_per_sec: self.histogram.len() as f64 / window.as_secs_f64(),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: self.histogram.max() as f64 / 1000.0,
            statuses: self.statuses.clone(),
            errors: self.errors,
        }
    }
}

/// When a paced phase starts, starts measuring and stops.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    start: Instant,
    measure_from: Instant,
    stop_at: Instant,
}

impl Window {
    pub(super) fn new(warmup: f64, duration: f64) -> Self {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(warmup);
        Window {
            start,
            measure_from,
            stop_at: measure_from + Duration::from_secs_f64(duration),
        }
    }

    pub(super) fn measured(&self) -> Duration {
        self.stop_at - self.measure_from
    }
}

async fn connect(addr: SocketAddr) -> Option<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// One request and its whole response: the status and whether the server closes the connection.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
) -> Option<(u16, bool)> {
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let close = response
        .headers()
        .get(http::header::CONNECTION)
        .is_some_and(|v| v == "close");
    response.into_body().collect().await.ok()?;
    Some((status, close))
}

/// One paced client: request `n` is due at `first + n * interval`; it reconnects whenever the
/// server closes the connection.
async fn paced_client(
    conn: usize,
    addr: SocketAddr,
    gen: Arc<Generator>,
    interval: Duration,
    first: Instant,
    window: Window,
) -> Tally {
    let mut tally = Tally::new();
    let authority = addr.to_string();
    let mut sender = None;
    let mut n = 0u64;
    loop {
        let due = first + interval.mul_f64(n as f64);
        if due >= window.stop_at {
            return tally;
        }
        tokio::time::sleep_until(due.into()).await;
        let Ok((id, request)) = gen.request(conn, n, &authority) else {
            tally.errors += 1;
            return tally;
        };
        n += 1;
        if sender.is_none() {
            sender = connect(addr).await;
        }
        let outcome = match sender.as_mut() {
            Some(s) => exchange(s, request).await,
            None => None,
        };
        let measured = due >= window.measure_from;
        tally.measured_sent += u64::from(measured);
        match outcome {
            Some((status, close)) => {
                if (200..300).contains(&status) {
                    tally.acknowledged.push(id);
                }
                *tally.statuses.entry(status).or_default() += 1;
                if measured {
                    let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let _ = tally.histogram.record(micros.max(1));
                }
                if close {
                    sender = None;
                }
            }
            None => {
                tally.errors += 1;
                sender = None;
            }
        }
    }
}

/// `rate` requests per second over `clients` paced clients (numbered from `conn_base`), their
/// start times spread over one interval.
pub(crate) async fn paced(
    addr: SocketAddr,
    gen: &Arc<Generator>,
    rate: f64,
    clients: usize,
    conn_base: usize,
    window: Window,
) -> Tally {
    let interval = Duration::from_secs_f64(clients as f64 / rate);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let first = window.start + interval.mul_f64(i as f64 / clients as f64);
            tokio::spawn(paced_client(
                conn_base + i,
                addr,
                Arc::clone(gen),
                interval,
                first,
                window,
            ))
        })
        .collect();
    let mut tally = Tally::new();
    for task in tasks {
        if let Ok(t) = task.await {
            tally.merge(t);
        }
    }
    tally
}

#[derive(Debug, Clone, Copy)]
enum Slow {
    /// Headers a byte at a time, never finished.
    Headers,
    /// Complete headers announcing [`SLOW_BODY_BYTES`], then the body a byte at a time.
    Body,
}

#[derive(Default)]
struct AttackerResult {
    opened: u64,
    closed_after: Vec<f64>,
    still_open: u64,
    answered: BTreeMap<u16, u64>,
    connect_errors: u64,
}

/// The status code of an HTTP/1.1 response's first bytes.
fn status_of(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.parse().ok()
}

/// One slowloris attacker. While `attacking` holds it keeps a connection open, reconnecting when
/// the server cuts it; afterwards it keeps trickling on its last connection until the server
/// closes it or `grace` has passed.
async fn attacker(
    kind: Slow,
    addr: SocketAddr,
    path: Arc<str>,
    pace: Duration,
    attacking: Arc<AtomicBool>,
    open_now: Arc<AtomicU64>,
    grace: Duration,
) -> AttackerResult {
    let mut result = AttackerResult::default();
    let head = match kind {
        Slow::Headers => format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Slow: "
        ),
        Slow::Body => format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {SLOW_BODY_BYTES}\r\n\r\n"
        ),
    };
    while attacking.load(Ordering::Relaxed) {
        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
            result.connect_errors += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        result.opened += 1;
        open_now.fetch_add(1, Ordering::Relaxed);
        let opened_at = Instant::now();
        let mut give_up_at = None;
        let mut buf = [0u8; 1024];
        let mut answered = false;
        let mut ticker = tokio::time::interval(pace);
        let closed = 'connection: {
            if stream.write_all(head.as_bytes()).await.is_err() {
                break 'connection true;
            }
            loop {
                if give_up_at.is_none() && !attacking.load(Ordering::Relaxed) {
                    give_up_at = Some(Instant::now() + grace);
                }
                if give_up_at.is_some_and(|t| Instant::now() >= t) {
                    break 'connection false;
                }
                tokio::select! {
                    _ = ticker.tick() => {
                        if stream.write_all(b"a").await.is_err() {
                            break 'connection true;
                        }
                    }
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => break 'connection true,
                        Ok(n) => {
                            if !answered {
                                answered = true;
                                let status = status_of(&buf[..n]).unwrap_or(0);
                                *result.answered.entry(status).or_default() += 1;
                            }
                        }
                    },
                }
            }
        };
        open_now.fetch_sub(1, Ordering::Relaxed);
        if !closed {
            result.still_open += 1;
            return result;
        }
        result.closed_after.push(opened_at.elapsed().as_secs_f64());
    }
    result
}

fn attack_stats(results: Vec<AttackerResult>) -> AttackStats {
    let mut stats = AttackStats::default();
    let mut closed = Vec::new();
    for r in results {
        stats.opened += r.opened;
        stats.still_open_at_end += r.still_open;
        stats.connect_errors += r.connect_errors;
        for (status, count) in r.answered {
            *stats.answered.entry(status).or_default() += count;
        }
        closed.extend(r.closed_after);
    }
    closed.sort_by(f64::total_cmp);
    stats.closed_by_server = closed.len() as u64;
    stats.closed_after_min_secs = closed.first().copied();
    stats.closed_after_p50_secs = closed.get(closed.len() / 2).copied();
    stats.closed_after_max_secs = closed.last().copied();
    stats
}

/// The soft limit on open files of this process (the gateway child inherits it).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Runs `slowloris` or `fairness` and returns the report.
///
/// # Errors
/// Bad options, too few file descriptors, or the gateway or the store cannot be started.
pub async fn run(args: &BenchArgs) -> anyhow::Result<ScenarioReport> {
    let provider = args.provider;
    if !matches!(provider, ProviderId::Stripe | ProviderId::Clerk) {
        bail!("--provider must be stripe or clerk");
    }
    if args.rate <= 0.0 || args.senders == 0 || args.duration <= 0.0 {
        bail!("--rate, --senders and --duration must be positive");
    }
    let attackers = match args.scenario {
        Scenario::Slowloris => args.slow_connections,
        _ => args.flood_clients,
    };
    // Each attacker or client holds one socket here and one in the gateway (which inherits this
    // limit), next to the store's pool and the usual files.
    let needed = (attackers + args.senders + 256) as u64;
    if let Some(limit) = open_files_limit() {
        if limit < needed {
            bail!(
                "the open-files limit is {limit}, too low for this run (it needs about {needed}); raise it with `ulimit -n {needed}`"
            );
        }
    }
    if args.scenario == Scenario::Slowloris
        && (args.slow_min_ms == 0 || args.slow_max_ms < args.slow_min_ms)
    {
        bail!("--slow-min-ms must be positive and at most --slow-max-ms");
    }
    if args.scenario == Scenario::Fairness
        && (args.rate_limit == 0 || args.flood_factor <= 0.0 || args.flood_clients == 0)
    {
        bail!("--rate-limit, --flood-factor and --flood-clients must be positive");
    }

    let exe = crate::gateway_binary(args)?;
    let dir = tempfile::tempdir()?;
    let gen = Arc::new(Generator::new(provider, args.body_bytes));
    let flood_gen = Arc::new(Generator::for_connection(
        provider,
        args.body_bytes,
        FLOOD_CONNECTION,
    ));
    let (url, db, cleanup) = fresh_store(args, dir.path()).await?;

    let mut toml = String::from("listen = \"127.0.0.1:0\"\n");
    if let Some(secs) = args.header_timeout_secs {
        toml.push_str(&format!("header_timeout_secs = {secs}\n"));
    }
    if let Some(secs) = args.body_timeout_secs {
        toml.push_str(&format!("body_timeout_secs = {secs}\n"));
    }
    let secret = gen.secret();
    let limited = match args.scenario {
        Scenario::Fairness => vec![CONNECTION, FLOOD_CONNECTION],
        _ => {
            // Slowloris measures slow clients, not the rate limit.
            toml.push_str("rate_limit_per_sec = 1000000\n");
            vec![CONNECTION]
        }
    };
    for id in limited {
        toml.push_str(&format!(
            "[[connections]]\nid = \"{id}\"\nprovider = \"{provider}\"\nsecrets = [\"{secret}\"]\n"
        ));
        if args.scenario == Scenario::Fairness {
            toml.push_str(&format!("rate_limit_per_sec = {}\n", args.rate_limit));
        }
    }
    let config = dir.path().join("bench.toml");
    std::fs::write(&config, toml)?;
    let gateway = ServerProcess::spawn(gateway_command(args, &exe, &config, &url))?;
    let addr = gateway.addr;

    eprintln!(
        "bench: phase 1, {} deliveries/s alone for {:.0} s + {:.0} s warm-up…",
        args.rate, args.duration, args.warmup
    );
    let window = Window::new(args.warmup, args.duration);
    let first = paced(addr, &gen, args.rate, args.senders, 0, window).await;
    let unattacked = first.phase(window.measured());

    let (second, slowloris, flood) = match args.scenario {
        Scenario::Fairness => {
            let target = f64::from(args.rate_limit) * args.flood_factor;
            eprintln!(
                "bench: phase 2, the same deliveries while `{FLOOD_CONNECTION}` is offered {target:.0} requests/s…"
            );
            let window = Window::new(args.warmup, args.duration);
            let (victim, flooded) = tokio::join!(
                paced(addr, &gen, args.rate, args.senders, SECOND_PHASE, window),
                paced(addr, &flood_gen, target, args.flood_clients, 0, window),
            );
            let elapsed = window.start.elapsed().as_secs_f64();
            let offered = flooded.measured_sent as f64 / window.measured().as_secs_f64();
            let stats = FloodStats {
                rate_limit_per_sec: args.rate_limit,
                clients: args.flood_clients,
                target_per_sec: target,
                offered_per_sec: offered,
                offered_factor: offered / f64::from(args.rate_limit),
                elapsed_secs: elapsed,
                statuses: flooded.statuses.clone(),
                errors: flooded.errors,
            };
            (victim, None, Some((stats, flooded)))
        }
        _ => {
            let (victim, stats) = slowloris_phase(args, addr, &gen).await;
            (victim, Some(stats), None)
        }
    };
    let attacked = second.phase(Duration::from_secs_f64(args.duration));

    // Zero loss: every delivery answered 2xx is stored (the flood's accepted ones too).
    let mut acknowledged = first.acknowledged;
    acknowledged.extend(second.acknowledged);
    let mut checks = vec![(CONNECTION, acknowledged)];
    if let Some((_, flooded)) = &flood {
        checks.push((FLOOD_CONNECTION, flooded.acknowledged.clone()));
    }
    let (mut acknowledged, mut stored, mut missing) = (0, 0, 0);
    for (connection, ids) in checks {
        let in_store: HashSet<String> =
            db.stored_event_ids(connection).await?.into_iter().collect();
        acknowledged += ids.len() as u64;
        stored += in_store.len() as u64;
        missing += ids.iter().filter(|id| !in_store.contains(*id)).count() as u64;
    }
    drop(gateway);
    db.close().await;
    drop_store(cleanup).await;

    Ok(ScenarioReport {
        scenario: match args.scenario {
            Scenario::Fairness => "fairness",
            _ => "slowloris",
        }
        .to_owned(),
        provider: provider.to_string(),
        store: if args.store == "sqlite" {
            "sqlite".into()
        } else {
            "postgres".into()
        },
        rate: args.rate,
        senders: args.senders,
        duration_secs: args.duration,
        p99_ratio: attacked.p99_ms / unattacked.p99_ms.max(1e-3),
        all_deliveries_2xx: unattacked.all_2xx() && attacked.all_2xx(),
        unattacked,
        attacked,
        slowloris,
        flood: flood.map(|(stats, _)| stats),
        acknowledged,
        stored,
        missing,
    })
}

/// The slowloris attack around the second phase of paced deliveries.
async fn slowloris_phase(
    args: &BenchArgs,
    addr: SocketAddr,
    gen: &Arc<Generator>,
) -> (Tally, SlowlorisStats) {
    let header_timeout = args
        .header_timeout_secs
        .unwrap_or(DEFAULT_HEADER_TIMEOUT_SECS);
    let body_timeout = args.body_timeout_secs.unwrap_or(DEFAULT_BODY_TIMEOUT_SECS);
    let grace = Duration::from_secs(header_timeout + body_timeout + 5);
    let attacking = Arc::new(AtomicBool::new(true));
    let open_now = Arc::new(AtomicU64::new(0));
    // Half the slow bodies go to the receive URL, half to an admin route without a token, which
    // is refused (401) before its body is read: both must be cut.
    let receive: Arc<str> = Arc::from(gen.path());
    let admin: Arc<str> = Arc::from("/admin/connections");
    let n = args.slow_connections;
    let spread = args.slow_max_ms - args.slow_min_ms + 1;
    eprintln!(
        "bench: opening {n} slow connections (a byte every {}–{} ms)…",
        args.slow_min_ms, args.slow_max_ms
    );
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let kind = if i % 2 == 0 {
                Slow::Headers
            } else {
                Slow::Body
            };
            // A fixed pace per attacker, spread over the range (7919 is prime, so the paces of
            // both kinds cover it).
            let pace = Duration::from_millis(args.slow_min_ms + (i as u64 * 7919) % spread);
            let path = if i % 4 == 3 { &admin } else { &receive };
            let (path, attacking, open_now) = (
                Arc::clone(path),
                Arc::clone(&attacking),
                Arc::clone(&open_now),
            );
            tokio::spawn(async move {
                // Open them over about a second rather than in one burst of SYNs.
                tokio::time::sleep(Duration::from_millis(i as u64 % 1000)).await;
                (
                    kind,
                    attacker(kind, addr, path, pace, attacking, open_now, grace).await,
                )
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    eprintln!(
        "bench: phase 2, {} deliveries/s with {} slow connections open, {:.0} s + {:.0} s warm-up…",
        args.rate,
        open_now.load(Ordering::Relaxed),
        args.duration,
        args.warmup
    );
    let window = Window::new(args.warmup, args.duration);
    let sampler = {
        let open_now = Arc::clone(&open_now);
        tokio::spawn(async move {
            tokio::time::sleep_until(window.measure_from.into()).await;
            let (mut low, mut high) = (u64::MAX, 0);
            while Instant::now() < window.stop_at {
                let open = open_now.load(Ordering::Relaxed);
                (low, high) = (low.min(open), high.max(open));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (low.min(high), high)
        })
    };
    let victim = paced(addr, gen, args.rate, args.senders, SECOND_PHASE, window).await;
    let (low, high) = sampler.await.unwrap_or((0, 0));
    attacking.store(false, Ordering::Relaxed);
    eprintln!(
        "bench: waiting up to {} s for the server to close the remaining slow connections…",
        grace.as_secs()
    );
    let (mut headers, mut bodies) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await {
            Ok((Slow::Headers, r)) => headers.push(r),
            Ok((Slow::Body, r)) => bodies.push(r),
            Err(_) => {}
        }
    }
    let stats = SlowlorisStats {
        connections: n,
        byte_every_min_ms: args.slow_min_ms,
        byte_every_max_ms: args.slow_max_ms,
        header_timeout_secs: header_timeout,
        body_timeout_secs: body_timeout,
        open_during_phase_min: low,
        open_during_phase_max: high,
        slow_headers: attack_stats(headers),
        slow_bodies: attack_stats(bodies),
    };
    (victim, stats)
}

/// The human-readable report.
pub fn print(report: &ScenarioReport) {
    let line = |name: &str, p: &Phase| {
        println!(
            "{name:<11} {:>6.0} req/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  statuses {:?}  errors {}",
            p.requests_per_sec, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms, p.statuses, p.errors
        );
    };
    println!(
        "hookgate-bench --scenario {}: {} events, {} deliveries/s over {} connections, {} s measured per phase, store {}",
        report.scenario,
        report.provider,
        report.rate,
        report.senders,
        report.duration_secs,
        report.store
    );
    line("unattacked", &report.unattacked);
    line("attacked", &report.attacked);
    println!(
        "ratio       attacked/unattacked p99 = {:.2}; every delivery 2xx: {}",
        report.p99_ratio,
        if report.all_deliveries_2xx {
            "yes"
        } else {
            "NO"
        }
    );
    if let Some(s) = &report.slowloris {
        println!(
            "attack      {} slow connections, a byte every {}–{} ms; {}–{} open during the attacked phase; header timeout {} s, body timeout {} s",
            s.connections,
            s.byte_every_min_ms,
            s.byte_every_max_ms,
            s.open_during_phase_min,
            s.open_during_phase_max,
            s.header_timeout_secs,
            s.body_timeout_secs
        );
        for (name, a) in [("  headers", &s.slow_headers), ("  bodies", &s.slow_bodies)] {
            let secs = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            println!(
                "{name:<11} {} opened, {} closed by the server after {}/{}/{} s (min/p50/max), {} still open at the end; answered {:?}",
                a.opened,
                a.closed_by_server,
                secs(a.closed_after_min_secs),
                secs(a.closed_after_p50_secs),
                secs(a.closed_after_max_secs),
                a.still_open_at_end,
                a.answered
            );
        }
    }
    if let Some(f) = &report.flood {
        println!(
            "flood       {:.0} requests/s offered by {} clients ({:.1}x the {}/s limit; target {:.0}/s); statuses {:?}  errors {}",
            f.offered_per_sec,
            f.clients,
            f.offered_factor,
            f.rate_limit_per_sec,
            f.target_per_sec,
            f.statuses,
            f.errors
        );
    }
    println!(
        "loss        {} acknowledged, {} stored, {} missing{}",
        report.acknowledged,
        report.stored,
        report.missing,
        if report.missing == 0 {
            " (zero loss)"
        } else {
            "  <-- LOSS"
        }
    );
}
