//! Test support: a real gateway served over loopback HTTP on a real store, per test.
//!
//! `Backend::Sqlite` uses a temporary database file; `Backend::Postgres` a fresh schema in the
//! database named by `HOOKGATE_TEST_POSTGRES_URL` (old test schemas are dropped as new ones are
//! made). When that variable is set and the server cannot be reached, tests fail: they never
//! skip silently. Under CI (`CI` set) a missing variable, tool or capability fails the test
//! that needs it, naming what is missing ([`cannot_run`]). `backend_tests!` turns one scenario
//! into a `sqlite` and a `postgres` test.

use std::net::SocketAddr;
use std::time::Duration;

use hookgate::config::Config;
use hookgate::connections::{ConnectionInput, ConnectionSpec};
use hookgate::db::Db;
use hookgate::providers::{AuthMode, ProviderId, Secret, SignOptions};
use hookgate::Gateway;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend if `HOOKGATE_TEST_POSTGRES_URL` is set. Under CI (see [`in_ci`]) a
    /// missing URL fails the calling test instead: the PostgreSQL half must not vanish quietly.
    pub fn postgres() -> Option<Backend> {
        #[expect(clippy::disallowed_methods, reason = "tests read their own settings")]
        match std::env::var("HOOKGATE_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ => {
                cannot_run(
                    "this PostgreSQL test",
                    "HOOKGATE_TEST_POSTGRES_URL is not set",
                );
                None
            }
        }
    }
}

/// Whether the suite runs under CI: `CI` is set to anything but empty, `0` or `false` (CI
/// services set it; `.ci/run` sets it too).
pub fn in_ci() -> bool {
    #[expect(clippy::disallowed_methods, reason = "tests read their own settings")]
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// A test that cannot run on this machine because `missing` (a tool, a capability, a setting).
/// Under CI that fails the test, naming what is missing; elsewhere it prints that the test did
/// NOT run and the caller returns.
pub fn cannot_run(test: &str, missing: &str) {
    assert!(
        !in_ci(),
        "{test} cannot run: {missing}. Under CI this is a failure, not a skip."
    );
    println!("{test} did NOT run: {missing} (under CI this fails)");
}

/// Generates `mod <name> { sqlite, postgres }` tests calling `<name>(backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    // Without HOOKGATE_TEST_POSTGRES_URL the PostgreSQL half does not run
                    // (scripts/test says so plainly), and under CI that fails the test. With
                    // it set, an unreachable server fails.
                    if let Some(backend) = $crate::support::Backend::postgres() {
                        super::$name(backend).await;
                    }
                }
            }
        )*
    };
}

/// A store for one test, and what is needed to reopen it.
pub struct TestStore {
    pub db: Db,
    /// For SQLite: the database URL; for PostgreSQL: the server URL and schema.
    pub url: String,
    pub schema: Option<String>,
    pub _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub async fn new(backend: &Backend) -> TestStore {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("hookgate.db").display());
                let db = Db::connect(&url, hookgate::db::Durability::Full)
                    .await
                    .expect("open sqlite");
                TestStore {
                    db,
                    url,
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres(url) => {
                let schema = new_pg_schema(url).await;
                let db = Db::connect_postgres_schema(url, &schema).await.unwrap_or_else(|e| {
                    panic!("HOOKGATE_TEST_POSTGRES_URL is set but PostgreSQL cannot be reached: {e}")
                });
                TestStore {
                    db,
                    url: url.clone(),
                    schema: Some(schema),
                    _dir: None,
                }
            }
        }
    }

    /// A second, independent handle on the same store (its own pools), for checks that outlive
    /// a gateway that closes the first one on shutdown.
    pub async fn reopen(&self) -> Db {
        match &self.schema {
            None => Db::connect(&self.url, hookgate::db::Durability::Full)
                .await
                .expect("reopen sqlite"),
            Some(schema) => Db::connect_postgres_schema(&self.url, schema)
                .await
                .expect("reopen postgres"),
        }
    }

    /// A URL the `hookgate` binary can use for this store.
    pub fn binary_url(&self) -> String {
        match &self.schema {
            None => self.url.clone(),
            Some(schema) => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}options=-c%20search_path%3D{schema}", self.url)
            }
        }
    }
}

