//! Crash loop: a real `hookgate serve` (with its normalization workers) under concurrent load is
//! SIGKILLed at random moments and restarted on the same store, cycle after cycle. Afterwards
//! every event that got a 2xx is stored exactly once, every stored event is processed, each has
//! exactly one fire, and no email has two contacts.
//!
//! The gateway also delivers every fire to a loopback endpoint that refuses a fixed share of
//! requests (a 500, or an answer that outlasts the gateway's timeout). Afterwards every fire
//! reached the endpoint with a 2xx at least once (redeliveries after a kill are allowed: at
//! least once), no `webhook-id` arrived that is not a fire's, and every delivery is `succeeded`
//! only for an id the endpoint answered 2xx.
//!
//! A kill is told apart from a crash or hang of the gateway's own: before each kill the gateway
//! answers `/healthz` and is still running, every request left unanswered failed after the kill
//! (a connection error, not a time-out), and the requests in flight at the kills and the events
//! reprocessed after them are counted and must both be above zero.
//!
//! `HOOKGATE_CRASH_CYCLES` sets the number of cycles (3 by default, as CI runs it);
//! `HOOKGATE_CRASH_SEED` replays the random kill moments and traffic of an earlier run (the seed
//! is printed).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookgate::db::Db;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};

use axum::http::{HeaderMap, StatusCode};
use hookgate::delivery::store::{list_deliveries, DeliveryFilter};

use crate::backend_tests;
use crate::cli::Server;
use crate::cluster::{fires, serve_with, signed_stripe};
use crate::support::{Backend, TestStore};

/// Concurrent keep-alive clients, each with its own connection.
const CLIENTS: usize = 24;
/// Emails are shared between events, so workers keep upserting the same contacts.
const EMAILS: usize = 40;
/// Share (in percent) of requests that redeliver an event already acknowledged.
const REDELIVER_PERCENT: u32 = 10;
/// Cycles added at most when the planned ones caught no request in flight or no claimed batch.
const EXTRA_CYCLES: u64 = 7;
/// The endpoint refuses every this-many-th request it gets with a 500 ...
const REFUSE_EVERY: usize = 5;
/// ... and answers every this-many-th (that is not refused) only after the gateway's
/// 1 s timeout, with a 503.
const STALL_EVERY: usize = 29;

/// What the loopback endpoint got, across every gateway of the run (it outlives them).
#[derive(Default)]
struct Inbox {
    requests: usize,
    /// `webhook-id` → how many requests with it were answered 2xx.
    ok: HashMap<String, usize>,
    /// Every `webhook-id` received, whatever the answer.
    seen: HashSet<String>,
    refused: usize,
    stalled: usize,
    /// Requests whose body `id` is not their `webhook-id`.
    mismatched: Vec<String>,
}

/// The endpoint's handler: records the request and answers by the fixed rule above. A 2xx is
/// recorded before it is answered.
async fn receive(
    inbox: Arc<Mutex<Inbox>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body_id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned));
    let answer = {
        let mut inbox = inbox.lock().expect("lock");
        inbox.requests += 1;
        let n = inbox.requests;
        inbox.seen.insert(id.clone());
        if body_id.as_deref() != Some(id.as_str()) {
            inbox.mismatched.push(id.clone());
        }
        if n % REFUSE_EVERY == 0 {
            inbox.refused += 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else if n % STALL_EVERY == 0 {
            inbox.stalled += 1;
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            *inbox.ok.entry(id).or_default() += 1;
            StatusCode::OK
        }
    };
    if answer == StatusCode::SERVICE_UNAVAILABLE {
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    answer
}

/// Starts the endpoint on loopback; returns the config the gateways get for it: a short
/// timeout and retry schedule, loopback allowed, subscribed to the fires only (not to the
/// contact lifecycle events).
async fn start_endpoint(inbox: &Arc<Mutex<Inbox>>) -> String {
    let app = {
        let inbox = Arc::clone(inbox);
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                receive(Arc::clone(&inbox), headers, body)
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!(
        "\n[delivery]\ntimeout_secs = 1\nretry_schedule_secs = [1]\ngive_up_after_secs = 3600\n\
         allow_http = true\nallow_cidrs = [\"127.0.0.0/8\"]\n\n\
         [[endpoints]]\nid = \"sink\"\nurl = \"http://{addr}/hook\"\nevent_types = [\"stripe.*\"]\n\
         max_in_flight = 16\nsecrets = [\"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"]\n"
    )
}

#[expect(clippy::disallowed_methods, reason = "tests read their own settings")]
fn setting(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
    })
}

