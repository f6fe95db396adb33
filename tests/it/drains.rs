//! Drains end to end: the real `hookgate` binary with `[[drains]]` in its config file, sending
//! to loopback sinks. The OTLP bodies are parsed with the official protobuf definitions
//! (`opentelemetry-proto` from PyPI) and the `http` drain's batches verified with the Standard
//! Webhooks reference library (`standardwebhooks`), both in a venv the test makes; a sink that
//! answers 503 for a while, one that answers 401, and a SIGKILL mid-stream lose no record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hookgate::providers::ProviderId;
use hookgate_providers::testkit::example_secret;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::cli::{hookgate, Server};
use crate::cluster::signed_stripe;
use crate::support::{Backend, TestStore};

const TOKEN: &str = "drains-admin-token-0123456789";
/// The `Authorization` value of the OTLP drain (a secret: it must never be shown or drained).
const SINK_TOKEN: &str = "Bearer drain-sink-token-0123456789";
/// The `http` drain's signing secret.
const DRAIN_SECRET: &str = "whsec_ZHJhaW4tc2lnbmluZy1zZWNyZXQtMzItYnl0ZXMh";
/// An `Authorization` value a client sends with a webhook (logged redacted, never drained).
const CLIENT_AUTH: &str = "Bearer client-auth-value-0123456789";

/// One request a sink got, with the status it answered.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub status: u16,
}

/// A loopback sink: answers `status` (shared, changeable) on `/v1/logs` and `/http`, 200 on
/// `/endpoint` (the delivery endpoint).
#[derive(Clone)]
pub struct Sink {
    log: Arc<Mutex<Vec<Got>>>,
    status: Arc<AtomicU16>,
}

async fn sink_receive(
    State(sink): State<Sink>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let status = if path == "endpoint" {
        200
    } else {
        sink.status.load(Ordering::SeqCst)
    };
    sink.log.lock().expect("lock").push(Got {
        path: format!("/{path}"),
        headers,
        body: body.to_vec(),
        status,
    });
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::OK)
        .into_response()
}

