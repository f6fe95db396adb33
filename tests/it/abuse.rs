//! Abusive clients against a real gateway over loopback, with raw sockets (no load generator):
//! slow-header and slow-body connections, and a neighbour flooded far past its rate limit, must
//! not stop normal deliveries. These tests check correctness only: every normal delivery
//! answered 2xx and stored exactly once (the test counts the store's rows itself), every
//! attacker cut off by the server, the flood limited. Latency under attack is the benchmark's
//! (`hookgate-bench --scenario slowloris|fairness`, README "Performance").

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hookgate::providers::ProviderId;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::backend_tests;
use crate::support::{now_options, Backend, TestApp};
use crate::webhooks::kit;

/// A Stripe event of its own id.
fn event(tag: &str, n: usize) -> (String, Vec<u8>) {
    let id = format!("evt_{tag}_{n}");
    let body = json!({"id": id, "object": "event", "type": "invoice.paid", "created": 1_700_000_000 + n,
                      "data": {"object": {"id": format!("in_{tag}_{n}"), "customer": format!("cus_{tag}"),
                                          "customer_email": format!("{tag}@example.com")}}});
    (id, body.to_string().into_bytes())
}

/// Sends `count` normal deliveries to `connection`, one every `every`, and returns the event ids
/// with their HTTP status.
async fn paced_deliveries(
    app: &TestApp,
    connection: &str,
    tag: &str,
    count: usize,
    every: Duration,
) -> Vec<(String, u16)> {
    let stripe = kit(ProviderId::Stripe);
    let mut answers = Vec::new();
    for n in 0..count {
        let (id, body) = event(tag, n);
        let answer = app
            .deliver(
                ProviderId::Stripe,
                connection,
                &body,
                stripe.secret,
                now_options(),
            )
            .await;
        answers.push((id, answer.status.as_u16()));
        tokio::time::sleep(every).await;
    }
    answers
}

/// The event ids stored on `connection`, checked to be stored once each.
async fn stored_once(app: &TestApp, connection: &str) -> HashSet<String> {
    let ids = app
        .store
        .db
        .stored_event_ids(connection)
        .await
        .expect("stored ids");
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "an event is stored twice: {ids:?}");
    unique
}

/// How one attacker connection ended.
#[derive(Debug)]
struct Ended {
    /// What the server sent before closing.
    answer: String,
    /// From connecting until the server closed the connection.
    lasted: Duration,
}

/// One slowloris connection: writes `head`, then trickles `trickle` one byte every 100 ms,
/// until the server closes the connection. `None` if it is still open after `limit`.
async fn slow_client(
    addr: std::net::SocketAddr,
    head: Vec<u8>,
    trickle: Vec<u8>,
    limit: Duration,
) -> Option<Ended> {
    let started = Instant::now();
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        if write.write_all(&head).await.is_err() {
            return;
        }
        for byte in trickle {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
        }
        // Everything trickled without being cut off: stay silent, still open.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(limit, read.read_to_end(&mut answer)).await;
    writer.abort();
    // Either end of the read means the server closed the connection: an orderly end of
    // stream, or a reset (the server closing with unread bytes from us). Only the time-out
    // means it is still open.
    let _end_or_reset: std::io::Result<usize> = closed.ok()?;
    Some(Ended {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        lasted: started.elapsed(),
    })
}

/// Slow clients: while 200 connections trickle their headers or their bodies a byte at a time,
/// paced normal deliveries all get 2xx and are stored once each; the server cuts every slow
/// connection off (headers past `header_timeout_secs`, bodies past `body_timeout_secs` with a
/// 408), none stays open.
async fn slowloris(backend: Backend) {
    const ATTACKERS: usize = 100;
    let stripe = kit(ProviderId::Stripe);
    let app = TestApp::builder(backend)
        .config(|c| {
            c.header_timeout_secs = 1;
            c.body_timeout_secs = 2;
        })
        .connection("stripe", ProviderId::Stripe, &[stripe.secret])
        .start()
        .await;
    let limit = Duration::from_secs(20);
    let mut attackers = Vec::new();
    for i in 0..ATTACKERS {
        // Slow headers: a request line, then one header byte at a time, forever.
        let head = b"POST /integrations/stripe/webhook/stripe HTTP/1.1\r\nhost: x\r\n".to_vec();
        let trickle = format!("x-slow-{i}: {}", "a".repeat(200)).into_bytes();
        attackers.push(tokio::spawn(slow_client(app.addr, head, trickle, limit)));
        // Slow bodies: complete headers announcing 1000 bytes, then one byte at a time.
        let head = b"POST /integrations/stripe/webhook/stripe HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n".to_vec();
        attackers.push(tokio::spawn(slow_client(
            app.addr,
            head,
            vec![b' '; 1000],
            limit,
        )));
    }
    // Normal deliveries while the attack is open (the attackers hold on for 1 to 2 s).
    let answers =
        paced_deliveries(&app, "stripe", "slowloris", 20, Duration::from_millis(100)).await;

    let mut ended = Vec::new();
    for attacker in attackers {
        ended.push(attacker.await.expect("attacker"));
    }
    let still_open = ended.iter().filter(|e| e.is_none()).count();
    assert_eq!(still_open, 0, "slow connections still open after {limit:?}");
    for (i, end) in ended.iter().flatten().enumerate() {
        if i % 2 == 0 {
            // Slow headers: closed without an answer (hyper's header timeout).
            assert!(end.answer.is_empty(), "slow headers answered: {end:?}");
            assert!(end.lasted < Duration::from_secs(10), "{end:?}");
        } else {
            // Slow bodies: 408 then closed.
            assert!(end.answer.starts_with("HTTP/1.1 408"), "slow body: {end:?}");
            assert!(end.answer.contains("body_timeout"), "slow body: {end:?}");
        }
    }

    let bad: Vec<&(String, u16)> = answers.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        bad.is_empty(),
        "normal deliveries refused under the attack: {bad:?}"
    );
    let stored = stored_once(&app, "stripe").await;
    let sent: HashSet<String> = answers.into_iter().map(|(id, _)| id).collect();
    assert_eq!(stored, sent, "exactly the normal deliveries are stored");
}

