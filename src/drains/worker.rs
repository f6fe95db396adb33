//! One task per drain: read the drain's feed, batch, send, and on a 2xx forget what was sent.
//!
//! The task runs beside receiving and delivery and shares nothing with them but the store: its
//! reads go to the readers, its only writes are the lease and the delete after a 2xx (one small
//! transaction per batch of at most [`BATCH`] rows). A dead sink therefore costs the gateway
//! nothing but the feed rows the triggers write and that wait here.
//!
//! Batches: at most [`BATCH`] records, and a record waits at most [`LINGER`] for others to join
//! it. A failed batch is kept and sent again as it was (same records, so an `http` drain's
//! `webhook-id` is the same): 429, 502, 503, 504 and no answer are retried with backoff doubling
//! from 1 s up to [`MAX_BACKOFF`] (state `retrying`); any other answer pauses the drain (state
//! `paused`), which tries again every [`PAUSE_RETRY`] or at once on
//! `POST /admin/drains/<id>/resume`. A drain's lease (PostgreSQL: one process sends for it) is
//! renewed before every send; a process that lost it drops its batch and starts over.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use http::header::CONTENT_TYPE;

use super::record::{http_body, otlp_body, Record};
use super::{store, DrainSpec, Drains, Kind, State};
use crate::metrics::{DrainFailLabels, DrainLabels};
use crate::{now_ms, Inner};

/// Most records per batch.
pub const BATCH: usize = 500;
/// Longest wait for a batch to fill.
pub const LINGER: Duration = Duration::from_secs(1);
/// How often an idle drain looks for new records.
const POLL: Duration = Duration::from_millis(200);
/// The longest backoff between retries of a batch.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often a paused drain tries its batch again.
pub const PAUSE_RETRY: Duration = Duration::from_secs(300);
/// A drain's lease; renewed before each send, so it outlives the longest send.
const LEASE: Duration = Duration::from_secs(30);
/// One request's time limit.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Queued records are counted up to this many (the count stays cheap in a long outage).
pub const LAG_COUNT_CAP: i64 = 100_000;
/// How often the queued count is refreshed.
const LAG_REFRESH: Duration = Duration::from_secs(10);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Why a send failed.
enum Failure {
    /// 429, 502, 503, 504 or no answer: retried with backoff.
    Retry(String),
    /// Any other answer: the drain pauses.
    Pause(String),
}

/// Builds the client drains send with: no proxy, no redirects, bounded time.
///
/// # Errors
/// The TLS backend cannot be initialised.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sleeps `d` or until the gateway stops or the drain is resumed; false once it stops.
async fn wait(inner: &Weak<Inner>, drains: &Drains, id: &str, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        let stopping = match inner.upgrade() {
            Some(i) => i
                .signals
                .stopping
                .load(std::sync::atomic::Ordering::Relaxed),
            None => true,
        };
        if stopping {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        let step = left.min(POLL);
        match drains.resumed(id) {
            Some(n) => {
                if tokio::time::timeout(step, n.notified()).await.is_ok() {
                    return true;
                }
            }
            None => tokio::time::sleep(step).await,
        }
    }
}

