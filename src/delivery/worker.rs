//! The delivery worker: claims due deliveries endpoint by endpoint and sends them.
//!
//! Isolation: every endpoint has its own in-flight limit (`max_in_flight`, 1 when `ordered`),
//! and the worker claims for an endpoint only as many deliveries as it has free slots, each sent
//! on its own task. A slow or dead endpoint fills its own slots and nobody else's.
//!
//! Claims are leases (`claimed_by`, `claimed_until`) taken with one `UPDATE`; on PostgreSQL the
//! rows are picked `FOR UPDATE SKIP LOCKED`, so two processes never hold one delivery. A lease
//! outlives the longest attempt, so it never expires while its holder is still sending; an
//! attempt's result is written only while its lease is held. A crash mid-send leaves the lease
//! to expire, and the delivery is sent again (same body bytes, same `webhook-id`).
//!
//! Attempt results are group-committed: a send task hands its result to the recorder and frees
//! its slot; the recorder writes every result queued meanwhile (attempt rows, deliveries' new
//! states, endpoints that stopped failing) in one transaction. The claim is held until that
//! commit, so nobody sends the delivery again meanwhile; a crash between a 2xx and the commit
//! leaves the delivery unfinished, and it is sent again (at least once, never `succeeded`
//! without a 2xx).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng as _;
use tokio::sync::{mpsc, Semaphore};

use super::destination::{check_url, CheckedResolver};
use super::endpoint::{active_secrets, open_secrets, DeliverySettings, StoredSecret};
use super::store::{self, AttemptRow, ClaimedDelivery, EndpointRow, Finish, OwnEvent, Pick};
use super::{envelope, message_id, sign, transform};
use crate::metrics::{DeliveryLabels, EndpointLabels};
use crate::{now_ms, Inner};

/// How much of a response body the attempt log keeps.
pub const RESPONSE_LOG_BYTES: usize = 4096;
/// How often endpoints are reloaded and the backlog gauge refreshed.
const REFRESH: Duration = Duration::from_secs(1);
/// Counting the backlog reads every unfinished delivery's index entry; it waits this many times
/// as long as the last count took before counting again (at least [`REFRESH`]), so that a
/// backlog of millions costs at most about 1 % of the gateway's time.
const BACKLOG_COUNT_SPACING: u32 = 100;
/// The longest wait between two claim rounds.
const POLL: Duration = Duration::from_millis(100);
/// Attempt results written in one transaction, at most.
const RECORD_BATCH: usize = 512;
/// Attempt results waiting for the recorder, at most (a send task waits for room).
const RECORD_QUEUE: usize = 8192;
/// How long a stopping worker waits for the recorder to write what is queued.
const RECORD_FLUSH: Duration = Duration::from_secs(10);

/// Builds the HTTP client deliveries go out on: no proxy (proxy environment variables are
/// ignored), no redirects, names resolved and checked by [`CheckedResolver`].
///
/// # Errors
/// The TLS backend cannot be initialised.
pub fn client(settings: &DeliverySettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(CheckedResolver {
            policy: Arc::new(settings.policy.clone()),
        }))
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