/// A flooded neighbour: one connection is sent eight concurrent streams of requests, far past
/// its limit of 20/s (burst 20), while another connection with the same limit gets paced normal
/// deliveries. Every normal delivery gets 200 and is stored once; the flood is refused with 429
/// beyond its limit, and exactly its accepted requests are stored.
async fn fairness(backend: Backend) {
    const RATE: u32 = 20;
    let stripe = kit(ProviderId::Stripe);
    let limited = |s: &mut hookgate::connections::ConnectionSpec| {
        s.rate_limit_per_sec = Some(RATE);
        s.rate_limit_burst = Some(RATE);
    };
    let app = TestApp::builder(backend)
        .connection_with("victim", ProviderId::Stripe, &[stripe.secret], limited)
        .connection_with("flood", ProviderId::Stripe, &[stripe.secret], limited)
        .start()
        .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = Instant::now();
    let floods: Vec<_> = (0..8)
        .map(|client| {
            let stop = std::sync::Arc::clone(&stop);
            let url = app.receive_url(ProviderId::Stripe, "flood");
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (id, body) = event(&format!("flood{client}"), n);
                    n += 1;
                    let signed = ProviderId::Stripe
                        .adapter()
                        .sign(
                            &body,
                            &hookgate::providers::Secret::new(kit(ProviderId::Stripe).secret),
                            &now_options(),
                        )
                        .expect("sign");
                    let mut request = http.post(&url).body(body);
                    for (name, value) in signed.headers {
                        request = request.header(name, value);
                    }
                    let status = request
                        .send()
                        .await
                        .expect("flood request")
                        .status()
                        .as_u16();
                    answers.push((id, status));
                }
                answers
            })
        })
        .collect();
    // Normal deliveries at 10/s, half the victim's limit, during the flood.
    let answers = paced_deliveries(&app, "victim", "victim", 20, Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut flood = Vec::new();
    for f in floods {
        flood.extend(f.await.expect("flood client"));
    }
    let elapsed = started.elapsed().as_secs_f64();

    let bad: Vec<&(String, u16)> = answers.iter().filter(|(_, s)| *s != 200).collect();
    assert!(
        bad.is_empty(),
        "normal deliveries refused during the flood: {bad:?}"
    );
    let stored = stored_once(&app, "victim").await;
    let sent: HashSet<String> = answers.into_iter().map(|(id, _)| id).collect();
    assert_eq!(stored, sent, "exactly the normal deliveries are stored");

    let accepted: HashSet<String> = flood
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(id, _)| id.clone())
        .collect();
    let limited = flood.iter().filter(|(_, s)| *s == 429).count();
    let other: Vec<&(String, u16)> = flood
        .iter()
        .filter(|(_, s)| ![200, 429].contains(s))
        .collect();
    println!(
        "flood: {} requests in {elapsed:.1} s, {} accepted, {limited} limited",
        flood.len(),
        accepted.len()
    );
    assert!(
        other.is_empty(),
        "flood answers other than 200 and 429: {other:?}"
    );
    assert!(limited > 0, "the flood was rate limited");
    // No more than the burst plus the rate over the flood's duration (and a second of slack
    // for the refill around the edges) can have been accepted.
    let bound = f64::from(RATE) * (1.0 + elapsed + 1.0);
    assert!(
        accepted.len() as f64 <= bound,
        "the limit held: {} accepted in {elapsed:.1} s (bound {bound:.0})",
        accepted.len()
    );
    assert_eq!(
        stored_once(&app, "flood").await,
        accepted,
        "exactly the flood's accepted requests are stored"
    );
}

backend_tests!(slowloris, fairness);

/// A body trickled to an admin or API route with a valid token is cut off after
/// `body_timeout_secs` with 408, like one sent to the receive URL; without a token it is refused
/// with 401 before it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_on_admin_and_api_routes_get_408() {
    let app = TestApp::builder(Backend::Sqlite).start().await;
    for (path, token) in [
        ("/admin/connections", true),
        ("/v1/webhooks/test", true),
        ("/admin/connections", false),
        ("/v1/webhooks/test", false),
        ("/integrations/stripe/webhook/none", false),
    ] {
        let mut stream = tokio::net::TcpStream::connect(app.addr)
            .await
            .expect("connect");
        let auth = if token {
            format!("Authorization: Bearer {}\r\n", crate::support::ADMIN_TOKEN)
        } else {
            String::new()
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
            app.addr
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        // The test gateway's body timeout is 2 s; the bound is generous, not a speed check.
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{path}: the server kept a stalled body open"));
        read.expect("read");
        let answer = String::from_utf8_lossy(&answer);
        if path.starts_with("/integrations") {
            // An unknown connection is refused before its body is read.
            assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
        } else if !token {
            assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
        } else {
            assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
            assert!(answer.contains("body_timeout"), "{path}: {answer}");
        }
    }
}
