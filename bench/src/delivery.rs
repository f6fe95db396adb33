//! `hookgate-bench --scenario delivery`: signed provider traffic through the gateway and out to
//! a fast local endpoint, measured at the receiver (delivered/s, event commit → 2xx latency,
//! backlog drain time after the load, zero loss), first with the fast endpoint alone and then
//! with a slow endpoint (10 s per request) and a dead one (connection refused) subscribed to
//! the same events: their figures for the fast endpoint should stay close (isolation).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use axum::routing::post;
use serde::Serialize;

use crate::abuse::{paced, Phase, Window};
use crate::args::BenchArgs;
use crate::load::{
    drop_store, fresh_store, gateway_command, new_histogram, Generator, ServerProcess,
};

/// The figures of one phase, measured at the fast endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryPhase {
    /// `fast` or `fast+slow+dead`.
    pub endpoints: String,
    /// Provider deliveries sent by the load generator, as the gateway answered them.
    pub ingest: Phase,
    /// Trigger fires the gateway made.
    pub events: u64,
    /// Distinct `webhook-id`s the fast endpoint received.
    pub delivered: u64,
    /// Events never delivered to the fast endpoint (0 is the goal).
    pub lost: u64,
    /// How long the load took: its planned length, or longer when the gateway answered too
    /// slowly for the senders to keep to their schedule (then the rate offered was not met).
    pub load_secs: f64,
    /// Provider deliveries the gateway answered per second over the load (events / `load_secs`).
    pub ingested_per_sec: f64,
    /// Deliveries per second during the load (events delivered while it ran / `load_secs`).
    pub delivered_per_sec: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    /// From the end of the load until every event had reached the fast endpoint.
    pub drain_secs: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    pub store: String,
    pub rate: f64,
    pub duration_secs: f64,
    pub alone: DeliveryPhase,
    pub with_slow_and_dead: DeliveryPhase,
    /// p99 with the slow and dead endpoints / p99 alone.
    pub p99_ratio: f64,
}

/// What the fast endpoint saw: `webhook-id` → (received at, event time), both Unix ms.
type Seen = Arc<Mutex<HashMap<String, (i64, i64)>>>;

async fn fast_endpoint() -> anyhow::Result<(SocketAddr, Seen)> {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/fast",
        post(move |headers: http::HeaderMap, body: bytes::Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let now = hookgate::now_ms();
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let at = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["timestamp"].as_str().map(str::to_owned))
                    .and_then(|t| hookgate_providers::time::parse_rfc3339_ms(&t))
                    .unwrap_or(now);
                sink.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(id)
                    .or_insert((now, at));
                http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, seen))
}

/// An endpoint that takes 10 s per request.
async fn slow_endpoint() -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/slow",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            http::StatusCode::OK
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// A loopback port nothing listens on (connections are refused).
fn dead_endpoint() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

