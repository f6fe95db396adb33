//! Store outages: while the store cannot commit, the gateway answers 503 with `Retry-After`
//! (429 for Brevo, which discards on 5xx), `/readyz` says so, nothing that was not stored gets a
//! 2xx, and it recovers by itself when the store comes back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookgate::db::Db;
use hookgate::providers::{ProviderId, Secret};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sqlx::Connection as _;

use crate::cli::{hookgate, Server};
use crate::support::{
    cannot_run, now_options, postgres_via, Backend, Delivered, Proxy, TestApp, TestStore,
};
use crate::webhooks::kit;

fn stripe_event(n: u32) -> Vec<u8> {
    json!({"id": format!("evt_outage_{n}"), "object": "event", "type": "invoice.paid", "created": 1_700_000_000 + n,
           "data": {"object": {"id": format!("in_{n}"), "customer": "cus_1", "customer_email": "a@example.com"}}})
        .to_string()
        .into_bytes()
}

fn brevo_event(n: u32) -> Vec<u8> {
    json!({"event": "delivered", "email": "a@example.com", "id": 1, "ts_epoch": 1_700_000_000_000_u64 + u64::from(n)})
        .to_string()
        .into_bytes()
}

async fn ready(app: &TestApp) -> bool {
    app.client
        .get(app.url("/readyz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false)
}

async fn wait_ready(app: &TestApp) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ready(app).await {
        assert!(
            std::time::Instant::now() < deadline,
            "readiness did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Delivers during an outage and checks every answer is a refusal with `Retry-After`.
async fn deliver_during_outage(app: &TestApp) {
    let stripe = kit(ProviderId::Stripe);
    let brevo = kit(ProviderId::Brevo);
    let answers: Vec<Delivered> = futures::future::join_all((1..=3).map(|n| {
        app.deliver(
            ProviderId::Stripe,
            "stripe",
            Box::leak(stripe_event(n).into_boxed_slice()),
            stripe.secret,
            now_options(),
        )
    }))
    .await;
    for a in &answers {
        a.assert_error(503, "store_unavailable");
        assert!(a.headers.contains_key("retry-after"));
    }
    let b = app
        .deliver(
            ProviderId::Brevo,
            "brevo",
            &brevo_event(1),
            brevo.secret,
            now_options(),
        )
        .await;
    b.assert_error(429, "store_unavailable");
    assert!(b.headers.contains_key("retry-after"));
}

/// After recovery: every refused event can be delivered again and ends up stored exactly once
/// (a refusal may race a commit already in flight, so the redelivery may be a duplicate), and
/// the event stored before the outage is still there.
async fn check_after_recovery(app: &TestApp, db: &Db) {
    let stripe = kit(ProviderId::Stripe);
    for n in 1..=3 {
        let answer = app
            .deliver(
                ProviderId::Stripe,
                "stripe",
                &stripe_event(n),
                stripe.secret,
                now_options(),
            )
            .await;
        answer.assert_status(200);
        assert!(
            ["accepted", "duplicate"].contains(&answer.json()["status"].as_str().unwrap_or("")),
            "{}",
            answer.text
        );
        assert_eq!(
            db.count_stored("stripe", &format!("evt_outage_{n}"))
                .await
                .expect("count"),
            1
        );
    }
    let brevo = kit(ProviderId::Brevo);
    app.deliver(
        ProviderId::Brevo,
        "brevo",
        &brevo_event(1),
        brevo.secret,
        now_options(),
    )
    .await
    .assert_status(200);
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &stripe_event(0),
        stripe.secret,
        now_options(),
    )
    .await
    .assert_outcome("duplicate");
}

fn builder(backend: Backend) -> crate::support::TestAppBuilder {
    TestApp::builder(backend)
        .connection(
            "stripe",
            ProviderId::Stripe,
            &[kit(ProviderId::Stripe).secret],
        )
        .connection("brevo", ProviderId::Brevo, &[kit(ProviderId::Brevo).secret])
}

/// SQLite: another process holds the write lock past the 5 s busy timeout (as a long-running
/// `sqlite3` session or backup would), so commits fail with SQLITE_BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_lock_outage() {
    let app = builder(Backend::Sqlite).start().await;
    let stripe = kit(ProviderId::Stripe);
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &stripe_event(0),
        stripe.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");

    let mut locker = sqlx::SqliteConnection::connect(&app.store.url)
        .await
        .expect("second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut locker)
        .await
        .expect("take the write lock");
    deliver_during_outage(&app).await;
    assert!(
        !ready(&app).await,
        "/readyz must report the store unavailable"
    );

    sqlx::query("ROLLBACK")
        .execute(&mut locker)
        .await
        .expect("release");
    locker.close().await.expect("close");
    wait_ready(&app).await;
    check_after_recovery(&app, &app.store.db).await;
}

/// PostgreSQL: the network path to the server is cut (connections reset, new ones refused),
/// then restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_outage() {
    let Some(Backend::Postgres(url)) = Backend::postgres() else {
        return; // Not run, and said so (under CI, `Backend::postgres` fails instead).
    };
    let schema = crate::support::new_pg_schema(&url).await;
    let (target, _) = postgres_via(&url, 1);
    let proxy = Proxy::start(target).await;
    let (_, via) = postgres_via(&url, proxy.port);
    let db = Db::connect_postgres_schema(&via, &schema)
        .await
        .expect("connect through the proxy");
    let direct = Db::connect_postgres_schema(&url, &schema)
        .await
        .expect("direct connection");
    let store = TestStore {
        db,
        url: via,
        schema: Some(schema),
        _dir: None,
    };
    let app = crate::support::TestAppBuilder::start_on(
        builder(Backend::Postgres(url)).into_config(),
        store,
    )
    .await;
    let stripe = kit(ProviderId::Stripe);
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &stripe_event(0),
        stripe.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");

    proxy.cut();
    deliver_during_outage(&app).await;
    assert!(
        !ready(&app).await,
        "/readyz must report the store unavailable"
    );

    proxy.restore().await;
    wait_ready(&app).await;
    check_after_recovery(&app, &direct).await;
}

/// The store outages of the tests under load, each made and repaired from the outside while a
/// real `hookgate serve` keeps running.
enum Outage {
    /// The SQLite database and WAL files become immutable (`chattr +i`): every write through
    /// the gateway's already open files fails with EPERM, as on a read-only remount or a
    /// storage layer that turns read-only. Even root cannot write an immutable file, so this
    /// models "the file becomes unwritable" where `chmod` cannot.
    SqliteImmutable(std::path::PathBuf),
    /// Another connection holds SQLite's write lock past the busy timeout, as a long `sqlite3`
    /// session or backup would: commits fail with SQLITE_BUSY (a different failure from an I/O
    /// error, with its own test).
    SqliteLocked(String, Option<sqlx::SqliteConnection>),
    /// PostgreSQL: the network path is cut (connections reset, new ones refused).
    PostgresCut(Proxy),
}

impl Outage {
    fn name(&self) -> &'static str {
        match self {
            Outage::SqliteImmutable(_) => "sqlite, database files immutable",
            Outage::SqliteLocked(..) => "sqlite, write lock held by another connection",
            Outage::PostgresCut(_) => "postgres, network path cut",
        }
    }

    /// The SQLite files to freeze: the database and its WAL (the shared-memory index stays
    /// writable: readers need it, and it holds no data).
    fn sqlite_files(db: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        vec![db.to_owned(), wal.into()]
    }

    fn chattr(flag: &str, files: &[std::path::PathBuf]) -> bool {
        std::process::Command::new("chattr")
            .arg(flag)
            .args(files)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Immutable SQLite files, if `chattr +i` works here (the `chattr` tool, CAP_LINUX_IMMUTABLE
    /// and a filesystem with the attribute); otherwise what is missing, for [`cannot_run`].
    fn sqlite_immutable(db: &std::path::Path) -> Result<Outage, String> {
        let probe = db.with_file_name("chattr-probe");
        std::fs::write(&probe, b"x").expect("probe file");
        let files = [probe.clone()];
        let result = if !Outage::chattr("+i", &files) {
            Err("`chattr +i` fails (is the `chattr` tool installed, with CAP_LINUX_IMMUTABLE, on a filesystem with the immutable attribute?)".to_owned())
        } else if std::fs::OpenOptions::new()
            .append(true)
            .open(&probe)
            .is_ok()
        {
            Err("`chattr +i` succeeds but the file stays writable".to_owned())
        } else {
            Ok(Outage::SqliteImmutable(db.to_owned()))
        };
        Outage::chattr("-i", &files);
        std::fs::remove_file(&probe).ok();
        result
    }

    async fn begin(&mut self) {
        match self {
            Outage::SqliteImmutable(db) => {
                assert!(Outage::chattr("+i", &Outage::sqlite_files(db)), "chattr +i");
            }
            Outage::SqliteLocked(url, locker) => {
                let mut conn = sqlx::SqliteConnection::connect(url)
                    .await
                    .expect("second connection");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("take the write lock");
                *locker = Some(conn);
            }
            Outage::PostgresCut(proxy) => proxy.cut(),
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::SqliteImmutable(db) => {
                assert!(Outage::chattr("-i", &Outage::sqlite_files(db)), "chattr -i");
            }
            Outage::SqliteLocked(_, locker) => {
                if let Some(mut conn) = locker.take() {
                    sqlx::query("ROLLBACK")
                        .execute(&mut conn)
                        .await
                        .expect("release");
                    conn.close().await.expect("close");
                }
            }
            Outage::PostgresCut(proxy) => proxy.restore().await,
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        // A failed test must not leave an immutable file behind that nobody can delete.
        if let Outage::SqliteImmutable(db) = self {
            Outage::chattr("-i", &Outage::sqlite_files(db));
        }
    }
}

/// One request of the load.
#[derive(Debug, Clone)]
struct Sample {
    provider: ProviderId,
    /// The provider event id hookgate stores (Brevo's is the body's SHA-256).
    event_id: String,
    body: Vec<u8>,
    sent: Instant,
    answered: Instant,
    /// 0 when no answer came.
    status: u16,
    retry_after: bool,
    code: String,
}

impl Sample {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The refusal the gateway owes while the store cannot commit.
    fn refused_as_specified(&self) -> bool {
        let status = if self.provider == ProviderId::Brevo {
            429
        } else {
            503
        };
        self.status == status && self.retry_after && self.code == "store_unavailable"
    }
}

/// Signs and posts `body`; the answer as (status, Retry-After present, body `status`/`error`).
async fn send(
    http: &reqwest::Client,
    base: &str,
    provider: ProviderId,
    body: &[u8],
) -> (u16, bool, String) {
    let (connection, secret) = match provider {
        ProviderId::Brevo => ("brevo", kit(ProviderId::Brevo).secret),
        _ => ("stripe", kit(ProviderId::Stripe).secret),
    };
    let signed = provider
        .adapter()
        .sign(body, &Secret::new(secret), &now_options())
        .expect("sign");
    let mut url = format!("{base}/integrations/{provider}/webhook/{connection}");
    if let Some(q) = signed.query {
        url = format!("{url}?{q}");
    }
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in signed.headers {
        request = request.header(name, value);
    }
    let Ok(response) = request.send().await else {
        return (0, false, String::new());
    };
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let json: Value = response.json().await.unwrap_or_default();
    let code = json["status"]
        .as_str()
        .or_else(|| json["error"].as_str())
        .unwrap_or_default()
        .to_owned();
    (status, retry_after, code)
}

fn load_event(provider: ProviderId, n: usize) -> (String, Vec<u8>) {
    if provider == ProviderId::Brevo {
        let body = json!({"event": "delivered", "email": format!("load{}@example.com", n % 20), "id": 1,
                          "message-id": format!("<load-{n}@example.com>"), "ts_epoch": 1_700_000_000_000_u64 + n as u64})
            .to_string()
            .into_bytes();
        (
            format!("sha256:{}", hex::encode(Sha256::digest(&body))),
            body,
        )
    } else {
        let id = format!("evt_load_{n}");
        let body = json!({"id": id, "object": "event", "type": "invoice.paid", "created": 1_700_000_000 + n,
                          "data": {"object": {"id": format!("in_load_{n}"), "customer": format!("cus_load_{}", n % 20),
                                              "customer_email": format!("load{}@example.com", n % 20)}}})
            .to_string()
            .into_bytes();
        (id, body)
    }
}

/// Continuous load from several keep-alive clients, and a `/readyz` watcher, both recording
/// everything until stopped.
struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    /// `/readyz` probes: (sent, answered, ready).
    readiness: Arc<Mutex<Vec<(Instant, Instant, bool)>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, stripe_clients: usize, brevo_clients: usize) -> Load {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let readiness = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let providers = std::iter::repeat_n(ProviderId::Stripe, stripe_clients)
            .chain(std::iter::repeat_n(ProviderId::Brevo, brevo_clients));
        for provider in providers {
            let (base, samples, stop, next) = (
                base.to_owned(),
                Arc::clone(&samples),
                Arc::clone(&stop),
                Arc::clone(&next),
            );
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                while !stop.load(Ordering::Relaxed) {
                    let (event_id, body) =
                        load_event(provider, next.fetch_add(1, Ordering::Relaxed));
                    let sent = Instant::now();
                    let (status, retry_after, code) = send(&http, &base, provider, &body).await;
                    samples.lock().expect("lock").push(Sample {
                        provider,
                        event_id,
                        body,
                        sent,
                        answered: Instant::now(),
                        status,
                        retry_after,
                        code,
                    });
                }
            }));
        }
        let (url, log, stop_watch) = (
            format!("{base}/readyz"),
            Arc::clone(&readiness),
            Arc::clone(&stop),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client");
            while !stop_watch.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let ready = http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                log.lock()
                    .expect("lock")
                    .push((sent, Instant::now(), ready));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
        Load {
            samples,
            readiness,
            stop,
            tasks,
        }
    }

    /// Waits (at most `secs`) until `done(samples)` holds.
    async fn until(&self, secs: u64, what: &str, done: impl Fn(&[Sample]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(&self.samples.lock().expect("lock")) {
            assert!(Instant::now() < deadline, "after {secs} s: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most `secs`) until a `/readyz` probe sent after `since` reports `ready`;
    /// returns when that probe was answered.
    async fn readiness_after(&self, since: Instant, ready: bool, secs: u64) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self
                .readiness
                .lock()
                .expect("lock")
                .iter()
                .find(|(sent, _, r)| *sent > since && *r == ready)
                .map(|(_, answered, _)| *answered);
            if let Some(at) = seen {
                return at;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz did not report {} within {secs} s",
                if ready { "ready" } else { "unavailable" }
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) -> (Vec<Sample>, Vec<(Instant, Instant, bool)>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let samples = self.samples.lock().expect("lock").clone();
        let readiness = self.readiness.lock().expect("lock").clone();
        (samples, readiness)
    }
}

/// Regression: a commit that fails with an I/O error is rolled back by SQLite, but sqlx still
/// counted the transaction open; two failures later every "commit" only released a nested
/// savepoint of a transaction that never committed, and the gateway answered 200 for events it
/// never stored. Consecutive deliveries to an unwritable database must all be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_io_errors_never_acknowledge() {
    let app = builder(Backend::Sqlite).start().await;
    let stripe = kit(ProviderId::Stripe);
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &stripe_event(0),
        stripe.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    let file = app
        .store
        ._dir
        .as_ref()
        .expect("dir")
        .path()
        .join("hookgate.db");
    let mut outage = match Outage::sqlite_immutable(&file) {
        Ok(outage) => outage,
        Err(missing) => return cannot_run("sqlite_io_errors_never_acknowledge", &missing),
    };
    outage.begin().await;
    for n in 1..=6 {
        let answer = app
            .deliver(
                ProviderId::Stripe,
                "stripe",
                &stripe_event(n),
                stripe.secret,
                now_options(),
            )
            .await;
        answer.assert_error(503, "store_unavailable");
    }
    assert!(
        !ready(&app).await,
        "/readyz must report the store unwritable"
    );
    outage.end().await;
    wait_ready(&app).await;
    for n in 4..=6 {
        assert_eq!(
            app.store
                .db
                .count_stored("stripe", &format!("evt_outage_{n}"))
                .await
                .expect("count"),
            0,
            "a refused event was stored"
        );
    }
    check_after_recovery(&app, &app.store.db).await;
}

/// Starts `hookgate serve` with a Stripe and a Brevo connection. The rate limit is lifted so that
/// the load never meets a 429 that is not about the store.
fn serve_stripe_and_brevo(dir: &std::path::Path, db_url: &str) -> Server {
    let config = dir.join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nrate_limit_per_sec = 1000000\n\
             [[connections]]\nid = \"stripe\"\nprovider = \"stripe\"\nsecrets = [\"{}\"]\n\
             [[connections]]\nid = \"brevo\"\nprovider = \"brevo\"\nsecrets = [\"{}\"]\n",
            kit(ProviderId::Stripe).secret,
            kit(ProviderId::Brevo).secret
        ),
    )
    .expect("config");
    let mut cmd = hookgate(dir, db_url);
    cmd.arg("--config").arg(&config).arg("serve");
    Server::start(cmd)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Answered before the outage began.
    Before,
    /// Overlapping the start of the outage (before `/readyz` reported it): either answer is
    /// right, as long as a 2xx was stored.
    Cutting,
    /// Sent after `/readyz` first reported the outage, answered before the store came back.
    Outage,
    /// Overlapping the restoration (answered after it, sent before `/readyz` reported the store
    /// back): either answer is right, as long as a 2xx was stored.
    Restoring,
    /// Sent after `/readyz` first reported the store back.
    After,
}

/// Continuous load over a store outage: before it, during it and after it.
async fn outage_under_load(mut outage: Outage, db_url: &str, check: &Db) {
    println!("store outage under load ({})", outage.name());
    let dir = tempfile::tempdir().expect("dir");
    let server = {
        let (dir, db_url) = (dir.path().to_owned(), db_url.to_owned());
        tokio::task::spawn_blocking(move || serve_stripe_and_brevo(&dir, &db_url))
            .await
            .expect("start")
    };
    let started = Instant::now();
    let load = Load::start(&server.url(""), 4, 2);
    let acked = |s: &[Sample]| s.iter().filter(|x| x.ok()).count();
    load.until(30, "50 deliveries acknowledged before the outage", |s| {
        acked(s) >= 50
    })
    .await;

    let cut = Instant::now();
    outage.begin().await;
    let down = load.readiness_after(cut, false, 30).await;
    load.until(
        60,
        "a Stripe and a Brevo delivery sent and answered during the outage",
        |s| {
            [ProviderId::Stripe, ProviderId::Brevo].iter().all(|p| {
                s.iter()
                    .filter(|x| x.provider == *p && x.sent > down)
                    .count()
                    >= 2
            })
        },
    )
    .await;

    let restore = Instant::now();
    outage.end().await;
    let up = load.readiness_after(restore, true, 30).await;
    load.until(30, "50 deliveries sent after recovery acknowledged", |s| {
        s.iter().filter(|x| x.sent > up && x.ok()).count() >= 50
    })
    .await;
    let (samples, readiness) = load.stop().await;

    let phase = |x: &Sample| {
        if x.answered < cut {
            Phase::Before
        } else if x.sent > up {
            Phase::After
        } else if x.sent > down && x.answered < restore {
            Phase::Outage
        } else if x.answered < restore {
            Phase::Cutting
        } else {
            Phase::Restoring
        }
    };
    let mut counts: std::collections::BTreeMap<(Phase, &str, u16), usize> = Default::default();
    for x in &samples {
        *counts
            .entry((phase(x), x.provider.as_str(), x.status))
            .or_default() += 1;
    }
    println!("  status counts per phase (phase, provider, status): {counts:?}");

    // Every 2xx was stored, once.
    let stored = |connection: &'static str| async move {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for id in check
            .stored_event_ids(connection)
            .await
            .expect("stored ids")
        {
            *counts.entry(id).or_default() += 1;
        }
        counts
    };
    let (stripe_stored, brevo_stored) = (stored("stripe").await, stored("brevo").await);
    let stored_count = |x: &Sample| {
        let map = if x.provider == ProviderId::Brevo {
            &brevo_stored
        } else {
            &stripe_stored
        };
        map.get(&x.event_id).copied().unwrap_or(0)
    };
    let lost: Vec<&String> = samples
        .iter()
        .filter(|x| x.ok() && stored_count(x) != 1)
        .map(|x| &x.event_id)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged deliveries are not stored exactly once: {:?}",
        lost.len(),
        samples.iter().filter(|x| x.ok()).count(),
        &lost[..lost.len().min(10)]
    );

    let wrong: Vec<&Sample> = samples
        .iter()
        .filter(|x| !x.ok() && !x.refused_as_specified())
        .collect();
    assert!(
        wrong.is_empty(),
        "answers other than 2xx or the specified refusal: {:?}",
        wrong
            .iter()
            .take(10)
            .map(|x| (x.provider, x.status, &x.code))
            .collect::<Vec<_>>()
    );
    for (expected, name) in [(Phase::Before, "before"), (Phase::After, "after")] {
        let failed = samples
            .iter()
            .filter(|x| phase(x) == expected && !x.ok())
            .count();
        assert_eq!(
            failed, 0,
            "deliveries {name} the outage that did not get a 2xx"
        );
    }
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|x| phase(x) == Phase::Outage)
        .collect();
    assert!(
        during.iter().all(|x| x.refused_as_specified()),
        "during the outage only 503 + Retry-After (Stripe) and 429 + Retry-After (Brevo)"
    );
    assert!(
        during.iter().any(|x| x.provider == ProviderId::Brevo)
            && during.iter().any(|x| x.provider == ProviderId::Stripe),
        "both providers were refused during the outage"
    );
    let probes = |from: Instant, to: Instant| {
        readiness
            .iter()
            .filter(move |(sent, answered, _)| *sent > from && *answered < to)
            .map(|(_, _, ready)| *ready)
    };
    assert!(
        probes(down, restore).all(|ready| !ready),
        "/readyz reported ready while the store was down"
    );
    assert!(
        probes(up, Instant::now()).all(|ready| ready),
        "/readyz ready again after recovery"
    );
    assert!(
        probes(started, cut).all(|ready| ready),
        "/readyz ready before the outage"
    );

    // The provider redelivers what was refused: each is stored, exactly once (a refusal may
    // race a commit, so some are duplicates).
    let refused: Vec<&Sample> = samples.iter().filter(|x| !x.ok()).collect();
    let http = reqwest::Client::new();
    let base = server.url("");
    let mut duplicates = 0;
    for x in &refused {
        let (status, _, code) = send(&http, &base, x.provider, &x.body).await;
        assert_eq!(
            status, 200,
            "redelivery of {} after recovery: {code}",
            x.event_id
        );
        assert!(["accepted", "duplicate"].contains(&code.as_str()), "{code}");
        duplicates += usize::from(code == "duplicate");
    }
    let (stripe_stored, brevo_stored) = (stored("stripe").await, stored("brevo").await);
    for x in &samples {
        let map = if x.provider == ProviderId::Brevo {
            &brevo_stored
        } else {
            &stripe_stored
        };
        assert_eq!(map.get(&x.event_id), Some(&1), "{} stored once", x.event_id);
    }
    println!(
        "  {} requests, {} refused and redelivered after recovery ({duplicates} of them had been stored)",
        samples.len(),
        refused.len()
    );
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .expect("stop");
    assert!(status.success(), "the gateway stops cleanly");
}