/// How long a claim lasts: an attempt's longest run (transform, then the request within its
/// timeout) plus a margin. A rate-limited delivery renews its claim after waiting (see
/// [`Task::send`]), so the wait never eats into it.
fn lease_ms(settings: &DeliverySettings) -> i64 {
    let lease = settings.timeout + transform::TIME_LIMIT + LEASE_MARGIN;
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

/// How long an endpoint whose circuit is open waits after its last failure before a new
/// delivery goes out as a probe: the retry schedule's first step (at least 100 ms).
fn probe_ms(settings: &DeliverySettings) -> i64 {
    let first = settings.retry_schedule_secs.first().copied().unwrap_or(1);
    secs_ms(first).max(100)
}

/// Added to the longest attempt to make a claim's lease.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// One endpoint as the worker holds it.
struct Live {
    row: EndpointRow,
    secrets: Vec<StoredSecret>,
    slots: Arc<Semaphore>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// Deliveries claimed and waiting for a slot, with when their claim ends.
    queue: VecDeque<(ClaimedDelivery, i64)>,
    /// Whether the endpoint's last attempts all failed.
    circuit: Arc<Circuit>,
}

/// Attempts in a row that failed before an endpoint's circuit opens.
pub const CIRCUIT_FAILURES: u32 = 10;

/// An endpoint's circuit breaker. After [`CIRCUIT_FAILURES`] failed attempts in a row (no
/// answer, or anything but 2xx) the circuit is open: the endpoint's retries still go out on
/// their schedule, but its new deliveries wait (`pending`, no attempt made, so their give-up
/// window has not started) instead of each being attempted, refused and recorded. Once the
/// retry schedule's first step has passed since its last failure, one new delivery goes out
/// as a probe. Any 2xx closes the circuit and the waiting deliveries flow again. A dead
/// endpoint then costs each event its delivery row and little more, and every other endpoint
/// keeps the writer to itself.
#[derive(Debug, Default)]
struct Circuit {
    /// Failed attempts since the last 2xx.
    failures: AtomicU32,
    /// When the last failure (or probe) was (epoch ms).
    last_failure_ms: AtomicI64,
}

/// What an endpoint's circuit lets the next claim take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Everything due.
    Closed,
    /// Due retries only.
    Open,
    /// Due retries and one new delivery, as a probe.
    Probe,
}

impl Circuit {
    fn record(&self, endpoint: &str, ok: bool, now_ms: i64) {
        if ok {
            if self.failures.swap(0, Ordering::Relaxed) >= CIRCUIT_FAILURES {
                tracing::info!(endpoint, "the endpoint answered 2xx again: its circuit is closed and new deliveries go out");
            }
            return;
        }
        self.last_failure_ms.store(now_ms, Ordering::Relaxed);
        if self.failures.fetch_add(1, Ordering::Relaxed) + 1 == CIRCUIT_FAILURES {
            tracing::warn!(endpoint, failures = CIRCUIT_FAILURES, "the endpoint's last attempts all failed: its circuit is open, new deliveries wait while its retries and a probe go out");
        }
    }

    /// The gate for a claim at `now_ms`; a probe is taken at most once per `probe_ms`.
    fn gate(&self, now_ms: i64, probe_ms: i64) -> Gate {
        if self.failures.load(Ordering::Relaxed) < CIRCUIT_FAILURES {
            return Gate::Closed;
        }
        let last = self.last_failure_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < probe_ms {
            return Gate::Open;
        }
        self.last_failure_ms.store(now_ms, Ordering::Relaxed);
        Gate::Probe
    }
}

impl Live {
    /// How many deliveries are claimed ahead of the free slots: as many as the endpoint has
    /// slots, except for an ordered endpoint (one at a time, in order) and a rate-limited one
    /// (its deliveries wait for the limiter, in a slot).
    fn ahead(&self) -> usize {
        if self.row.ordered || self.limiter.is_some() {
            0
        } else {
            usize::try_from(self.row.max_in_flight.max(1)).unwrap_or(1)
        }
    }
}

/// What every send task shares.
struct Ctx {
    inner: Weak<Inner>,
    client: reqwest::Client,
    worker: String,
    /// A send task finished: its slot is free, so the loop claims again at once.
    slot_freed: tokio::sync::Notify,
    /// Attempt results, to the recorder.
    records: mpsc::Sender<Record>,
}

/// What the recorder is handed.
enum Record {
    /// An attempt's result.
    Finish(Finish),
    /// Write everything queued before this, then stop.
    Flush,
}