/// Runs drain `spec` until the gateway stops.
pub async fn run(inner: Weak<Inner>, drains: Arc<Drains>, spec: DrainSpec, worker: String) {
    let client = match client() {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(drain = %spec.id, error = %error, "cannot build the drain's HTTP client; the drain does not run");
            return;
        }
    };
    let id = spec.id.clone();
    let labels = DrainLabels { drain: id.clone() };
    let mut lease_until = 0_i64;
    let mut first_seen: Option<Instant> = None;
    let mut last_count: Option<Instant> = None;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong
            .signals
            .stopping
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let db = strong.db.clone();
        let metrics = Arc::clone(&strong.metrics);
        drop(strong);
        let now = now_ms();
        if lease_until - now < ms(LEASE) / 2 {
            match store::claim(&db, &id, &worker, now, now + ms(LEASE)).await {
                Ok(true) => lease_until = now + ms(LEASE),
                Ok(false) => {
                    drains.update(&id, |s| s.state = State::Standby);
                    if !wait(&inner, &drains, &id, LEASE / 2).await {
                        return;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(drain = %id, error = %error, "cannot take the drain's lease; will retry");
                    if !wait(&inner, &drains, &id, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            }
        }
        if last_count.is_none_or(|t| t.elapsed() >= LAG_REFRESH) {
            last_count = Some(Instant::now());
            if let Ok(n) = store::queued(&db, &id, LAG_COUNT_CAP).await {
                drains.update(&id, |s| s.queued = Some(n));
                metrics.drain_queued.get_or_create(&labels).set(n);
            }
        }
        let rows = match store::read_batch(&db, &id, BATCH as i64).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(drain = %id, error = %error, "cannot read the drain's records; will retry");
                if !wait(&inner, &drains, &id, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let oldest = rows.first().map(|r| r.at);
        drains.update(&id, |s| {
            s.oldest_unsent_at = oldest;
            if s.state == State::Standby {
                s.state = State::Running;
            }
        });
        metrics
            .drain_lag
            .get_or_create(&labels)
            .set(oldest.map_or(0, |at| (now - at).max(0) / 1000));
        if rows.is_empty() {
            first_seen = None;
            if !wait(&inner, &drains, &id, POLL).await {
                return;
            }
            continue;
        }
        if rows.len() < BATCH && first_seen.get_or_insert_with(Instant::now).elapsed() < LINGER {
            if !wait(&inner, &drains, &id, POLL).await {
                return;
            }
            continue;
        }
        first_seen = None;
        let records: Vec<Record> = rows.iter().map(Record::from_row).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let mut backoff = Duration::from_secs(1);
        loop {
            // Renew the lease before every send; one lost means another process owns the drain.
            let now = now_ms();
            match store::claim(&db, &id, &worker, now, now + ms(LEASE)).await {
                Ok(true) => lease_until = now + ms(LEASE),
                Ok(false) => {
                    lease_until = 0;
                    break;
                }
                Err(error) => {
                    tracing::warn!(drain = %id, error = %error, "cannot renew the drain's lease; will retry");
                    if !wait(&inner, &drains, &id, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            }
            let (failure, pause) = match send(&client, &spec, &records).await {
                Ok(()) => {
                    match store::ack(&db, &id, &worker, &seqs, now_ms()).await {
                        Ok(true) => {
                            metrics
                                .drain_records_sent
                                .get_or_create(&labels)
                                .inc_by(seqs.len() as u64);
                            drains.update(&id, |s| s.state = State::Running);
                        }
                        Ok(false) => lease_until = 0,
                        Err(error) => {
                            // Sent but not forgotten: the batch is sent again (at least once).
                            tracing::warn!(drain = %id, error = %error, "cannot record the drain's progress; the batch will be sent again");
                        }
                    }
                    break;
                }
                Err(Failure::Retry(message)) => (message, false),
                Err(Failure::Pause(message)) => (message, true),
            };
            let (state, action, delay) = if pause {
                (State::Paused, "paused", PAUSE_RETRY)
            } else {
                (State::Retrying, "retried", backoff)
            };
            tracing::warn!(drain = %id, error = %failure, state = state.as_str(), "a drain batch failed");
            metrics
                .drain_batches_failed
                .get_or_create(&DrainFailLabels {
                    drain: id.clone(),
                    action,
                })
                .inc();
            let at = now_ms();
            drains.update(&id, |s| {
                s.state = state;
                s.last_error = Some(failure);
                s.last_error_at = Some(at);
            });
            // The held batch's oldest record keeps ageing while the sink is down.
            metrics
                .drain_lag
                .get_or_create(&labels)
                .set(oldest.map_or(0, |o| (at - o).max(0) / 1000));
            if last_count.is_none_or(|t| t.elapsed() >= LAG_REFRESH) {
                last_count = Some(Instant::now());
                if let Ok(n) = store::queued(&db, &id, LAG_COUNT_CAP).await {
                    drains.update(&id, |s| s.queued = Some(n));
                    metrics.drain_queued.get_or_create(&labels).set(n);
                }
            }
            if !wait(&inner, &drains, &id, delay).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Posts one batch.
async fn send(
    client: &reqwest::Client,
    spec: &DrainSpec,
    records: &[Record],
) -> Result<(), Failure> {
    let now = now_ms();
    let body = match spec.kind {
        Kind::OtlpHttp => otlp_body(records, now),
        Kind::Http => http_body(records),
    };
    let mut request = client
        .post(spec.target())
        .header(CONTENT_TYPE, "application/json");
    for (name, value) in &spec.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let (Kind::Http, Some(secret)) = (spec.kind, &spec.secret) {
        let first = records.first().map_or(0, |r| r.seq);
        let last = records.last().map_or(0, |r| r.seq);
        let msg_id = format!("drn_{}_{first}_{last}", spec.id);
        let signed =
            crate::delivery::sign::sign(&msg_id, now / 1000, &body, std::slice::from_ref(secret));
        request = signed.apply(request);
    }
    match request.body(body).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                Ok(())
            } else if matches!(status, 429 | 502 | 503 | 504) {
                Err(Failure::Retry(format!("the sink answered {status}")))
            } else {
                Err(Failure::Pause(format!("the sink answered {status}")))
            }
        }
        Err(error) => Err(Failure::Retry(crate::delivery::worker::describe(&error))),
    }
}
