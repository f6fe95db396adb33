//! Abusive clients, through the real binary (`hookgate bench --scenario slowloris|fairness`), a
//! few seconds each: slow-header and slow-body connections, and a neighbour flooded at ten times
//! its rate limit, must not stop normal deliveries. These tests check correctness only (every
//! normal delivery answered 2xx and stored, the attackers cut off, the flood limited); the
//! latency figures belong to the benchmark (README "Performance").

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::{Backend, TestApp};

fn run_scenario(store: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend([
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--rate",
        "50",
        "--senders",
        "2",
        "--store",
        store,
    ]);
    crate::bench_smoke::bench_json(&all)
}

/// Every normal delivery of both phases got a 2xx and is in the store.
#[track_caller]
fn check_deliveries(report: &Value) {
    assert_eq!(report["all_deliveries_2xx"], true, "{report}");
    for phase in ["unattacked", "attacked"] {
        assert_eq!(report[phase]["errors"], 0, "{phase}: {report}");
        let statuses = report[phase]["statuses"].as_object().expect("statuses");
        assert!(
            statuses.keys().all(|s| s.starts_with('2')),
            "{phase}: {report}"
        );
        assert!(
            report[phase]["measured_requests"].as_u64() > Some(0),
            "{phase}: {report}"
        );
    }
    assert!(report["acknowledged"].as_u64() > Some(0), "{report}");
    assert_eq!(report["missing"], 0, "{report}");
}

fn slowloris(store: &str) {
    let report = run_scenario(
        store,
        &[
            "--scenario",
            "slowloris",
            "--slow-connections",
            "300",
            "--header-timeout-secs",
            "1",
            "--body-timeout-secs",
            "2",
        ],
    );
    check_deliveries(&report);
    let attack = &report["slowloris"];
    assert!(
        attack["open_during_phase_max"].as_u64() > Some(100),
        "the attack was open during the phase: {report}"
    );
    for kind in ["slow_headers", "slow_bodies"] {
        let stats = &attack[kind];
        assert!(stats["opened"].as_u64() >= Some(150), "{kind}: {report}");
        assert_eq!(
            stats["closed_by_server"], stats["opened"],
            "the server cut every {kind} connection: {report}"
        );
        assert_eq!(stats["still_open_at_end"], 0, "{kind}: {report}");
    }
    // A body that does not arrive in time is answered 408 before the connection is closed;
    // one sent to an admin route without a token is refused with 401 before it is read.
    let answered = attack["slow_bodies"]["answered"]
        .as_object()
        .expect("answered");
    assert!(
        answered.keys().all(|s| s == "408" || s == "401") && answered.contains_key("408"),
        "{report}"
    );
}

fn fairness(store: &str) {
    let report = run_scenario(
        store,
        &[
            "--scenario",
            "fairness",
            "--rate-limit",
            "100",
            "--flood-factor",
            "10",
            "--flood-clients",
            "8",
        ],
    );
    check_deliveries(&report);
    let flood = &report["flood"];
    let limited = flood["statuses"]["429"].as_u64().unwrap_or(0);
    let accepted = flood["statuses"]["200"].as_u64().unwrap_or(0);
    // Whatever rate the flood clients reached, no more than the burst (200) plus the rate limit
    // times the flood's duration can have been accepted.
    let elapsed = flood["elapsed_secs"].as_f64().expect("elapsed_secs");
    assert!(limited > 0, "the flood was rate limited: {report}");
    assert!(
        accepted as f64 <= 200.0 + 100.0 * (elapsed + 0.5),
        "the limit held: {report}"
    );
}

#[test]
fn slowloris_sqlite() {
    slowloris("sqlite");
}

#[test]
fn slowloris_postgres() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else {
        return; // The PostgreSQL half did not run (scripts/test says so).
    };
    slowloris(&url);
}

#[test]
fn fairness_sqlite() {
    fairness("sqlite");
}

#[test]
fn fairness_postgres() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else {
        return; // The PostgreSQL half did not run (scripts/test says so).
    };
    fairness(&url);
}

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
