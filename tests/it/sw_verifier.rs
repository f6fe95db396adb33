//! An independent verifier: real deliveries over loopback to a receiver that checks them with
//! the Standard Webhooks reference library for Python (`standardwebhooks` from PyPI), installed
//! into a virtual environment under the target directory on first use.
//!
//! A machine without `python3`, `venv` or access to PyPI fails this test with a message saying
//! what is missing: it is never skipped.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::backend_tests;
use crate::cli::{hookgate, Server};
use crate::support::{Backend, TestStore};

const TOKEN: &str = "verifier-admin-token-0123456789";
const SECRET: &str = "whsec_cHl0aG9uLXZlcmlmaWVyLXNlY3JldC1rZXktMzI=";
const OTHER_SECRET: &str = "whsec_YW5vdGhlci1zZWNyZXQta2V5LW9mLTMyLWJ5dGVz";

/// The venv's python with `standardwebhooks` importable (made once, then reused).
fn python() -> PathBuf {
    crate::support::python_venv(
        "standardwebhooks-venv",
        "standardwebhooks",
        &["standardwebhooks"],
    )
}

/// The Python receiver: its port and the JSON lines it prints.
struct Receiver {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<Value>>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_receiver(python: &PathBuf) -> Receiver {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/py/sw_receiver.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python receiver");
    let stdout = child.stdout.take().expect("stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.strip_prefix("listening ") {
                let _ = tx.send(port.parse::<u16>().expect("port"));
            } else if let Ok(v) = serde_json::from_str(&line) {
                sink.lock().expect("lock").push(v);
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the Python receiver prints its port");
    Receiver { child, port, lines }
}

async fn python_verifies_deliveries(backend: Backend) {
    let python = tokio::task::spawn_blocking(python).await.expect("venv");
    let receiver = start_receiver(&python);
    let store = TestStore::new(&backend).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("hookgate.toml");
    let port = receiver.port;
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
             [delivery]\nretry_schedule_secs = [60]\nallow_http = true\nallow_cidrs = [\"127.0.0.1/32\"]\n\
             [[endpoints]]\nid = \"py\"\nurl = \"http://127.0.0.1:{port}/in\"\nsecrets = [\"{SECRET}\"]\n\
             [[endpoints]]\nid = \"py-wrong\"\nurl = \"http://127.0.0.1:{port}/wrong\"\nsecrets = [\"{OTHER_SECRET}\"]\n"
        ),
    )
    .expect("config");
    let mut cmd = hookgate(dir.path(), &store.binary_url());
    cmd.arg("--config").arg(&config).arg("serve");
    let server = tokio::task::spawn_blocking(move || Server::start(cmd))
        .await
        .expect("start");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut ids = Vec::new();
    for (i, kind) in ["test.one", "test.two", "test.three"].iter().enumerate() {
        let event: Value = client
            .post(server.url("/v1/webhooks/test"))
            .bearer_auth(TOKEN)
            .json(&json!({"eventType": kind, "data": {"email": "ann@example.com", "i": i, "text": "héllo \"quoted\""}}))
            .send()
            .await
            .expect("event")
            .json()
            .await
            .expect("json");
        ids.push(event["messageId"].as_str().expect("messageId").to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = receiver.lines.lock().expect("lock").clone();
        let verified: Vec<&str> = lines
            .iter()
            .filter(|l| l["path"] == "/in" && l["ok"] == true)
            .filter_map(|l| l["id"].as_str())
            .collect();
        let refused = lines
            .iter()
            .filter(|l| l["path"] == "/wrong" && l["ok"] == false)
            .count();
        if ids.iter().all(|id| verified.contains(&id.as_str())) && refused >= 3 {
            // Every delivery to /in verified; none signed with the other secret did.
            assert!(
                lines
                    .iter()
                    .all(|l| (l["path"] == "/in") == (l["ok"] == true)),
                "{lines:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Python verifier did not accept every delivery: {lines:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The gateway records the verifier's answers: 204 succeeded, 400 retrying (the receiver
    // prints its verdict before it answers, so the record may lag a moment).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list: Value = client
            .get(server.url("/admin/deliveries?limit=100"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let settled = items.len() == 6
            && items.iter().all(|d| {
                let expected = if d["endpoint_id"] == "py" {
                    "succeeded"
                } else {
                    "retrying"
                };
                d["status"] == expected
            });
        if settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries not recorded as expected: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop();
}

backend_tests!(python_verifies_deliveries);
