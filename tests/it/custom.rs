//! Custom events: triggers defined over `POST /v1/triggers` (and `hookgate triggers define`),
//! fired over `POST /v1/fires` (and `hookgate fire`), processed by the same durable pipeline as
//! provider webhooks.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::cli::{hookgate, run};
use crate::support::{Backend, Delivered, TestApp, TestStore, ADMIN_TOKEN};

fn signup_definition(workspace: &str) -> Value {
    json!({"id": "app.signup", "workspace": workspace, "payloadSchema": {"fields": [
        {"key": "email", "type": "string", "required": true},
        {"key": "firstName", "type": "string"},
        {"key": "last_name", "type": "string"},
        {"key": "subscribed", "type": "boolean"},
        {"key": "plan", "type": "string", "required": true},
        {"key": "seats", "type": "number"},
        {"key": "meta", "type": "object"},
        {"key": "tags", "type": "array"},
    ]}})
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> Delivered {
    let mut request = app.client.post(app.url(path)).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Delivered::read(request.send().await.expect("request")).await
}

async fn fire(app: &TestApp, body: &Value) -> Delivered {
    post(app, "/v1/fires", Some(ADMIN_TOKEN), body).await
}

/// Polls `/v1/events?event_type=` until `count` fires are listed (or 20 s pass).
async fn events_until(app: &TestApp, event_type: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = app
            .admin_get(&format!("/v1/events?event_type={event_type}&limit=1000"))
            .await
            .json()["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if events.len() >= count || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mints a stored API key with `scopes`.
async fn key(app: &TestApp, scopes: &str) -> String {
    let (id, key, hash) = hookgate::auth::mint();
    app.store
        .db
        .insert_api_key(
            &id,
            &hash,
            "custom-test",
            scopes,
            hookgate::now_ms(),
            None,
            None,
        )
        .await
        .expect("key");
    key
}

/// The status table of `POST /v1/fires`, the catalog, the contact upsert with newest-wins by
/// `occurredAt`, the events API and the stream.
async fn fires_status_table_and_processing(backend: Backend) {
    let app = TestApp::builder(backend).start().await;
    let created = post(
        &app,
        "/v1/triggers",
        Some(ADMIN_TOKEN),
        &signup_definition("acme"),
    )
    .await;
    created.assert_status(201);
    assert_eq!(created.json()["provider"], "custom");
    // Redefining is an update (the same definition here).
    post(
        &app,
        "/v1/triggers",
        Some(ADMIN_TOKEN),
        &signup_definition("acme"),
    )
    .await
    .assert_status(200);
    let catalog = app.admin_get("/v1/triggers?workspace=acme").await.json();
    let listed = catalog
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == "app.signup")
        .cloned()
        .expect("custom trigger listed");
    assert_eq!(listed["provider"], "custom");
    assert_eq!(listed["workspace"], "acme");
    assert_eq!(
        listed["payloadSchema"]["fields"][0],
        json!({"key": "email", "type": "string", "required": true})
    );

    // A stream opened before the fires.
    let stream = app
        .client
        .get(app.url("/v1/events/stream?event_type=app.signup"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status().as_u16(), 200);
    let collector = tokio::spawn(async move {
        let mut body = stream.bytes_stream();
        let mut text = String::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !text.contains("data: ") && Instant::now() < deadline {
            if let Ok(Some(Ok(chunk))) =
                tokio::time::timeout(Duration::from_secs(3), body.next()).await
            {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
        text
    });

    let now = hookgate::now_ms();
    let payload = json!({"email": " Ada@Example.com ", "firstName": "Ada", "last_name": "Lovelace",
        "subscribed": true, "plan": "pro", "seats": 3, "meta": {"source": "web"}, "tags": ["a"]});
    let body = json!({"triggerEventId": "app.signup", "workspace": "acme", "payload": payload,
        "idempotencyKey": "signup-1", "occurredAt": now - 60_000});
    let accepted = fire(&app, &body).await;
    accepted.assert_status(202);
    let answer = accepted.json();
    assert_eq!(answer["status"], "accepted");
    let first_id = answer["id"].as_str().expect("id").to_owned();

    // Same key, same payload: the first fire's id. Key order in the payload does not matter,
    // and a retry without occurredAt is still the same fire.
    let mut retry = body.clone();
    retry["payload"] = json!({"tags": ["a"], "meta": {"source": "web"}, "seats": 3, "plan": "pro",
        "subscribed": true, "last_name": "Lovelace", "firstName": "Ada", "email": " Ada@Example.com "});
    retry.as_object_mut().expect("object").remove("occurredAt");
    assert_eq!(
        fire(&app, &retry).await.assert_outcome("duplicate"),
        first_id
    );
    // The key in the header instead of the body.
    let mut by_header = body.clone();
    by_header
        .as_object_mut()
        .expect("object")
        .remove("idempotencyKey");
    let dup = Delivered::read(
        app.client
            .post(app.url("/v1/fires"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", "signup-1")
            .json(&by_header)
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(dup.assert_outcome("duplicate"), first_id);
    // Same key, another payload: 409.
    let mut other = body.clone();
    other["payload"]["plan"] = json!("free");
    let conflict = fire(&app, &other).await;
    conflict.assert_error(409, "conflict");
    assert!(conflict.json()["message"]
        .as_str()
        .expect("message")
        .contains(&first_id));
    // No key at all: 400 naming it. Header and body disagreeing: 400.
    let missing = fire(&app, &by_header).await;
    missing.assert_error(400, "invalid_request");
    assert!(
        missing.text.contains("idempotency key is required"),
        "{}",
        missing.text
    );
    let disagree = Delivered::read(
        app.client
            .post(app.url("/v1/fires"))
            .bearer_auth(ADMIN_TOKEN)
            .header("Idempotency-Key", "other")
            .json(&body)
            .send()
            .await
            .expect("request"),
    )
    .await;
    disagree.assert_error(400, "invalid_request");
    // Unknown trigger, a provider's trigger, another workspace's trigger: 404.
    for (trigger, workspace) in [
        ("app.unknown", "acme"),
        ("stripe.invoice.paid", "acme"),
        ("app.signup", "other"),
        ("app.\u{0}signup", "acme"),
    ] {
        let mut b = body.clone();
        b["triggerEventId"] = json!(trigger);
        b["workspace"] = json!(workspace);
        fire(&app, &b).await.assert_error(404, "not_found");
    }
    // Payload errors: every one, with its path.
    let mut bad = body.clone();
    bad["idempotencyKey"] = json!("bad-1");
    bad["payload"] = json!({"email": 42, "seats": "three", "unknown": 1, "tags": {}});
    let invalid = fire(&app, &bad).await;
    invalid.assert_error(400, "invalid_payload");
    let paths: Vec<String> = invalid.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["path"].as_str().expect("path").to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "payload.email",
            "payload.plan",
            "payload.seats",
            "payload.tags",
            "payload.unknown"
        ],
        "{}",
        invalid.text
    );
    bad["payload"] = json!("not an object");
    fire(&app, &bad).await.assert_error(400, "invalid_payload");
    // occurredAt far in the future: refused; unparseable: refused.
    let mut future = body.clone();
    future["idempotencyKey"] = json!("future-1");
    future["occurredAt"] = json!(now + 10 * 60_000);
    let refused = fire(&app, &future).await;
    refused.assert_error(400, "invalid_request");
    assert!(refused.text.contains("future"), "{}", refused.text);
    future["occurredAt"] = json!("yesterday");
    fire(&app, &future)
        .await
        .assert_error(400, "invalid_request");

    // Processed like any event: one fire, in the events API and the stream.
    let events = events_until(&app, "app.signup", 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["workspace"], "acme");
    assert_eq!(event["payload"]["email"], "ada@example.com");
    assert_eq!(event["payload"]["meta"], json!({"source": "web"}));
    assert_eq!(event["payload"]["seats"], 3);
    let streamed = collector.await.expect("collector");
    assert!(
        streamed.contains("\"eventType\":\"app.signup\""),
        "stream: {streamed}"
    );
    let record = app.admin_get(&format!("/admin/ingest/{first_id}")).await;
    record.assert_status(200);
    assert_eq!(record.json()["status"], "processed", "{}", record.text);
    assert_eq!(record.json()["provider"], "custom");
    assert_eq!(record.json()["event_id"], "signup-1");
    assert_eq!(record.json()["fires"].as_array().map(Vec::len), Some(1));
    assert!(
        !record.text.contains(ADMIN_TOKEN),
        "the bearer token was stored: {}",
        record.text
    );
    // An operator's replay changes nothing: the same fire, no second one.
    let replayed = app
        .admin_post(&format!("/admin/ingest/{first_id}/replay"), json!({}))
        .await;
    replayed.assert_status(200);
    assert_eq!(replayed.json()["status"], "processed");
    assert_eq!(replayed.json()["fires"], record.json()["fires"]);
    assert_eq!(events_until(&app, "app.signup", 1).await.len(), 1);

    // The contact: core columns from either spelling, other scalars under their own names.
    let contact = app
        .admin_get("/admin/contacts/ada@example.com?workspace=acme")
        .await
        .json();
    assert_eq!(contact["first_name"], "Ada");
    assert_eq!(contact["last_name"], "Lovelace");
    assert_eq!(contact["subscribed"], true);
    assert_eq!(contact["custom_fields"]["plan"], "pro");
    assert_eq!(contact["custom_fields"]["seats"], 3);
    assert!(contact["custom_fields"].get("meta").is_none());
    assert!(contact["custom_fields"].get("firstName").is_none());

    // Newest wins by occurredAt: an older fire does not overwrite, a newer one does.
    let older = json!({"triggerEventId": "app.signup", "workspace": "acme", "idempotencyKey": "signup-old",
        "occurredAt": now - 3_600_000, "payload": {"email": "ada@example.com", "firstName": "Old", "plan": "legacy"}});
    fire(&app, &older).await.assert_status(202);
    events_until(&app, "app.signup", 2).await;
    let contact = app
        .admin_get("/admin/contacts/ada@example.com?workspace=acme")
        .await
        .json();
    assert_eq!(contact["first_name"], "Ada", "an older fire overwrote");
    assert_eq!(contact["custom_fields"]["plan"], "pro");
    let newer = json!({"triggerEventId": "app.signup", "workspace": "acme", "idempotencyKey": "signup-new",
        "payload": {"email": "ada@example.com", "firstName": "Augusta", "plan": "team", "subscribed": false}});
    fire(&app, &newer).await.assert_status(202);
    events_until(&app, "app.signup", 3).await;
    let contact = app
        .admin_get("/admin/contacts/ada@example.com?workspace=acme")
        .await
        .json();
    assert_eq!(contact["first_name"], "Augusta");
    assert_eq!(contact["custom_fields"]["plan"], "team");
    assert_eq!(contact["subscribed"], false);

    // Keys are unique per workspace: the same key in another workspace is another fire.
    post(
        &app,
        "/v1/triggers",
        Some(ADMIN_TOKEN),
        &signup_definition("beta"),
    )
    .await
    .assert_status(201);
    let mut elsewhere = body.clone();
    elsewhere["workspace"] = json!("beta");
    let other_id = fire(&app, &elsewhere).await;
    other_id.assert_status(202);
    assert_ne!(other_id.json()["id"], json!(first_id));
    let all = events_until(&app, "app.signup", 4).await;
    assert_eq!(all.len(), 4);

    // Field definitions for the custom fields, with the custom source.
    let kinds = field_definitions(&app.store, "acme").await;
    assert!(
        kinds.contains(&("plan".into(), "string".into(), "custom".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("seats".into(), "number".into(), "custom".into())),
        "{kinds:?}"
    );
}

/// (key, type, provider) of a workspace's field definitions, read from the store itself.
async fn field_definitions(store: &TestStore, workspace: &str) -> Vec<(String, String, String)> {
    let sql = "SELECT key, type, provider FROM field_definitions WHERE workspace = $1 ORDER BY key";
    match &store.db {
        hookgate::db::Db::Sqlite { readers, .. } => sqlx::query_as(sql)
            .bind(workspace)
            .fetch_all(readers)
            .await
            .expect("definitions"),
        hookgate::db::Db::Postgres(pool) => sqlx::query_as(sql)
            .bind(workspace)
            .fetch_all(pool)
            .await
            .expect("definitions"),
    }
}

/// Definitions are checked whole: each problem named with its path, reserved namespaces
/// refused.
async fn trigger_definitions_are_validated(backend: Backend) {
    let app = TestApp::builder(backend).start().await;
    let email = json!({"key": "email", "type": "string", "required": true});
    for (id, says) in [
        ("stripe.invoice.paid", "provider name"),
        ("clerk.user.created", "provider name"),
        ("contact.created", "hookgate's own"),
        ("test.ping", "hookgate's own"),
        ("hookgate.endpoint.disabled", "hookgate's own"),
        ("App.Signup", "a-z"),
    ] {
        let d = post(
            &app,
            "/v1/triggers",
            Some(ADMIN_TOKEN),
            &json!({"id": id, "payloadSchema": {"fields": [email]}}),
        )
        .await;
        d.assert_error(400, "invalid_trigger");
        let error = &d.json()["errors"][0];
        assert_eq!(error["path"], "id", "{}", d.text);
        assert!(
            error["message"].as_str().expect("message").contains(says),
            "{id}: {}",
            d.text
        );
    }
    let d = post(
        &app,
        "/v1/triggers",
        Some(ADMIN_TOKEN),
        &json!({"id": "app.x", "payloadSchema": {"fields": [
            {"key": "email", "type": "string"},
            {"key": "n", "type": "integer", "required": true},
            {"key": "subscribed", "type": "string"},
        ]}}),
    )
    .await;
    d.assert_error(400, "invalid_trigger");
    let paths: Vec<String> = d.json()["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "payloadSchema.fields[0].required",
            "payloadSchema.fields[1].type",
            "payloadSchema.fields[2].type"
        ],
        "{}",
        d.text
    );
    let d = post(
        &app,
        "/v1/triggers",
        Some(ADMIN_TOKEN),
        &json!({"id": "app.x", "payloadSchema": {"fields": [{"key": "plan", "type": "string"}]}}),
    )
    .await;
    d.assert_error(400, "invalid_trigger");
    assert!(d.text.contains("must declare email"), "{}", d.text);
    // Not the shape at all.
    post(
        &app,
        "/v1/triggers",
        Some(ADMIN_TOKEN),
        &json!({"id": "app.x", "schema": {}}),
    )
    .await
    .assert_error(400, "invalid_request");
    // Nothing invalid reached the catalog.
    let catalog = app.admin_get("/v1/triggers").await.json();
    assert_eq!(catalog, json!([]));
}

/// `webhooks:write` (or admin) defines and fires; no token 401, a read-only key 403; each key
/// has its own rate limit (429 with Retry-After).
async fn custom_event_scopes_and_rate_limits(backend: Backend) {
    let app = TestApp::builder(backend)
        .config(|c| {
            c.rate_limit_per_sec = 1;
            c.rate_limit_burst = 3;
        })
        .start()
        .await;
    let reader = key(&app, "webhooks:read").await;
    let writer = key(&app, "webhooks:write").await;
    let other_writer = key(&app, "webhooks:write").await;
    let definition = signup_definition("default");
    let fire_body = json!({"triggerEventId": "app.signup", "idempotencyKey": "k1",
        "payload": {"email": "a@example.com", "plan": "pro"}});
    for path in ["/v1/triggers", "/v1/fires"] {
        post(&app, path, None, &definition)
            .await
            .assert_error(401, "unauthorized");
        post(&app, path, Some("hgk_nope_nope"), &definition)
            .await
            .assert_error(401, "unauthorized");
        post(&app, path, Some(&reader), &definition)
            .await
            .assert_error(403, "forbidden");
    }
    post(&app, "/v1/triggers", Some(&writer), &definition)
        .await
        .assert_status(201);
    post(&app, "/v1/fires", Some(&writer), &fire_body)
        .await
        .assert_status(202);
    post(&app, "/v1/fires", Some(&writer), &fire_body)
        .await
        .assert_outcome("duplicate");
    // The writer's burst of 3 is spent (one more token a second): 429 with Retry-After, and
    // another key is not affected.
    let mut limited = post(&app, "/v1/fires", Some(&writer), &fire_body).await;
    for _ in 0..5 {
        if limited.status == 429 {
            break;
        }
        limited = post(&app, "/v1/fires", Some(&writer), &fire_body).await;
    }
    limited.assert_error(429, "rate_limited");
    let retry_after: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    post(&app, "/v1/fires", Some(&other_writer), &fire_body)
        .await
        .assert_outcome("duplicate");

    // A key bound to another workspace neither defines nor fires in this one.
    let (id, bound, hash) = hookgate::auth::mint();
    app.store
        .db
        .insert_api_key(
            &id,
            &hash,
            "bound",
            "webhooks:write",
            hookgate::now_ms(),
            Some("elsewhere"),
            None,
        )
        .await
        .expect("key");
    post(&app, "/v1/triggers", Some(&bound), &definition)
        .await
        .assert_error(403, "forbidden");
    let in_default = json!({"triggerEventId": "app.signup", "workspace": "default",
        "idempotencyKey": "k-bound", "payload": {"email": "b@example.com"}});
    post(&app, "/v1/fires", Some(&bound), &in_default)
        .await
        .assert_error(403, "forbidden");
}

/// 30 concurrent fires with one key: exactly one is accepted, the others are duplicates of it,
/// and the pipeline makes one fire.
async fn thirty_concurrent_fires_with_one_key(backend: Backend) {
    let app = TestApp::builder(backend).start().await;
    post(
        &app,
        "/v1/triggers",
        Some(ADMIN_TOKEN),
        &signup_definition("default"),
    )
    .await
    .assert_status(201);
    let body = json!({"triggerEventId": "app.signup", "idempotencyKey": "once",
        "payload": {"email": "race@example.com", "plan": "pro"}});
    let answers = futures::future::join_all((0..30).map(|_| fire(&app, &body))).await;
    let accepted: Vec<&Delivered> = answers.iter().filter(|a| a.status == 202).collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let id = accepted[0].json()["id"].as_str().expect("id").to_owned();
    let duplicates: Vec<String> = answers
        .iter()
        .filter(|a| a.status != 202)
        .map(|a| a.assert_outcome("duplicate"))
        .collect();
    assert_eq!(duplicates.len(), 29);
    assert!(duplicates.iter().all(|d| *d == id));
    let events = events_until(&app, "app.signup", 1).await;
    assert_eq!(events.len(), 1);
    // Give the pipeline time to make a second fire if it were going to.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(app.store.db.fire_count().await.expect("count"), 1);
    let stored = app
        .store
        .db
        .count_stored("custom:default", "once")
        .await
        .expect("count");
    assert_eq!(stored, 1);
    // Requests that met the first at the unique index are logged as duplicates, with the
    // status they got.
    let logged = app
        .store
        .db
        .list_ingest(&hookgate::db::IngestFilter {
            connection: Some("custom:default".into()),
            outcome: Some("duplicate".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(logged.len() <= 29, "{}", logged.len());
    assert!(logged.iter().all(|r| r.http_status == 200), "{logged:?}");
}

/// Fires acknowledged by `hookgate serve --no-workers`, then SIGKILL, then a normal restart:
/// every fire is processed, exactly once.
async fn crash_between_202_and_processing(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let db_url = store.binary_url();
    let dir = tempfile::tempdir().expect("dir");
    let client = reqwest::Client::new();
    let first = {
        let dir = dir.path().to_owned();
        let db_url = db_url.clone();
        tokio::task::spawn_blocking(move || crate::cluster::serve(&dir, &db_url, &["--no-workers"]))
            .await
            .expect("start")
    };
    let define = client
        .post(first.url("/v1/triggers"))
        .bearer_auth(crate::cluster::ADMIN)
        .json(&signup_definition("default"))
        .send()
        .await
        .expect("define");
    assert_eq!(define.status().as_u16(), 201);
    let sends = (0..20).map(|n| {
        client
            .post(first.url("/v1/fires"))
            .bearer_auth(crate::cluster::ADMIN)
            .json(
                &json!({"triggerEventId": "app.signup", "idempotencyKey": format!("crash-{n}"),
                "payload": {"email": format!("user{n}@example.com"), "plan": "pro"}}),
            )
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.map(|r| r.status().as_u16()).unwrap_or(0))
        .collect();
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    first.kill();

    store.db.migrate().await.expect("schema");
    assert_eq!(
        store.db.status_counts().await.expect("counts"),
        vec![("pending".to_owned(), 20)],
        "acknowledged fires survive the kill, unprocessed"
    );
    assert_eq!(store.db.fire_count().await.expect("count"), 0);

    let second = {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || crate::cluster::serve(&dir, &db_url, &[]))
            .await
            .expect("restart")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = store
            .db
            .list_ingest(&hookgate::db::IngestFilter {
                provider: Some("custom".into()),
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list");
        if rows.len() == 20
            && rows
                .iter()
                .all(|r| r.status.as_deref() == Some("processed"))
        {
            break rows;
        }
        assert!(Instant::now() < deadline, "not all processed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        rows.iter().all(|r| r.attempts == 1),
        "a fire processed twice"
    );
    let fires = crate::cluster::fires(&store.db).await;
    assert_eq!(fires.len(), 20);
    let keys: HashSet<&str> = fires.iter().map(|f| f.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 20);
    assert!(fires.iter().all(|f| f.trigger_id == "app.signup"));
    let status = tokio::task::spawn_blocking(move || second.stop())
        .await
        .expect("stop");
    assert!(status.success());
}

/// `hookgate triggers define` and `hookgate fire` work on the database, checked exactly as the
/// API checks; a gateway started afterwards processes the fire.
async fn cli_defines_and_fires(backend: Backend) {
    let store = TestStore::new(&backend).await;
    let db_url = store.binary_url();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("signup.json");
    std::fs::write(&file, signup_definition("acme").to_string()).expect("write");
    let (ok, out, err) = run(hookgate(dir.path(), &db_url)
        .args(["triggers", "define"])
        .arg(&file));
    assert!(ok, "{err}");
    assert!(out.contains("\"provider\": \"custom\""), "{out}");
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        json!({"id": "stripe.x", "payloadSchema": {"fields": []}}).to_string(),
    )
    .expect("write");
    let (ok, _, err) = run(hookgate(dir.path(), &db_url)
        .args(["triggers", "define"])
        .arg(&bad));
    assert!(!ok);
    assert!(
        err.contains("id: may not start with the provider name"),
        "{err}"
    );
    assert!(
        err.contains("payloadSchema.fields: must declare email"),
        "{err}"
    );

    let (ok, listed, err) = run(hookgate(dir.path(), &db_url).args(["triggers", "list"]));
    assert!(ok, "{err}");
    assert!(
        listed.contains("app.signup")
            && listed.contains("custom")
            && listed.contains("email:string!"),
        "{listed}"
    );
    let fire_cmd = |payload: &str, key: &str| {
        run(hookgate(dir.path(), &db_url).args([
            "fire",
            "app.signup",
            "--workspace",
            "acme",
            "--payload",
            payload,
            "--key",
            key,
        ]))
    };
    let payload = r#"{"email":"cli@example.com","plan":"pro","firstName":"Cli"}"#;
    let (ok, id, err) = fire_cmd(payload, "cli-1");
    assert!(ok, "{err}");
    let id = id.trim().to_owned();
    assert!(err.contains("accepted"), "{err}");
    let (ok, again, err) = fire_cmd(payload, "cli-1");
    assert!(ok, "{err}");
    assert_eq!(again.trim(), id);
    assert!(err.contains("duplicate"), "{err}");
    let (ok, _, err) = fire_cmd(r#"{"email":"cli@example.com","plan":"free"}"#, "cli-1");
    assert!(!ok);
    assert!(err.contains("different fire"), "{err}");
    let (ok, _, err) = fire_cmd(r#"{"email":"nope","seats":"x"}"#, "cli-2");
    assert!(!ok);
    assert!(
        err.contains("payload.email: is not an email address"),
        "{err}"
    );
    assert!(
        err.contains("payload.plan: required string is missing"),
        "{err}"
    );
    assert!(
        err.contains("payload.seats: expected number, got string"),
        "{err}"
    );
    let (ok, _, err) = run(hookgate(dir.path(), &db_url).args([
        "fire",
        "app.nope",
        "--payload",
        "{}",
        "--key",
        "k",
    ]));
    assert!(!ok);
    assert!(err.contains("no custom trigger"), "{err}");

    let app = TestApp::builder(backend.clone()).into_config();
    let app = crate::support::TestAppBuilder::start_on(app, store).await;
    let events = events_until(&app, "app.signup", 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["payload"]["firstName"], "Cli");
    let contact = app
        .admin_get("/admin/contacts/cli@example.com?workspace=acme")
        .await
        .json();
    assert_eq!(contact["first_name"], "Cli");
}

backend_tests!(
    fires_status_table_and_processing,
    trigger_definitions_are_validated,
    custom_event_scopes_and_rate_limits,
    thirty_concurrent_fires_with_one_key,
    crash_between_202_and_processing,
    cli_defines_and_fires,
);