fn event_id(n: usize) -> String {
    format!("evt_crash_{n}")
}

fn event(n: usize) -> Vec<u8> {
    let who = n % EMAILS;
    json!({"id": event_id(n), "object": "event", "type": "invoice.paid", "created": 1_700_000_000 + n,
           "data": {"object": {"id": format!("in_crash_{n}"), "customer": format!("cus_crash_{who}"),
                               "customer_email": format!("buyer{who}@crash.example.com")}}})
    .to_string()
    .into_bytes()
}

/// Posts event `n`, signed now: the status and outcome, or the error when no answer came back
/// (the gateway died).
async fn post(
    client: &reqwest::Client,
    url: &str,
    n: usize,
) -> Result<(u16, String), reqwest::Error> {
    let response = signed_stripe(client, url, event(n)).send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let outcome = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .unwrap_or(text);
    Ok((status, outcome))
}

/// A request that got no answer: when its error came, and the error.
struct Unanswered {
    at: Instant,
    timed_out: bool,
    error: String,
}

/// What the clients learned, across cycles.
#[derive(Default)]
struct Ledger {
    /// Events that got a 2xx.
    acked: BTreeSet<usize>,
    /// Events sent without an answer and not acknowledged since: retried first, as a provider
    /// retries a delivery whose connection dropped.
    unanswered: BTreeSet<usize>,
    /// Answers that are not 200, or a 200 for an acknowledged event that is not `duplicate`.
    wrong: Vec<(usize, u16, String)>,
    requests: usize,
    redeliveries: usize,
}

/// One client: sends until its request gets no answer (the gateway was killed) or `stop`.
/// Returns its request that got no answer, if any (at most one: it stops there).
async fn client(
    url: String,
    ledger: Arc<Mutex<Ledger>>,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> Option<Unanswered> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let (n, redelivery) = {
            let mut ledger = ledger.lock().expect("lock");
            ledger.requests += 1;
            if let Some(n) = ledger.unanswered.pop_first() {
                (n, false)
            } else if !ledger.acked.is_empty() && rng.random_range(0..100) < REDELIVER_PERCENT {
                ledger.redeliveries += 1;
                let pick = rng.random_range(0..ledger.acked.len());
                (*ledger.acked.iter().nth(pick).expect("in range"), true)
            } else {
                (next.fetch_add(1, Ordering::Relaxed), false)
            }
        };
        let answer = post(&http, &url, n).await;
        let mut ledger = ledger.lock().expect("lock");
        match answer {
            Err(error) => {
                if !ledger.acked.contains(&n) {
                    ledger.unanswered.insert(n);
                }
                return Some(Unanswered {
                    at: Instant::now(),
                    timed_out: error.is_timeout(),
                    error: error.to_string(),
                });
            }
            Ok((200, outcome)) if !redelivery || outcome == "duplicate" => {
                ledger.acked.insert(n);
            }
            Ok((status, outcome)) => ledger.wrong.push((n, status, outcome)),
        }
    }
    None
}

/// Starts a gateway; with `defer`, its events are normalized by the workers after the answer
/// (claimed under a lease) rather than in the transaction that stores them.
fn start(
    dir: &std::path::Path,
    db_url: &str,
    endpoint: &str,
    defer: bool,
) -> impl std::future::Future<Output = Server> {
    let (dir, db_url, endpoint) = (dir.to_owned(), db_url.to_owned(), endpoint.to_owned());
    let extra: &'static [&'static str] = if defer { &["--defer-processing"] } else { &[] };
    async move {
        tokio::task::spawn_blocking(move || serve_with(&dir, &db_url, extra, &endpoint))
            .await
            .expect("start")
    }
}

