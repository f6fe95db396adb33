//! `GET /openapi.json` against the router that serves it:
//! - the document is OpenAPI 3.1 and is public;
//! - every documented operation is served (an `/admin` or `/v1` route answers 401 without a
//!   token where an unknown path gets the fallback's 404, and with a token never 405), every
//!   route the gateway promises is documented, and no `/admin` or `/v1` route is registered in
//!   `src/` outside the documented routers;
//! - `openapi-spec-validator` (PyPI, in a virtual environment the test makes) validates the
//!   document, and real answers of every documented kind validate against their schemas, which
//!   are checked strictly (a field the document does not name fails).
//!
//! A machine without `python3`, `venv` or access to PyPI fails this test with a message saying
//! what is missing: it is never skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use hookgate::providers::ProviderId;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::support::{fixture, now_options, Backend, Delivered, TestApp, ADMIN_TOKEN};
use crate::webhooks::kit;

/// The venv's python with `openapi-spec-validator` importable (made once, then reused).
fn python() -> PathBuf {
    crate::support::python_venv(
        "openapi-venv",
        "openapi_spec_validator, jsonschema, referencing",
        &["openapi-spec-validator"],
    )
}

/// Every route the gateway promises (README), as `(method, path)`.
const PROMISED: &[(&str, &str)] = &[
    ("post", "/integrations/{provider}/webhook/{connection_id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/events"),
    ("get", "/v1/events/stream"),
    ("post", "/v1/webhooks/test"),
    ("get", "/v1/triggers"),
    ("post", "/v1/triggers"),
    ("post", "/v1/fires"),
    ("get", "/admin/ingest"),
    ("get", "/admin/ingest/{id}"),
    ("post", "/admin/ingest/{id}/replay"),
    ("get", "/admin/contacts/{email}"),
    ("get", "/admin/connections"),
    ("post", "/admin/connections"),
    ("get", "/admin/connections/{id}"),
    ("delete", "/admin/connections/{id}"),
    ("post", "/admin/connections/{id}/disable"),
    ("post", "/admin/connections/{id}/enable"),
    ("post", "/admin/connections/{id}/rotate"),
    ("get", "/admin/endpoints"),
    ("post", "/admin/endpoints"),
    ("get", "/admin/endpoints/{id}"),
    ("delete", "/admin/endpoints/{id}"),
    ("post", "/admin/endpoints/{id}/enable"),
    ("post", "/admin/endpoints/{id}/disable"),
    ("post", "/admin/endpoints/{id}/rotate"),
    ("post", "/admin/endpoints/{id}/test"),
    ("post", "/admin/endpoints/{id}/replay"),
    ("get", "/admin/deliveries"),
    ("post", "/admin/deliveries/requeue"),
    ("get", "/admin/deliveries/{id}"),
    ("post", "/admin/deliveries/{id}/resend"),
    ("get", "/admin/drains"),
    ("post", "/admin/drains/{id}/resume"),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The documented operations, as `(method, path)`.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| ((*m).to_owned(), path.clone()))
        })
        .collect()
}

/// A concrete path for a documented one: every `{param}` replaced by a placeholder.
fn concrete(path: &str) -> String {
    path.replace("{provider}", "stripe")
        .replace("{connection_id}", "stripe")
        .replace("{email}", "nobody@example.com")
        .replace("{id}", "placeholder")
}

