//! Outbound delivery end to end: the real `hookgate` binary, configured with a short retry
//! schedule in its config file, delivering to real loopback receivers that succeed, fail and
//! recover, stall, reset the connection, redirect, rate-limit and answer 410.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hookgate::providers::scheme::standard_webhooks;
use hookgate::providers::{Request as SignedRequest, Secret};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::cli::{hookgate, Server};
use crate::support::{Backend, TestStore};

const TOKEN: &str = "delivery-admin-token-0123456789";
/// Valid endpoint secrets (base64 of 32 bytes).
const SECRET_A: &str = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const SECRET_B: &str = "whsec_ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Loopback receivers; the path picks the behaviour.
#[derive(Clone, Default)]
pub struct Receivers {
    pub log: Arc<Mutex<Vec<Received>>>,
    counts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Receivers {
    pub fn got(&self, path: &str) -> Vec<Received> {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

async fn receive(
    State(r): State<Receivers>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let n = {
        let mut counts = r.counts.lock().expect("lock");
        let n = counts.entry(path.clone()).or_insert(0);
        *n += 1;
        *n
    };
    r.log.lock().expect("lock").push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
    });
    match path.as_str() {
        "ok" => (StatusCode::OK, "thanks").into_response(),
        // Fails twice, then accepts.
        "flaky" if n <= 2 => (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response(),
        "flaky" => StatusCode::NO_CONTENT.into_response(),
        "gone" => (StatusCode::GONE, "unsubscribed").into_response(),
        "redirect" => (
            StatusCode::FOUND,
            [(axum::http::header::LOCATION, "/redirect-target")],
        )
            .into_response(),
        "redirect-target" => StatusCode::OK.into_response(),
        // Longer than the configured 1 s timeout.
        "stall" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK.into_response()
        }
        "limited" if n == 1 => (
            StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::RETRY_AFTER, "1")],
        )
            .into_response(),
        "limited" => StatusCode::OK.into_response(),
        "big" => (StatusCode::BAD_REQUEST, "x".repeat(10_000)).into_response(),
        p if p.starts_with("ok") => StatusCode::OK.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn start_receivers() -> (Receivers, SocketAddr) {
    let receivers = Receivers::default();
    let app = Router::new()
        .route("/{path}", post(receive))
        .with_state(receivers.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (receivers, addr)
}

/// A listener that accepts connections and resets them at once.
async fn start_resetter() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_zero_linger();
            drop(socket);
        }
    });
    addr
}

/// Checks a request with the Standard Webhooks verifier of the providers crate.
pub fn verify(r: &Received, secret: &str) -> bool {
    let request = SignedRequest {
        headers: &r.headers,
        body: &r.body,
        query: None,
    };
    standard_webhooks::verify(&request, &[Secret::new(secret)], hookgate::now_ms(), 300).is_ok()
}