/// Every accepted event: (event id, status, attempts).
async fn accepted(db: &Db) -> Vec<(String, Option<String>, i32)> {
    let rows = db
        .list_ingest(&hookgate::db::IngestFilter {
            outcome: Some("accepted".into()),
            limit: 1_000_000,
            ..Default::default()
        })
        .await
        .expect("list");
    rows.into_iter()
        .map(|r| (r.event_id.unwrap_or_default(), r.status, r.attempts))
        .collect()
}

/// Events claimed by a worker whose lease has not expired yet. Right after a SIGKILL, before
/// a new gateway starts, these were claimed by the killed process: they will be reprocessed.
async fn leased(db: &Db) -> i64 {
    const LEASED: &str =
        "SELECT COUNT(*) FROM ingest WHERE status = 'pending' AND claimed_until > $1";
    let now = hookgate::now_ms();
    match db {
        Db::Sqlite { readers, .. } => sqlx::query_scalar(LEASED)
            .bind(now)
            .fetch_one(readers)
            .await
            .expect("leased"),
        Db::Postgres(pool) => sqlx::query_scalar(LEASED)
            .bind(now)
            .fetch_one(pool)
            .await
            .expect("leased"),
    }
}

/// `(email, rows)` for every email with more than one contact row, ignoring case and spaces.
async fn duplicate_contacts(db: &Db) -> (i64, Vec<(String, i64)>) {
    const TOTAL: &str = "SELECT COUNT(*) FROM contacts";
    const DUPES: &str = "SELECT LOWER(TRIM(email)), COUNT(*) FROM contacts \
                         GROUP BY workspace, LOWER(TRIM(email)) HAVING COUNT(*) > 1";
    match db {
        Db::Sqlite { readers, .. } => (
            sqlx::query_scalar(TOTAL)
                .fetch_one(readers)
                .await
                .expect("count"),
            sqlx::query_as(DUPES)
                .fetch_all(readers)
                .await
                .expect("dupes"),
        ),
        Db::Postgres(pool) => (
            sqlx::query_scalar(TOTAL)
                .fetch_one(pool)
                .await
                .expect("count"),
            sqlx::query_as(DUPES).fetch_all(pool).await.expect("dupes"),
        ),
    }
}