async fn phase(args: &BenchArgs, with_others: bool) -> anyhow::Result<DeliveryPhase> {
    let exe = crate::gateway_binary(args)?;
    let dir = tempfile::tempdir()?;
    let gen = Arc::new(Generator::new(args.provider, args.body_bytes));
    let (url, db, cleanup) = fresh_store(args, dir.path()).await?;
    let (fast, seen) = fast_endpoint().await?;
    let secret = gen.secret();
    let provider = args.provider;
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\nrate_limit_per_sec = 1000000\n\
         [delivery]\nallow_http = true\nallow_cidrs = [\"127.0.0.0/8\"]\n\
         [[connections]]\nid = \"{}\"\nprovider = \"{provider}\"\nsecrets = [\"{secret}\"]\n\
         [[endpoints]]\nid = \"fast\"\nurl = \"http://{fast}/fast\"\nevent_types = [\"{provider}.*\"]\nmax_in_flight = {}\n",
        crate::load::CONNECTION,
        args.max_in_flight
    );
    if with_others {
        let slow = slow_endpoint().await?;
        let dead = dead_endpoint()?;
        toml.push_str(&format!(
            "[[endpoints]]\nid = \"slow\"\nurl = \"http://{slow}/slow\"\nevent_types = [\"{provider}.*\"]\n\
             [[endpoints]]\nid = \"dead\"\nurl = \"http://{dead}/dead\"\nevent_types = [\"{provider}.*\"]\n"
        ));
    }
    let config = dir.path().join("bench.toml");
    std::fs::write(&config, toml)?;
    let gateway = ServerProcess::spawn(gateway_command(args, &exe, &config, &url))?;
    let label = if with_others {
        "fast+slow+dead"
    } else {
        "fast"
    };
    eprintln!(
        "bench: delivery, endpoints {label}: {} deliveries/s for {:.0} s + {:.0} s warm-up…",
        args.rate, args.duration, args.warmup
    );
    let window = Window::new(args.warmup, args.duration);
    let load_start = Instant::now();
    let tally = paced(gateway.addr, &gen, args.rate, args.senders, 0, window).await;
    let load_end = Instant::now();
    let load_secs = (load_end - load_start).as_secs_f64();
    let load_end_ms = hookgate::now_ms();
    let ingest = tally.phase(window.measured());
    // Drain: every fire reaches the fast endpoint (bounded).
    let mut drain_secs = None;
    let mut events = 0;
    let deadline = load_end + Duration::from_secs(120);
    while Instant::now() < deadline {
        events = u64::try_from(db.fire_count().await?).unwrap_or(0);
        let delivered = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len() as u64;
        if delivered >= events && db.pending_count().await? == 0 {
            drain_secs = Some(load_end.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut hist = new_histogram();
    let mut during = 0u64;
    for (received, at) in seen.values() {
        let _ = hist.record(u64::try_from((received - at).max(0)).unwrap_or(0) * 1000);
        if *received <= load_end_ms {
            during += 1;
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let delivered = seen.len() as u64;
    drop(gateway);
    db.close().await;
    drop_store(cleanup).await;
    Ok(DeliveryPhase {
        endpoints: label.to_owned(),
        ingest,
        events,
        delivered,
        lost: events.saturating_sub(delivered),
        load_secs,
        ingested_per_sec: events as f64 / load_secs,
        delivered_per_sec: during as f64 / load_secs,
        latency_p50_ms: ms(0.50),
        latency_p99_ms: ms(0.99),
        latency_max_ms: hist.max() as f64 / 1000.0,
        drain_secs,
    })
}

/// Runs both phases.
///
/// # Errors
/// The servers cannot start or the store cannot be reached.
pub async fn run(args: &BenchArgs) -> anyhow::Result<DeliveryReport> {
    if args.rate <= 0.0 || args.senders == 0 || args.duration <= 0.0 {
        bail!("--rate, --senders and --duration must be positive");
    }
    let alone = phase(args, false).await?;
    let with_slow_and_dead = phase(args, true).await?;
    Ok(DeliveryReport {
        store: if args.store == "sqlite" {
            "sqlite".into()
        } else {
            "postgres".into()
        },
        rate: args.rate,
        duration_secs: args.duration,
        p99_ratio: with_slow_and_dead.latency_p99_ms / alone.latency_p99_ms.max(0.001),
        alone,
        with_slow_and_dead,
    })
}

/// Prints the report for people.
pub fn print(r: &DeliveryReport) {
    println!(
        "delivery  {} store, {} provider deliveries/s for {:.0} s",
        r.store, r.rate, r.duration_secs
    );
    for p in [&r.alone, &r.with_slow_and_dead] {
        println!(
            "  endpoints {:<15} ingest p99 {:>7.2} ms; load took {:.1} s: {:.0} events/s; {} events, {} delivered to fast ({} lost), {:.0} delivered/s; event→2xx p50 {:.1} ms p99 {:.1} ms max {:.1} ms; drained {}",
            p.endpoints,
            p.ingest.p99_ms,
            p.load_secs,
            p.ingested_per_sec,
            p.events,
            p.delivered,
            p.lost,
            p.delivered_per_sec,
            p.latency_p50_ms,
            p.latency_p99_ms,
            p.latency_max_ms,
            p.drain_secs
                .map_or_else(|| "not within 120 s".to_owned(), |d| format!("{d:.2} s after the load")),
        );
    }
    println!(
        "  p99 with slow and dead endpoints / alone: {:.2}x",
        r.p99_ratio
    );
}
