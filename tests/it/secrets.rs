//! Secret hygiene and encryption at rest.
//!
//! `secret_hygiene` runs the real `hookgate` binary at debug log level with distinctive secrets on
//! every provider and every shared-secret `auth` mode, drives accepted, rejected and misrouted
//! traffic, the admin API (good and bad tokens, bad input) and the operator commands, and then
//! searches everything an operator or attacker could read: the process output, every HTTP answer,
//! every batch two drains (OTLP and signed `http`) sent to a loopback sink, `GET /admin/drains`,
//! every ingest log record, the command outputs, and every column of every table of the database.
//! No secret, nor a derived form of one (the base64 part of a `whsec_`, its decoded key, the
//! base64 of a basic-auth pair), may appear anywhere.
//!
//! `encrypted_at_rest` checks `HOOKGATE_SECRET_KEY`: the `connections.secrets` column holds no
//! plaintext, plaintext rows written before the key keep working and are encrypted on their next
//! write, and a missing or wrong key stops the start with a message naming the connection.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hookgate::config::Config;
use hookgate::connections::{ConnectionInput, ConnectionSpec};
use hookgate::crypto::SecretKey;
use hookgate::db::Db;
use hookgate::providers::{AuthKind, AuthMode, ProviderId, Secret, SignOptions};
use hookgate::Gateway;
use sha2::Digest as _;

use crate::backend_tests;
use crate::cli::{hookgate, run, Server};
use crate::support::{fixture, now_options, Backend, TestApp, TestStore};
use crate::webhooks::kit;

/// A secret to search for, with the name it is reported by.
struct Needle {
    label: String,
    value: String,
}

/// Every secret of the run and its derived forms.
#[derive(Default)]
struct Needles(Vec<Needle>);

impl Needles {
    fn add(&mut self, label: &str, value: &str) {
        assert!(value.len() >= 12, "{label}: too short to search for");
        self.0.push(Needle {
            label: label.to_owned(),
            value: value.to_owned(),
        });
    }

    /// A Svix secret: the whole `whsec_…`, its base64 part and the decoded key text.
    fn add_svix(&mut self, label: &str, key_text: &str) -> String {
        let encoded = STANDARD.encode(key_text);
        self.add(&format!("{label} key"), key_text);
        self.add(&format!("{label} base64"), &encoded);
        let secret = format!("whsec_{encoded}");
        self.add(label, &secret);
        secret
    }

    /// A basic-auth secret: the pair, the password and the base64 the header carries.
    fn add_basic(&mut self, label: &str, user: &str, password: &str) -> String {
        let pair = format!("{user}:{password}");
        self.add(&format!("{label} password"), password);
        self.add(&format!("{label} base64"), &STANDARD.encode(&pair));
        self.add(label, &pair);
        pair
    }

    /// Panics naming the needle and where it was found, with a little context.
    #[track_caller]
    fn assert_absent(&self, place: &str, text: &str) {
        for n in &self.0 {
            if let Some(at) = text.find(&n.value) {
                let start = text[..at]
                    .char_indices()
                    .rev()
                    .nth(120)
                    .map_or(0, |(i, _)| i);
                let end = (at + n.value.len() + 40).min(text.len());
                let end = (end..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(text.len());
                panic!(
                    "secret {:?} leaked into {place}: …{}…",
                    n.label,
                    &text[start..end]
                );
            }
        }
    }
}

/// What the test read: (where, text).
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, place: impl Into<String>, text: impl Into<String>) {
        self.0.push((place.into(), text.into()));
    }
}