async fn crash_loop(backend: Backend) {
    let cycles = setting("HOOKGATE_CRASH_CYCLES").unwrap_or(3);
    let seed = setting("HOOKGATE_CRASH_SEED").unwrap_or_else(|| {
        u64::try_from(hookgate::now_ms()).expect("positive") ^ u64::from(std::process::id())
    });
    let name = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    println!("crash loop ({name}): {cycles} cycles, HOOKGATE_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let store = TestStore::new(&backend).await;
    let db_url = store.binary_url();
    let dir = tempfile::tempdir().expect("dir");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut in_flight_at_kills = 0;
    // Requests in flight when a gateway that normalizes as it stores (SQLite's default) was
    // killed: those kills land inside the transaction that stores and applies.
    let mut in_flight_at_inline_kills = 0;
    let mut leased_at_kills = 0;
    let inline_store = matches!(backend, Backend::Sqlite);
    let probe = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let endpoint = start_endpoint(&inbox).await;

    // After the planned cycles, a few more if no kill has yet caught a request in flight or a
    // claimed batch, so that both counts asserted below are about this run, not luck.
    let mut cycle = 0;
    while cycle < cycles
        || (cycle < cycles + EXTRA_CYCLES
            && (in_flight_at_kills == 0
                || leased_at_kills == 0
                || (inline_store && in_flight_at_inline_kills == 0)))
    {
        cycle += 1;
        // From the last planned cycle on, while no kill has caught a claimed batch (the workers
        // often keep up, leaving nothing claimed at a random moment), the kill waits for one.
        let timed = cycle >= cycles && leased_at_kills == 0;
        // On SQLite, cycles alternate between normalizing in the storing transaction and
        // leaving it to the workers' claims, so both crash paths are cut; a cycle timed to a
        // claimed batch defers (only the workers claim).
        let defer = inline_store && (timed || cycle % 2 == 0);
        let inline = inline_store && !defer;
        let mut server = start(dir.path(), &db_url, &endpoint, defer).await;
        let url = server.url("/integrations/stripe/webhook/stripe");
        let stop = Arc::new(AtomicBool::new(false));
        let acked_before = ledger.lock().expect("lock").acked.len();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(client(
                    url.clone(),
                    Arc::clone(&ledger),
                    Arc::clone(&next),
                    Arc::clone(&stop),
                    rng.random(),
                ))
            })
            .collect();
        let delay = Duration::from_millis(rng.random_range(200..=1500));
        tokio::time::sleep(delay).await;
        if timed {
            let deadline = Instant::now() + Duration::from_secs(3);
            while leased(&store.db).await == 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        // The SIGKILL must be what ends this gateway: it still answers, and it is still running.
        let health = probe.get(server.url("/healthz")).send().await;
        assert!(
            health.as_ref().is_ok_and(|r| r.status().is_success()),
            "cycle {cycle}: the gateway does not answer /healthz before the kill: {health:?}\n{}",
            server.log()
        );
        assert!(
            server.running(),
            "cycle {cycle}: the gateway exited on its own before the kill\n{}",
            server.log()
        );
        let killed_at = Instant::now();
        tokio::task::spawn_blocking(move || server.kill())
            .await
            .expect("kill");
        let leased_now = leased(&store.db).await;
        leased_at_kills += leased_now;
        stop.store(true, Ordering::Relaxed);
        let mut in_flight = 0;
        for c in clients {
            let Some(unanswered) = c.await.expect("client") else {
                continue;
            };
            in_flight += 1;
            assert!(
                unanswered.at >= killed_at && !unanswered.timed_out,
                "cycle {cycle}: a request went unanswered {} the kill ({}): {}",
                if unanswered.at < killed_at {
                    "before"
                } else {
                    "after a time-out, not at"
                },
                if unanswered.timed_out {
                    "timed out"
                } else {
                    "connection error"
                },
                unanswered.error
            );
        }
        in_flight_at_kills += in_flight;
        if inline {
            in_flight_at_inline_kills += in_flight;
        }
        let acked = ledger.lock().expect("lock").acked.len() - acked_before;
        println!(
            "  cycle {cycle}: SIGKILL after {} ms{}{}, {acked} new events acknowledged, {in_flight} requests in flight, \
             {leased_now} events under a killed gateway's lease",
            delay.as_millis(),
            if timed { " (timed to a claimed batch)" } else { "" },
            if inline { " (normalizing as it stores)" } else { "" }
        );
    }
    assert!(
        in_flight_at_kills > 0,
        "no request was in flight at any of the {cycle} kills"
    );
    assert!(
        leased_at_kills > 0,
        "none of the {cycle} kills left events under a killed gateway's lease"
    );
    assert!(
        !inline_store || in_flight_at_inline_kills > 0,
        "no request was in flight when a gateway normalizing as it stores was killed"
    );

    // A last gateway drains everything the killed ones left pending or claimed (claims of a
    // killed process expire after the lease).
    let last = start(dir.path(), &db_url, &endpoint, false).await;
    // The events in flight at the last kill are delivered again, as their provider would retry
    // them: each was stored before the kill (a duplicate now) or not at all (accepted now).
    let retried: Vec<usize> = std::mem::take(&mut ledger.lock().expect("lock").unanswered)
        .into_iter()
        .collect();
    let http = reqwest::Client::new();
    let url = last.url("/integrations/stripe/webhook/stripe");
    let mut stored_before_kill = 0;
    for n in &retried {
        let answer = post(&http, &url, *n).await;
        let Ok((200, outcome)) = answer else {
            panic!(
                "redelivery of {} after the last restart: {answer:?}",
                event_id(*n)
            );
        };
        stored_before_kill += usize::from(outcome == "duplicate");
        ledger.lock().expect("lock").acked.insert(*n);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let counts = store.db.status_counts().await.expect("counts");
        if counts.iter().all(|(status, _)| status != "pending") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events still pending 90 s after the last restart: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every client has finished: the ledger is final.
    let ledger = std::mem::take(&mut *ledger.lock().expect("lock"));
    assert!(
        ledger.wrong.is_empty(),
        "answers other than 200 (or a redelivery of an acknowledged event that was not a duplicate): {:?}",
        &ledger.wrong[..ledger.wrong.len().min(20)]
    );
    assert!(!ledger.acked.is_empty(), "no event was acknowledged");

    let rows = accepted(&store.db).await;
    let mut stored: HashMap<&str, usize> = HashMap::new();
    for (id, _, _) in &rows {
        *stored.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = stored.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "events stored more than once: {twice:?}");
    let lost: Vec<String> = ledger
        .acked
        .iter()
        .map(|n| event_id(*n))
        .filter(|id| !stored.contains_key(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events are not stored: {lost:?}",
        lost.len()
    );
    let never_acked: Vec<_> = stored
        .keys()
        .filter(|id| {
            id.strip_prefix("evt_crash_")
                .and_then(|n| n.parse::<usize>().ok())
                .is_none_or(|n| !ledger.acked.contains(&n))
        })
        .collect();
    assert!(
        never_acked.is_empty(),
        "stored events no delivery was acknowledged for, even after redelivery: {never_acked:?}"
    );
    let unprocessed: Vec<_> = rows
        .iter()
        .filter(|(_, status, _)| status.as_deref() != Some("processed"))
        .collect();
    assert!(
        unprocessed.is_empty(),
        "stored events not processed: {unprocessed:?}"
    );

    let fires = fires(&store.db).await;
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for fire in &fires {
        *per_key.entry(fire.idempotency_key.as_str()).or_default() += 1;
    }
    for id in stored.keys() {
        let count = per_key.get(format!("stripe:{id}").as_str()).copied();
        assert_eq!(count, Some(1), "fires for stored event {id}");
    }
    assert_eq!(
        fires.len(),
        stored.len(),
        "exactly one fire per stored event, and none for anything else"
    );
    let fired_ingest: HashSet<&str> = fires
        .iter()
        .filter_map(|f| f.ingest_id.as_deref())
        .collect();
    assert_eq!(fired_ingest.len(), fires.len(), "one fire per ingest row");

    let (contacts, dupes) = duplicate_contacts(&store.db).await;
    assert!(dupes.is_empty(), "duplicate contacts: {dupes:?}");
    let emails: HashSet<usize> = stored
        .keys()
        .filter_map(|id| id.strip_prefix("evt_crash_")?.parse::<usize>().ok())
        .map(|n| n % EMAILS)
        .collect();
    assert_eq!(
        usize::try_from(contacts).expect("count"),
        emails.len(),
        "one contact per email"
    );

    let delivered = check_deliveries(&store.db, &fires, &inbox, &last).await;

    let reclaimed = rows.iter().filter(|(_, _, attempts)| *attempts > 1).count();
    assert!(
        reclaimed > 0,
        "no event was reprocessed after a kill, though {leased_at_kills} were claimed at the kills"
    );
    println!(
        "crash loop ({name}) summary: {cycle} cycles, {} requests ({} redeliveries of acknowledged events), \
         {} events acknowledged, {in_flight_at_kills} requests in flight at the kills, {} events stored, \
         {} redelivered after the last kill ({stored_before_kill} of them stored before it), {reclaimed} reprocessed after a kill, {} fires, {contacts} contacts; {delivered}",
        ledger.requests,
        ledger.redeliveries,
        ledger.acked.len(),
        stored.len(),
        retried.len(),
        fires.len(),
    );
    let status = tokio::task::spawn_blocking(move || last.stop())
        .await
        .expect("stop");
    assert!(status.success(), "the last gateway stops cleanly");
}

/// Waits until no delivery is pending or retrying, then checks them against what the endpoint
/// got: one delivery per fire, each `succeeded`; every fire's message id answered 2xx at least
/// once; no other `webhook-id`; and the endpoint's refusals were retried. Returns a summary.
async fn check_deliveries(
    db: &Db,
    fires: &[hookgate::db::rows::FireRow],
    inbox: &Mutex<Inbox>,
    gateway: &Server,
) -> String {
    let all = DeliveryFilter {
        limit: 10_000_000,
        ..DeliveryFilter::default()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let deliveries = loop {
        let deliveries = list_deliveries(db, &all).await.expect("deliveries");
        if deliveries
            .iter()
            .all(|d| d.status != "pending" && d.status != "retrying")
        {
            break deliveries;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still unfinished 120 s after the last restart: {} of {}\n{}",
            deliveries
                .iter()
                .filter(|d| d.status == "pending" || d.status == "retrying")
                .count(),
            deliveries.len(),
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let inbox = inbox.lock().expect("lock");
    assert!(
        inbox.mismatched.is_empty(),
        "requests whose body id is not their webhook-id: {:?}",
        inbox.mismatched
    );
    // Every fire has exactly one delivery, and it succeeded.
    let by_seq: HashMap<i64, String> = fires
        .iter()
        .map(|f| (f.seq, hookgate::delivery::message_id(f.created_at, f.seq)))
        .collect();
    assert_eq!(deliveries.len(), fires.len(), "one delivery per fire");
    let delivered_seqs: HashSet<i64> = deliveries.iter().map(|d| d.fire_seq).collect();
    assert_eq!(
        delivered_seqs,
        by_seq.keys().copied().collect::<HashSet<_>>(),
        "the deliveries are of the fires"
    );
    let unfinished: Vec<_> = deliveries
        .iter()
        .filter(|d| d.status != "succeeded")
        .map(|d| (d.seq, d.status.clone(), d.last_error.clone()))
        .collect();
    assert!(
        unfinished.is_empty(),
        "deliveries that did not succeed: {unfinished:?}"
    );
    // No delivery is `succeeded` without a 2xx from the endpoint for its message id.
    for d in &deliveries {
        let id = hookgate::delivery::message_id(d.fire_created_at, d.fire_seq);
        assert!(
            inbox.ok.contains_key(&id),
            "delivery {} ({id}) is {} but the endpoint never answered it 2xx (last status {:?})",
            d.seq,
            d.status,
            d.last_status_code
        );
        assert!(
            d.last_status_code.is_some_and(|c| (200..300).contains(&c)),
            "delivery {} is {} with last status {:?}",
            d.seq,
            d.status,
            d.last_status_code
        );
    }
    // Every fire reached the endpoint with a 2xx, and nothing else reached it.
    let expected: HashSet<&String> = by_seq.values().collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !inbox.ok.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} fires never got a 2xx from the endpoint: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let strangers: Vec<_> = inbox
        .seen
        .iter()
        .filter(|id| !expected.contains(id))
        .collect();
    assert!(
        strangers.is_empty(),
        "webhook-ids that are no fire's: {strangers:?}"
    );
    assert_eq!(inbox.seen.len(), fires.len(), "unique webhook-ids = fires");
    // The refusals happened and were retried.
    assert!(inbox.refused > 0, "the endpoint refused nothing");
    let retried = deliveries.iter().filter(|d| d.attempts > 1).count();
    assert!(retried > 0, "no delivery needed a second attempt");
    let twice = inbox.ok.values().filter(|n| **n > 1).count();
    format!(
        "{} deliveries succeeded from {} requests to the endpoint ({} refused, {} outlasted the timeout, \
         {retried} deliveries retried, {twice} message ids answered 2xx more than once)",
        deliveries.len(),
        inbox.requests,
        inbox.refused,
        inbox.stalled,
    )
}

backend_tests!(crash_loop);
