//! Whole processes: a crash between the answer and processing loses nothing, and two gateways
//! sharing one PostgreSQL database process every event exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use hookgate::providers::{ProviderId, Secret, SignOptions};
use hookgate_providers::testkit::example_secret;
use serde_json::{json, Value};

use crate::cli::{hookgate, Server};
use crate::support::{Backend, TestStore};

pub const ADMIN: &str = "cluster-admin-token-0123456789";

pub fn serve(dir: &std::path::Path, db: &str, extra: &[&str]) -> Server {
    serve_with(dir, db, extra, "")
}

/// [`serve`] with `more_config` appended to the config file (e.g. `[delivery]` and
/// `[[endpoints]]` tables).
pub fn serve_with(dir: &std::path::Path, db: &str, extra: &[&str], more_config: &str) -> Server {
    let config = dir.join("hookgate.toml");
    std::fs::write(
        &config,
        // These tests are about crashes and processes, not rate limits: a release build under
        // the crash loop's load passes the default 1 000 requests/s per connection.
        format!("listen = \"127.0.0.1:0\"\nadmin_token = \"{ADMIN}\"\nrate_limit_per_sec = 1000000\nrate_limit_burst = 1000000\n[[connections]]\nid = \"stripe\"\nprovider = \"stripe\"\nsecrets = [\"{}\"]\n{more_config}", example_secret(ProviderId::Stripe)),
    )
    .expect("config");
    let mut cmd = hookgate(dir, db);
    cmd.arg("--config").arg(&config).arg("serve").args(extra);
    Server::start(cmd)
}

fn event(n: usize, tag: &str) -> Vec<u8> {
    json!({"id": format!("evt_{tag}_{n}"), "object": "event", "type": "invoice.paid", "created": 1_700_000_000 + n,
           "data": {"object": {"id": format!("in_{tag}_{n}"), "customer": format!("cus_{tag}_{n}"),
                               "customer_email": format!("buyer{n}@{tag}.example.com")}}})
    .to_string()
    .into_bytes()
}