/// Creates a fresh schema, dropping test schemas older than an hour.
pub async fn new_pg_schema(url: &str) -> String {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("HOOKGATE_TEST_POSTGRES_URL is set but PostgreSQL cannot be reached: {e}")
    });
    let schema = format!("hg_test_{}", ulid::Ulid::new().to_string().to_lowercase());
    let old: Vec<String> =
        sqlx::query_scalar("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'hg\\_test\\_%'")
            .fetch_all(&mut conn)
            .await
            .expect("list schemas");
    let hour_ago = ulid::Ulid::from_parts(
        u64::try_from(hookgate::now_ms() - 3_600_000).expect("positive"),
        0,
    );
    for name in old {
        let Ok(id) = ulid::Ulid::from_string(&name["hg_test_".len()..].to_uppercase()) else {
            continue;
        };
        if id < hour_ago {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut conn)
                .await;
        }
    }
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .expect("create schema");
    conn.close().await.ok();
    schema
}

/// A running gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub store: TestStore,
    shutdown: Option<oneshot::Sender<()>>,
}

/// Builder for [`TestApp`].
pub struct TestAppBuilder {
    backend: Backend,
    config: Config,
}

impl TestApp {
    pub fn builder(backend: Backend) -> TestAppBuilder {
        let mut config = Config::for_database("unused");
        config.admin_token = Some(Secret::new(ADMIN_TOKEN));
        config.header_timeout_secs = 2;
        config.body_timeout_secs = 2;
        TestAppBuilder { backend, config }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn receive_url(&self, provider: ProviderId, connection: &str) -> String {
        self.url(&format!("/integrations/{provider}/webhook/{connection}"))
    }

    /// Signs `body` for `provider` with `secret` and posts it to `connection`.
    pub async fn deliver(
        &self,
        provider: ProviderId,
        connection: &str,
        body: &[u8],
        secret: &str,
        options: SignOptions,
    ) -> Delivered {
        let signed = provider
            .adapter()
            .sign(body, &Secret::new(secret), &options)
            .expect("sign");
        let mut url = self.receive_url(provider, connection);
        if let Some(q) = signed.query {
            url = format!("{url}?{q}");
        }
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in signed.headers {
            request = request.header(name, value);
        }
        Delivered::read(request.send().await.expect("request")).await
    }

    pub async fn admin_get(&self, path: &str) -> Delivered {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request");
        Delivered::read(response).await
    }

    /// Polls `GET path` (an ingest list) until `done(items)` holds, for up to 5 s: rejected
    /// requests are logged without waiting for the commit, so a reader may briefly lag.
    pub async fn ingest_until(&self, path: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let items = self.admin_get(path).await.json()["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if done(&items) || std::time::Instant::now() > deadline {
                return items;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Delivered {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request");
        Delivered::read(response).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestAppBuilder {
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(&mut self.config);
        self
    }

    /// Adds a connection with default settings.
    pub fn connection(self, id: &str, provider: ProviderId, secrets: &[&str]) -> Self {
        self.connection_with(id, provider, secrets, |_| {})
    }

    /// Adds a connection and lets `f` adjust it before validation.
    pub fn connection_with(
        mut self,
        id: &str,
        provider: ProviderId,
        secrets: &[&str],
        f: impl FnOnce(&mut ConnectionSpec),
    ) -> Self {
        let secrets = secrets.iter().map(|s| (*s).to_owned()).collect();
        let mut spec = ConnectionInput::new(id, provider, secrets)
            .into_spec()
            .expect("valid connection");
        f(&mut spec);
        self.config.connections.push(spec);
        self
    }

    pub async fn start(self) -> TestApp {
        let store = TestStore::new(&self.backend).await;
        Self::start_on(self.config, store).await
    }

    /// Starts on an existing store (restarts, or stores made to fail).
    pub async fn start_on(config: Config, store: TestStore) -> TestApp {
        let gateway = Gateway::start_with_db(config, store.db.clone())
            .await
            .expect("gateway starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = gateway
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        TestApp {
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            store,
            shutdown: Some(tx),
        }
    }

    pub fn into_config(self) -> Config {
        self.config
    }
}

/// A finished response, read whole.
#[derive(Debug)]
pub struct Delivered {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Delivered {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(self.status.as_u16(), expected, "body: {}", self.text);
        self
    }

    /// Asserts a 200 with `{"status": outcome}` and returns the id.
    #[track_caller]
    pub fn assert_outcome(&self, outcome: &str) -> String {
        self.assert_status(200);
        let json = self.json();
        assert_eq!(json["status"], outcome, "body: {}", self.text);
        json["id"].as_str().expect("id").to_owned()
    }

    /// Asserts an error status with `{"error": code}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        self.assert_status(status);
        assert_eq!(self.json()["error"], code, "body: {}", self.text);
    }
}

impl Delivered {
    pub async fn read(response: reqwest::Response) -> Delivered {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        Delivered {
            status,
            headers,
            text,
        }
    }
}

/// The text a gateway's `/metrics` answers at `url`.
pub async fn metrics(client: &reqwest::Client, url: String) -> String {
    client
        .get(url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// Reads a fixture file.
pub fn fixture(provider: ProviderId, name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{provider}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Sign options at the current time.
pub fn now_options() -> SignOptions {
    SignOptions {
        now_ms: hookgate::now_ms(),
        ..SignOptions::default()
    }
}

/// Sign options with a shared-secret mode.
pub fn auth_options(mode: &str) -> SignOptions {
    SignOptions {
        auth: Some(mode.parse::<AuthMode>().expect("mode")),
        ..now_options()
    }
}

/// A loopback TCP proxy a test can cut (listener closed, open connections reset) and restore
/// on the same port: a real network outage between the gateway and PostgreSQL.
pub struct Proxy {
    pub port: u16,
    target: SocketAddr,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let proxy = Proxy {
            port,
            target,
            tasks: Default::default(),
        };
        proxy.run(listener);
        proxy
    }

    fn run(&self, listener: tokio::net::TcpListener) {
        let tasks = std::sync::Arc::clone(&self.tasks);
        let target = self.target;
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().expect("lock").push(conn.abort_handle());
            }
        });
        self.tasks.lock().expect("lock").push(accept.abort_handle());
    }

    /// Closes the listener (new connections are refused) and every open connection.
    pub fn cut(&self) {
        for task in self.tasks.lock().expect("lock").drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => return self.run(listener),
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("cannot rebind proxy port: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

/// The PostgreSQL server address and the same URL pointed at `port` on loopback.
pub fn postgres_via(url: &str, port: u16) -> (SocketAddr, String) {
    let mut parsed = reqwest::Url::parse(url).expect("postgres URL");
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let target_port = parsed.port().unwrap_or(5432);
    let target = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), target_port))
        .expect("resolve")
        .next()
        .expect("an address");
    parsed.set_host(Some("127.0.0.1")).expect("host");
    parsed.set_port(Some(port)).expect("port");
    (target, parsed.to_string())
}

/// Serializes the making of the Python venvs some tests check our wire formats with.
static VENVS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The python of a venv named `name` under the tests' temporary directory, in which `import`
/// (a Python import statement's list) succeeds: made with `python3 -m venv` and `pip install
/// packages` the first time, then reused. A machine without python3, its venv module or PyPI
/// fails the calling test saying which, never skips it.
pub fn python_venv(name: &str, import: &str, packages: &[&str]) -> std::path::PathBuf {
    use std::process::Command;
    let _guard = VENVS.lock().unwrap_or_else(|e| e.into_inner());
    let venv = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin").join("python");
    let ready = || {
        Command::new(&python)
            .args(["-c", &format!("import {import}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready() {
        return python;
    }
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap_or_else(|e| panic!("this test needs python3 (with the venv module) on PATH: {e}"));
    assert!(
        out.status.success(),
        "`python3 -m venv` failed (install python3-venv): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(packages)
        .output()
        .expect("run pip");
    assert!(
        out.status.success(),
        "`pip install {}` failed (this test needs PyPI): {}",
        packages.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        ready(),
        "`import {import}` fails after installing {}",
        packages.join(" ")
    );
    python
}