struct Gateway {
    server: Server,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Gateway {
    async fn start(store: &TestStore, config: String) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("hookgate.toml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = hookgate(dir.path(), &store.binary_url());
        cmd.arg("--config")
            .arg(&path)
            .arg("serve")
            // Deliveries never go through a proxy: a dead one here must not matter.
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("ALL_PROXY", "http://127.0.0.1:9");
        let server = tokio::task::spawn_blocking(move || Server::start(cmd))
            .await
            .expect("start");
        Gateway {
            server,
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            _dir: dir,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, self.server.url(path))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn event(&self, event_type: &str) -> Value {
        let (status, body) = self
            .post(
                "/v1/webhooks/test",
                json!({"eventType": event_type, "data": {"email": "ann@example.com", "n": 1}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// The endpoint's deliveries, newest first.
    async fn deliveries(&self, endpoint: &str) -> Vec<Value> {
        let body = self
            .get(&format!("/admin/deliveries?endpoint={endpoint}&limit=100"))
            .await;
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `endpoint` has a delivery of `event_type` in `status`; returns its detail.
    async fn until_status(&self, endpoint: &str, event_type: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let items = self.deliveries(endpoint).await;
            if let Some(d) = items
                .iter()
                .find(|d| d["event_type"] == event_type && d["status"] == status)
            {
                let id = d["id"].as_str().expect("id").to_owned();
                return self.get(&format!("/admin/deliveries/{id}")).await;
            }
            assert!(
                Instant::now() < deadline,
                "{endpoint}: no {event_type} delivery became {status}: {items:?}\n{}",
                self.server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(receivers: SocketAddr, resetter: SocketAddr) -> String {
    let endpoint = |id: &str, path: &str, extra: &str| {
        format!(
            "[[endpoints]]\nid = \"{id}\"\nurl = \"http://{receivers}/{path}\"\nevent_types = [\"test.*\"]\n\
             secrets = [\"{SECRET_A}\"]\n{extra}\n"
        )
    };
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\n\
         [delivery]\ntimeout_secs = 1\nretry_schedule_secs = [1, 1, 2]\ngive_up_after_secs = 6\n\
         allow_http = true\nallow_cidrs = [\"127.0.0.0/8\"]\n\n"
    );
    text.push_str(&format!(
        "[[endpoints]]\nid = \"ok\"\nurl = \"http://{receivers}/ok\"\n\
         event_types = [\"test.*\", \"hookgate.*\"]\nsecrets = [\"{SECRET_A}\", \"{SECRET_B}\"]\n\n"
    ));
    text.push_str(&endpoint("flaky", "flaky", ""));
    text.push_str(&endpoint("gone", "gone", ""));
    text.push_str(&endpoint("redirect", "redirect", ""));
    text.push_str(&endpoint("stall", "stall", "max_in_flight = 1"));
    text.push_str(&endpoint("limited", "limited", ""));
    text.push_str(&endpoint("big", "big", ""));
    text.push_str(&endpoint(
        "shaped",
        "ok-shaped",
        "transform = '''if .data.n == 2 then null else {email: .data.email, kind: .type} end'''",
    ));
    text.push_str(&format!(
        "[[endpoints]]\nid = \"reset\"\nurl = \"http://{resetter}/\"\nevent_types = [\"test.*\"]\n\
         secrets = [\"{SECRET_A}\"]\n\n\
         [[endpoints]]\nid = \"other\"\nurl = \"http://{receivers}/ok-other\"\nevent_types = [\"stripe.*\"]\n\
         secrets = [\"{SECRET_A}\"]\n"
    ));
    text
}

async fn delivers_retries_and_gives_up(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let (receivers, addr) = start_receivers().await;
    let resetter = start_resetter().await;
    let gw = Gateway::start(&store, config(addr, resetter)).await;
    let event = gw.event("test.ping").await;
    let message_id = event["messageId"].as_str().expect("messageId").to_owned();
    assert!(message_id.starts_with("msg_"), "{event}");

    // 2xx: delivered once, signed with both active secrets, the Standard Webhooks body.
    let ok = gw.until_status("ok", "test.ping", "succeeded").await;
    assert_eq!(ok["attempts"], 1, "{ok}");
    assert_eq!(ok["message_id"], message_id.as_str());
    // (`ok` also subscribes to `hookgate.*`, so other events may reach it meanwhile.)
    let got: Vec<Received> = receivers
        .got("ok")
        .into_iter()
        .filter(|r| r.headers["webhook-id"] == message_id.as_str())
        .collect();
    assert_eq!(got.len(), 1);
    assert!(verify(&got[0], SECRET_A) && verify(&got[0], SECRET_B));
    assert!(!verify(
        &got[0],
        "whsec_c29tZSBvdGhlciBrZXkgb2YgdHdlbnR5IGZvdXI="
    ));
    assert_eq!(got[0].headers["webhook-id"], message_id.as_str());
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert!(got[0].headers["user-agent"]
        .to_str()
        .expect("ua")
        .starts_with("hookgate/"));
    assert_eq!(
        got[0].headers["webhook-signature"]
            .to_str()
            .expect("sig")
            .split(' ')
            .count(),
        2
    );
    let body: Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(body["id"], message_id.as_str());
    assert_eq!(body["type"], "test.ping");
    assert_eq!(body["workspace"], "default");
    assert_eq!(body["data"]["email"], "ann@example.com");
    assert_eq!(body["timestamp"], event["timestamp"]);

    // Failures retried on the schedule; every attempt the same bytes and the same webhook-id.
    let flaky = gw.until_status("flaky", "test.ping", "succeeded").await;
    assert_eq!(flaky["attempts"], 3, "{flaky}");
    let log = flaky["attempt_log"].as_array().expect("log");
    assert_eq!(
        log.iter()
            .map(|a| a["status_code"].as_i64())
            .collect::<Vec<_>>(),
        vec![Some(500), Some(500), Some(204)]
    );
    assert_eq!(log[0]["response_body"], "try again");
    let got = receivers.got("flaky");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.body == got[0].body));
    assert!(got
        .iter()
        .all(|r| r.headers["webhook-id"] == message_id.as_str()));
    // The first retry waits about the first step (1 s ± 10 %).
    let gap =
        log[1]["started_at"].as_i64().expect("t1") - log[0]["started_at"].as_i64().expect("t0");
    assert!((850..3000).contains(&gap), "retry after {gap} ms");

    // 429 with Retry-After is honoured.
    let limited = gw.until_status("limited", "test.ping", "succeeded").await;
    assert_eq!(limited["attempts"], 2, "{limited}");

    // 410 disables the endpoint, pauses the delivery and emits hookgate.endpoint.disabled.
    let gone = gw.until_status("gone", "test.ping", "paused").await;
    assert_eq!(gone["last_status_code"], 410);
    let endpoint = gw.get("/admin/endpoints/gone").await;
    assert_eq!(endpoint["enabled"], false, "{endpoint}");
    assert!(endpoint["disabled_reason"]
        .as_str()
        .unwrap_or("")
        .contains("410"));
    let disabled = gw
        .until_status("ok", "hookgate.endpoint.disabled", "succeeded")
        .await;
    assert_eq!(disabled["attempts"], 1);
    let events = gw
        .get("/v1/events?event_type=hookgate.endpoint.disabled")
        .await;
    assert_eq!(
        events["events"][0]["payload"]["endpoint_id"], "gone",
        "{events}"
    );
    // Re-enabling releases the held delivery (it answers 410 again and is held again).
    let (status, _) = gw.post("/admin/endpoints/gone/enable", json!({})).await;
    assert_eq!(status, 200);
    until("the held delivery", || receivers.got("gone").len() >= 2).await;
    gw.until_status("gone", "test.ping", "paused").await;
    // A disabled endpoint gets no deliveries for new events; its held ones wait.
    gw.event("test.second").await;
    gw.until_status("ok", "test.second", "succeeded").await;
    assert!(gw
        .deliveries("gone")
        .await
        .iter()
        .all(|d| d["event_type"] != "test.second"));
    assert_eq!(receivers.got("gone").len(), 2);

    // A redirect is a failure, never followed; past give_up_after_secs the delivery is dead.
    let redirect = gw.until_status("redirect", "test.ping", "dead").await;
    let log = redirect["attempt_log"].as_array().expect("log");
    assert!(log.len() >= 2, "{redirect}");
    assert!(log.iter().all(|a| a["status_code"] == 302), "{redirect}");
    assert!(log[0]["error"].as_str().unwrap_or("").contains("redirect"));
    assert!(receivers.got("redirect-target").is_empty());

    // A stalled endpoint times out; a reset connection is a transport error; both end dead.
    let stall = gw.until_status("stall", "test.ping", "dead").await;
    let first = &stall["attempt_log"][0];
    assert_eq!(first["status_code"], 0, "{stall}");
    assert!(
        first["error"].as_str().unwrap_or("").contains("timed out"),
        "{stall}"
    );
    assert!(first["duration_ms"].as_i64().unwrap_or(0) >= 900, "{stall}");
    let reset = gw.until_status("reset", "test.ping", "dead").await;
    assert_eq!(reset["attempt_log"][0]["status_code"], 0, "{reset}");
    assert!(
        reset["attempt_log"][0]["error"].as_str().is_some(),
        "{reset}"
    );

    // The attempt log keeps the first 4 KiB of a response.
    let big = gw.until_status("big", "test.ping", "dead").await;
    assert_eq!(
        big["attempt_log"][0]["response_body"]
            .as_str()
            .map(str::len),
        Some(4096)
    );

    // A transform reshapes the body; `null` skips.
    gw.until_status("shaped", "test.ping", "succeeded").await;
    let shaped: Value = serde_json::from_slice(&receivers.got("ok-shaped")[0].body).expect("json");
    assert_eq!(
        shaped,
        json!({"email": "ann@example.com", "kind": "test.ping"})
    );
    let (status, _) = gw
        .post(
            "/v1/webhooks/test",
            json!({"eventType": "test.skip", "data": {"n": 2}}),
        )
        .await;
    assert_eq!(status, 201);
    gw.until_status("shaped", "test.skip", "skipped").await;

    // Globs: an endpoint for stripe.* got nothing.
    assert!(gw.deliveries("other").await.is_empty());
    assert!(receivers.got("ok-other").is_empty());

    // Bulk requeue of dead deliveries, then a resend of one that succeeded.
    let (status, body) = gw
        .post(
            "/admin/deliveries/requeue",
            json!({"endpoint": "redirect", "status": "dead", "event_type": "test.ping"}),
        )
        .await;
    assert_eq!(
        (status, body["requeued"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let before = receivers.got("ok").len();
    let ok_id = ok["id"].as_str().expect("id");
    let (status, body) = gw
        .post(&format!("/admin/deliveries/{ok_id}/resend"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    until("the resend", || receivers.got("ok").len() > before).await;
    let resent = receivers.got("ok");
    let again = resent
        .iter()
        .filter(|r| r.headers["webhook-id"] == message_id.as_str())
        .collect::<Vec<_>>();
    assert_eq!(again.len(), 2);
    assert_eq!(
        again[0].body, again[1].body,
        "a resend sends the same bytes"
    );

    // Held past give_up_after_secs while disabled, the delivery is dead (kept and listed).
    let gone = gw.until_status("gone", "test.ping", "dead").await;
    assert!(
        gone["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("disabled"),
        "{gone}"
    );

    // Metrics.
    let metrics = crate::support::metrics(&gw.client, gw.server.url("/metrics")).await;
    assert!(
        metrics.contains("hookgate_deliveries_total{endpoint=\"ok\",outcome=\"succeeded\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookgate_delivery_latency_seconds_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookgate_delivery_backlog{endpoint=\"ok\"}"),
        "{metrics}"
    );
    gw.server.stop();
}

async fn endpoints_api_and_replay(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let (receivers, addr) = start_receivers().await;
    let resetter = start_resetter().await;
    let gw = Gateway::start(&store, config(addr, resetter)).await;
    // Events from before the endpoint exists.
    let first = gw.event("test.old").await;
    gw.event("test.old").await;

    // Validation names the key; refused destinations are 400 destination_not_allowed.
    let url = format!("http://{addr}/ok-late");
    for (input, code, key) in [
        (
            json!({"id": "x", "url": "https://169.254.169.254/latest"}),
            "destination_not_allowed",
            "url",
        ),
        (
            json!({"id": "x", "url": "https://10.1.2.3/in"}),
            "destination_not_allowed",
            "url",
        ),
        (
            json!({"id": "x", "url": "https://[::ffff:192.168.0.1]/in"}),
            "destination_not_allowed",
            "url",
        ),
        (
            json!({"id": "x", "url": "ftp://example.com/in"}),
            "invalid_request",
            "url",
        ),
        (
            json!({"id": "x", "url": "https://u:p@example.com/in"}),
            "invalid_request",
            "url",
        ),
        (
            json!({"id": "x", "url": url, "event_types": ["a b"]}),
            "invalid_request",
            "event_types[0]",
        ),
        (
            json!({"id": "x", "url": url, "secrets": ["plain"]}),
            "invalid_request",
            "secrets[0]",
        ),
        (
            json!({"id": "x", "url": url, "transform": "{a: "}),
            "invalid_request",
            "transform",
        ),
        (
            json!({"id": "x", "url": url, "colour": "red"}),
            "invalid_request",
            "colour",
        ),
    ] {
        let (status, body) = gw.post("/admin/endpoints", input.clone()).await;
        assert_eq!(status, 400, "{input}: {body}");
        assert_eq!(body["error"], code, "{input}: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(key),
            "{input}: {body}"
        );
    }

    // Created through the API: the generated secret is shown once, never again.
    let (status, created) = gw
        .post(
            "/admin/endpoints",
            json!({"id": "late", "url": url, "event_types": ["test.*"]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("whsec_"));
    let shown = gw.get("/admin/endpoints/late").await;
    assert!(shown.get("secret").is_none() && !shown.to_string().contains(&secret));
    let (status, _) = gw
        .post("/admin/endpoints", json!({"id": "late", "url": url}))
        .await;
    assert_eq!(status, 409);

    // Replay over a range delivers events from before the endpoint existed.
    let (status, body) = gw
        .post(
            "/admin/endpoints/late/replay",
            json!({"since": first["timestamp"], "event_type": "test.old"}),
        )
        .await;
    assert_eq!((status, body["queued"].as_u64()), (200, Some(2)), "{body}");
    until("replayed events", || receivers.got("ok-late").len() == 2).await;
    for r in receivers.got("ok-late") {
        assert!(verify(&r, &secret));
    }

    // Rotation: the new secret signs, and the old one still does for 24 h.
    let (status, rotated) = gw.post("/admin/endpoints/late/rotate", json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new_secret, secret);
    gw.event("test.after-rotate").await;
    until("a delivery after rotation", || {
        receivers
            .got("ok-late")
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("test.after-rotate"))
    })
    .await;
    // Every delivery of an event created after the rotation carries both signatures (a worker
    // that claimed it before reloading the endpoint once signed it with the old secret alone).
    let after: Vec<_> = receivers
        .got("ok-late")
        .into_iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("test.after-rotate"))
        .collect();
    assert!(!after.is_empty());
    for r in &after {
        assert!(verify(r, &new_secret) && verify(r, &secret));
    }

    // Test send, disable (new events are not queued for it), remove.
    let (status, test) = gw.post("/admin/endpoints/late/test", json!({})).await;
    assert_eq!(
        (status, test["status_code"].as_i64()),
        (200, Some(200)),
        "{test}"
    );
    let (status, _) = gw.post("/admin/endpoints/late/disable", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(gw.get("/admin/endpoints/late").await["enabled"], false);
    let (status, _) = gw
        .call(reqwest::Method::DELETE, "/admin/endpoints/late", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = gw
        .call(reqwest::Method::GET, "/admin/endpoints/late", None)
        .await;
    assert_eq!(status, 404);
    gw.server.stop();
}

/// An endpoint that only fails for `disable_after_secs` is disabled, with a
/// `hookgate.endpoint.disabled` event delivered to the endpoints that subscribe to it.
async fn auto_disable(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let (receivers, addr) = start_receivers().await;
    // A port nobody listens on: every attempt is refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
         [delivery]\ntimeout_secs = 1\nretry_schedule_secs = [1]\ngive_up_after_secs = 600\n\
         disable_after_secs = 2\nallow_http = true\nallow_cidrs = [\"127.0.0.0/8\"]\n\
         [[endpoints]]\nid = \"down\"\nurl = \"http://{closed}/\"\nevent_types = [\"test.*\"]\nsecrets = [\"{SECRET_A}\"]\n\
         [[endpoints]]\nid = \"watcher\"\nurl = \"http://{addr}/ok\"\nevent_types = [\"hookgate.endpoint.disabled\"]\n\
         secrets = [\"{SECRET_A}\"]\n"
    );
    let gw = Gateway::start(&store, config).await;
    gw.event("test.ping").await;
    let disabled = gw
        .until_status("watcher", "hookgate.endpoint.disabled", "succeeded")
        .await;
    assert_eq!(disabled["attempts"], 1);
    let endpoint = gw.get("/admin/endpoints/down").await;
    assert_eq!(endpoint["enabled"], false, "{endpoint}");
    assert!(endpoint["disabled_reason"]
        .as_str()
        .unwrap_or("")
        .contains("disable_after_secs"));
    let held = gw.until_status("down", "test.ping", "paused").await;
    let log = held["attempt_log"].as_array().expect("log");
    assert!(log.len() >= 3, "{held}");
    assert!(log.iter().all(|a| a["status_code"] == 0), "{held}");
    let body: Value = serde_json::from_slice(&receivers.got("ok")[0].body).expect("json");
    assert_eq!(body["type"], "hookgate.endpoint.disabled");
    assert_eq!(body["data"]["endpoint_id"], "down");
    gw.server.stop();
}

/// A request's `webhook-id` and body.
type Seen = (String, Vec<u8>);

/// A delivery interrupted by a crash is sent again after the restart: same body bytes, same
/// `webhook-id`, and `succeeded` only once a 2xx came back.
async fn resent_after_crash(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let hang_first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = {
        let seen = Arc::clone(&seen);
        let hang_first = Arc::clone(&hang_first);
        Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let seen = Arc::clone(&seen);
                let hang = hang_first.swap(false, std::sync::atomic::Ordering::SeqCst);
                async move {
                    let id = headers["webhook-id"].to_str().unwrap_or("").to_owned();
                    seen.lock().expect("lock").push((id, body.to_vec()));
                    if hang {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    StatusCode::OK
                }
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
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
         [delivery]\ntimeout_secs = 5\nretry_schedule_secs = [1]\nallow_http = true\nallow_cidrs = [\"127.0.0.0/8\"]\n\
         [[endpoints]]\nid = \"hook\"\nurl = \"http://{addr}/hook\"\nsecrets = [\"{SECRET_A}\"]\n"
    );
    let gw = Gateway::start(&store, config.clone()).await;
    gw.event("test.crash").await;
    until("the first attempt", || {
        !seen.lock().expect("lock").is_empty()
    })
    .await;
    let Gateway { server, _dir, .. } = gw;
    server.kill();
    let gw = Gateway::start(&store, config).await;
    let done = gw.until_status("hook", "test.crash", "succeeded").await;
    // The killed attempt was never recorded: one attempt, the one that got the 200.
    assert_eq!(done["attempts"], 1, "{done}");
    assert_eq!(done["last_status_code"], 200);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "sent once before the crash and once after");
    assert_eq!(seen[0], seen[1], "same webhook-id and same body bytes");
    assert_eq!(seen[0].0, done["message_id"].as_str().expect("id"));
    gw.server.stop();
}

/// The CLI: `endpoints add|list|show|test|disable|remove`, `deliveries` (list, show, requeue)
/// and `listen --forward-to` against a running gateway.
async fn cli_endpoints_deliveries_listen(backend: Backend) {
    use crate::cli::run;
    let store = TestStore::new(&backend).await;
    let (receivers, addr) = start_receivers().await;
    let resetter = start_resetter().await;
    let gw = Gateway::start(&store, config(addr, resetter)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        "[delivery]\nallow_http = true\nallow_cidrs = [\"127.0.0.0/8\"]\n",
    )
    .expect("config");
    let db = store.binary_url();
    let cli = |args: &[&str]| {
        let mut cmd = hookgate(dir.path(), &db);
        cmd.arg("--config").arg(&cfg).args(args);
        run(&mut cmd)
    };
    // Validation names the key; a private literal is refused without allow_cidrs covering it.
    let (ok, _, err) = cli(&["endpoints", "add", "bad", "--url", "https://10.0.0.1/x"]);
    assert!(
        !ok && err.contains("url") && err.contains("destination_not_allowed"),
        "{err}"
    );
    let url = format!("http://{addr}/ok-cli");
    let (ok, out, err) = cli(&[
        "endpoints",
        "add",
        "cli",
        "--url",
        &url,
        "--event-type",
        "test.*",
    ]);
    assert!(ok, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("signing secret (shown once): "))
        .expect("the generated secret is printed once")
        .to_owned();
    let (ok, out, _) = cli(&["endpoints", "list"]);
    assert!(ok && out.contains("cli") && out.contains(&url), "{out}");
    assert!(!out.contains(&secret));
    let (ok, out, err) = cli(&["endpoints", "test", "cli"]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("\"status_code\": 200"), "{out}");
    // The running gateway picks the new endpoint up and delivers to it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        gw.event("test.cli").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if receivers
            .got("ok-cli")
            .iter()
            .any(|r| verify(r, &secret) && String::from_utf8_lossy(&r.body).contains("test.cli"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the CLI's endpoint never got an event"
        );
    }
    let (ok, out, err) = cli(&["deliveries", "--endpoint", "cli", "--json"]);
    assert!(ok, "{err}");
    let first: Value = serde_json::from_str(out.lines().next().expect("a line")).expect("json");
    assert_eq!(first["endpoint_id"], "cli");
    let id = first["id"].as_str().expect("id").to_owned();
    let (ok, out, _) = cli(&["deliveries", "show", &id]);
    assert!(ok && out.contains(&id), "{out}");
    let (ok, out, _) = cli(&[
        "deliveries",
        "requeue",
        "--endpoint",
        "cli",
        "--status",
        "nope",
    ]);
    assert!(!ok && out.is_empty());
    let (ok, out, _) = cli(&[
        "deliveries",
        "requeue",
        "--endpoint",
        "redirect",
        "--status",
        "dead",
    ]);
    assert!(ok && out.contains("requeued"), "{out}");

    // listen --forward-to: follows the stream, posts each event signed, one line per event.
    let listen_secret = "whsec_bGlzdGVuLWZvcndhcmQtc2VjcmV0LTMyLWJ5dGVz";
    let mut cmd = hookgate(dir.path(), &db);
    cmd.args([
        "listen",
        "--forward-to",
        &format!("http://{addr}/ok-listen"),
        "--gateway",
        &gw.server.url(""),
        "--api-key",
        TOKEN,
        "--event-type",
        "test.listen*",
        "--secret",
        listen_secret,
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("listen");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        gw.event("test.listened").await;
        gw.event("test.other").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        if !receivers.got("ok-listen").is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "listen forwarded nothing");
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let got = receivers.got("ok-listen");
    assert!(got.iter().all(|r| verify(r, listen_secret)));
    assert!(got
        .iter()
        .all(|r| String::from_utf8_lossy(&r.body).contains("test.listened")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("test.listened") && stdout.contains("-> 200"),
        "{stdout}"
    );
    let (ok, _, _) = cli(&["endpoints", "remove", "cli"]);
    assert!(ok);
    let (ok, _, err) = cli(&["endpoints", "show", "cli"]);
    assert!(!ok && err.contains("no endpoint"), "{err}");
    gw.server.stop();
}

/// With a secret key, endpoint secrets are stored encrypted and bound to their endpoint: the
/// stored value holds no secret, reads back with the key, and does not open for another id or
/// without the key.
async fn endpoint_secrets_encrypted_at_rest(backend: Backend) {
    use hookgate::crypto::SecretKey;
    use hookgate::delivery::endpoint::{open_secrets, EndpointInput, EndpointSpec};
    use hookgate::delivery::{manage, store};
    let store_ = TestStore::new(&backend).await;
    let db = &store_.db;
    db.migrate().await.expect("migrate");
    let key = SecretKey::parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        .expect("key");
    let spec = EndpointSpec::build(
        &EndpointInput {
            id: "enc".into(),
            url: "https://hooks.example.com/in".into(),
            secrets: Some(vec![SECRET_A.into()]),
            ..EndpointInput::default()
        },
        &hookgate::delivery::destination::Policy::default(),
    )
    .expect("spec");
    manage::save(db, &spec, Some(&key), "api", false, hookgate::now_ms())
        .await
        .expect("save");
    let rotated = manage::rotate(db, "enc", None, Some(&key), hookgate::now_ms())
        .await
        .expect("rotate")
        .expect("exists");
    let row = store::get_endpoint(db, "enc")
        .await
        .expect("get")
        .expect("row");
    assert!(row.secrets.starts_with("enc:v1:"), "{}", row.secrets);
    for secret in [SECRET_A, rotated.as_str()] {
        let body = &secret["whsec_".len()..];
        assert!(!row.secrets.contains(body));
    }
    let opened = open_secrets("enc", &row.secrets, Some(&key)).expect("opens");
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[0].secret, SECRET_A);
    assert!(
        opened[0].expires_at.is_some(),
        "the old secret expires after 24 h"
    );
    assert!(open_secrets("other", &row.secrets, Some(&key)).is_err());
    assert!(open_secrets("enc", &row.secrets, None).is_err());
    let view = manage::view(&row, Some(&key), hookgate::now_ms()).to_string();
    assert!(!view.contains(&SECRET_A["whsec_".len()..]) && !view.contains(&rotated));
}

/// An endpoint whose attempts all fail gets its circuit opened: its new deliveries wait,
/// unattempted, instead of each being tried, refused and recorded, while its retries go on;
/// once it answers, a retry succeeds, the circuit closes and every waiting delivery arrives.
async fn circuit_holds_new_deliveries_while_down(backend: Backend) {
    let store = TestStore::new(&backend).await;
    // A port nobody listens on until the receiver starts there below.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let gw = Gateway::start(
        &store,
        short_config(
            "allow_cidrs = [\"127.0.0.0/8\"]",
            &format!(
                "[[endpoints]]\nid = \"down\"\nurl = \"http://{down}/ok-back\"\n\
                 event_types = [\"test.*\"]\nsecrets = [\"{SECRET_A}\"]\n"
            ),
        ),
    )
    .await;
    let failures = usize::try_from(hookgate::delivery::worker::CIRCUIT_FAILURES).expect("small");
    for _ in 0..failures {
        gw.event("test.first").await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = gw.deliveries("down").await;
        if items.len() == failures && items.iter().all(|d| d["attempts"].as_i64() >= Some(1)) {
            break;
        }
        assert!(Instant::now() < deadline, "{items:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The circuit is open: these wait (a probe may take one of them a second after a failure).
    for _ in 0..20 {
        gw.event("test.later").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let items = gw.deliveries("down").await;
    let waiting = items
        .iter()
        .filter(|d| {
            d["event_type"] == "test.later" && d["status"] == "pending" && d["attempts"] == 0
        })
        .count();
    assert!(
        waiting >= 18,
        "{waiting} of 20 new deliveries waiting: {items:?}"
    );
    assert!(
        gw.server.log().contains("circuit is open"),
        "{}",
        gw.server.log()
    );
    let gauge = "hookgate_delivery_circuit_open{endpoint=\"down\"}";
    until_metric(&gw, gauge, 1).await;
    // The backlog gauge counts the endpoint's unfinished deliveries, the waiting ones included.
    let backlog = "hookgate_delivery_backlog{endpoint=\"down\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let unfinished = gw
            .deliveries("down")
            .await
            .iter()
            .filter(|d| d["status"] == "pending" || d["status"] == "retrying")
            .count();
        let metrics = crate::support::metrics(&gw.client, gw.server.url("/metrics")).await;
        let counted = metrics
            .lines()
            .find_map(|l| l.strip_prefix(backlog))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if unfinished >= 20 && counted == Some(unfinished) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "backlog gauge {counted:?}, {unfinished} unfinished: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The endpoint comes back: everything arrives, each event once.
    let receivers = Receivers::default();
    let app = Router::new()
        .route("/{path}", post(receive))
        .with_state(receivers.clone());
    let listener = tokio::net::TcpListener::bind(down).await.expect("rebind");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = gw.deliveries("down").await;
        if items.len() == failures + 20 && items.iter().all(|d| d["status"] == "succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "{items:?}\n{}", gw.server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: std::collections::HashSet<String> = receivers
        .got("ok-back")
        .iter()
        .filter_map(|r| {
            r.headers
                .get("webhook-id")?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), failures + 20);
    assert!(
        gw.server.log().contains("circuit is closed"),
        "{}",
        gw.server.log()
    );
    until_metric(&gw, gauge, 0).await;
    until_metric(&gw, backlog, 0).await;
    gw.server.stop();
}

/// Waits until the gateway's `/metrics` shows `series` at `value` (gauges refresh every second).
async fn until_metric(gw: &Gateway, series: &str, value: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = crate::support::metrics(&gw.client, gw.server.url("/metrics")).await;
        if metrics.contains(&format!("{series} {value}\n")) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never {value}: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

backend_tests!(
    endpoint_secrets_encrypted_at_rest,
    cli_endpoints_deliveries_listen,
    delivers_retries_and_gives_up,
    endpoints_api_and_replay,
    auto_disable,
    resent_after_crash,
    circuit_holds_new_deliveries_while_down
);

/// Two processes on one PostgreSQL database deliver each event exactly once between them
/// (a delivery is claimed by one process at a time and nobody fails here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_send_one_delivery_twice() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let store = TestStore::new(&backend).await;
    let (receivers, addr) = start_receivers().await;
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
         [delivery]\nallow_http = true\nallow_cidrs = [\"127.0.0.0/8\"]\n\
         [[endpoints]]\nid = \"shared\"\nurl = \"http://{addr}/ok\"\nmax_in_flight = 8\nsecrets = [\"{SECRET_A}\"]\n"
    );
    let a = Gateway::start(&store, config.clone()).await;
    let b = Gateway::start(&store, config).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let gw = if i % 2 == 0 { &a } else { &b };
        ids.push(
            gw.event("test.cluster").await["messageId"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    until("every delivery", || receivers.got("ok").len() >= ids.len()).await;
    // Let any second copy arrive before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = receivers.got("ok");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &got {
        let id = r.headers["webhook-id"].to_str().expect("id").to_owned();
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts.len(), ids.len());
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    a.server.stop();
    b.server.stop();
}

/// `hookgate-bench --scenario delivery`, briefly and in-process against the real binary: both
/// phases deliver every event to the fast endpoint (correctness only; figures not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_delivery_scenario_loses_nothing() {
    use clap::Parser as _;
    let cli = hookgate_bench::args::Cli::try_parse_from([
        "hookgate-bench",
        "--scenario",
        "delivery",
        "--rate",
        "20",
        "--duration",
        "1",
        "--warmup",
        "0.5",
        "--server-cpu",
        "none",
    ])
    .expect("bench arguments");
    let mut args = cli.bench;
    args.hookgate = Some(env!("CARGO_BIN_EXE_hookgate").into());
    let report = hookgate_bench::delivery::run(&args)
        .await
        .expect("bench run");
    let report = serde_json::to_value(&report).expect("json report");
    for phase in ["alone", "with_slow_and_dead"] {
        let p = &report[phase];
        assert!(p["events"].as_u64().unwrap_or(0) >= 20, "{p}");
        assert_eq!(p["delivered"], p["events"], "{p}");
        assert_eq!(p["lost"], 0, "{p}");
        assert!(p["drain_secs"].as_f64().is_some(), "{p}");
    }
}

/// The base config of the tests below: a short schedule, `[delivery]` `extra` lines, then the
/// `more` tables.
fn short_config(extra: &str, more: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\n\
         [delivery]\ntimeout_secs = 1\nretry_schedule_secs = [1]\ngive_up_after_secs = 600\n\
         allow_http = true\n{extra}\n\n{more}"
    )
}

/// A provider event that unsubscribes a contact (Brevo `unsubscribed`) reaches an endpoint
/// subscribed to `contact.*` as `contact.suppressed`, signed, with the contact as its data;
/// a second unsubscribe of the same contact suppresses nothing new.
async fn contact_suppressed_is_delivered(backend: Backend) {
    use hookgate::providers::ProviderId;
    use hookgate_providers::testkit::example_secret;
    let store = TestStore::new(&backend).await;
    let (receivers, addr) = start_receivers().await;
    let brevo_secret = example_secret(ProviderId::Brevo);
    let gw = Gateway::start(
        &store,
        short_config(
            "allow_cidrs = [\"127.0.0.0/8\"]",
            &format!(
                "[[connections]]\nid = \"brevo\"\nprovider = \"brevo\"\nsecrets = [\"{brevo_secret}\"]\n\n\
                 [[endpoints]]\nid = \"contacts\"\nurl = \"http://{addr}/ok-contacts\"\n\
                 event_types = [\"contact.*\"]\nsecrets = [\"{SECRET_A}\"]\n"
            ),
        ),
    )
    .await;
    let deliver = |fixture: &'static str| {
        let body = crate::support::fixture(ProviderId::Brevo, fixture);
        let signed = ProviderId::Brevo
            .adapter()
            .sign(
                &body,
                &Secret::new(brevo_secret),
                &crate::support::now_options(),
            )
            .expect("sign");
        let mut request = gw
            .client
            .post(gw.server.url("/integrations/brevo/webhook/brevo"))
            .body(body);
        for (name, value) in signed.headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.expect("send");
            assert_eq!(response.status(), 200, "{fixture}");
        }
    };
    // fixtures/brevo/unsubscribed.json: a transactional unsubscribe of a new contact.
    deliver("unsubscribed.json").await;
    let email = "noah.schmidt@example.com";
    let done = gw
        .until_status("contacts", "contact.suppressed", "succeeded")
        .await;
    gw.until_status("contacts", "contact.created", "succeeded")
        .await;
    let message_id = done["message_id"].as_str().expect("message id").to_owned();
    let got: Vec<Received> = receivers
        .got("ok-contacts")
        .into_iter()
        .filter(|r| r.headers["webhook-id"] == message_id.as_str())
        .collect();
    assert_eq!(got.len(), 1, "delivered once");
    assert!(
        verify(&got[0], SECRET_A),
        "signed with the endpoint's secret"
    );
    let body: Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(body["id"], message_id.as_str());
    assert_eq!(body["type"], "contact.suppressed");
    assert_eq!(body["workspace"], "default");
    let data = body["data"].as_object().expect("data is the contact");
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "custom_fields",
            "email",
            "first_name",
            "last_name",
            "subscribed",
            "workspace"
        ],
        "{body}"
    );
    assert_eq!(data["email"], email);
    assert_eq!(data["workspace"], "default");
    assert_eq!(data["subscribed"], false);
    assert_eq!(data["custom_fields"]["brevo_unsubscribed"], true, "{body}");
    // The same event in the events feed, with the same payload.
    let feed = gw.get("/v1/events?event_type=contact.suppressed").await;
    let events = feed["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{feed}");
    assert_eq!(events[0]["messageId"], message_id.as_str());
    assert_eq!(events[0]["payload"], body["data"]);

    // A marketing unsubscribe of the same, already suppressed, contact: processed (its own
    // fire is in the feed, written with any lifecycle event in one transaction), no second
    // `contact.suppressed`.
    deliver("unsubscribe.json").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let feed = gw.get("/v1/events?limit=100").await;
        let brevo = feed["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["eventType"].as_str().unwrap_or("").starts_with("brevo."))
            .count();
        if brevo >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second Brevo event was not processed: {feed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let feed = gw.get("/v1/events?event_type=contact.suppressed").await;
    assert_eq!(feed["events"].as_array().map(Vec::len), Some(1), "{feed}");
    let suppressed = gw
        .deliveries("contacts")
        .await
        .iter()
        .filter(|d| d["event_type"] == "contact.suppressed")
        .count();
    assert_eq!(suppressed, 1);
    gw.server.stop();
}

/// A destination named by a host name is checked when the name is resolved, at each attempt:
/// `localhost` is accepted when the endpoint is saved (a name is not an address), every
/// attempt is refused (nothing reaches the receiver, the attempt log names the address) until
/// `allow_cidrs` covers loopback, and then the same delivery goes through. An IPv4-mapped
/// loopback literal is refused when saved.
async fn names_are_checked_at_send_time(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let (receivers, addr) = start_receivers().await;
    let port = addr.port();
    let endpoint = format!(
        "[[endpoints]]\nid = \"named\"\nurl = \"http://localhost:{port}/ok-named\"\n\
         event_types = [\"test.*\"]\nsecrets = [\"{SECRET_A}\"]\n"
    );
    // No allow_cidrs: loopback is refused.
    let gw = Gateway::start(&store, short_config("", &endpoint)).await;
    let (status, body) = gw
        .post(
            "/admin/endpoints",
            json!({"id": "named-api", "url": format!("http://localhost:{port}/ok-named-api"),
                   "event_types": ["test.*"]}),
        )
        .await;
    assert_eq!(status, 201, "a host name is saved: {body}");
    let api_secret = body["secret"]
        .as_str()
        .expect("generated secret")
        .to_owned();
    let (status, body) = gw
        .post(
            "/admin/endpoints",
            json!({"id": "mapped", "url": format!("http://[::ffff:127.0.0.1]:{port}/ok-mapped")}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "destination_not_allowed", "{body}");
    let message = body["message"].as_str().unwrap_or("");
    assert!(
        message.contains("url")
            && message.contains("::ffff:127.0.0.1")
            && message.contains("loopback"),
        "{body}"
    );
    assert_eq!(
        gw.call(reqwest::Method::GET, "/admin/endpoints/mapped", None)
            .await
            .0,
        404
    );

    gw.event("test.named").await;
    for endpoint in ["named", "named-api"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let detail = loop {
            let items = gw.deliveries(endpoint).await;
            if let Some(d) = items.iter().find(|d| d["attempts"].as_i64() >= Some(2)) {
                let id = d["id"].as_str().expect("id");
                break gw.get(&format!("/admin/deliveries/{id}")).await;
            }
            assert!(
                Instant::now() < deadline,
                "{endpoint}: no second attempt: {items:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(detail["status"], "retrying", "{detail}");
        for attempt in detail["attempt_log"].as_array().expect("log") {
            let error = attempt["error"].as_str().unwrap_or("");
            assert_eq!(attempt["status_code"], 0, "{detail}");
            assert!(
                error.contains("destination_not_allowed")
                    && error.contains("127.0.0.1")
                    && error.contains("loopback"),
                "{endpoint}: {detail}"
            );
        }
    }
    assert!(receivers.got("ok-named").is_empty());
    assert!(receivers.got("ok-named-api").is_empty());
    gw.server.stop();

    // With loopback allowed, the same deliveries go through at their next attempt.
    let gw = Gateway::start(
        &store,
        short_config("allow_cidrs = [\"127.0.0.0/8\", \"::1/128\"]", &endpoint),
    )
    .await;
    for (endpoint, path, secret) in [
        ("named", "ok-named", SECRET_A),
        ("named-api", "ok-named-api", api_secret.as_str()),
    ] {
        let done = gw.until_status(endpoint, "test.named", "succeeded").await;
        let log = done["attempt_log"].as_array().expect("log");
        assert!(log.len() >= 3, "{done}");
        assert!(log[..log.len() - 1].iter().all(|a| a["error"]
            .as_str()
            .unwrap_or("")
            .contains("destination_not_allowed")));
        assert_eq!(log[log.len() - 1]["status_code"], 200, "{done}");
        let got = receivers.got(path);
        assert_eq!(got.len(), 1, "{endpoint}");
        assert!(verify(&got[0], secret), "{endpoint}");
    }
    gw.server.stop();
}

backend_tests!(
    contact_suppressed_is_delivered,
    names_are_checked_at_send_time
);