/// A request delivering `body` as a Stripe event signed now with the example Stripe secret.
pub fn signed_stripe(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let signed = ProviderId::Stripe
        .adapter()
        .sign(
            &body,
            &Secret::new(example_secret(ProviderId::Stripe)),
            &SignOptions {
                now_ms: hookgate::now_ms(),
                ..SignOptions::default()
            },
        )
        .expect("sign");
    let mut request = client.post(url).body(body);
    for (name, value) in signed.headers {
        request = request.header(name, value);
    }
    request
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> u16 {
    signed_stripe(client, url, body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls until every stored event is processed; returns the ingest rows.
async fn wait_all_processed(
    db: &hookgate::db::Db,
    expected: usize,
) -> Vec<hookgate::db::rows::IngestSummary> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let filter = hookgate::db::IngestFilter {
            outcome: Some("accepted".into()),
            limit: 10_000,
            ..Default::default()
        };
        let rows = db.list_ingest(&filter).await.expect("list");
        if rows.len() == expected
            && rows
                .iter()
                .all(|r| r.status.as_deref() == Some("processed"))
        {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "not all processed: {} rows",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Trigger fires made from provider events (the gateway's own contact lifecycle events, with
/// provider `hookgate`, are left out).
pub async fn fires(db: &hookgate::db::Db) -> Vec<hookgate::db::rows::FireRow> {
    db.list_fires(&hookgate::db::FireFilter {
        limit: 100_000,
        ..Default::default()
    })
    .await
    .expect("fires")
    .into_iter()
    .filter(|f| f.provider != "hookgate")
    .collect()
}

/// Events acknowledged by a gateway running without workers, then SIGKILL, then a normal
/// restart: every event is processed exactly once.
async fn crash_between_ack_and_processing(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let db_url = store.binary_url();
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::new();
    let first = {
        let dir = dir.path().to_owned();
        let db_url = db_url.clone();
        tokio::task::spawn_blocking(move || serve(&dir, &db_url, &["--no-workers"]))
            .await
            .expect("start")
    };
    let url = first.url("/integrations/stripe/webhook/stripe");
    let statuses =
        futures::future::join_all((0..40).map(|n| post(&client, &url, event(n, "crash")))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    first.kill();

    store.db.migrate().await.expect("schema");
    let pending = store.db.status_counts().await.expect("counts");
    assert_eq!(
        pending,
        vec![("pending".to_owned(), 40)],
        "acknowledged events survive the kill, unprocessed"
    );

    let second = {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || serve(&dir, &db_url, &[]))
            .await
            .expect("restart")
    };
    let rows = wait_all_processed(&store.db, 40).await;
    assert!(
        rows.iter().all(|r| r.attempts == 1),
        "each event processed once"
    );
    let fires = fires(&store.db).await;
    assert_eq!(fires.len(), 40);
    let keys: HashSet<&str> = fires.iter().map(|f| f.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 40);
    let status = tokio::task::spawn_blocking(move || second.stop())
        .await
        .expect("stop");
    assert!(status.success());
}

backend_tests!(crash_between_ack_and_processing);

use crate::backend_tests;

/// Events this process's workers processed, from its `/metrics`.
async fn processed_here(client: &reqwest::Client, server: &Server) -> u64 {
    let metrics = crate::support::metrics(client, server.url("/metrics")).await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"hookgate_events_processed_total{status="processed"} "#))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// Two `hookgate serve` processes on one PostgreSQL database: a burst split between them is
/// processed with every fire produced exactly once, each process processing some of it and no
/// event processed by both; an event
/// stream on one process sees the fires the other made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_postgres() {
    let Some(backend @ Backend::Postgres(_)) = Backend::postgres() else {
        return; // Not run, and said so (under CI, `Backend::postgres` fails instead).
    };
    let store = TestStore::new(&backend).await;
    let db_url = store.binary_url();
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, b) = {
        let (pa, pb, u1, u2) = (
            dir_a.path().to_owned(),
            dir_b.path().to_owned(),
            db_url.clone(),
            db_url.clone(),
        );
        let a = tokio::task::spawn_blocking(move || serve(&pa, &u1, &[]))
            .await
            .expect("a");
        let b = tokio::task::spawn_blocking(move || serve(&pb, &u2, &[]))
            .await
            .expect("b");
        (a, b)
    };
    let client = reqwest::Client::new();
    // A stream on B, opened before the burst.
    let stream = client
        .get(b.url("/v1/events/stream"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status().as_u16(), 200);
    let collector = tokio::spawn(async move {
        let mut body = stream.bytes_stream();
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while text.matches("data: ").count() < 300 && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), body.next()).await {
                Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
                _ => continue,
            }
        }
        text
    });
    let (url_a, url_b) = (
        a.url("/integrations/stripe/webhook/stripe"),
        b.url("/integrations/stripe/webhook/stripe"),
    );
    let sends = (0..300).map(|n| {
        let url = if n % 2 == 0 {
            url_a.clone()
        } else {
            url_b.clone()
        };
        let client = client.clone();
        async move { post(&client, &url, event(n, "scale")).await }
    });
    let statuses: Vec<u16> = futures::stream::iter(sends)
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let rows = wait_all_processed(&store.db, 300).await;
    assert!(
        rows.iter().all(|r| r.attempts == 1),
        "an event was claimed twice"
    );
    // Both processes did work: each one's workers processed some of the events, and together
    // exactly all of them.
    let (by_a, by_b) = (
        processed_here(&client, &a).await,
        processed_here(&client, &b).await,
    );
    println!("processed by A: {by_a}, by B: {by_b}");
    assert!(
        by_a > 0 && by_b > 0,
        "both processes processed events: A {by_a}, B {by_b}"
    );
    assert_eq!(by_a + by_b, 300, "A {by_a} + B {by_b}");
    let fires = fires(&store.db).await;
    assert_eq!(fires.len(), 300, "exactly one fire per event");
    let keys: HashSet<&str> = fires.iter().map(|f| f.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 300);

    let text = collector.await.expect("collector");
    let seen: HashSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["idempotencyKey"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        seen.len(),
        300,
        "the stream on B saw every fire, including those A made"
    );
    let ids_in_order: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .filter_map(|i| i.parse().ok())
        .collect();
    assert!(
        ids_in_order.windows(2).all(|w| w[0] < w[1]),
        "stream ids only grow"
    );
    drop((a, b));
}