/// Posts `body` signed for `provider` with `secret` to `/integrations/<segment>/webhook/<id>`.
#[allow(clippy::too_many_arguments)]
async fn post(
    client: &reqwest::Client,
    base: &str,
    provider: ProviderId,
    segment: &str,
    connection: &str,
    body: &[u8],
    secret: &str,
    options: SignOptions,
    drop_header: Option<&str>,
) -> (u16, String) {
    let signed = provider
        .adapter()
        .sign(body, &Secret::new(secret), &options)
        .expect("sign");
    let mut url = format!("{base}/integrations/{segment}/webhook/{connection}");
    if let Some(q) = signed.query {
        url = format!("{url}?{q}");
    }
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in signed.headers {
        if Some(name.as_str()) != drop_header {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Every column of every table as text (bytes decoded lossily), one line per value.
async fn dump(db: &Db) -> String {
    use sqlx::Row as _;
    let mut out = String::new();
    match db {
        Db::Sqlite { readers, .. } => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
            )
            .fetch_all(readers)
            .await
            .expect("tables");
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .fetch_all(readers)
                        .await
                        .expect("columns");
                for column in columns {
                    let rows = sqlx::query(&format!(
                        "SELECT CAST(\"{column}\" AS BLOB) FROM \"{table}\""
                    ))
                    .fetch_all(readers)
                    .await
                    .expect("select");
                    for row in rows {
                        let value: Option<Vec<u8>> = row.try_get(0).expect("bytes");
                        if let Some(v) = value {
                            out.push_str(&format!(
                                "{table}.{column}: {}\n",
                                String::from_utf8_lossy(&v)
                            ));
                        }
                    }
                }
            }
        }
        Db::Postgres(pool) => {
            let columns: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
            )
            .fetch_all(pool)
            .await
            .expect("columns");
            assert!(!columns.is_empty(), "the test schema has tables");
            for (table, column, kind) in columns {
                let sql = if kind == "bytea" {
                    format!("SELECT \"{column}\" FROM \"{table}\"")
                } else {
                    format!("SELECT convert_to(\"{column}\"::text, 'UTF8') FROM \"{table}\"")
                };
                let rows = sqlx::query(&sql).fetch_all(pool).await.expect("select");
                for row in rows {
                    let value: Option<Vec<u8>> = row.try_get(0).expect("bytes");
                    if let Some(v) = value {
                        out.push_str(&format!(
                            "{table}.{column}: {}\n",
                            String::from_utf8_lossy(&v)
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Runs a `hookgate` subcommand against the store, with the key and debug logging.
fn cli(dir: &Path, db: &str, key: &str, args: &[&str]) -> (bool, String, String) {
    run(hookgate(dir, db)
        .env("RUST_LOG", "debug")
        .env("HOOKGATE_SECRET_KEY", key)
        .args(args))
}

async fn secret_hygiene(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let db_url = store.binary_url();
    let dir = tempfile::tempdir().expect("temp dir");
    let r = ulid::Ulid::new().to_string();
    let mut needles = Needles::default();

    let stripe = format!("whsec_HYGIENESTRIPE{r}");
    needles.add("stripe", &stripe);
    let clerk = needles.add_svix("clerk", &format!("HYGIENE-CLERK-{r}"));
    let stytch = needles.add_svix("stytch", &format!("HYGIENE-STYTCH-{r}"));
    let shopify = format!("HYGIENE-SHOPIFY-{r}");
    needles.add("shopify", &shopify);
    let workos = format!("HYGIENE-WORKOS-{r}");
    needles.add("workos", &workos);
    let supa_bearer = format!("HYGIENE-SUPA-BEARER-{r}");
    needles.add("supabase bearer", &supa_bearer);
    let supa_basic = needles.add_basic(
        "supabase basic",
        "hygieneuser",
        &format!("HYGIENE-SUPA-BASIC-{r}"),
    );
    let supa_header = format!("HYGIENE-SUPA-HEADER-{r}");
    needles.add("supabase header", &supa_header);
    let supa_query = format!("HYGIENE-SUPA-QUERY-{r}");
    needles.add("supabase query", &supa_query);
    let supa_off = format!("HYGIENE-SUPA-OFF-{r}");
    needles.add("disabled supabase", &supa_off);
    let revenuecat = format!("HYGIENE-RC-{r}");
    needles.add("revenuecat", &revenuecat);
    let brevo = format!("HYGIENE-BREVO-{r}");
    needles.add("brevo", &brevo);
    let admin = format!("HYGIENE-ADMIN-{r}");
    needles.add("admin token", &admin);
    let key_bytes = sha2::Sha256::digest(format!("HYGIENE-KEY-{r}"));
    let key = hex::encode(key_bytes);
    needles.add("secret key (hex)", &key);
    needles.add("secret key (base64)", &STANDARD.encode(key_bytes));
    let cli_secret = format!("HYGIENE-CLI-{r}");
    needles.add("cli-added", &cli_secret);
    let cli_rotated = format!("HYGIENE-CLIROT-{r}");
    needles.add("cli-rotated", &cli_rotated);
    let api_secret = format!("HYGIENE-API-{r}");
    needles.add("api-added", &api_secret);
    let api_rotated = format!("HYGIENE-APIROT-{r}");
    needles.add("api-rotated", &api_rotated);
    let bad_json = format!("HYGIENE-BADJSON-{r}");
    needles.add("bad-json secret", &bad_json);
    // Drains: a sink token through ${VAR}, an inline header value and a signing secret.
    let drain_token = format!("Bearer HYGIENE-DRAINTOKEN-{r}");
    needles.add("drain token", &drain_token);
    let drain_inline = format!("HYGIENE-DRAININLINE-{r}");
    needles.add("drain inline header", &drain_inline);
    let drain_secret = needles.add_svix("drain secret", &format!("HYGIENE-DRAIN-{r}"));
    let (sink, sink_addr) = crate::drains::Sink::start().await;

    // Secrets reach the file both through ${VAR} and written inline.
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "127.0.0.1:0"
admin_token = "${{HYGIENE_ADMIN}}"

[[connections]]
id = "stripe-h"
provider = "stripe"
secrets = ["${{HYGIENE_STRIPE}}"]

[[connections]]
id = "clerk-h"
provider = "clerk"
secrets = ["{clerk}"]

[[connections]]
id = "stytch-h"
provider = "stytch"
secrets = ["{stytch}"]

[[connections]]
id = "shopify-h"
provider = "shopify"
secrets = ["{shopify}"]

[[connections]]
id = "workos-h"
provider = "workos"
secrets = ["{workos}"]

[[connections]]
id = "supa-bearer"
provider = "supabase"
secrets = ["{supa_bearer}"]
auth = "bearer"

[[connections]]
id = "supa-basic"
provider = "supabase"
secrets = ["{supa_basic}"]
auth = "basic"

[[connections]]
id = "supa-header"
provider = "supabase"
secrets = ["{supa_header}"]
auth = "header:X-Webhook-Secret"

[[connections]]
id = "supa-query"
provider = "supabase"
secrets = ["{supa_query}"]
auth = "query:token"

[[connections]]
id = "supa-off"
provider = "supabase"
secrets = ["{supa_off}"]
auth = "query:sig"
enabled = false

[[connections]]
id = "rc-h"
provider = "revenuecat"
secrets = ["{revenuecat}"]
auth = "header:Authorization"

[[connections]]
id = "brevo-h"
provider = "brevo"
secrets = ["{brevo}"]

[[drains]]
id = "otel-h"
kind = "otlp_http"
url = "http://{sink_addr}"
headers = {{"Authorization" = "${{HYGIENE_DRAIN_TOKEN}}", "X-Inline" = "{drain_inline}"}}

[[drains]]
id = "http-h"
kind = "http"
url = "http://{sink_addr}/http"
secret = "{drain_secret}"
"#
        ),
    )
    .expect("write config");
    let mut seen = Seen::default();

    let mut cmd = hookgate(dir.path(), &db_url);
    cmd.arg("--config")
        .arg(&config)
        .args(["serve", "--unknown-id-log-per-minute", "1000"])
        .env("RUST_LOG", "debug")
        .env("HOOKGATE_SECRET_KEY", &key)
        .env("HYGIENE_ADMIN", &admin)
        .env("HYGIENE_STRIPE", &stripe)
        .env("HYGIENE_DRAIN_TOKEN", &drain_token);
    let server = tokio::task::spawn_blocking(move || Server::start(cmd))
        .await
        .expect("start");
    let base = server.url("");
    let client = reqwest::Client::new();

    // Receive traffic: accepted, wrong secret, stale timestamp, missing header, per connection.
    let modes: [(&str, &str, &str); 4] = [
        ("supa-bearer", "bearer", &supa_bearer),
        ("supa-basic", "basic", &supa_basic),
        ("supa-header", "header:X-Webhook-Secret", &supa_header),
        ("supa-query", "query:token", &supa_query),
    ];
    let signed: [(ProviderId, &str, &str); 5] = [
        (ProviderId::Stripe, "stripe-h", &stripe),
        (ProviderId::Clerk, "clerk-h", &clerk),
        (ProviderId::Stytch, "stytch-h", &stytch),
        (ProviderId::Shopify, "shopify-h", &shopify),
        (ProviderId::Workos, "workos-h", &workos),
    ];
    let mut deliveries: Vec<(ProviderId, String, String, SignOptions)> = Vec::new();
    for (p, id, secret) in signed {
        deliveries.push((p, id.to_owned(), secret.to_owned(), (kit(p).options)()));
    }
    for (id, mode, secret) in modes {
        let options = SignOptions {
            auth: Some(mode.parse::<AuthMode>().expect("mode")),
            ..now_options()
        };
        deliveries.push((
            ProviderId::Supabase,
            id.to_owned(),
            secret.to_owned(),
            options,
        ));
    }
    deliveries.push((
        ProviderId::Revenuecat,
        "rc-h".into(),
        revenuecat.clone(),
        SignOptions {
            auth: Some("header:Authorization".parse().expect("mode")),
            ..now_options()
        },
    ));
    deliveries.push((
        ProviderId::Brevo,
        "brevo-h".into(),
        brevo.clone(),
        now_options(),
    ));
    for (p, id, secret, options) in &deliveries {
        let body = fixture(*p, kit(*p).fixture);
        let seg = p.as_str();
        let (status, text) = post(
            &client,
            &base,
            *p,
            seg,
            id,
            &body,
            secret,
            options.clone(),
            None,
        )
        .await;
        assert_eq!(status, 200, "{id}: {text}");
        seen.add(format!("answer accepted {id}"), text);
        let wrong = if matches!(p, ProviderId::Clerk | ProviderId::Stytch) {
            "whsec_d3Jvbmctc2VjcmV0LWJ5dGVz".to_owned()
        } else if options.auth == Some(AuthMode::Basic) {
            "hygieneuser:wrong-password".to_owned()
        } else {
            "wrong-secret-value".to_owned()
        };
        let (status, text) = post(
            &client,
            &base,
            *p,
            seg,
            id,
            &body,
            &wrong,
            options.clone(),
            None,
        )
        .await;
        assert_eq!(status, 401, "{id}: {text}");
        seen.add(format!("answer wrong secret {id}"), text);
        if p.adapter().auth_kind() == AuthKind::Signature {
            if let Some(tolerance) = p.adapter().default_tolerance_secs() {
                let stale = SignOptions {
                    now_ms: hookgate::now_ms()
                        - i64::try_from(tolerance).expect("small") * 1000
                        - 60_000,
                    ..options.clone()
                };
                let (status, text) =
                    post(&client, &base, *p, seg, id, &body, secret, stale, None).await;
                assert_eq!(status, 401, "{id}: {text}");
                seen.add(format!("answer stale {id}"), text);
            }
            let signature = match p {
                ProviderId::Stripe => "stripe-signature",
                ProviderId::Shopify => "x-shopify-hmac-sha256",
                ProviderId::Workos => "workos-signature",
                _ => "svix-signature",
            };
            let (status, text) = post(
                &client,
                &base,
                *p,
                seg,
                id,
                &body,
                secret,
                options.clone(),
                Some(signature),
            )
            .await;
            assert_eq!(status, 401, "{id}: {text}");
            seen.add(format!("answer missing header {id}"), text);
        } else {
            let response = client
                .post(format!("{base}/integrations/{seg}/webhook/{id}"))
                .body(body.clone())
                .send()
                .await
                .expect("send");
            assert_eq!(response.status().as_u16(), 401, "{id}");
            seen.add(
                format!("answer no credentials {id}"),
                response.text().await.unwrap_or_default(),
            );
        }
    }

    // Misrouted real secrets: a wrong provider segment, a typo in the id, a disabled connection.
    // They answer 404 and are logged for the operator, with the secret redacted.
    let supabase_body = fixture(ProviderId::Supabase, kit(ProviderId::Supabase).fixture);
    for (segment, id, mode, secret) in [
        (
            "stripe",
            "supa-header",
            "header:X-Webhook-Secret",
            supa_header.as_str(),
        ),
        (
            "supabase",
            "supa-typo",
            "header:X-Webhook-Secret",
            supa_header.as_str(),
        ),
        ("supabase", "supa-typo", "query:token", supa_query.as_str()),
        ("stripe", "supa-query", "query:token", supa_query.as_str()),
        ("supabase", "supa-off", "query:sig", supa_off.as_str()),
        ("supabase", "supa-typo", "basic", supa_basic.as_str()),
    ] {
        let options = SignOptions {
            auth: Some(mode.parse().expect("mode")),
            ..now_options()
        };
        let (status, text) = post(
            &client,
            &base,
            ProviderId::Supabase,
            segment,
            id,
            &supabase_body,
            secret,
            options,
            None,
        )
        .await;
        assert_eq!(status, 404, "{segment}/{id}: {text}");
        seen.add(format!("answer misrouted {segment}/{id}"), text);
    }

    // The admin API with bad tokens (one of them the admin token with a character more).
    for auth in [
        None,
        Some(format!("Bearer {admin}x")),
        Some(format!("Bearer {}", &admin[..admin.len() - 1])),
        Some(format!(
            "Basic {}",
            STANDARD.encode(format!("admin:{admin}"))
        )),
        Some(format!("Bearer hgk_{r}_{admin}")),
    ] {
        for path in ["/admin/ingest", "/admin/connections", "/v1/events"] {
            let mut request = client.get(format!("{base}{path}"));
            if let Some(a) = &auth {
                request = request.header("authorization", a);
            }
            let response = request.send().await.expect("send");
            assert_eq!(response.status().as_u16(), 401, "{path} {auth:?}");
            seen.add(
                format!("answer bad token {path}"),
                response.text().await.unwrap_or_default(),
            );
        }
    }

    // The admin API with the token: views, a create, bad input carrying a secret, a rotation.
    let admin_call = |method: reqwest::Method, path: &str, body: Option<String>| {
        let mut request = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&admin);
        if let Some(b) = body {
            request = request.header("content-type", "application/json").body(b);
        }
        async move {
            let response = request.send().await.expect("send");
            (
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            )
        }
    };
    let (status, text) = admin_call(reqwest::Method::GET, "/admin/connections", None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"secrets_encrypted\":true"), "{text}");
    seen.add("admin connections", text);
    let (status, text) =
        admin_call(reqwest::Method::GET, "/admin/connections/supa-basic", None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"secrets_count\":1"), "{text}");
    seen.add("admin connection", text);
    let created = serde_json::json!({
        "id": "rc-api", "provider": "revenuecat", "secrets": [api_secret], "auth": "bearer"
    });
    let (status, text) = admin_call(
        reqwest::Method::POST,
        "/admin/connections",
        Some(created.to_string()),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    seen.add("admin create", text);
    for bad in [
        // A string where a list belongs: serde's own message would quote it.
        format!(r#"{{"id":"bad-1","provider":"brevo","secrets":"{bad_json}"}}"#),
        format!(r#"{{"id":"bad-2","provider":"clerk","secrets":["{bad_json}"]}}"#),
        format!(r#"{{"id":"bad-3","provider":"brevo","secrets":["{bad_json}"],"auth":"basic"}}"#),
        format!(r#"{{"id":"bad-4","provider":"brevo","secrets":["{bad_json}"]"#),
        format!(r#"{{"id":"bad 5","provider":"brevo","secrets":["{bad_json}"]}}"#),
        format!(r#"{{"id":"bad-6","provider":"brevo","secrets":[{{"{bad_json}":1}}]}}"#),
    ] {
        let (status, text) =
            admin_call(reqwest::Method::POST, "/admin/connections", Some(bad)).await;
        assert_eq!(status, 400, "{text}");
        seen.add("admin bad create", text);
    }
    let (status, text) = admin_call(
        reqwest::Method::POST,
        "/admin/connections/brevo-h/rotate",
        Some(serde_json::json!({ "secret": api_rotated }).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    seen.add("admin rotate", text);
    let (status, text) = admin_call(
        reqwest::Method::POST,
        "/admin/connections/brevo-h/rotate",
        Some(format!(
            r#"{{"secret":"{bad_json}","drop_old":"{bad_json}"}}"#
        )),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    seen.add("admin bad rotate", text);
    for (id, secret) in [("rc-api", &api_secret), ("brevo-h", &api_rotated)] {
        let p = if id == "rc-api" {
            ProviderId::Revenuecat
        } else {
            ProviderId::Brevo
        };
        let body = fixture(
            p,
            if id == "rc-api" {
                "RENEWAL.json"
            } else {
                "delivered.json"
            },
        );
        let (status, text) = post(
            &client,
            &base,
            p,
            p.as_str(),
            id,
            &body,
            secret,
            now_options(),
            None,
        )
        .await;
        assert_eq!(status, 200, "{id}: {text}");
        seen.add(format!("answer {id}"), text);
    }

    // Operator commands.
    let (ok, out, err) = cli(
        dir.path(),
        &db_url,
        &key,
        &[
            "connections",
            "add",
            "cli-brevo",
            "--provider",
            "brevo",
            "--secret",
            &cli_secret,
            "--auth",
            "header:X-Cli-Secret",
        ],
    );
    assert!(ok, "{out} {err}");
    seen.add("connections add", format!("{out}{err}"));
    let (ok, out, err) = cli(
        dir.path(),
        &db_url,
        &key,
        &[
            "connections",
            "add",
            "cli-bad",
            "--provider",
            "clerk",
            "--secret",
            &bad_json,
        ],
    );
    assert!(!ok, "{out} {err}");
    seen.add("connections add (bad)", format!("{out}{err}"));
    let (ok, out, err) = cli(
        dir.path(),
        &db_url,
        &key,
        &[
            "connections",
            "rotate",
            "shopify-h",
            "--secret",
            &cli_rotated,
        ],
    );
    assert!(ok, "{out} {err}");
    seen.add("connections rotate", format!("{out}{err}"));
    let (ok, out, err) = cli(dir.path(), &db_url, &key, &["connections", "list"]);
    assert!(
        ok && out.contains("cli-brevo") && out.contains("supa-query"),
        "{out} {err}"
    );
    seen.add("connections list", format!("{out}{err}"));
    for id in ["stripe-h", "supa-basic", "cli-brevo", "shopify-h"] {
        let (ok, out, err) = cli(dir.path(), &db_url, &key, &["connections", "show", id]);
        assert!(
            ok && out.contains("\"secrets_encrypted\": true"),
            "{out} {err}"
        );
        seen.add(format!("connections show {id}"), format!("{out}{err}"));
    }
    // Without the key, the commands still list and show (without counting the secrets).
    let (ok, out, err) =
        run(hookgate(dir.path(), &db_url).args(["connections", "show", "clerk-h"]));
    assert!(ok && out.contains("\"secrets_count\": null"), "{out} {err}");
    seen.add("connections show without key", format!("{out}{err}"));
    let (ok, out, err) = run(hookgate(dir.path(), &db_url)
        .env("RUST_LOG", "debug")
        .env("HOOKGATE_SECRET_KEY", &key)
        .env("HYGIENE_ADMIN", &admin)
        .env("HYGIENE_STRIPE", &stripe)
        .env("HYGIENE_DRAIN_TOKEN", &drain_token)
        .arg("--config")
        .arg(&config)
        .arg("print-config"));
    assert!(ok && out.contains("supa-query"), "{out} {err}");
    seen.add("print-config", format!("{out}{err}"));
    let (ok, api_key, err) = cli(
        dir.path(),
        &db_url,
        &key,
        &[
            "keys",
            "create",
            "--scope",
            "webhooks:read",
            "--name",
            "hygiene",
        ],
    );
    let api_key = api_key.trim().to_owned();
    assert!(ok && api_key.starts_with("hgk_"), "{api_key} {err}");
    // The key is printed once on stdout, by design; only stderr is searched for it.
    seen.add("keys create (stderr)", err);
    let (ok, out, err) = cli(dir.path(), &db_url, &key, &["keys", "list"]);
    assert!(ok && out.contains("hygiene"), "{out} {err}");
    seen.add("keys list", format!("{out}{err}"));
    let events = client
        .get(format!("{base}/v1/events"))
        .bearer_auth(&api_key)
        .send()
        .await
        .expect("send");
    assert_eq!(events.status().as_u16(), 200);
    seen.add("events with key", events.text().await.unwrap_or_default());
    let tampered = format!("{api_key}x");
    let events = client
        .get(format!("{base}/v1/events"))
        .bearer_auth(&tampered)
        .send()
        .await
        .expect("send");
    assert_eq!(events.status().as_u16(), 401);
    seen.add(
        "events with a bad key",
        events.text().await.unwrap_or_default(),
    );
    // `send` with a query secret to an address where nothing listens: the error names the
    // address, not the secret in its query.
    let supabase_fixture = format!(
        "{}/fixtures/supabase/{}",
        env!("CARGO_MANIFEST_DIR"),
        kit(ProviderId::Supabase).fixture
    );
    let (ok, out, err) = cli(
        dir.path(),
        &db_url,
        &key,
        &[
            "send",
            &supabase_fixture,
            "--url",
            "http://127.0.0.1:9/integrations/supabase/webhook/supa-query",
            "--secret",
            &supa_query,
            "--auth",
            "query:token",
        ],
    );
    assert!(!ok && err.contains("cannot reach"), "{out} {err}");
    seen.add("send unreachable", format!("{out}{err}"));
    let (ok, out, err) = cli(
        dir.path(),
        &db_url,
        &key,
        &[
            "send",
            &supabase_fixture,
            "--url",
            &server.url("/integrations/supabase/webhook/supa-query"),
            "--secret",
            &supa_query,
            "--auth",
            "query:token",
        ],
    );
    assert!(ok && out.contains("duplicate"), "{out} {err}");
    seen.add("send", format!("{out}{err}"));
    needles.add("api key", &api_key);

    // The CLI-added connection works once the gateway has reloaded (within 2 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    let brevo_click = fixture(ProviderId::Brevo, "click.json");
    loop {
        let options = SignOptions {
            auth: Some("header:X-Cli-Secret".parse().expect("mode")),
            ..now_options()
        };
        let (status, text) = post(
            &client,
            &base,
            ProviderId::Brevo,
            "brevo",
            "cli-brevo",
            &brevo_click,
            &cli_secret,
            options,
            None,
        )
        .await;
        seen.add("answer cli-brevo", text.clone());
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cli-brevo never accepted: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A last rejected request marks the end: once it is logged, every earlier rejection is too
    // (the writer commits its queue in order).
    let (status, _) = post(
        &client,
        &base,
        ProviderId::Stripe,
        "stripe",
        "zz-last-marker",
        b"{}",
        &stripe,
        now_options(),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) =
            admin_call(reqwest::Method::GET, "/admin/ingest?limit=500", None).await;
        assert_eq!(status, 200, "{text}");
        if text.contains("zz-last-marker") {
            let json: serde_json::Value = serde_json::from_str(&text).expect("json");
            for item in json["items"].as_array().expect("items") {
                records.push(item["id"].as_str().expect("id").to_owned());
            }
            assert!(json["next_cursor"].is_null(), "everything fits one page");
            seen.add("admin ingest list", text);
            break;
        }
        assert!(Instant::now() < deadline, "the marker was never logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut redacted = 0;
    for id in &records {
        let (status, text) =
            admin_call(reqwest::Method::GET, &format!("/admin/ingest/{id}"), None).await;
        assert_eq!(status, 200, "{text}");
        redacted += usize::from(text.contains("[redacted]"));
        seen.add(format!("admin ingest record {id}"), text);
    }
    assert!(
        redacted >= 10,
        "redacted credentials are visible as such ({redacted} records)"
    );
    // Every ingest record reaches both drains (then so did every earlier processing outcome
    // and delivery attempt of these requests); what they sent holds no secret.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ingest = |path: &str| {
            sink.accepted(path)
                .iter()
                .filter(|r| r.kind == "ingest")
                .count()
        };
        if ingest("/v1/logs") >= records.len() && ingest("/http") >= records.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the drains did not send every ingest record ({} of them)",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = sink.got("/v1/logs");
    assert!(sent
        .iter()
        .all(|g| g.headers["x-inline"] == drain_inline.as_str()));
    for (i, g) in sent.iter().chain(sink.got("/http").iter()).enumerate() {
        seen.add(
            format!("drained batch {i} to {}", g.path),
            String::from_utf8_lossy(&g.body).into_owned(),
        );
    }
    let (status, text) = admin_call(reqwest::Method::GET, "/admin/drains", None).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("X-Inline"), "{text}");
    seen.add("admin drains", text);
    let log = {
        let status = tokio::task::spawn_blocking(move || {
            let log = server.log();
            let status = server.stop();
            (log, status)
        })
        .await
        .expect("stop");
        assert!(status.1.success(), "serve exited with {}", status.1);
        status.0
    };
    assert!(
        log.contains("DEBUG"),
        "the server ran at debug level:\n{log}"
    );
    assert!(log.contains("webhook rejected"), "{log}");
    assert!(
        !log.contains("stored unencrypted"),
        "the key was set:\n{log}"
    );
    seen.add("server output", log);

    let db = store.reopen().await;
    let dumped = dump(&db).await;
    for row in db.list_connections().await.expect("connections") {
        assert!(
            row.secrets.starts_with(hookgate::crypto::ENCRYPTED_PREFIX),
            "{} is stored unencrypted",
            row.id
        );
    }
    assert!(
        dumped.contains("ingest_payloads.headers") && dumped.contains("[redacted]"),
        "the dump covers the ingest log"
    );
    assert!(
        dumped.contains("connections.secrets: enc:v1:"),
        "the dump covers connections"
    );
    seen.add("database dump", dumped);

    assert!(seen.0.len() > 50, "the test read {} texts", seen.0.len());
    for (place, text) in &seen.0 {
        needles.assert_absent(place, text);
    }
}

backend_tests!(secret_hygiene);

/// A connection spec for the encryption test.
fn spec(id: &str, provider: ProviderId, secret: &str) -> ConnectionSpec {
    ConnectionInput::new(id, provider, vec![secret.to_owned()])
        .into_spec()
        .expect("valid connection")
}

async fn stored_secrets(db: &Db, id: &str) -> String {
    db.get_connection(id)
        .await
        .expect("get")
        .expect("row")
        .secrets
}

async fn encrypted_at_rest(backend: Backend) {
    let stripe = kit(ProviderId::Stripe);
    let clerk = kit(ProviderId::Clerk);
    let key_text = hex::encode(sha2::Sha256::digest(b"encrypted-at-rest test key"));
    let key = SecretKey::parse(&key_text).expect("key");
    let legacy_secret = "whsec_bGVnYWN5LXBsYWludGV4dC1zZWNyZXQ=";
    let at_rest_secret = "whsec_encrypted_at_rest_stripe_secret";

    // Without a key: exactly as before, the column holds the plaintext JSON array.
    let app = TestApp::builder(backend.clone()).start().await;
    let created = app
        .admin_post(
            "/admin/connections",
            serde_json::json!({"id": "legacy", "provider": "clerk", "secrets": [legacy_secret]}),
        )
        .await;
    created.assert_status(201);
    // Handles of our own: a gateway closes the pools it was given when it stops.
    let db = app.store.reopen().await;
    assert_eq!(
        stored_secrets(&db, "legacy").await,
        format!("[\"{legacy_secret}\"]")
    );
    let body = fixture(ProviderId::Clerk, clerk.fixture);
    app.deliver(
        ProviderId::Clerk,
        "legacy",
        &body,
        legacy_secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    let mut config = TestApp::builder(backend.clone())
        .connection("stripe-enc", ProviderId::Stripe, &[at_rest_secret])
        .into_config();
    config.secret_key = Some(key.clone());

    // With the key: config connections are written encrypted; the plaintext row still works.
    let store = TestStore {
        db: app.store.reopen().await,
        url: app.store.url.clone(),
        schema: app.store.schema.clone(),
        _dir: None,
    };
    let keyed = crate::support::TestAppBuilder::start_on(config.clone(), store).await;
    let stored = stored_secrets(&db, "stripe-enc").await;
    assert!(stored.starts_with("enc:v1:"), "{stored}");
    assert!(!stored.contains("encrypted_at_rest"), "{stored}");
    let invoice = fixture(ProviderId::Stripe, stripe.fixture);
    keyed
        .deliver(
            ProviderId::Stripe,
            "stripe-enc",
            &invoice,
            at_rest_secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    assert_eq!(
        stored_secrets(&db, "legacy").await,
        format!("[\"{legacy_secret}\"]"),
        "a plaintext row is not rewritten by reading it"
    );
    let user = fixture(ProviderId::Clerk, "user.updated.json");
    keyed
        .deliver(
            ProviderId::Clerk,
            "legacy",
            &user,
            legacy_secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    let view = keyed.admin_get("/admin/connections/legacy").await.json();
    assert_eq!(view["secrets_encrypted"], false);
    assert_eq!(view["secrets_count"], 1);

    // Its next write encrypts it: a rotation through the admin API.
    let rotated = "whsec_cm90YXRlZC1hZnRlci10aGUta2V5";
    keyed
        .admin_post(
            "/admin/connections/legacy/rotate",
            serde_json::json!({ "secret": rotated }),
        )
        .await
        .assert_status(200);
    let stored = stored_secrets(&db, "legacy").await;
    assert!(stored.starts_with("enc:v1:"), "{stored}");
    assert!(
        !stored.contains("bGVnYWN5") && !stored.contains("cm90YXRlZC"),
        "{stored}"
    );
    let view = keyed.admin_get("/admin/connections/legacy").await.json();
    assert_eq!(view["secrets_encrypted"], true);
    assert_eq!(view["secrets_count"], 2);
    let session = fixture(ProviderId::Clerk, "session.created.json");
    keyed
        .deliver(
            ProviderId::Clerk,
            "legacy",
            &session,
            rotated,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    // The same secrets written twice get different ciphertexts (a fresh nonce per write).
    for id in ["twin-a", "twin-b"] {
        keyed
            .admin_post(
                "/admin/connections",
                serde_json::json!({"id": id, "provider": "stripe", "secrets": [at_rest_secret]}),
            )
            .await
            .assert_status(201);
    }
    let (a, b) = (
        stored_secrets(&db, "twin-a").await,
        stored_secrets(&db, "twin-b").await,
    );
    assert!(a.starts_with("enc:v1:") && b.starts_with("enc:v1:"));
    assert_ne!(a, b);
    drop(keyed);

    // No key, or the wrong key: the start fails naming the connection and the variable.
    let mut no_key = Config::for_database("unused");
    no_key.migrate = false;
    let error = match Gateway::start_with_db(no_key.clone(), app.store.reopen().await).await {
        Ok(_) => panic!("a gateway without the key must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("HOOKGATE_SECRET_KEY") && error.contains("connection \""),
        "{error}"
    );
    assert!(
        !error.contains(at_rest_secret) && !error.contains(&key_text),
        "{error}"
    );
    let mut wrong_key = no_key.clone();
    wrong_key.secret_key = Some(SecretKey::parse(&"7".repeat(64)).expect("key"));
    let error = match Gateway::start_with_db(wrong_key, app.store.reopen().await).await {
        Ok(_) => panic!("a gateway with the wrong key must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("do not decrypt") && error.contains("HOOKGATE_SECRET_KEY"),
        "{error}"
    );

    // A plaintext row added later is encrypted by `connections reencrypt`.
    hookgate::connections::save(
        &db,
        &spec("late", ProviderId::Stripe, at_rest_secret),
        None,
        "cli",
        false,
        1,
    )
    .await
    .expect("save");
    assert!(stored_secrets(&db, "late").await.starts_with("[\""));
    hookgate::cli::connections::execute(
        &db,
        Some(&key),
        hookgate::cli::connections::ConnectionsCommand::Reencrypt,
    )
    .await
    .expect("reencrypt");
    for row in db.list_connections().await.expect("list") {
        assert!(
            row.secrets.starts_with("enc:v1:"),
            "{}: {}",
            row.id,
            row.secrets
        );
        assert!(!row.secrets.contains("encrypted_at_rest"));
    }
    let restarted = Gateway::start_with_db(config, app.store.reopen().await)
        .await
        .expect("starts with the key");
    assert!(restarted.state.registry.get("late").is_some());
    assert!(restarted.state.registry.get("legacy").is_some());
    restarted.shutdown().await;
    drop(app);
}

backend_tests!(encrypted_at_rest);