/// Writes attempt results in group commits: it takes every result queued (up to
/// [`RECORD_BATCH`]) and writes them in one transaction, so a commit's cost is shared by every
/// delivery that finished while the previous one ran. Ends at [`Record::Flush`] or when every
/// sender is gone.
async fn recorder(db: crate::db::Db, mut queue: mpsc::Receiver<Record>) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    let mut stop = false;
    while !stop {
        match queue.recv().await {
            Some(Record::Finish(f)) => batch.push(f),
            Some(Record::Flush) | None => stop = true,
        }
        while !stop && batch.len() < RECORD_BATCH {
            match queue.try_recv() {
                Ok(Record::Finish(f)) => batch.push(f),
                Ok(Record::Flush) => stop = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        // One retry after a failed commit (a busy or briefly unreachable store): a batch
        // holds many results, each otherwise sent again only when its claim expires.
        let mut written = store::finish_batch(&db, &batch).await;
        if written.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            written = store::finish_batch(&db, &batch).await;
        }
        match written {
            Ok(recorded) => {
                for (f, done) in batch.iter().zip(recorded) {
                    if !done {
                        tracing::warn!(
                            delivery = f.seq,
                            "the delivery's claim was lost; its result is not recorded"
                        );
                    }
                }
            }
            Err(error) => tracing::warn!(
                deliveries = batch.len(),
                error = %error,
                "could not record attempts; those deliveries are sent again when their claims expire"
            ),
        }
        batch.clear();
    }
}

/// Runs until the gateway stops.
pub async fn run(inner: Weak<Inner>, worker: String) {
    let Some(settings) = inner.upgrade().map(|i| i.config.delivery.clone()) else {
        return;
    };
    let client = match client(&settings) {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(error = %error, "cannot build the delivery HTTP client; deliveries are not sent");
            return;
        }
    };
    let Some(db) = inner.upgrade().map(|i| i.db.clone()) else {
        return;
    };
    if let Err(error) = store::release_stale_claims(&db).await {
        tracing::warn!(error = %error, "could not release delivery claims left by an earlier run");
    }
    let (records, queue) = mpsc::channel(RECORD_QUEUE);
    let recorder = tokio::spawn(recorder(db, queue));
    let ctx = Arc::new(Ctx {
        inner,
        client,
        worker,
        slot_freed: tokio::sync::Notify::new(),
        records,
    });
    claim_and_send(&ctx, &settings).await;
    // Results queued so far are written before the store closes; sends still running find
    // the recorder gone, and their deliveries are sent again after the restart.
    if ctx.records.send(Record::Flush).await.is_ok()
        && tokio::time::timeout(RECORD_FLUSH, recorder).await.is_err()
    {
        tracing::warn!("the delivery recorder did not finish writing attempt results in time");
    }
}

