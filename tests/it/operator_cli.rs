//! The daily operator commands through the `hookgate` binary, against the database a running
//! `hookgate serve` writes: `logs show`, `replay`, `contacts show`, `events [--follow]` (each
//! with `--json`) and `backup`.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backend_tests;
use crate::cli::{hookgate, run, Server};
use crate::support::{Backend, TestStore};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const EMAIL: &str = "jenny.rosen@example.com";

fn fixture(name: &str) -> String {
    format!("{}/fixtures/stripe/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `hookgate <args>`, which must succeed; its stdout.
fn ok(dir: &Path, db: &str, args: &[&str]) -> String {
    let (success, out, err) = run(hookgate(dir, db).args(args));
    assert!(success, "hookgate {args:?} failed: {err}\n{out}");
    out
}

/// `hookgate <args>`, which must fail; its stderr.
fn fails(dir: &Path, db: &str, args: &[&str]) -> String {
    let (success, out, err) = run(hookgate(dir, db).args(args));
    assert!(!success, "hookgate {args:?} succeeded: {out}");
    err
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Sends a fixture and returns the ingest id the gateway answered with.
fn send(dir: &Path, db: &str, url: &str, name: &str) -> String {
    let out = ok(
        dir,
        db,
        &["send", &fixture(name), "--url", url, "--secret", SECRET],
    );
    let answer = json(out.trim_start_matches("200 ").trim());
    assert_eq!(answer["status"], "accepted", "{out}");
    answer["id"].as_str().expect("id").to_owned()
}

/// `logs show <id> --json` once the event's processing is `processed` (10 s at most).
fn processed(dir: &Path, db: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let record = json(&ok(dir, db, &["logs", "show", id, "--json"]));
        if record["status"] == "processed" {
            return record;
        }
        assert!(Instant::now() < deadline, "never processed: {record}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `hookgate events --follow ...` child whose stdout lines arrive on a channel.
struct Follower {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(mut cmd: Command) -> Follower {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn events --follow");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    fn next(&self, what: &str) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("events --follow printed no {what}"))
    }

    /// The next line that is not a contact lifecycle event (`contact.created`, ...), which the
    /// events feed carries next to trigger fires.
    fn next_fire(&self, what: &str) -> String {
        loop {
            let line = self.next(what);
            if !line.contains("contact.") {
                return line;
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn daily_commands(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let db = store.binary_url();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_owned();
    ok(
        &dir,
        &db,
        &[
            "connections",
            "add",
            "stripe-live",
            "--provider",
            "stripe",
            "--workspace",
            "acme",
            "--secret",
            SECRET,
        ],
    );
    let mut serve = hookgate(&dir, &db);
    serve.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = tokio::task::spawn_blocking(move || Server::start(serve))
        .await
        .expect("start");
    let url = server.url("/integrations/stripe/webhook/stripe-live");
    // The start line names the build, as `--version` does.
    let log = server.log();
    assert!(
        log.contains(&format!("version=\"{} (commit ", env!("CARGO_PKG_VERSION"))),
        "{log}"
    );

    let check = {
        let url = url.clone();
        let db = db.clone();
        let dir = dir.clone();
        move || {
            // A delivery, processed into a contact and one fire.
            let id = send(&dir, &db, &url, "invoice.paid.json");
            let record = processed(&dir, &db, &id);
            assert_eq!(record["outcome"], "accepted", "{record}");
            assert_eq!(record["contact_email"], EMAIL, "{record}");
            assert_eq!(record["event_type"], "invoice.paid", "{record}");
            assert_eq!(record["body"]["type"], "invoice.paid", "{record}");
            let fires = record["fires"].as_array().expect("fires").clone();
            assert_eq!(fires.len(), 1, "{record}");
            let fire_id = fires[0].as_str().expect("fire id").to_owned();
            let headers = record["headers"].to_string();
            assert!(headers.contains("stripe-signature"), "{headers}");
            let text = ok(&dir, &db, &["logs", "show", &id]);
            for expected in [
                "outcome      accepted, answered HTTP 200",
                "processing   processed",
                "contact      jenny.rosen@example.com",
                "stripe.invoice.paid",
                "stripe-signature: t=",
                "\"customer_email\": \"jenny.rosen@example.com\"",
            ] {
                assert!(text.contains(expected), "no {expected:?} in:\n{text}");
            }
            (id, fire_id)
        }
    };
    let (id, fire_id) = tokio::task::spawn_blocking(check).await.expect("check");

    // A refused request carrying a credential: shown with the credential redacted.
    let refused = reqwest::Client::new()
        .post(&url)
        .header("authorization", "Bearer top-secret-credential")
        .body("{\"id\":\"evt_x\"}")
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status().as_u16(), 401);
    let refused_id = {
        let db = db.clone();
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let out = ok(&dir, &db, &["logs", "--outcome", "rejected", "--json"]);
                if let Some(line) = out.lines().next() {
                    return json(line)["id"].as_str().expect("id").to_owned();
                }
                assert!(Instant::now() < deadline, "the refusal was not logged");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
        .expect("logs")
    };

    let dir2 = dir.clone();
    let db2 = db.clone();
    let url2 = url.clone();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || {
        let (dir, db, url, id) = (dir2, db2, url2, id2);
        let record = json(&ok(&dir, &db, &["logs", "show", &refused_id, "--json"]));
        assert_eq!(record["http_status"], 401, "{record}");
        assert!(
            record["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("missing_signature_header")),
            "{record}"
        );
        assert!(
            record["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .any(|h| h[0] == "authorization" && h[1] == "[redacted]"),
            "{record}"
        );
        let text = ok(&dir, &db, &["logs", "show", &refused_id]);
        assert!(
            text.contains("authorization: [redacted]") && !text.contains("top-secret-credential"),
            "{text}"
        );
        let err = fails(&dir, &db, &["logs", "show", "01NOSUCHRECORD0000000000000"]);
        assert!(err.contains("no ingest record"), "{err}");

        // contacts show: the email is matched as stored (trimmed, lower-cased), per workspace.
        let contact = json(&ok(
            &dir,
            &db,
            &[
                "contacts",
                "show",
                " Jenny.Rosen@Example.com",
                "--workspace",
                "acme",
                "--json",
            ],
        ));
        assert_eq!(contact["email"], EMAIL, "{contact}");
        assert_eq!(contact["workspace"], "acme", "{contact}");
        assert_eq!(
            contact["custom_fields"]["stripe_customer_id"], "cus_TEx8pQ2mZrV4aB",
            "{contact}"
        );
        let text = ok(
            &dir,
            &db,
            &["contacts", "show", EMAIL, "--workspace", "acme"],
        );
        assert!(
            text.contains("stripe_customer_id = cus_TEx8pQ2mZrV4aB"),
            "{text}"
        );
        let err = fails(&dir, &db, &["contacts", "show", EMAIL]);
        assert!(
            err.contains("no contact") && err.contains("--workspace"),
            "{err}"
        );
        let err = fails(&dir, &db, &["contacts", "show", "not-an-email"]);
        assert!(err.contains("not an email address"), "{err}");

        // events: the fire, as the events API shows it, then the contact it created; filtered
        // by type.
        let out = ok(&dir, &db, &["events", "--json"]);
        let lines: Vec<Value> = out.lines().map(json).collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[1]["eventType"], "contact.created", "{out}");
        assert_eq!(lines[1]["payload"]["email"], EMAIL, "{out}");
        assert_eq!(lines[0]["id"], fire_id.as_str(), "{out}");
        assert_eq!(lines[0]["eventType"], "stripe.invoice.paid", "{out}");
        assert_eq!(lines[0]["workspace"], "acme", "{out}");
        assert_eq!(lines[0]["payload"]["email"], EMAIL, "{out}");
        let out = ok(
            &dir,
            &db,
            &[
                "events",
                "--json",
                "--event-type",
                "stripe.customer.created",
            ],
        );
        assert!(out.trim().is_empty(), "{out}");
        let text = ok(&dir, &db, &["events"]);
        assert!(
            text.contains("stripe.invoice.paid") && text.contains("stripe-live:evt_"),
            "{text}"
        );

        // replay: processed again, the same fire (never a second one).
        let replayed = json(&ok(&dir, &db, &["replay", &id, "--json"]));
        assert_eq!(replayed["status"], "processed", "{replayed}");
        assert_eq!(
            replayed["fires"],
            serde_json::json!([fire_id]),
            "{replayed}"
        );
        let text = ok(&dir, &db, &["replay", &id]);
        assert!(text.contains("processed"), "{text}");
        // The replay made no second fire and changed nothing on the contact.
        assert_eq!(ok(&dir, &db, &["events", "--json"]).lines().count(), 2);
        let err = fails(&dir, &db, &["replay", &refused_id]);
        assert!(err.contains("only stored"), "{err}");
        let err = fails(&dir, &db, &["replay", "01NOSUCHRECORD0000000000000"]);
        assert!(err.contains("no ingest record"), "{err}");

        // events --follow: from now on, in a table; and after a cursor, as JSON lines.
        let mut cmd = hookgate(&dir, &db);
        cmd.args(["events", "--follow", "--limit", "0"]);
        let table = Follower::start(cmd);
        assert!(table.next("header").starts_with("ID "));
        let mut cmd = hookgate(&dir, &db);
        cmd.args(["events", "--follow", "--json", "--cursor", &fire_id]);
        let lines = Follower::start(cmd);
        send(&dir, &db, &url, "customer.created.json");
        let row = table.next_fire("new fire");
        assert!(row.contains("stripe.customer.created"), "{row}");
        let fire = json(&lines.next_fire("new fire"));
        assert_eq!(fire["eventType"], "stripe.customer.created", "{fire}");
        assert_ne!(fire["id"], fire_id.as_str(), "{fire}");
    })
    .await
    .expect("commands");

    // backup: a consistent copy of a SQLite store while the gateway runs; PostgreSQL has its own.
    let copy = dir.join("backup.db");
    let (success, out, err) = run(hookgate(&dir, &db).arg("backup").arg(&copy));
    match backend {
        Backend::Sqlite => {
            assert!(success, "{err}");
            assert!(out.contains("backed up to"), "{out}");
            let backup = hookgate::db::Db::connect(
                &format!("sqlite://{}", copy.display()),
                hookgate::db::Durability::Full,
            )
            .await
            .expect("open the backup");
            let row = backup
                .get_ingest(&id)
                .await
                .expect("read")
                .expect("the event");
            assert_eq!(row.summary.outcome, "accepted");
            backup.close().await;
            let again = fails(&dir, &db, &["backup", copy.to_str().expect("utf-8")]);
            assert!(again.contains("exists"), "{again}");
        }
        Backend::Postgres(_) => {
            assert!(!success && err.contains("pg_dump"), "{out} {err}");
        }
    }
    drop(server);
}

backend_tests!(daily_commands);