/// `.route(`, `.nest(`, `.route_service(` or `.nest_service(` calls in `text` whose path
/// starts with `/admin` or `/v1`.
fn undocumented_registrations(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for call in [".route(", ".nest(", ".route_service(", ".nest_service("] {
        for (at, _) in text.match_indices(call) {
            let rest = text[at + call.len()..].trim_start();
            if rest.starts_with("\"/admin") || rest.starts_with("\"/v1") {
                let end = rest.find(',').unwrap_or(rest.len()).min(80);
                found.push(format!("{call}{}", &rest[..end]));
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_source_scan_finds_routes_outside_the_documented_routers() {
    // The scan itself: a bypass is found whatever its formatting; other routes are not.
    let bypass = "Router::new()\n    .route(\n        \"/admin/secret\",\n        get(h),\n    )";
    assert_eq!(undocumented_registrations(bypass).len(), 1);
    assert_eq!(
        undocumented_registrations(".nest(\"/v1\", api).route(\"/console\", get(c))").len(),
        1
    );
    assert!(undocumented_registrations(".route(\"/console\", get(c))").is_empty());

    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20, "the scan read {} files", files.len());
    let mut bypasses = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        for found in undocumented_registrations(&text) {
            bypasses.push(format!("{}: {found}", file.display()));
        }
    }
    assert!(
        bypasses.is_empty(),
        "routes registered outside the documented routers (use `routes!(handler)` with a \
         `#[utoipa::path]`): {bypasses:#?}"
    );
}

/// `(schema, property)` for every component schema property named like a secret.
fn secret_properties(doc: &Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        let parts = schema["allOf"].as_array().cloned().unwrap_or_default();
        for part in parts.iter().chain([schema]) {
            if let Some(properties) = part["properties"].as_object() {
                for property in properties.keys() {
                    if property == "secret" || property == "secrets" {
                        found.insert((name.clone(), property.clone()));
                    }
                }
            }
        }
    }
    found
}

/// Every component schema an answer can contain (followed through `$ref`s).
fn answer_schemas(doc: &Value) -> BTreeSet<String> {
    fn refs(node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut pending = Vec::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for method in METHODS {
            refs(&item[method]["responses"], &mut pending);
        }
    }
    let mut seen = BTreeSet::new();
    while let Some(reference) = pending.pop() {
        if !seen.insert(reference.clone()) {
            continue;
        }
        let pointer = reference.trim_start_matches('#');
        refs(doc.pointer(pointer).expect("a $ref resolves"), &mut pending);
    }
    seen.iter()
        .filter_map(|r| r.strip_prefix("#/components/schemas/").map(str::to_owned))
        .collect()
}

/// Collected real answers for the checker.
#[derive(Default)]
struct Samples(Vec<Value>);

impl Samples {
    /// Records `answer` to `method path` (the documented path) and returns it.
    fn add(&mut self, method: &str, path: &str, answer: Delivered) -> Delivered {
        let body = if answer.text.is_empty() {
            Value::Null
        } else {
            answer.json()
        };
        self.0.push(json!({
            "method": method,
            "path": path,
            "status": answer.status.as_u16(),
            "body": body,
        }));
        answer
    }
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: bool,
    body: Option<Value>,
) -> Delivered {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let mut request = app.client.request(method, app.url(path));
    if token {
        request = request.bearer_auth(ADMIN_TOKEN);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    Delivered::read(request.send().await.expect("request")).await
}

async fn openapi_document(backend: Backend) {
    let stripe = kit(ProviderId::Stripe);
    let app = TestApp::builder(backend)
        .config(|c| {
            c.delivery.policy.allow_http = true;
            c.delivery.policy.allow_cidrs = vec!["127.0.0.1/32".parse().expect("cidr")];
            c.delivery.retry_schedule_secs = vec![3600];
        })
        .connection("stripe", ProviderId::Stripe, &[stripe.secret])
        .start()
        .await;

    // Public, JSON, OpenAPI 3.1.
    let served = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("get");
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(
        served.headers()["content-type"].to_str().expect("ascii"),
        "application/json"
    );
    let doc: Value = served.json().await.expect("JSON");
    // Kept for reading: target/tmp/openapi.json.
    std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi.json"),
        serde_json::to_string_pretty(&doc).expect("JSON"),
    )
    .expect("write the document");
    let version = doc["openapi"].as_str().expect("openapi");
    assert!(version.starts_with("3.1."), "openapi is {version}");

    // Every promised route is documented.
    let documented = operations(&doc);
    for (method, path) in PROMISED {
        assert!(
            documented.contains(&((*method).to_owned(), (*path).to_owned())),
            "{method} {path} is not in the document"
        );
    }

    // Operation ids are unique (client generators name functions after them).
    let mut ids = BTreeSet::new();
    for (method, path) in &documented {
        let id = doc["paths"][path][method]["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
    }

    // Every documented operation is served. The fallback answers an unknown path 404; an
    // `/admin` or `/v1` route checks the token before anything else.
    call(&app, "get", "/admin/no-such-route", false, None)
        .await
        .assert_error(404, "not_found");
    call(&app, "post", "/v1/no-such-route", false, None)
        .await
        .assert_error(404, "not_found");
    // And a method a path is not served with is 405 (so the check below can fail).
    assert_eq!(
        call(&app, "put", "/admin/ingest", true, None)
            .await
            .status
            .as_u16(),
        405
    );
    assert!(!documented.contains(&("put".to_owned(), "/admin/ingest".to_owned())));
    for (method, path) in &documented {
        let url = concrete(path);
        let operation = &doc["paths"][path][method];
        if path.starts_with("/admin") || path.starts_with("/v1") {
            call(&app, method, &url, false, None)
                .await
                .assert_error(401, "unauthorized");
            let security = &operation["security"][0]["bearer"];
            assert!(
                security.as_array().is_some_and(|s| s.len() == 1),
                "{method} {path} names no scope: {operation}"
            );
            // With a token, the method is served (405 would mean it is not). The stream is
            // only opened: its answer never ends.
            let request = app
                .client
                .request(
                    reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("m"),
                    app.url(&url),
                )
                .bearer_auth(ADMIN_TOKEN)
                .header("content-type", "application/json")
                .body("{}");
            let status = request.send().await.expect("request").status().as_u16();
            assert_ne!(status, 405, "{method} {path} is documented but not served");
            assert_ne!(status, 401, "{method} {path} refuses the admin token");
        } else {
            assert!(
                operation.get("security").is_none(),
                "{method} {path} is public but documents a token"
            );
        }
    }

    // Real answers, for the schema check.
    let mut samples = Samples::default();
    let receive = "/integrations/{provider}/webhook/{connection_id}";
    let accepted = samples.add(
        "post",
        receive,
        app.deliver(
            ProviderId::Stripe,
            "stripe",
            &fixture(ProviderId::Stripe, "customer.created.json"),
            stripe.secret,
            now_options(),
        )
        .await,
    );
    let ingest_id = accepted.assert_outcome("accepted");
    samples.add(
        "post",
        receive,
        call(
            &app,
            "post",
            "/integrations/stripe/webhook/stripe",
            false,
            Some(json!({})),
        )
        .await,
    );
    samples.add(
        "post",
        receive,
        call(
            &app,
            "post",
            "/integrations/stripe/webhook/nope",
            false,
            Some(json!({})),
        )
        .await,
    );
    for path in ["/healthz", "/readyz"] {
        samples.add("get", path, call(&app, "get", path, false, None).await);
    }

    samples
        .add(
            "get",
            "/admin/ingest",
            call(&app, "get", "/admin/ingest", true, None).await,
        )
        .assert_status(200);
    samples.add(
        "get",
        "/admin/ingest",
        call(&app, "get", "/admin/ingest?limit=0", true, None).await,
    );
    samples.add(
        "get",
        "/admin/ingest",
        call(&app, "get", "/admin/ingest", false, None).await,
    );
    samples
        .add(
            "get",
            "/admin/ingest/{id}",
            call(
                &app,
                "get",
                &format!("/admin/ingest/{ingest_id}"),
                true,
                None,
            )
            .await,
        )
        .assert_status(200);
    samples.add(
        "get",
        "/admin/ingest/{id}",
        call(&app, "get", "/admin/ingest/nope", true, None).await,
    );
    samples
        .add(
            "post",
            "/admin/ingest/{id}/replay",
            call(
                &app,
                "post",
                &format!("/admin/ingest/{ingest_id}/replay"),
                true,
                None,
            )
            .await,
        )
        .assert_status(200);

    // Connections.
    let connection = json!({"id": "second", "provider": "stripe", "secrets": ["whsec_c2Vjb25kLWNvbm5lY3Rpb24tc2VjcmV0LTMyYnl0ZXM="]});
    samples
        .add(
            "post",
            "/admin/connections",
            call(
                &app,
                "post",
                "/admin/connections",
                true,
                Some(connection.clone()),
            )
            .await,
        )
        .assert_status(201);
    samples
        .add(
            "post",
            "/admin/connections",
            call(&app, "post", "/admin/connections", true, Some(connection)).await,
        )
        .assert_status(409);
    samples.add(
        "post",
        "/admin/connections",
        call(
            &app,
            "post",
            "/admin/connections",
            true,
            Some(json!({"id": "x"})),
        )
        .await,
    );
    samples.add(
        "get",
        "/admin/connections",
        call(&app, "get", "/admin/connections", true, None).await,
    );
    for (method, path, body) in [
        ("get", "/admin/connections/{id}", None),
        ("post", "/admin/connections/{id}/disable", None),
        ("post", "/admin/connections/{id}/enable", None),
        (
            "post",
            "/admin/connections/{id}/rotate",
            Some(json!({"secret": "whsec_cm90YXRlZC1jb25uZWN0aW9uLXNlY3JldC0zMmJ5dGVz"})),
        ),
    ] {
        let url = path.replace("{id}", "second");
        samples
            .add(method, path, call(&app, method, &url, true, body).await)
            .assert_status(200);
    }
    samples
        .add(
            "delete",
            "/admin/connections/{id}",
            call(&app, "delete", "/admin/connections/second", true, None).await,
        )
        .assert_status(204);

    // Custom triggers and fires, the contact they make, events.
    let trigger = json!({"id": "app.signup", "payloadSchema": {"fields": [
        {"key": "email", "type": "string", "required": true},
        {"key": "plan", "type": "string", "required": true},
    ]}});
    samples
        .add(
            "post",
            "/v1/triggers",
            call(&app, "post", "/v1/triggers", true, Some(trigger.clone())).await,
        )
        .assert_status(201);
    samples
        .add(
            "post",
            "/v1/triggers",
            call(&app, "post", "/v1/triggers", true, Some(trigger)).await,
        )
        .assert_status(200);
    samples
        .add(
            "post",
            "/v1/triggers",
            call(
                &app,
                "post",
                "/v1/triggers",
                true,
                Some(json!({"id": "app.bad", "payloadSchema": {"fields": []}})),
            )
            .await,
        )
        .assert_status(400);
    let fire = json!({"triggerEventId": "app.signup", "idempotencyKey": "k1",
                      "payload": {"email": "Ann@Example.com", "plan": "pro"}});
    samples
        .add(
            "post",
            "/v1/fires",
            call(&app, "post", "/v1/fires", true, Some(fire.clone())).await,
        )
        .assert_status(202);
    samples
        .add(
            "post",
            "/v1/fires",
            call(&app, "post", "/v1/fires", true, Some(fire)).await,
        )
        .assert_status(200);
    samples
        .add(
            "post",
            "/v1/fires",
            call(&app, "post", "/v1/fires", true, Some(json!({"triggerEventId": "app.signup", "idempotencyKey": "k1", "payload": {"email": "ann@example.com"}}))).await,
        )
        .assert_status(400);
    samples
        .add(
            "post",
            "/v1/webhooks/test",
            call(
                &app,
                "post",
                "/v1/webhooks/test",
                true,
                Some(json!({"eventType": "test.ping", "data": {"n": 1}})),
            )
            .await,
        )
        .assert_status(201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let contact = call(&app, "get", "/admin/contacts/ann@example.com", true, None).await;
        if contact.status.as_u16() == 200 || std::time::Instant::now() > deadline {
            samples
                .add("get", "/admin/contacts/{email}", contact)
                .assert_status(200);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    samples.add(
        "get",
        "/admin/contacts/{email}",
        call(
            &app,
            "get",
            "/admin/contacts/nobody@example.com",
            true,
            None,
        )
        .await,
    );
    let events = samples.add(
        "get",
        "/v1/events",
        call(&app, "get", "/v1/events", true, None).await,
    );
    assert!(
        events.json()["events"]
            .as_array()
            .is_some_and(|e| e.len() >= 2),
        "{}",
        events.text
    );
    samples.add(
        "get",
        "/v1/events",
        call(&app, "get", "/v1/events?cursor=x", true, None).await,
    );
    samples
        .add(
            "get",
            "/v1/triggers",
            call(&app, "get", "/v1/triggers", true, None).await,
        )
        .assert_status(200);

    // Endpoints and deliveries (the endpoint refuses connections: deliveries stay retrying).
    samples
        .add(
            "post",
            "/admin/endpoints",
            call(
                &app,
                "post",
                "/admin/endpoints",
                true,
                Some(json!({"id": "crm", "url": "http://127.0.0.1:9/in"})),
            )
            .await,
        )
        .assert_status(201);
    samples.add(
        "post",
        "/admin/endpoints",
        call(
            &app,
            "post",
            "/admin/endpoints",
            true,
            Some(json!({"id": "meta", "url": "http://169.254.169.254/"})),
        )
        .await,
    );
    samples.add(
        "get",
        "/admin/endpoints",
        call(&app, "get", "/admin/endpoints", true, None).await,
    );
    for (method, path, body) in [
        ("get", "/admin/endpoints/{id}", None),
        ("post", "/admin/endpoints/{id}/disable", None),
        ("post", "/admin/endpoints/{id}/enable", None),
        ("post", "/admin/endpoints/{id}/rotate", None),
        ("post", "/admin/endpoints/{id}/test", None),
        (
            "post",
            "/admin/endpoints/{id}/replay",
            Some(json!({"since": 0})),
        ),
    ] {
        let url = path.replace("{id}", "crm");
        samples
            .add(method, path, call(&app, method, &url, true, body).await)
            .assert_status(200);
    }
    samples.add(
        "get",
        "/admin/endpoints/{id}",
        call(&app, "get", "/admin/endpoints/nope", true, None).await,
    );
    let page = samples.add(
        "get",
        "/admin/deliveries",
        call(&app, "get", "/admin/deliveries", true, None).await,
    );
    let delivery = page.json()["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the replay queued deliveries: {}", page.text))
        .to_owned();
    samples
        .add(
            "get",
            "/admin/deliveries/{id}",
            call(
                &app,
                "get",
                &format!("/admin/deliveries/{delivery}"),
                true,
                None,
            )
            .await,
        )
        .assert_status(200);
    samples
        .add(
            "post",
            "/admin/deliveries/{id}/resend",
            call(
                &app,
                "post",
                &format!("/admin/deliveries/{delivery}/resend"),
                true,
                None,
            )
            .await,
        )
        .assert_status(200);
    samples
        .add(
            "post",
            "/admin/deliveries/requeue",
            call(
                &app,
                "post",
                "/admin/deliveries/requeue",
                true,
                Some(json!({"endpoint": "crm"})),
            )
            .await,
        )
        .assert_status(200);
    samples
        .add(
            "delete",
            "/admin/endpoints/{id}",
            call(&app, "delete", "/admin/endpoints/crm", true, None).await,
        )
        .assert_status(204);

    // Secrets are write-only: request schemas have them, answers never do (only the secret an
    // endpoint creation generated or a rotation made, shown that once).
    let with_secrets = secret_properties(&doc);
    for name in ["ConnectionInput", "EndpointInput"] {
        assert!(
            with_secrets.contains(&(name.to_owned(), "secrets".to_owned())),
            "{name} takes secrets: {with_secrets:?}"
        );
    }
    let answered = answer_schemas(&doc);
    for (name, property) in &with_secrets {
        if answered.contains(name) {
            assert!(
                property == "secret"
                    && ["EndpointCreated", "RotatedSecret"].contains(&name.as_str()),
                "the answer schema {name} has {property:?}"
            );
        } else {
            // utoipa marks an array's items write-only.
            let schema = &doc["components"]["schemas"][name]["properties"][property];
            assert!(
                schema["writeOnly"] == true || schema["items"]["writeOnly"] == true,
                "{name}.{property} is not write-only: {schema}"
            );
        }
    }

    // The validator and the schema check.
    let python = tokio::task::spawn_blocking(python).await.expect("venv");
    let dir = tempfile::tempdir().expect("temp dir");
    let doc_path = dir.path().join("openapi.json");
    let samples_path = dir.path().join("samples.json");
    std::fs::write(&doc_path, doc.to_string()).expect("write");
    std::fs::write(&samples_path, Value::Array(samples.0).to_string()).expect("write");
    let out = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/py/openapi_check.py"
        ))
        .arg(&doc_path)
        .arg(&samples_path)
        .output()
        .expect("run the checker");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the OpenAPI check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("document valid"), "{stdout}");
}

backend_tests!(openapi_document);