impl Sink {
    pub async fn start() -> (Sink, SocketAddr) {
        let sink = Sink {
            log: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let app = Router::new()
            .route("/{*path}", post(sink_receive))
            .with_state(sink.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (sink, addr)
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn got(&self, path: &str) -> Vec<Got> {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }

    /// The records of every batch on `path` the sink accepted (2xx), flattened.
    pub fn accepted(&self, path: &str) -> Vec<Rec> {
        self.got(path)
            .iter()
            .filter(|g| (200..300).contains(&g.status))
            .flat_map(|g| records(path, &g.body))
            .collect()
    }
}

/// A drained record: its kind and its attributes as strings.
#[derive(Debug, Clone)]
pub struct Rec {
    pub kind: String,
    pub attrs: HashMap<String, String>,
}

impl Rec {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

/// Parses a batch of either drain kind.
fn records(path: &str, body: &[u8]) -> Vec<Rec> {
    let v: Value = serde_json::from_slice(body).expect("a drained body is JSON");
    if path == "/v1/logs" {
        let mut out = Vec::new();
        for rl in v["resourceLogs"].as_array().expect("resourceLogs") {
            for sl in rl["scopeLogs"].as_array().expect("scopeLogs") {
                for r in sl["logRecords"].as_array().expect("logRecords") {
                    let mut attrs = HashMap::new();
                    for a in r["attributes"].as_array().expect("attributes") {
                        let value = &a["value"];
                        let text = value["stringValue"]
                            .as_str()
                            .or_else(|| value["intValue"].as_str())
                            .expect("string or int value")
                            .to_owned();
                        attrs.insert(a["key"].as_str().expect("key").to_owned(), text);
                    }
                    let kind = attrs["hookgate.record"].clone();
                    out.push(Rec { kind, attrs });
                }
            }
        }
        out
    } else {
        v.as_array()
            .expect("an http drain sends an array")
            .iter()
            .map(|r| {
                let attrs = r["attributes"]
                    .as_object()
                    .expect("attributes")
                    .iter()
                    .map(|(k, v)| {
                        let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (k.clone(), text)
                    })
                    .collect();
                Rec {
                    kind: r["record"].as_str().expect("record").to_owned(),
                    attrs,
                }
            })
            .collect()
    }
}

struct Gateway {
    server: Server,
    client: reqwest::Client,
}

impl Gateway {
    async fn start(store: &TestStore, dir: &std::path::Path, config: &str) -> Gateway {
        let path = dir.join("hookgate.toml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = hookgate(dir, &store.binary_url());
        cmd.env("HOOKGATE_TEST_SINK_TOKEN", SINK_TOKEN)
            .arg("--config")
            .arg(&path)
            .arg("serve");
        let server = tokio::task::spawn_blocking(move || Server::start(cmd))
            .await
            .expect("start");
        Gateway {
            server,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// Sends Stripe event `n` (signed); returns the status.
    async fn stripe(&self, n: usize, tag: &str) -> u16 {
        let body =
            json!({"id": format!("evt_{tag}_{n}"), "object": "event", "type": "invoice.paid",
            "created": 1_700_000_000 + n,
            "data": {"object": {"id": format!("in_{tag}_{n}"), "customer": format!("cus_{tag}_{n}"),
                                "customer_email": format!("buyer{n}@{tag}.example.com")}}})
            .to_string()
            .into_bytes();
        signed_stripe(
            &self.client,
            &self.server.url("/integrations/stripe/webhook/stripe"),
            body,
        )
        .header("authorization", CLIENT_AUTH)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
    }

    async fn get(&self, path: &str) -> String {
        self.client
            .get(self.server.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text")
    }

    async fn drains(&self) -> Vec<Value> {
        let body: Value = serde_json::from_str(&self.get("/admin/drains").await).expect("json");
        body["items"].as_array().cloned().expect("items")
    }

    async fn drain(&self, id: &str) -> Value {
        self.drains()
            .await
            .into_iter()
            .find(|d| d["id"] == id)
            .expect("drain listed")
    }
}

fn base_config(sink: SocketAddr) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
         [[connections]]\nid = \"stripe\"\nprovider = \"stripe\"\nsecrets = [\"{}\"]\n\
         [delivery]\nallow_http = true\nallow_cidrs = [\"127.0.0.0/8\"]\nretry_schedule_secs = [60]\n\
         [[endpoints]]\nid = \"ep\"\nurl = \"http://{sink}/endpoint\"\n",
        example_secret(ProviderId::Stripe)
    )
}

async fn until(what: &str, server: &Server, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A venv's python with `opentelemetry-proto`, `protobuf` and `standardwebhooks` importable.
fn python() -> PathBuf {
    crate::support::python_venv(
        "drains-venv",
        "standardwebhooks, google.protobuf, opentelemetry.proto.collector.logs.v1.logs_service_pb2",
        &["opentelemetry-proto", "protobuf", "standardwebhooks"],
    )
}

/// Runs tests/it/py/drain_check.py over the bodies; returns its verdict.
async fn python_check(otlp: &[Got], http: &[Got]) -> Value {
    let python = tokio::task::spawn_blocking(python).await.expect("venv");
    let headers = |h: &HeaderMap| -> BTreeMap<String, String> {
        h.iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect()
    };
    let input = json!({
        "secret": DRAIN_SECRET,
        "otlp": otlp.iter().map(|g| String::from_utf8_lossy(&g.body).into_owned()).collect::<Vec<_>>(),
        "http": http.iter().map(|g| json!({"headers": headers(&g.headers), "body": String::from_utf8_lossy(&g.body)})).collect::<Vec<_>>(),
    });
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), input.to_string()).expect("write");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/py/drain_check.py");
    let out = Command::new(python)
        .arg(script)
        .arg(file.path())
        .output()
        .expect("run drain_check.py");
    assert!(
        out.status.success(),
        "drain_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("drain_check.py prints JSON")
}

backend_tests!(drains_send_every_record_kind_checked_independently);

/// Both kinds of drain, every kind of record: each event's ingest and processing records and
/// the delivery attempts arrive once, the OTLP bodies parse as `ExportLogsServiceRequest`, the
/// `http` batches verify with the Standard Webhooks reference library, and nothing secret (the
/// sink's token, the drain's secret, the connection's secret, a client's `Authorization`) or
/// from a request body is drained or shown.
async fn drains_send_every_record_kind_checked_independently(backend: Backend) {
    let (sink, addr) = Sink::start().await;
    let store = TestStore::new(&backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "{}\n[[drains]]\nid = \"otel\"\nkind = \"otlp_http\"\nurl = \"http://{addr}\"\n\
         headers = {{\"Authorization\" = \"${{HOOKGATE_TEST_SINK_TOKEN}}\"}}\n\
         [[drains]]\nid = \"siem\"\nkind = \"http\"\nurl = \"http://{addr}/http\"\nsecret = \"{DRAIN_SECRET}\"\n",
        base_config(addr)
    );
    let gw = Gateway::start(&store, dir.path(), &config).await;
    const EVENTS: usize = 6;
    for n in 0..EVENTS {
        assert_eq!(gw.stripe(n, "drain").await, 200);
    }
    // A rejected request: signed with the wrong secret, carrying an Authorization header.
    let rejected = gw
        .client
        .post(gw.server.url("/integrations/stripe/webhook/stripe"))
        .header("stripe-signature", "t=1,v1=00")
        .header("authorization", CLIENT_AUTH)
        .body("{\"id\":\"evt_forged\",\"secret_note\":\"body-text-never-drained\"}")
        .send()
        .await
        .expect("send")
        .status()
        .as_u16();
    assert_eq!(rejected, 401);
    let complete = |path: &str| {
        let recs = sink.accepted(path);
        let ingest = recs
            .iter()
            .filter(|r| r.kind == "ingest" && r.attr("hookgate.outcome") == Some("accepted"))
            .count();
        let rejected = recs
            .iter()
            .filter(|r| r.kind == "ingest" && r.attr("hookgate.outcome") == Some("rejected"))
            .count();
        let processed = recs
            .iter()
            .filter(|r| r.kind == "processing" && r.attr("hookgate.outcome") == Some("processed"))
            .count();
        let delivered = recs
            .iter()
            .filter(|r| r.kind == "delivery" && r.attr("hookgate.outcome") == Some("succeeded"))
            .count();
        ingest >= EVENTS && rejected >= 1 && processed >= EVENTS && delivered >= 1
    };
    until("every record kind on both drains", &gw.server, || {
        complete("/v1/logs") && complete("/http")
    })
    .await;
    for path in ["/v1/logs", "/http"] {
        let recs = sink.accepted(path);
        // Exactly once: no ingest row or processing outcome twice.
        let mut seen = HashSet::new();
        for r in &recs {
            let key = (
                r.kind.clone(),
                r.attr("hookgate.ingest_id").unwrap_or_default().to_owned(),
                r.attr("hookgate.delivery_id")
                    .unwrap_or_default()
                    .to_owned(),
                r.attr("hookgate.attempt").unwrap_or_default().to_owned(),
                r.attr("hookgate.outcome").unwrap_or_default().to_owned(),
            );
            assert!(seen.insert(key.clone()), "{path}: {key:?} sent twice");
        }
        let ingest: Vec<&Rec> = recs
            .iter()
            .filter(|r| r.kind == "ingest" && r.attr("hookgate.outcome") == Some("accepted"))
            .collect();
        for n in 0..EVENTS {
            let r = ingest
                .iter()
                .find(|r| r.attr("hookgate.event_id") == Some(format!("evt_drain_{n}").as_str()))
                .unwrap_or_else(|| panic!("{path}: no ingest record of event {n}: {recs:?}"));
            assert_eq!(r.attr("hookgate.provider"), Some("stripe"));
            assert_eq!(r.attr("hookgate.connection"), Some("stripe"));
            assert_eq!(r.attr("hookgate.event_type"), Some("invoice.paid"));
            assert_eq!(r.attr("http.response.status_code"), Some("200"));
        }
        let forged = recs
            .iter()
            .find(|r| r.kind == "ingest" && r.attr("hookgate.outcome") == Some("rejected"))
            .expect("the rejected request");
        assert_eq!(forged.attr("http.response.status_code"), Some("401"));
        assert!(forged.attr("hookgate.reason").is_some(), "{forged:?}");
        let delivery = recs
            .iter()
            .find(|r| r.kind == "delivery")
            .expect("a delivery record");
        assert_eq!(delivery.attr("hookgate.endpoint"), Some("ep"));
        assert_eq!(delivery.attr("http.response.status_code"), Some("200"));
    }
    // The OTLP drain sends its headers; the http drain signs.
    let otlp = sink.got("/v1/logs");
    assert!(otlp
        .iter()
        .all(|g| g.headers["authorization"] == SINK_TOKEN));
    let http = sink.got("/http");
    assert!(http
        .iter()
        .all(|g| g.headers.contains_key("webhook-signature")));
    let verdict = python_check(&otlp, &http).await;
    assert_eq!(verdict["errors"], json!([]), "{verdict}");
    assert!(
        verdict["otlp_records"].as_u64() >= Some(3 * EVENTS as u64)
            && verdict["http_records"].as_u64() >= Some(3 * EVENTS as u64),
        "{verdict}"
    );
    // Secret hygiene: nothing secret and nothing from a body leaves through a drain.
    let stripe_secret = example_secret(ProviderId::Stripe);
    let forbidden = [
        stripe_secret,
        "drain-sink-token",
        "ZHJhaW4tc2lnbmluZy1zZWNyZXQ",
        "client-auth-value",
        "body-text-never-drained",
        "customer_email",
        "@drain.example.com",
        "in_drain_",
    ];
    for g in otlp.iter().chain(http.iter()) {
        let text = String::from_utf8_lossy(&g.body);
        for f in forbidden {
            assert!(!text.contains(f), "{f} drained: {text}");
        }
    }
    // The admin view: both drains, running, progress, header names but no values.
    let list = gw.get("/admin/drains").await;
    for f in forbidden {
        assert!(!list.contains(f), "{f} in /admin/drains: {list}");
    }
    let otel = gw.drain("otel").await;
    assert_eq!(otel["state"], "running", "{otel}");
    assert_eq!(otel["kind"], "otlp_http");
    assert_eq!(otel["header_names"], json!(["Authorization"]));
    assert_eq!(otel["records"], json!(["ingest", "delivery", "processing"]));
    assert!(otel["sent"].as_i64() >= Some(3 * EVENTS as i64), "{otel}");
    assert!(otel["position"].as_i64() > Some(0), "{otel}");
    let metrics = crate::support::metrics(&gw.client, gw.server.url("/metrics")).await;
    assert!(
        metrics.contains("hookgate_drain_records_sent_total{drain=\"otel\"}"),
        "{metrics}"
    );
    // Nor does the gateway's own output show them.
    let log = gw.server.log();
    for f in [
        "drain-sink-token",
        "ZHJhaW4tc2lnbmluZy1zZWNyZXQ",
        "client-auth-value",
    ] {
        assert!(!log.contains(f), "{f} in the log");
    }
    gw.server.stop();
}

backend_tests!(drain_outage_and_refusal_lose_nothing_and_send_once);

/// A sink that answers 503 for a while (the drain retries with backoff), then 200: every
/// record arrives, each once. A sink that answers 401 pauses the drain, visibly in
/// `GET /admin/drains` and the metrics; `resume` sends the held batch once the sink is fixed.
async fn drain_outage_and_refusal_lose_nothing_and_send_once(backend: Backend) {
    let (sink, addr) = Sink::start().await;
    sink.set(503);
    let store = TestStore::new(&backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "{}\n[[drains]]\nid = \"otel\"\nkind = \"otlp_http\"\nurl = \"http://{addr}/\"\nrecords = [\"ingest\"]\n",
        base_config(addr)
    );
    let gw = Gateway::start(&store, dir.path(), &config).await;
    const EVENTS: usize = 30;
    for n in 0..EVENTS {
        assert_eq!(gw.stripe(n, "outage").await, 200);
    }
    until("two refused batches", &gw.server, || {
        sink.got("/v1/logs").len() >= 2
    })
    .await;
    let otel = gw.drain("otel").await;
    assert_eq!(otel["state"], "retrying", "{otel}");
    assert!(
        otel["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{otel}"
    );
    assert!(otel["queued"].as_i64() >= Some(1) || otel["lag_seconds"].as_i64() >= Some(0));
    sink.set(200);
    let ids = |sink: &Sink| -> Vec<String> {
        sink.accepted("/v1/logs")
            .iter()
            .filter_map(|r| r.attr("hookgate.event_id").map(str::to_owned))
            .collect()
    };
    until("every record after the outage", &gw.server, || {
        ids(&sink).len() >= EVENTS
    })
    .await;
    let got = ids(&sink);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(got.len(), EVENTS, "some record sent twice: {got:?}");
    assert_eq!(unique.len(), EVENTS);
    // Every record, and no more: a 503 is never counted as delivered.
    for n in 0..EVENTS {
        assert!(unique.contains(&format!("evt_outage_{n}")), "{n} lost");
    }
    // A refusal pauses the drain.
    sink.set(401);
    assert_eq!(gw.stripe(999, "outage").await, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let otel = gw.drain("otel").await;
        if otel["state"] == "paused" {
            assert!(
                otel["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("401")),
                "{otel}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never paused: {otel}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = crate::support::metrics(&gw.client, gw.server.url("/metrics")).await;
    assert!(
        metrics.contains("hookgate_drain_batches_failed_total{drain=\"otel\",action=\"paused\"} 1"),
        "{metrics}"
    );
    sink.set(200);
    let resumed = gw
        .client
        .post(gw.server.url("/admin/drains/otel/resume"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("resume")
        .status()
        .as_u16();
    assert_eq!(resumed, 200);
    until("the held record after resume", &gw.server, || {
        ids(&sink).contains(&"evt_outage_999".to_owned())
    })
    .await;
    assert_eq!(ids(&sink).len(), EVENTS + 1);
    assert_eq!(gw.drain("otel").await["state"], "running");
    gw.server.stop();
}

backend_tests!(drain_survives_sigkill_without_losing_records);

/// A gateway SIGKILLed while it receives and drains: after a restart on the same store, every
/// acknowledged event's ingest record reaches the sink (at least once; a batch the sink
/// accepted just before the kill may come again).
async fn drain_survives_sigkill_without_losing_records(backend: Backend) {
    let (sink, addr) = Sink::start().await;
    let store = TestStore::new(&backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "{}\n[[drains]]\nid = \"otel\"\nkind = \"otlp_http\"\nurl = \"http://{addr}\"\nrecords = [\"ingest\"]\n",
        base_config(addr)
    );
    let gw = Gateway::start(&store, dir.path(), &config).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let acked = Arc::clone(&acked);
        let stop = Arc::clone(&stop);
        let client = gw.client.clone();
        let url = gw.server.url("/integrations/stripe/webhook/stripe");
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"id": format!("evt_kill_{n}"), "object": "event", "type": "invoice.paid",
                    "created": 1_700_000_000 + n, "data": {"object": {"id": format!("in_kill_{n}"),
                    "customer": "cus_kill", "customer_email": "kill@example.com"}}})
                .to_string()
                .into_bytes();
                if let Ok(r) = signed_stripe(&client, &url, body).send().await {
                    if r.status().as_u16() == 200 {
                        acked.lock().expect("lock").push(format!("evt_kill_{n}"));
                    }
                }
                n += 1;
            }
        })
    };
    // Kill while records are both sent and waiting.
    until("some records drained", &gw.server, || {
        sink.accepted("/v1/logs").len() >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.server.kill();
    stop.store(true, Ordering::SeqCst);
    sender.await.expect("sender");
    let before = acked.lock().expect("lock").len();
    assert!(before > 20, "{before}");
    let gw = Gateway::start(&store, dir.path(), &config).await;
    for n in 0..5 {
        assert_eq!(gw.stripe(n, "after").await, 200);
        acked.lock().expect("lock").push(format!("evt_after_{n}"));
    }
    let acked = acked.lock().expect("lock").clone();
    let seen = |sink: &Sink| -> HashSet<String> {
        sink.accepted("/v1/logs")
            .iter()
            .filter(|r| r.attr("hookgate.outcome") == Some("accepted"))
            .filter_map(|r| r.attr("hookgate.event_id").map(str::to_owned))
            .collect()
    };
    until("every acknowledged event's record", &gw.server, || {
        let seen = seen(&sink);
        acked.iter().all(|id| seen.contains(id))
    })
    .await;
    let all: Vec<String> = sink
        .accepted("/v1/logs")
        .iter()
        .filter_map(|r| r.attr("hookgate.event_id").map(str::to_owned))
        .collect();
    let unique: HashSet<&String> = all.iter().collect();
    println!(
        "drain crash: {} acknowledged, {} records received, {} sent again after the kill",
        acked.len(),
        all.len(),
        all.len() - unique.len()
    );
    gw.server.stop();
}

backend_tests!(feed_rows_a_sink_never_accepted_are_purged_with_retention);

/// A drain whose sink is dead keeps its records for `ingest_days`, then the retention purge
/// removes them like the payloads it covers; before that nothing is purged.
async fn feed_rows_a_sink_never_accepted_are_purged_with_retention(backend: Backend) {
    use hookgate::retention::{purge, Retention, DRAIN_FEED};
    const SECRET: &str = "whsec_drain_retention";
    let dead = hookgate::drains::DrainInput {
        id: "dead".into(),
        kind: "otlp_http".into(),
        url: "http://127.0.0.1:9".into(),
        ..Default::default()
    }
    .build()
    .expect("a valid drain");
    let app = crate::support::TestApp::builder(backend)
        .connection("stripe", ProviderId::Stripe, &[SECRET])
        .config(|c| c.drains = vec![dead])
        .start()
        .await;
    let event = json!({"id": "evt_feed", "object": "event", "type": "customer.updated", "created": 1_700_000_000,
        "data": {"object": {"id": "cus_f", "object": "customer", "email": "feed@example.com", "name": "Fe Ed"}}})
    .to_string()
    .into_bytes();
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &event,
        SECRET,
        crate::support::now_options(),
    )
    .await
    .assert_outcome("accepted");
    crate::pipeline::settle(&app.store.db).await;
    let db = &app.store.db;
    // The ingest record and the processing outcome wait for the dead sink.
    let queued = hookgate::drains::store::queued(db, "dead", 100)
        .await
        .expect("count");
    assert_eq!(queued, 2);
    let feed = |p: &[hookgate::retention::Purged]| {
        p.iter()
            .find(|p| p.what == DRAIN_FEED)
            .map(|p| p.rows)
            .expect("a drain feed step")
    };
    let now = hookgate::now_ms();
    let retention = Retention::default();
    assert_eq!(
        feed(&purge(db, &retention, now, false).await.expect("purge")),
        0
    );
    let later = now + 31 * 86_400_000;
    assert_eq!(
        feed(&purge(db, &retention, later, true).await.expect("dry run")),
        2
    );
    assert_eq!(
        feed(&purge(db, &retention, later, false).await.expect("purge")),
        2
    );
    let queued = hookgate::drains::store::queued(db, "dead", 100)
        .await
        .expect("count");
    assert_eq!(queued, 0);
}

/// Two gateways on one PostgreSQL database, both declaring the same drain, both receiving: one
/// holds the drain's lease and sends, the other stands by, and every ingest record (from
/// either process) arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_drain_on_postgres() {
    let Some(backend @ Backend::Postgres(_)) = Backend::postgres() else {
        return; // Not run, and said so (under CI, `Backend::postgres` fails instead).
    };
    let (sink, addr) = Sink::start().await;
    let store = TestStore::new(&backend).await;
    let config = format!(
        "{}\n[[drains]]\nid = \"otel\"\nkind = \"otlp_http\"\nurl = \"http://{addr}\"\nrecords = [\"ingest\"]\n",
        base_config(addr)
    );
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = Gateway::start(&store, dir_a.path(), &config).await;
    let b = Gateway::start(&store, dir_b.path(), &config).await;
    const EVENTS: usize = 40;
    for n in 0..EVENTS {
        let gw = if n % 2 == 0 { &a } else { &b };
        assert_eq!(gw.stripe(n, "pair").await, 200);
    }
    let ids = |sink: &Sink| -> Vec<String> {
        sink.accepted("/v1/logs")
            .iter()
            .filter_map(|r| r.attr("hookgate.event_id").map(str::to_owned))
            .collect()
    };
    until("every record from both processes", &a.server, || {
        ids(&sink).len() >= EVENTS
    })
    .await;
    // A moment more for a second sender, were there one, to send its copies.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = ids(&sink);
    let unique: HashSet<&String> = got.iter().collect();
    assert_eq!(got.len(), EVENTS, "sent twice: {got:?}");
    assert_eq!(unique.len(), EVENTS);
    let states: Vec<String> = [&a, &b]
        .iter()
        .map(|gw| gw.drain("otel"))
        .collect::<futures::future::JoinAll<_>>()
        .await
        .iter()
        .map(|d| d["state"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut sorted = states.clone();
    sorted.sort();
    assert_eq!(sorted, ["running", "standby"], "{states:?}");
    a.server.stop();
    b.server.stop();
}