/// The claim loop: runs until the gateway stops.
async fn claim_and_send(ctx: &Arc<Ctx>, settings: &DeliverySettings) {
    let mut live: HashMap<String, Live> = HashMap::new();
    let mut last_refresh: Option<Instant> = None;
    let mut count_backlog_at = Instant::now();
    let mut generation = super::endpoints_generation();
    // Set when endpoints changed while this round was claiming: what it claimed is sent only
    // after the reload, so that an event created after a secret rotation (or any other change)
    // is never signed or shaped with the endpoint as it was before.
    let mut stale = false;
    loop {
        let Some(inner) = ctx.inner.upgrade() else {
            return;
        };
        if inner
            .signals
            .stopping
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let changed = stale || super::endpoints_generation() != generation;
        stale = false;
        if changed || last_refresh.is_none_or(|t| t.elapsed() >= REFRESH) {
            last_refresh = Some(Instant::now());
            generation = super::endpoints_generation();
            refresh(&inner, &mut live, &mut count_backlog_at).await;
        }
        // Registered before anything is read, so that fires committed meanwhile wake the
        // next wait instead of being noticed only at the next poll.
        let signals = Arc::clone(&inner.signals);
        let fired = signals.fires.notified();
        tokio::pin!(fired);
        fired.as_mut().enable();
        let now = now_ms();
        // One read says which endpoints have something due; only those are claimed from (a
        // claim is a write, and on SQLite every write waits for the one writer connection).
        let due: HashMap<String, store::Due> = match store::next_due(&inner.db).await {
            Ok(rows) => rows.into_iter().map(|d| (d.endpoint.clone(), d)).collect(),
            Err(error) => {
                tracing::warn!(error = %error, "could not read due deliveries");
                HashMap::new()
            }
        };
        for endpoint in live.values_mut().filter(|e| e.row.enabled) {
            dispatch(ctx, settings, endpoint);
            // Claimed ahead of the free slots, so that a slot that frees finds its next
            // delivery here instead of waiting for a claim (one claim serves many sends).
            let ahead = endpoint.ahead();
            let Some(due) = due.get(&endpoint.row.id) else {
                continue;
            };
            if endpoint.queue.len() > ahead / 2 {
                continue;
            }
            let retry_due = due.retrying.is_some_and(|at| at <= now);
            let new_due = due.pending.is_some_and(|at| at <= now);
            if !retry_due && !new_due {
                continue;
            }
            // The circuit only holds back new deliveries (an ordered endpoint's failing
            // delivery already holds the rest back itself).
            let gate = if endpoint.row.ordered || !new_due {
                Gate::Closed
            } else {
                endpoint.circuit.gate(now, probe_ms(settings))
            };
            let pick = match gate {
                _ if endpoint.row.ordered => Pick::Ordered,
                Gate::Closed | Gate::Probe => Pick::Due,
                Gate::Open if retry_due => Pick::Retries,
                Gate::Open => continue,
            };
            let room =
                (endpoint.slots.available_permits() + ahead).saturating_sub(endpoint.queue.len());
            let want = if gate == Gate::Probe {
                room.min(1)
            } else {
                room
            };
            if want == 0 {
                continue;
            }
            let lease_until = now_ms().saturating_add(lease_ms(settings));
            match store::claim(
                &inner.db,
                &endpoint.row.id,
                &ctx.worker,
                now_ms(),
                lease_until,
                i64::try_from(want).unwrap_or(1),
                pick,
            )
            .await
            {
                Ok(claimed) => endpoint
                    .queue
                    .extend(claimed.into_iter().map(|d| (d, lease_until))),
                Err(error) => {
                    tracing::warn!(endpoint = %endpoint.row.id, error = %error, "could not claim deliveries");
                    continue;
                }
            }
            // A claim can take events committed after an endpoint change this loop has not
            // loaded yet; those wait in the queue for the reload at the top of the next round.
            if super::endpoints_generation() != generation {
                stale = true;
                continue;
            }
            dispatch(ctx, settings, endpoint);
        }
        drop(inner);
        if stale {
            continue;
        }
        tokio::select! {
            () = fired => {}
            () = ctx.slot_freed.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Starts a send task for each claimed delivery of `endpoint` that a free slot can take.
fn dispatch(ctx: &Arc<Ctx>, settings: &DeliverySettings, endpoint: &mut Live) {
    while !endpoint.queue.is_empty() {
        let Ok(permit) = Arc::clone(&endpoint.slots).try_acquire_owned() else {
            return;
        };
        let Some((delivery, claimed_until)) = endpoint.queue.pop_front() else {
            return;
        };
        let task = Task {
            ctx: Arc::clone(ctx),
            circuit: Arc::clone(&endpoint.circuit),
            endpoint: endpoint.row.clone(),
            secrets: active_secrets(&endpoint.secrets, now_ms()),
            limiter: endpoint.limiter.clone(),
            settings: settings.clone(),
        };
        tokio::spawn(async move {
            let ctx = Arc::clone(&task.ctx);
            task.send(delivery, claimed_until).await;
            drop(permit);
            ctx.slot_freed.notify_one();
        });
    }
}

/// Reloads endpoints (keeping each one's slots while its limits are unchanged), refreshes the
/// backlog gauge and gives up paused deliveries past their window.
async fn refresh(inner: &Inner, live: &mut HashMap<String, Live>, count_backlog_at: &mut Instant) {
    let rows = match store::list_endpoints(&inner.db).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(error = %error, "could not load endpoints; keeping the previous ones");
            return;
        }
    };
    let key = inner.config.secret_key.as_ref();
    let mut next = HashMap::new();
    // An endpoint's circuit outlives reloads (a change of its settings does not say it answers).
    let mut circuits: HashMap<String, Arc<Circuit>> = live
        .iter()
        .map(|(id, e)| (id.clone(), Arc::clone(&e.circuit)))
        .collect();
    for row in rows {
        let secrets = match open_secrets(&row.id, &row.secrets, key) {
            Ok(s) => s,
            Err(error) => {
                tracing::error!(endpoint = %row.id, error = %error, "cannot read the endpoint's secrets; its deliveries wait");
                continue;
            }
        };
        let slots_wanted = if row.ordered {
            1
        } else {
            usize::try_from(row.max_in_flight.max(1)).unwrap_or(1)
        };
        // Deliveries claimed ahead are kept across a reload; those of an endpoint that is gone
        // or disabled are dropped, and their claims expire.
        let (slots, limiter, queue) = match live.remove(&row.id) {
            Some(old)
                if old.row.max_in_flight == row.max_in_flight
                    && old.row.ordered == row.ordered
                    && old.row.rate_limit_per_sec == row.rate_limit_per_sec =>
            {
                (old.slots, old.limiter, old.queue)
            }
            old => (
                Arc::new(Semaphore::new(slots_wanted)),
                row.rate_limit_per_sec
                    .and_then(|r| u32::try_from(r).ok())
                    .and_then(NonZeroU32::new)
                    .map(|r| Arc::new(RateLimiter::direct(Quota::per_second(r)))),
                old.map(|o| o.queue).unwrap_or_default(),
            ),
        };
        let queue = if row.enabled { queue } else { VecDeque::new() };
        let circuit = circuits.remove(&row.id).unwrap_or_default();
        next.insert(
            row.id.clone(),
            Live {
                row,
                secrets,
                slots,
                limiter,
                queue,
                circuit,
            },
        );
    }
    *live = next;
    let counting = Instant::now();
    if counting >= *count_backlog_at {
        match store::backlog(&inner.db).await {
            Ok(counts) => {
                let counts: HashMap<String, i64> = counts.into_iter().collect();
                for id in live.keys() {
                    inner
                        .metrics
                        .delivery_backlog
                        .get_or_create(&EndpointLabels {
                            endpoint: id.clone(),
                        })
                        .set(counts.get(id).copied().unwrap_or(0));
                }
            }
            Err(error) => tracing::warn!(error = %error, "could not count the delivery backlog"),
        }
        *count_backlog_at =
            Instant::now() + REFRESH.max(counting.elapsed() * BACKLOG_COUNT_SPACING);
    }
    for (id, endpoint) in live.iter() {
        let open = endpoint.circuit.failures.load(Ordering::Relaxed) >= CIRCUIT_FAILURES;
        inner
            .metrics
            .delivery_circuit_open
            .get_or_create(&EndpointLabels {
                endpoint: id.clone(),
            })
            .set(i64::from(open));
    }
    let give_up_ms = i64::try_from(inner.config.delivery.give_up_after_secs)
        .unwrap_or(i64::MAX / 2000)
        .saturating_mul(1000);
    if let Err(error) = store::give_up_paused(&inner.db, give_up_ms, now_ms()).await {
        tracing::warn!(error = %error, "could not give up expired paused deliveries");
    }
}

/// The result of one attempt, before it is written.
struct Outcome {
    status_code: i64,
    error: Option<String>,
    response_body: Option<String>,
    retry_after_secs: Option<u64>,
}

struct Task {
    ctx: Arc<Ctx>,
    circuit: Arc<Circuit>,
    endpoint: EndpointRow,
    secrets: Vec<String>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    settings: DeliverySettings,
}

impl Task {
    /// Renews this worker's claim on delivery `seq` for a whole lease: false when the claim
    /// was lost (another worker owns the delivery now) or could not be renewed (it is sent
    /// again once the claim expires), and then this worker must not send it.
    async fn renew(&self, inner: &Inner, seq: i64) -> bool {
        let until = now_ms().saturating_add(lease_ms(&self.settings));
        match store::renew(&inner.db, seq, &self.ctx.worker, until).await {
            Ok(renewed) => renewed,
            Err(error) => {
                tracing::warn!(delivery = seq, error = %error, "could not renew a delivery claim; it is sent when the claim expires");
                false
            }
        }
    }

    /// Sends one claimed delivery (claimed until `claimed_until`) and hands its result to the
    /// recorder.
    async fn send(self, d: ClaimedDelivery, claimed_until: i64) {
        let Some(inner) = self.ctx.inner.upgrade() else {
            return;
        };
        // A delivery that waited for its slot long enough that its claim could end before the
        // attempt does renews it first; if it was lost meanwhile, another worker owns it.
        if claimed_until.saturating_sub(now_ms())
            < lease_ms(&self.settings).saturating_sub(secs_ms(LEASE_MARGIN.as_secs() / 2))
            && !self.renew(&inner, d.seq).await
        {
            return;
        }
        let started_at = now_ms();
        let started = Instant::now();
        // The body is fixed at the first attempt and sent byte for byte on every later one.
        // Without a transform the body is the envelope, rebuilt byte for byte from the event
        // (which never changes) and stored with the attempt's result; a transform's output is
        // stored before the first send, since a program could depend on more than the event.
        let body = match &d.body {
            Some(body) => body.clone(),
            None if self.endpoint.transform.is_none() => plain_body(&d),
            None => match self.build_body(&d).await {
                Ok(Some(body)) => {
                    if let Err(error) = store::set_body(&inner.db, d.seq, &body).await {
                        tracing::warn!(delivery = d.seq, error = %error, "could not store the delivery body; retrying later");
                        return;
                    }
                    body
                }
                Ok(None) => {
                    self.finish(
                        &inner,
                        &d,
                        started_at,
                        started,
                        "skipped",
                        None,
                        Outcome {
                            status_code: 0,
                            error: Some("the transform returned null".into()),
                            response_body: None,
                            retry_after_secs: None,
                        },
                    )
                    .await;
                    return;
                }
                Err(error) => {
                    self.finish(
                        &inner,
                        &d,
                        started_at,
                        started,
                        "dead",
                        None,
                        Outcome {
                            status_code: 0,
                            error: Some(error.to_string()),
                            response_body: None,
                            retry_after_secs: None,
                        },
                    )
                    .await;
                    return;
                }
            },
        };
        drop(inner);
        if let Some(limiter) = &self.limiter {
            // Over the endpoint's rate the delivery waits; it never fails for it. The claim is
            // renewed after the wait; if it was lost meanwhile, another worker owns the
            // delivery and this one must not send it.
            limiter.until_ready().await;
            let Some(inner) = self.ctx.inner.upgrade() else {
                return;
            };
            if !self.renew(&inner, d.seq).await {
                return;
            }
        }
        let outcome = self.post(&d, body).await;
        let code = outcome.status_code;
        let answered_2xx = (200..300).contains(&code);
        self.circuit
            .record(&self.endpoint.id, answered_2xx, now_ms());
        let Some(inner) = self.ctx.inner.upgrade() else {
            return;
        };
        if answered_2xx {
            let latency = now_ms().saturating_sub(d.fire_created_at);
            inner
                .metrics
                .delivery_latency
                .observe(latency.max(0) as f64 / 1000.0);
            self.finish(&inner, &d, started_at, started, "succeeded", None, outcome)
                .await;
            return;
        }
        if code == 410 {
            let reason = "the endpoint answered 410 Gone";
            self.disable(&inner, reason).await;
            self.finish(&inner, &d, started_at, started, "paused", None, outcome)
                .await;
            return;
        }
        let first = d.first_attempt_at.unwrap_or(started_at);
        let give_up_at = first.saturating_add(secs_ms(self.settings.give_up_after_secs));
        let delay = self.next_delay(d.attempts, outcome.retry_after_secs);
        let next_at = now_ms().saturating_add(delay);
        let mut status = if next_at > give_up_at {
            "dead"
        } else {
            "retrying"
        };
        // The endpoint's failure window. The stored start only moves later (a success clears
        // it, a failure sets it when unset), so when the endpoint as last loaded (at most
        // about a second ago) already has a start that is not old enough to disable it, the
        // stored one is not either, and nothing is written: a dead endpoint's failures do
        // not each take the store's writer.
        let disable_after = secs_ms(self.settings.disable_after_secs);
        let known = self
            .endpoint
            .failing_since
            .filter(|since| started_at.saturating_sub(*since) < disable_after);
        let noted = match known {
            Some(since) => Ok(Some(since)),
            None => store::note_failure(&inner.db, &self.endpoint.id, started_at).await,
        };
        match noted {
            Ok(Some(since)) if started_at.saturating_sub(since) >= disable_after => {
                let reason = format!(
                    "every attempt failed for {} s (disable_after_secs)",
                    self.settings.disable_after_secs
                );
                self.disable(&inner, &reason).await;
                if status == "retrying" {
                    status = "paused";
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "could not record an endpoint failure"),
        }
        let next = (status == "retrying").then_some(next_at);
        self.finish(&inner, &d, started_at, started, status, next, outcome)
            .await;
    }

    /// The body before sending: the envelope, or what the transform makes of it.
    async fn build_body(
        &self,
        d: &ClaimedDelivery,
    ) -> Result<Option<Vec<u8>>, transform::TransformError> {
        let value = envelope(
            d.fire_created_at,
            d.fire_seq,
            &d.event_type,
            &d.workspace,
            &d.payload,
        );
        match &self.endpoint.transform {
            Some(program) => transform::run(program, value).await,
            None => Ok(Some(value.to_string().into_bytes())),
        }
    }

    /// The wait before the next attempt: the schedule's step for this attempt (the last step
    /// repeats) with ±10 % jitter, or the endpoint's `Retry-After` capped at the last step.
    fn next_delay(&self, attempts_before: i64, retry_after_secs: Option<u64>) -> i64 {
        let schedule = &self.settings.retry_schedule_secs;
        let last = schedule.last().copied().unwrap_or(60);
        if let Some(secs) = retry_after_secs {
            return secs_ms(secs.min(last));
        }
        let index = usize::try_from(attempts_before).unwrap_or(0);
        let step = schedule.get(index).copied().unwrap_or(last);
        let base = secs_ms(step) as f64;
        let jitter = rand::rng().random_range(-0.1..=0.1);
        (base * (1.0 + jitter)).round() as i64
    }

    /// One HTTP attempt.
    async fn post(&self, d: &ClaimedDelivery, body: Vec<u8>) -> Outcome {
        let no_answer = |error: String| Outcome {
            status_code: 0,
            error: Some(error),
            response_body: None,
            retry_after_secs: None,
        };
        // IP literals are checked again (the policy may have changed since the endpoint was
        // saved); names are checked by the client's resolver.
        let url = match check_url(&self.endpoint.url, &self.settings.policy) {
            Ok(url) => url,
            Err(error) => return no_answer(error.to_string()),
        };
        let msg_id = message_id(d.fire_created_at, d.fire_seq);
        let signed = sign::sign(&msg_id, now_ms().div_euclid(1000), &body, &self.secrets);
        let request = signed
            .apply(
                self.ctx
                    .client
                    .post(url)
                    .header(http::header::CONTENT_TYPE, "application/json"),
            )
            .body(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(error) => return no_answer(describe(&error)),
        };
        let status = response.status();
        let retry_after_secs = if status.as_u16() == 429 || status.as_u16() == 503 {
            response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after)
        } else {
            None
        };
        let (response_body, read_error) = read_prefix(response).await;
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(format!(
                "answered {status}; redirects are not followed (point the endpoint at the final URL)"
            ))
        } else {
            Some(read_error.unwrap_or_else(|| format!("answered {status}")))
        };
        Outcome {
            status_code: i64::from(status.as_u16()),
            error,
            response_body: Some(response_body),
            retry_after_secs,
        }
    }

    /// Disables the endpoint and emits `hookgate.endpoint.disabled` in the same transaction.
    async fn disable(&self, inner: &Inner, reason: &str) {
        let now = now_ms();
        let event = OwnEvent {
            key: format!("hookgate.endpoint.disabled:{}:{now}", self.endpoint.id),
            workspace: self.endpoint.workspace.clone(),
            event_type: "hookgate.endpoint.disabled",
            payload: serde_json::json!({
                "endpoint_id": self.endpoint.id,
                "url": self.endpoint.url,
                "reason": reason,
            }),
        };
        match store::set_endpoint_enabled(
            &inner.db,
            &self.endpoint.id,
            false,
            Some(reason),
            Some(&event),
            now,
        )
        .await
        {
            Ok(_) => {
                tracing::warn!(endpoint = %self.endpoint.id, reason, "endpoint disabled");
                inner.signals.fires.notify_waiters();
            }
            Err(error) => {
                tracing::error!(endpoint = %self.endpoint.id, error = %error, "could not disable the endpoint")
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        inner: &Inner,
        d: &ClaimedDelivery,
        started_at: i64,
        started: Instant,
        status: &'static str,
        next_attempt_at: Option<i64>,
        outcome: Outcome,
    ) {
        let finish = Finish {
            seq: d.seq,
            endpoint_id: self.endpoint.id.clone(),
            worker: self.ctx.worker.clone(),
            attempt: AttemptRow {
                attempt: 0,
                started_at,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                status_code: outcome.status_code,
                error: outcome.error,
                response_body: outcome.response_body,
            },
            status,
            next_attempt_at,
            body: d
                .body
                .is_none()
                .then(|| plain_body(d))
                .filter(|_| self.endpoint.transform.is_none()),
            now_ms: now_ms(),
        };
        let label = match status {
            "succeeded" => "succeeded",
            "dead" => "dead",
            "skipped" => "skipped",
            _ => "failed",
        };
        inner
            .metrics
            .deliveries
            .get_or_create(&DeliveryLabels {
                endpoint: self.endpoint.id.clone(),
                outcome: label,
            })
            .inc();
        // Not awaited to its commit: the claim is held until then, and a crash before it
        // means the delivery is sent again.
        if self.ctx.records.send(Record::Finish(finish)).await.is_err() {
            tracing::debug!(
                delivery = d.seq,
                "stopping: the attempt is not recorded; the delivery is sent again after the restart"
            );
        }
    }
}

/// The envelope of a delivery's event, as sent without a transform.
fn plain_body(d: &ClaimedDelivery) -> Vec<u8> {
    envelope(
        d.fire_created_at,
        d.fire_seq,
        &d.event_type,
        &d.workspace,
        &d.payload,
    )
    .to_string()
    .into_bytes()
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000)
}

/// `Retry-After` in seconds (HTTP dates are not honoured: the schedule applies).
fn parse_retry_after(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// An error message for the attempt log: the kind of failure and its innermost cause.
pub(crate) fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{kind}: {cause}")
}

/// Reads at most [`RESPONSE_LOG_BYTES`] of a response body (lossy UTF-8).
async fn read_prefix(mut response: reqwest::Response) -> (String, Option<String>) {
    let mut buf = Vec::new();
    let mut error = None;
    while buf.len() < RESPONSE_LOG_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(describe(&e));
                break;
            }
        }
    }
    buf.truncate(RESPONSE_LOG_BYTES);
    (String::from_utf8_lossy(&buf).into_owned(), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after("7"), Some(7));
        assert_eq!(parse_retry_after(" 12 "), Some(12));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
