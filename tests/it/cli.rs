//! The `hookgate` binary as an operator uses it: configuration errors, `serve` with a config
//! file, `send`, `logs`, and `connections add|list|show|disable|enable|rotate|remove` against a
//! running gateway.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::backend_tests;
use crate::support::{Backend, TestStore};

pub fn hookgate(dir: &Path, database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.current_dir(dir)
        .env_remove("HOOKGATE_CONFIG")
        .env_remove("HOOKGATE_ADMIN_TOKEN")
        .env_remove("HOOKGATE_SECRET_KEY")
        .env("HOOKGATE_DATABASE_URL", database_url)
        .env("RUST_LOG", "info");
    cmd
}

pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run hookgate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cmd` until `done(stdout)` holds or 10 s pass; returns the last result.
fn run_until(
    cmd: impl Fn() -> (bool, String, String),
    done: impl Fn(&str) -> bool,
) -> (bool, String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let result = cmd();
        if done(&result.1) || Instant::now() > deadline {
            return result;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A `hookgate serve` child process; killed on drop. Its stderr and stdout are collected.
pub struct Server {
    child: Child,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(mut cmd: Command) -> Server {
        let mut child = cmd
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let out_sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut log = out_sink.lock().expect("lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Into the log first, so a caller woken by the address sees the line too.
                {
                    let mut log = sink.lock().expect("lock");
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(rest) = line.split("listen=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve prints its address");
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        Server { child, port, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The process id (to read its memory use from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stderr and stdout so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("lock").clone()
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Server {
    /// Whether the process is still running (it has not exited or died on its own).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// SIGKILL: no shutdown, no draining, as a crash or an OOM kill would end it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixture_path(provider: &str, name: &str) -> String {
    format!("{}/fixtures/{provider}/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Retries `send` until it gives `expect` (connections made by the CLI appear within 2 s).
fn send_until(dir: &Path, db: &str, args: &[&str], expect: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, err) = run(hookgate(dir, db).arg("send").args(args));
        if out.contains(expect) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "send never answered {expect}: {out} {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn operator_workflow(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let db = store.binary_url();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        r#"
listen = "127.0.0.1:0"
admin_token = "${IT_ADMIN_TOKEN}"

[[connections]]
id = "stripe-live"
provider = "stripe"
workspace = "acme"
secrets = ["${IT_STRIPE_SECRET}"]
"#,
    )
    .expect("write config");
    let mut cmd = hookgate(dir.path(), &db);
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env("IT_ADMIN_TOKEN", "cli-admin-token-0123456789")
        .env("IT_STRIPE_SECRET", "whsec_cli_stripe_secret");
    let server = tokio::task::spawn_blocking(move || Server::start(cmd))
        .await
        .expect("start");
    let log = server.log();
    assert!(
        log.contains("/integrations/stripe/webhook/stripe-live"),
        "serve logs the receive URL:\n{log}"
    );
    assert!(
        !log.contains("whsec_cli_stripe_secret"),
        "secret in the log:\n{log}"
    );
    assert!(
        log.contains("WARN") && log.contains("secrets are stored unencrypted"),
        "serve without a key warns:\n{log}"
    );

    let receive = server.url("/integrations/stripe/webhook/stripe-live");
    let invoice = fixture_path("stripe", "invoice.paid.json");
    let (ok, out, err) = run(hookgate(dir.path(), &db).args([
        "send",
        &invoice,
        "--url",
        &receive,
        "--secret",
        "whsec_cli_stripe_secret",
    ]));
    assert!(ok && out.contains("\"accepted\""), "{out} {err}");
    let (ok, out, _) = run(hookgate(dir.path(), &db).args([
        "send",
        &invoice,
        "--url",
        &receive,
        "--secret",
        "whsec_cli_stripe_secret",
    ]));
    assert!(ok && out.contains("\"duplicate\""), "{out}");
    let (ok, out, _) = run(hookgate(dir.path(), &db).args([
        "send",
        &invoice,
        "--url",
        &receive,
        "--secret",
        "whsec_wrong",
    ]));
    assert!(!ok && out.contains("401"), "{out}");
    let (ok, out, _) = run(hookgate(dir.path(), &db).args([
        "send",
        &invoice,
        "--url",
        &receive,
        "--secret",
        "whsec_cli_stripe_secret",
        "--skew-secs",
        "-3600",
    ]));
    assert!(!ok && out.contains("timestamp_too_old"), "{out}");

    // logs shows accepted, duplicate and rejected deliveries, with the reason.
    // Rejected requests are logged without waiting for the commit, so poll (bounded) until the
    // two rejects are visible.
    let (_, rejected, _) = run_until(
        || run(hookgate(dir.path(), &db).args(["logs", "--outcome", "rejected", "--json"])),
        |out| out.lines().count() == 2,
    );
    assert_eq!(rejected.lines().count(), 2, "{rejected}");
    let (ok, out, _) = run(hookgate(dir.path(), &db).args(["logs", "--connection", "stripe-live"]));
    assert!(ok, "{out}");
    for needle in [
        "accepted",
        "duplicate",
        "rejected",
        "invoice.paid",
        "signature_mismatch",
    ] {
        assert!(out.contains(needle), "logs lacks {needle}:\n{out}");
    }

    // logs --follow prints records as they arrive.
    let mut follow = hookgate(dir.path(), &db)
        .args(["logs", "--follow", "--json", "--limit", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn logs --follow");
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the newest record first");
    assert!(first.contains("\"outcome\":\"rejected\""), "{first}");
    let customer = fixture_path("stripe", "customer.created.json");
    let (ok, _, _) = run(hookgate(dir.path(), &db).args([
        "send",
        &customer,
        "--url",
        &receive,
        "--secret",
        "whsec_cli_stripe_secret",
    ]));
    assert!(ok);
    let next = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a new record while following");
    assert!(
        next.contains("customer.created") && next.contains("\"outcome\":\"accepted\""),
        "{next}"
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // connections add / list / show while the gateway runs.
    let (ok, out, err) = run(hookgate(dir.path(), &db).args([
        "connections",
        "add",
        "clerk-1",
        "--provider",
        "clerk",
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ]));
    assert!(ok, "{out} {err}");
    let (ok, _, err) = run(hookgate(dir.path(), &db).args([
        "connections",
        "add",
        "clerk-1",
        "--provider",
        "clerk",
        "--secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ]));
    assert!(!ok && err.contains("exists"), "{err}");
    let (ok, _, err) = run(hookgate(dir.path(), &db).args([
        "connections",
        "add",
        "bad",
        "--provider",
        "clerk",
        "--secret",
        "whsec_not base64!",
    ]));
    assert!(
        !ok && err.contains("secrets[0]") && !err.contains("not base64!"),
        "{err}"
    );
    let (_, out, _) = run(hookgate(dir.path(), &db).args(["connections", "list"]));
    assert!(
        out.contains("stripe-live") && out.contains("clerk-1"),
        "{out}"
    );
    let (_, out, _) = run(hookgate(dir.path(), &db).args(["connections", "show", "stripe-live"]));
    assert!(
        out.contains("\"secrets_count\": 1") && !out.contains("whsec_cli"),
        "{out}"
    );

    let clerk_url = server.url("/integrations/clerk/webhook/clerk-1");
    let user = fixture_path("clerk", "user.created.json");
    send_until(
        dir.path(),
        &db,
        &[
            &user,
            "--url",
            &clerk_url,
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ],
        "\"accepted\"",
    );

    // rotate: the new secret works at once (after the refresh) and the previous one still does.
    let new_secret = "whsec_bmV3LXNlY3JldC1hZnRlci1yb3RhdGlvbg==";
    let (ok, out, err) = run(hookgate(dir.path(), &db).args([
        "connections",
        "rotate",
        "clerk-1",
        "--secret",
        new_secret,
    ]));
    assert!(ok && out.contains("2 secret(s)"), "{out} {err}");
    let session = fixture_path("clerk", "session.created.json");
    send_until(
        dir.path(),
        &db,
        &[&session, "--url", &clerk_url, "--secret", new_secret],
        "\"accepted\"",
    );
    let org = fixture_path("clerk", "organization.created.json");
    send_until(
        dir.path(),
        &db,
        &[
            &org,
            "--url",
            &clerk_url,
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ],
        "\"accepted\"",
    );
    let (ok, _, _) = run(hookgate(dir.path(), &db).args([
        "connections",
        "rotate",
        "clerk-1",
        "--secret",
        new_secret,
        "--drop-old",
    ]));
    assert!(ok);
    let updated = fixture_path("clerk", "user.updated.json");
    send_until(
        dir.path(),
        &db,
        &[
            &updated,
            "--url",
            &clerk_url,
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ],
        "signature_mismatch",
    );

    // disable → 404; enable → accepted again; remove → 404. (A send may land before the 2 s
    // refresh and be stored; each step therefore uses its own fixture.)
    let (ok, _, _) = run(hookgate(dir.path(), &db).args(["connections", "disable", "clerk-1"]));
    assert!(ok);
    send_until(
        dir.path(),
        &db,
        &[&updated, "--url", &clerk_url, "--secret", new_secret],
        "404",
    );
    let (ok, _, _) = run(hookgate(dir.path(), &db).args(["connections", "enable", "clerk-1"]));
    assert!(ok);
    let membership = fixture_path("clerk", "organizationMembership.created.json");
    send_until(
        dir.path(),
        &db,
        &[&membership, "--url", &clerk_url, "--secret", new_secret],
        "\"accepted\"",
    );
    let (ok, _, _) = run(hookgate(dir.path(), &db).args(["connections", "remove", "clerk-1"]));
    assert!(ok);
    let (ok, _, err) = run(hookgate(dir.path(), &db).args(["connections", "remove", "clerk-1"]));
    assert!(!ok && err.contains("no connection"), "{err}");
    send_until(
        dir.path(),
        &db,
        &[&updated, "--url", &clerk_url, "--secret", new_secret],
        "404",
    );

    // A clean stop on SIGTERM.
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    assert!(status.success(), "serve exited with {status}");
}

backend_tests!(operator_workflow);

#[test]
fn zero_config_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.current_dir(dir.path())
        .env_remove("HOOKGATE_DATABASE_URL")
        .env_remove("HOOKGATE_CONFIG")
        .arg("print-config");
    let (ok, out, err) = run(&mut cmd);
    assert!(ok, "{err}");
    assert!(out.contains("listen: 127.0.0.1:8080"), "{out}");
    assert!(out.contains("sqlite://hookgate.db"), "{out}");
    // `serve` with no database flag creates ./hookgate.db in the working directory.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    cmd.current_dir(dir.path())
        .env_remove("HOOKGATE_DATABASE_URL")
        .env_remove("HOOKGATE_CONFIG")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd);
    assert!(dir.path().join("hookgate.db").exists());
    let (ok, out, _) = run(Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .current_dir(dir.path())
        .env_remove("HOOKGATE_DATABASE_URL")
        .args(["connections", "list"]));
    assert!(ok && out.contains("no connections"), "{out}");
    let log = std::sync::Arc::clone(&server.log);
    let status = server.stop();
    assert!(
        status.success(),
        "serve exited with {status} on SIGTERM\n{}",
        log.lock().expect("lock")
    );
}

#[test]
fn configuration_errors_name_what_to_fix() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    let cases = [
        ("lisen = \"127.0.0.1:1\"\n", "lisen"),
        ("[[connections]]\nid = \"s\"\nprovider = \"stripe\"\nsecrets = [\"x\"]\ntolerance = 5\n", "tolerance"),
        ("[[connections]]\nid = \"s\"\nprovider = \"strip\"\nsecrets = [\"x\"]\n", "connections[0]"),
        ("max_body_bytes = -1\n", "max_body_bytes"),
    ];
    for (text, needle) in cases {
        std::fs::write(&path, text).expect("write");
        let db = format!("sqlite://{}", dir.path().join("x.db").display());
        let (ok, _, err) = run(hookgate(dir.path(), &db)
            .arg("--config")
            .arg(&path)
            .arg("serve"));
        assert!(!ok, "{text} must fail");
        assert!(err.contains(needle), "{text}: {err}");
    }
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let (ok, _, err) = run(hookgate(dir.path(), &db)
        .arg("serve")
        .env("HOOKGATE_MAX_BODY_BYTES", "lots"));
    assert!(!ok && err.contains("max-body-bytes"), "{err}");
    let (ok, _, err) = run(hookgate(dir.path(), "mysql://x").arg("serve"));
    assert!(!ok && err.contains("database_url"), "{err}");
}