/// SQLite: the database file becomes unwritable (I/O errors) in the middle of a sustained load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unwritable_under_load() {
    let store = TestStore::new(&Backend::Sqlite).await;
    let file = store._dir.as_ref().expect("dir").path().join("hookgate.db");
    let outage = match Outage::sqlite_immutable(&file) {
        Ok(outage) => outage,
        Err(missing) => return cannot_run("sqlite_unwritable_under_load", &missing),
    };
    outage_under_load(outage, &store.binary_url(), &store.db).await;
}

/// SQLite: another connection holds the write lock past the busy timeout (SQLITE_BUSY, not an
/// I/O error) in the middle of a sustained load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_locked_under_load() {
    let store = TestStore::new(&Backend::Sqlite).await;
    let outage = Outage::SqliteLocked(store.url.clone(), None);
    outage_under_load(outage, &store.binary_url(), &store.db).await;
}

/// PostgreSQL: the network path is cut in the middle of a sustained load, then restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_under_load() {
    let Some(backend @ Backend::Postgres(_)) = Backend::postgres() else {
        return; // Not run, and said so (under CI, `Backend::postgres` fails instead).
    };
    let Backend::Postgres(url) = &backend else {
        unreachable!()
    };
    let store = TestStore::new(&backend).await;
    let (target, _) = postgres_via(url, 1);
    let proxy = Proxy::start(target).await;
    let (_, via) = postgres_via(url, proxy.port);
    let through_proxy = TestStore {
        db: store.db.clone(),
        url: via,
        schema: store.schema.clone(),
        _dir: None,
    };
    outage_under_load(
        Outage::PostgresCut(proxy),
        &through_proxy.binary_url(),
        &store.db,
    )
    .await;
}
