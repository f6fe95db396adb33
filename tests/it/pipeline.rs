//! Normalization end to end: contacts, ordering, identity resolution, exactly-once fires,
//! replay, the events API and stream, API key scopes, crash recovery and scale-out.

use std::time::{Duration, Instant};

use hookgate::providers::{ProviderId, SignOptions};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::support::{fixture, now_options, Backend, TestApp, ADMIN_TOKEN};
use crate::webhooks::kit;

/// Waits until no stored event is pending (or due for a retry) and returns the status counts.
pub async fn settle(db: &hookgate::db::Db) -> std::collections::BTreeMap<String, i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: std::collections::BTreeMap<String, i64> = db
            .status_counts()
            .await
            .expect("counts")
            .into_iter()
            .collect();
        if counts.get("pending").copied().unwrap_or(0) == 0 {
            return counts;
        }
        assert!(
            Instant::now() < deadline,
            "pipeline did not settle: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status counts of a settled pipeline where all `n` stored events were processed.
fn processed(n: i64) -> std::collections::BTreeMap<String, i64> {
    [("processed".to_owned(), n)].into()
}

/// Every trigger fire in the events API (contact lifecycle events left out).
pub async fn all_fires(app: &TestApp) -> Vec<Value> {
    all_events(app)
        .await
        .into_iter()
        .filter(|e| {
            !e["eventType"]
                .as_str()
                .unwrap_or("")
                .starts_with("contact.")
        })
        .collect()
}

/// Every event in the events API.
async fn all_events(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let page = app
            .admin_get(&format!("/v1/events?limit=50&cursor={cursor}"))
            .await;
        page.assert_status(200);
        let page = page.json();
        out.extend(page["events"].as_array().expect("events").iter().cloned());
        cursor = page["nextCursor"].as_str().expect("cursor").to_owned();
        if page["done"] == true {
            return out;
        }
    }
}

fn stripe_customer_updated(id: &str, name: &str, created: i64) -> Vec<u8> {
    json!({"id": id, "object": "event", "type": "customer.updated", "created": created,
           "data": {"object": {"id": "cus_order", "object": "customer", "email": "Order.Test@Example.com ", "name": name}}})
    .to_string()
    .into_bytes()
}

/// Every fixture of every provider, through the pipeline: one fire per event (Brevo's batch of 3
/// gives 3), contacts keyed by trimmed lower-case email, parked events resolved, the catalog.
async fn every_fixture_normalizes(backend: Backend) {
    let mut builder = TestApp::builder(backend);
    for p in ProviderId::ALL {
        builder = builder.connection(p.as_str(), p, &[kit(p).secret]);
    }
    let app = builder.start().await;
    let mut sent = 0;
    for p in ProviderId::ALL {
        let dir = format!("{}/fixtures/{p}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.retain(|f| f.extension().is_some_and(|e| e == "json"));
        files.sort();
        for file in files {
            let body = std::fs::read(&file).expect("read");
            let mut options = now_options();
            if p == ProviderId::Shopify {
                let topic = file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("name")
                    .split("--")
                    .next()
                    .expect("topic")
                    .replace("__", "/");
                options = SignOptions {
                    event_type: Some(topic),
                    ..options
                };
            }
            app.deliver(p, p.as_str(), &body, kit(p).secret, options)
                .await
                .assert_outcome("accepted");
            sent += 1;
        }
    }
    // Every fixture is a mapped event with a contact (the parked subscription events resolve
    // once their customer is seen): all of them are processed but the RevenueCat TRANSFER, whose
    // source id no fixture reveals.
    let counts = settle(&app.store.db).await;
    let mut expected = processed(sent - 1);
    expected.insert("unresolved".into(), 1);
    assert_eq!(counts, expected);
    let fires = all_fires(&app).await;
    // Brevo's batch is one stored event and three fires, and its contact_deleted naming two
    // addresses two fires. RevenueCat's TRANSFER fires for its destination (a known user) while
    // its source, an id no fixture reveals, stays parked: that event is `unresolved`. WorkOS's
    // dsync.deleted is sent before any user of its directory, so it marks nobody and fires none.
    assert_eq!(fires.len() as i64, (sent - 1) + 2 + 1 + 1 - 1, "{counts:?}");
    let transfer = fires
        .iter()
        .find(|f| f["eventType"] == "revenuecat.TRANSFER")
        .expect("the transfer's destination fires");
    assert_eq!(transfer["payload"]["revenuecat_transfer_role"], "to");
    assert_eq!(transfer["payload"]["email"], "li.wei@example.com");
    // Exactly one fire per idempotency key.
    let mut keys: Vec<&str> = fires
        .iter()
        .map(|f| f["idempotencyKey"].as_str().expect("key"))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), fires.len());
    // Every fire carries a normalized email and a `<provider>.<type>` trigger id.
    for f in &fires {
        let email = f["payload"]["email"].as_str().expect("email");
        assert_eq!(email, email.trim().to_lowercase());
        let provider = f["eventType"]
            .as_str()
            .expect("type")
            .split('.')
            .next()
            .expect("provider");
        assert!(provider.parse::<ProviderId>().is_ok(), "{f}");
    }
    for trigger in [
        "stripe.customer.subscription.created",
        "clerk.user.created",
        "shopify.customers/create",
        "supabase.public.profiles.INSERT",
        "workos.dsync.user.created",
        "revenuecat.INITIAL_PURCHASE",
        "brevo.hard_bounce",
    ] {
        assert!(
            fires.iter().any(|f| f["eventType"] == trigger),
            "no fire {trigger}"
        );
    }
    // The Stripe subscription events carry only the customer id; they resolved to the customer.
    let sub = fires
        .iter()
        .find(|f| f["eventType"] == "stripe.customer.subscription.created")
        .expect("fire");
    assert_eq!(sub["payload"]["email"], "jenny.rosen@example.com");
    // The contact has its provider fields; Shopify ids are exact digits.
    let jenny = app
        .admin_get("/admin/contacts/Jenny.Rosen@example.com")
        .await;
    jenny.assert_status(200);
    assert!(jenny.json()["custom_fields"]["stripe_customer_id"]
        .as_str()
        .is_some_and(|id| id.starts_with("cus_")));
    // The catalog lists every trigger seen, once: exactly the distinct types that fired.
    let catalog = app.admin_get("/v1/triggers").await.json();
    let list = catalog.as_array().expect("catalog");
    let mut fired: Vec<&str> = fires
        .iter()
        .map(|f| f["eventType"].as_str().expect("type"))
        .collect();
    fired.sort_unstable();
    fired.dedup();
    let mut listed: Vec<&str> = list
        .iter()
        .map(|t| t["id"].as_str().expect("trigger id"))
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed, fired,
        "the catalog is the set of triggers that fired"
    );
    for t in list {
        assert_eq!(
            t["payloadSchema"]["fields"][0],
            json!({"key": "email", "type": "string", "required": true}),
            "{t}"
        );
    }
    let shopify_fire = fires
        .iter()
        .find(|f| f["eventType"] == "shopify.customers/create")
        .expect("fire");
    assert_eq!(
        shopify_fire["payload"]["shopify_customer_id"],
        "706405506930370084"
    );
    // Brevo hard bounce: unsubscribed.
    let bounce = fires
        .iter()
        .find(|f| f["eventType"] == "brevo.hard_bounce")
        .expect("fire");
    let email = bounce["payload"]["email"].as_str().expect("email");
    let contact = app
        .admin_get(&format!("/admin/contacts/{email}"))
        .await
        .json();
    assert_eq!(contact["subscribed"], false, "{contact}");
    // The ingest record names its contact and fires.
    let ingest_id = app
        .admin_get("/admin/ingest?provider=brevo&event_type=batch")
        .await
        .json()["items"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let record = app
        .admin_get(&format!("/admin/ingest/{ingest_id}"))
        .await
        .json();
    assert_eq!(record["status"], "processed");
    assert_eq!(record["fires"].as_array().expect("fires").len(), 3);
    assert!(record["contact_email"].is_string());
}

/// An older event never overwrites a newer value; replays never fire twice.
async fn ordering_and_replay(backend: Backend) {
    let k = kit(ProviderId::Stripe);
    let app = TestApp::builder(backend)
        .connection("stripe", ProviderId::Stripe, &[k.secret])
        .start()
        .await;
    let newer = app
        .deliver(
            ProviderId::Stripe,
            "stripe",
            &stripe_customer_updated("evt_new", "Newest Name", 1_700_000_200),
            k.secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    assert_eq!(settle(&app.store.db).await, processed(1));
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &stripe_customer_updated("evt_old", "Stale Name", 1_700_000_100),
        k.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    assert_eq!(settle(&app.store.db).await, processed(2));
    let contact = app
        .admin_get("/admin/contacts/order.test@example.com")
        .await
        .json();
    assert_eq!(contact["first_name"], "Newest", "{contact}");
    assert_eq!(contact["last_name"], "Name");
    // Both events fired (each event is its own fire), in arrival order.
    let fires = all_fires(&app).await;
    assert_eq!(fires.len(), 2);
    // Replay: same fire, no new one.
    let before = app
        .admin_get(&format!("/admin/ingest/{newer}"))
        .await
        .json()["fires"]
        .clone();
    for _ in 0..3 {
        let replay = app
            .admin_post(&format!("/admin/ingest/{newer}/replay"), Value::Null)
            .await;
        replay.assert_status(200);
        assert_eq!(replay.json()["status"], "processed");
        assert_eq!(replay.json()["fires"], before);
    }
    assert_eq!(all_fires(&app).await.len(), 2);
    let contact = app
        .admin_get("/admin/contacts/order.test@example.com")
        .await
        .json();
    assert_eq!(contact["first_name"], "Newest");
    // Rejected requests cannot be replayed; unknown ids are 404.
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        b"{}",
        "whsec_wrong",
        now_options(),
    )
    .await
    .assert_status(401);
    let rejected = app
        .ingest_until("/admin/ingest?outcome=rejected", |i| !i.is_empty())
        .await;
    let rid = rejected[0]["id"].as_str().expect("id");
    app.admin_post(&format!("/admin/ingest/{rid}/replay"), Value::Null)
        .await
        .assert_error(409, "conflict");
    app.admin_post(
        "/admin/ingest/01J00000000000000000000000/replay",
        Value::Null,
    )
    .await
    .assert_error(404, "not_found");
}

/// A subscription event before its customer is known is parked `unresolved`, visible in the
/// ingest log, and fires with the email as soon as checkout reveals the customer.
async fn identity_resolution(backend: Backend) {
    let k = kit(ProviderId::Stripe);
    let app = TestApp::builder(backend)
        .connection("stripe", ProviderId::Stripe, &[k.secret])
        .start()
        .await;
    let parked = app
        .deliver(
            ProviderId::Stripe,
            "stripe",
            &fixture(ProviderId::Stripe, "customer.subscription.created.json"),
            k.secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    assert_eq!(
        settle(&app.store.db).await,
        [("unresolved".to_owned(), 1)].into()
    );
    let record = app
        .admin_get(&format!("/admin/ingest/{parked}"))
        .await
        .json();
    assert_eq!(record["status"], "unresolved", "{record}");
    assert!(
        record["status_reason"]
            .as_str()
            .is_some_and(|r| r.contains("stripe_customer_id=cus_")),
        "{record}"
    );
    let listed = app
        .admin_get("/admin/ingest?status=unresolved")
        .await
        .json();
    assert_eq!(listed["items"][0]["id"], parked.as_str());
    assert!(all_fires(&app).await.is_empty());

    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &fixture(ProviderId::Stripe, "checkout.session.completed.json"),
        k.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let record = app
            .admin_get(&format!("/admin/ingest/{parked}"))
            .await
            .json();
        if record["status"] == "processed" {
            assert_eq!(record["contact_email"], "jenny.rosen@example.com");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "parked event never resolved: {record}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fires = all_fires(&app).await;
    let sub = fires
        .iter()
        .find(|f| f["eventType"] == "stripe.customer.subscription.created")
        .expect("the parked fire went out");
    assert_eq!(sub["payload"]["email"], "jenny.rosen@example.com");
    assert!(sub["payload"]["stripe_subscription_id"]
        .as_str()
        .is_some_and(|s| s.starts_with("sub_")));
    assert_eq!(fires.len(), 2);
    assert_eq!(settle(&app.store.db).await, processed(2));
}

/// `GET /v1/events` paging and filters, `POST /v1/webhooks/test`, and key scopes.
async fn events_api_and_keys(backend: Backend) {
    let app = TestApp::builder(backend).start().await;
    let db = &app.store.db;
    let mut keys = std::collections::HashMap::new();
    for (name, scopes) in [
        ("reader", "webhooks:read"),
        ("writer", "webhooks:write"),
        ("admin", "admin"),
    ] {
        let (id, key, hash) = hookgate::auth::mint();
        db.insert_api_key(&id, &hash, name, scopes, hookgate::now_ms(), None, None)
            .await
            .expect("key");
        keys.insert(name, key);
    }
    let call = |method: reqwest::Method, path: &str, key: Option<&str>, body: Option<Value>| {
        let mut r = app.client.request(method, app.url(path));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move { crate::support::Delivered::read(r.send().await.expect("send")).await }
    };
    let ping = json!({"eventType": "test.ping", "data": {"email": "Ping@Example.com", "n": 1}});
    // 401 without a key or with a bad one, 403 without the scope.
    call(reqwest::Method::GET, "/v1/events", None, None)
        .await
        .assert_error(401, "unauthorized");
    call(
        reqwest::Method::GET,
        "/v1/events",
        Some("hgk_nope_nope"),
        None,
    )
    .await
    .assert_error(401, "unauthorized");
    call(
        reqwest::Method::POST,
        "/v1/webhooks/test",
        Some(&keys["reader"]),
        Some(ping.clone()),
    )
    .await
    .assert_error(403, "forbidden");
    call(
        reqwest::Method::GET,
        "/v1/events",
        Some(&keys["writer"]),
        None,
    )
    .await
    .assert_error(403, "forbidden");
    call(
        reqwest::Method::GET,
        "/admin/ingest",
        Some(&keys["reader"]),
        None,
    )
    .await
    .assert_error(403, "forbidden");
    call(
        reqwest::Method::GET,
        "/admin/ingest",
        Some(&keys["admin"]),
        None,
    )
    .await
    .assert_status(200);
    call(
        reqwest::Method::GET,
        "/v1/triggers",
        Some(&keys["reader"]),
        None,
    )
    .await
    .assert_status(200);

    for n in 0..5 {
        let event_type = if n % 2 == 0 { "test.even" } else { "test.odd" };
        let created = call(
            reqwest::Method::POST,
            "/v1/webhooks/test",
            Some(&keys["writer"]),
            Some(json!({"eventType": event_type, "data": {"n": n}})),
        )
        .await;
        created.assert_status(201);
        assert_eq!(created.json()["eventType"], event_type);
        // Distinct milliseconds, so that the time filters below have a known answer.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let reader = keys["reader"].clone();
    let page = |q: String| {
        let reader = reader.clone();
        async move {
            call(
                reqwest::Method::GET,
                &format!("/v1/events?{q}"),
                Some(&reader),
                None,
            )
            .await
            .json()
        }
    };
    let first = page("limit=2".into()).await;
    assert_eq!(first["events"].as_array().expect("events").len(), 2);
    assert_eq!(first["done"], false);
    assert_eq!(first["events"][0]["payload"]["n"], 0);
    let second = page(format!(
        "limit=2&cursor={}",
        first["nextCursor"].as_str().expect("cursor")
    ))
    .await;
    assert_eq!(second["events"][0]["payload"]["n"], 2);
    let third = page(format!(
        "limit=2&cursor={}",
        second["nextCursor"].as_str().expect("cursor")
    ))
    .await;
    assert_eq!(third["events"].as_array().expect("events").len(), 1);
    assert_eq!(third["done"], true);
    let empty = page(format!(
        "limit=2&cursor={}",
        third["nextCursor"].as_str().expect("cursor")
    ))
    .await;
    assert_eq!(empty["events"].as_array().expect("events").len(), 0);
    assert_eq!(
        empty["nextCursor"], third["nextCursor"],
        "an empty page keeps the cursor"
    );
    let odd = page("event_type=test.odd".into()).await;
    assert_eq!(odd["events"].as_array().expect("events").len(), 2);
    // `before` and `after` are strict cut-offs on the fire's time: before the second event's
    // time is exactly the first event, after the fourth's exactly the fifth.
    let timestamp = |page: &Value, i: usize| {
        page["events"][i]["timestamp"]
            .as_str()
            .expect("timestamp")
            .to_owned()
    };
    let numbers = |page: &Value| -> Vec<i64> {
        page["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["payload"]["n"].as_i64().expect("n"))
            .collect()
    };
    let cut = timestamp(&first, 1);
    let before = page(format!("before={}", urlencode(&cut))).await;
    assert_eq!(numbers(&before), [0], "before {cut}: {before}");
    assert!(timestamp(&before, 0) < cut, "{before}");
    let cut = timestamp(&second, 1);
    assert_eq!(second["events"][1]["payload"]["n"], 3);
    let after = page(format!("after={}", urlencode(&cut))).await;
    assert_eq!(numbers(&after), [4], "after {cut}: {after}");
    assert!(timestamp(&after, 0) > cut, "{after}");
    let after = page("after=4102444800000".into()).await;
    assert_eq!(after["events"].as_array().expect("events").len(), 0);
    for bad in ["limit=0", "cursor=abc", "after=yesterday"] {
        call(
            reqwest::Method::GET,
            &format!("/v1/events?{bad}"),
            Some(&keys["reader"]),
            None,
        )
        .await
        .assert_status(400);
    }
    // Revoked keys stop working.
    let reader_id = keys["reader"].split('_').nth(1).expect("id").to_owned();
    assert!(db
        .revoke_api_key(&reader_id, hookgate::now_ms())
        .await
        .expect("revoke"));
    call(
        reqwest::Method::GET,
        "/v1/events",
        Some(&keys["reader"]),
        None,
    )
    .await
    .assert_error(401, "unauthorized");
    let _ = ADMIN_TOKEN;
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

/// The SSE stream: `id:` and `data:` lines, a heartbeat every 2 s, and `Last-Event-ID` resume.
async fn event_stream(backend: Backend) {
    use futures::StreamExt as _;
    let app = TestApp::builder(backend).start().await;
    let post = |n: i64| {
        app.admin_post(
            "/v1/webhooks/test",
            json!({"eventType": "test.stream", "data": {"n": n}}),
        )
    };
    post(0).await.assert_status(201);
    let response = app
        .client
        .get(app.url("/v1/events/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let started = Instant::now();
    post(1).await.assert_status(201);
    post(2).await.assert_status(201);
    // Read until two events and one heartbeat have arrived.
    while !(text.matches("data: ").count() >= 2 && text.contains(": heartbeat")) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stream gave: {text}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("chunk in time")
            .expect("open")
            .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !text.contains("\"n\":0"),
        "a new stream starts after the existing fires: {text}"
    );
    let ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(ids.len(), 2, "{text}");
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    assert_eq!(data[0]["payload"]["n"], 1);
    assert_eq!(data[1]["id"], ids[1].as_str());
    drop(body);
    // Resume after the first id: the second event comes again, then new ones.
    post(3).await.assert_status(201);
    let resumed = app
        .client
        .get(app.url("/v1/events/stream"))
        .bearer_auth(ADMIN_TOKEN)
        .header("Last-Event-ID", &ids[0])
        .send()
        .await
        .expect("stream");
    let mut body = resumed.bytes_stream();
    let mut text = String::new();
    while text.matches("data: ").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("chunk in time")
            .expect("open")
            .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("json"))
        .collect();
    assert_eq!(data[0]["payload"]["n"], 2, "{text}");
    assert_eq!(data[1]["payload"]["n"], 3, "{text}");
    // Without a key: 401.
    let denied = app
        .client
        .get(app.url("/v1/events/stream"))
        .send()
        .await
        .expect("stream");
    assert_eq!(denied.status().as_u16(), 401);
}

/// Supabase `email_path`, and a Brevo batch becoming one fire per element.
async fn supabase_path_and_brevo_batch(backend: Backend) {
    let supa = kit(ProviderId::Supabase);
    let brevo = kit(ProviderId::Brevo);
    let app = TestApp::builder(backend)
        .connection_with("supa", ProviderId::Supabase, &[supa.secret], |s| {
            s.email_path = Some("record.contact.work_email".into())
        })
        .connection("brevo", ProviderId::Brevo, &[brevo.secret])
        .start()
        .await;
    let row = br#"{"type": "INSERT", "table": "leads", "record": {"id": 7, "contact": {"work_email": "Lead@Example.com"}, "plan": "pro"}, "schema": "public", "old_record": null}"#;
    app.deliver(
        ProviderId::Supabase,
        "supa",
        row,
        supa.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    app.deliver(
        ProviderId::Brevo,
        "brevo",
        &fixture(ProviderId::Brevo, "batched.json"),
        brevo.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    assert_eq!(settle(&app.store.db).await, processed(2));
    let fires = all_fires(&app).await;
    let lead = fires
        .iter()
        .find(|f| f["eventType"] == "supabase.public.leads.INSERT")
        .expect("supabase fire");
    assert_eq!(lead["payload"]["email"], "lead@example.com");
    assert_eq!(lead["payload"]["supabase_plan"], "pro");
    let batch: Vec<&Value> = fires
        .iter()
        .filter(|f| {
            f["eventType"]
                .as_str()
                .is_some_and(|t| t.starts_with("brevo."))
        })
        .collect();
    assert_eq!(batch.len(), 3);
    let mut keys: Vec<&str> = batch
        .iter()
        .map(|f| f["idempotencyKey"].as_str().expect("key"))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 3, "each element has its own key");
    // The same batch again is a duplicate delivery: no new fires.
    app.deliver(
        ProviderId::Brevo,
        "brevo",
        &fixture(ProviderId::Brevo, "batched.json"),
        brevo.secret,
        now_options(),
    )
    .await
    .assert_outcome("duplicate");
    assert_eq!(all_fires(&app).await.len(), 4);
}

/// Supabase `user_id_column`: a `profiles` row (no email column, as in Supabase's starter
/// schema) resolves to the contact its `auth.users` row created, even when it arrives first.
async fn supabase_profile_resolves_through_user_id(backend: Backend) {
    let supa = kit(ProviderId::Supabase);
    let app = TestApp::builder(backend)
        .connection_with("supa", ProviderId::Supabase, &[supa.secret], |s| {
            s.user_id_column = Some("id".into())
        })
        .start()
        .await;
    let profile = fixture(ProviderId::Supabase, "public.profiles.UPDATE--starter.json");
    app.deliver(
        ProviderId::Supabase,
        "supa",
        &profile,
        supa.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    let counts = settle(&app.store.db).await;
    assert_eq!(counts.get("unresolved"), Some(&1), "{counts:?}");
    let user = fixture(ProviderId::Supabase, "auth.users.INSERT.json");
    app.deliver(
        ProviderId::Supabase,
        "supa",
        &user,
        supa.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    let counts = settle(&app.store.db).await;
    assert_eq!(counts.get("unresolved"), None, "{counts:?}");
    assert_eq!(counts.get("processed"), Some(&2), "{counts:?}");
    let fires = all_fires(&app).await;
    let profile_fire = fires
        .iter()
        .find(|f| f["eventType"] == "supabase.public.profiles.UPDATE")
        .expect("the profile fires once its user is known");
    assert_eq!(profile_fire["payload"]["email"], "sam.rivera@example.com");
    let contact = app
        .admin_get("/admin/contacts/sam.rivera@example.com")
        .await
        .json();
    assert_eq!(contact["custom_fields"]["supabase_username"], "samrivera");
    assert_eq!(contact["custom_fields"]["supabase_deleted"], false);
    // The option round-trips through the admin API's view of the connection.
    let view = app.admin_get("/admin/connections/supa").await.json();
    assert_eq!(view["user_id_column"], "id", "{view}");
}

/// A stored event row for [`batch_replays_events_in_order`].
fn stored_row(n: usize) -> hookgate::db::NewIngest {
    hookgate::db::NewIngest {
        id: ulid::Ulid::new().to_string(),
        kind: hookgate::db::IngestKind::Accepted,
        received_at: hookgate::now_ms(),
        connection_id: "stripe".into(),
        provider: "stripe",
        workspace: Some("default".into()),
        http_status: 200,
        event_id: Some(format!("evt_batch_{n}")),
        event_type: Some("customer.updated".into()),
        reason: None,
        client_addr: None,
        path: "/integrations/stripe/webhook/stripe".into(),
        headers: "[]".into(),
        body: bytes::Bytes::from_static(b"{}"),
        body_size: 2,
        body_truncated: false,
        read_us: None,
        verify_us: None,
    }
}

/// A normalized event for a plan: an optional email, provider ids, a first name, a time.
fn normalized(
    n: usize,
    email: Option<&str>,
    ids: &[(&str, &str)],
    first_name: &str,
    at_ms: i64,
) -> hookgate::providers::NormalizedEvent {
    hookgate::providers::NormalizedEvent {
        event_id: format!("evt_batch_{n}"),
        event_type: "customer.updated".into(),
        occurred_at_ms: Some(at_ms),
        identity: hookgate::providers::Identity {
            email: email.map(str::to_owned),
            ids: ids
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        },
        contact: hookgate::providers::ContactUpdate {
            first_name: Some(first_name.into()),
            ..Default::default()
        },
        event_fields: std::collections::BTreeMap::new(),
        ..Default::default()
    }
}

/// One apply batch is replayed in order, as one statement per step would be: an event parked
/// for an unknown id and revealed by a later event of the same batch ends `pending` (to be
/// processed again); an event whose id an earlier event of the batch linked resolves at once;
/// an older event does not overwrite a newer value; applying again keeps each fire's number.
async fn batch_replays_events_in_order(backend: Backend) {
    use hookgate::resolution::{EventPlan, Plan};
    let store = crate::support::TestStore::new(&backend).await;
    let db = &store.db;
    db.migrate().await.expect("migrate");
    let rows: Vec<_> = (0..4).map(stored_row).collect();
    db.write_batch(&rows).await.expect("store");
    let cus = [("stripe_customer_id", "cus_batch")];
    let events = [
        normalized(0, None, &cus, "Parked", 1_000),
        normalized(1, Some(" Ada@Example.COM "), &cus, "Ada", 2_000),
        normalized(2, None, &cus, "Ada L.", 3_000),
        normalized(3, Some("ada@example.com"), &[], "Older", 500),
    ];
    let plans: Vec<EventPlan> = rows
        .iter()
        .zip(events)
        .map(|(row, event)| EventPlan {
            ingest_id: row.id.clone(),
            workspace: "default".into(),
            connection_id: "stripe".into(),
            provider: "stripe".into(),
            received_at: row.received_at,
            retried: false,
            claimed_by: None,
            plan: Plan::Normalized(vec![event]),
        })
        .collect();
    let known = hookgate::db::Known::default();
    let applied = db
        .apply_plans(&plans, &known, hookgate::now_ms())
        .await
        .expect("apply");
    let statuses: Vec<&str> = applied.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(
        statuses,
        ["unresolved", "processed", "processed", "processed"]
    );
    assert_eq!(applied[1].requeued, 1, "the link revealed the parked event");
    let status = |i: usize| {
        let id = rows[i].id.clone();
        async move {
            let row = db.get_ingest(&id).await.expect("read").expect("row");
            (row.summary.status, row.summary.contact_email)
        }
    };
    assert_eq!(status(0).await.0.as_deref(), Some("pending"));
    assert_eq!(
        status(2).await,
        (Some("processed".into()), Some("ada@example.com".into()))
    );
    let contact = db
        .get_contact("default", "ada@example.com")
        .await
        .expect("read")
        .expect("the contact exists");
    assert_eq!(contact.first_name.as_deref(), Some("Ada L."));
    let seqs: Vec<i64> = applied.iter().flat_map(|a| a.fires.clone()).collect();
    assert_eq!(seqs.len(), 3, "one fire per applied event: {seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in batch order: {seqs:?}"
    );
    // Applying the processed events again (a replay) adds nothing and reports the same fires.
    let again = db
        .apply_plans(&plans[1..], &known, hookgate::now_ms())
        .await
        .expect("apply again");
    let seqs_again: Vec<i64> = again.iter().flat_map(|a| a.fires.clone()).collect();
    assert_eq!(seqs_again, seqs);
}

/// Contact lifecycle events: `contact.created`, `contact.updated` with the changed field names
/// and `contact.suppressed`, committed with the contact change; a replay changes nothing and
/// emits nothing.
async fn contact_lifecycle_events(backend: Backend) {
    let k = kit(ProviderId::Stripe);
    let app = TestApp::builder(backend)
        .connection("stripe", ProviderId::Stripe, &[k.secret])
        .start()
        .await;
    let first = app
        .deliver(
            ProviderId::Stripe,
            "stripe",
            &stripe_customer_updated("evt_a", "Ann Lee", 1_700_000_100),
            k.secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    settle(&app.store.db).await;
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &stripe_customer_updated("evt_b", "Ann Stone", 1_700_000_200),
        k.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    settle(&app.store.db).await;
    let events = all_events(&app).await;
    let contact: Vec<&Value> = events
        .iter()
        .filter(|e| {
            e["eventType"]
                .as_str()
                .unwrap_or("")
                .starts_with("contact.")
        })
        .collect();
    assert_eq!(contact.len(), 2, "{contact:?}");
    assert_eq!(contact[0]["eventType"], "contact.created");
    assert_eq!(contact[0]["payload"]["email"], "order.test@example.com");
    assert_eq!(contact[0]["payload"]["first_name"], "Ann");
    assert!(contact[0]["messageId"]
        .as_str()
        .is_some_and(|m| m.starts_with("msg_")));
    assert_eq!(contact[1]["eventType"], "contact.updated");
    assert_eq!(contact[1]["payload"]["changed"], json!(["last_name"]));
    assert_eq!(contact[1]["payload"]["last_name"], "Stone");
    // A replay of the first event changes nothing, so it emits nothing.
    let replay = app
        .client
        .post(app.url(&format!("/admin/ingest/{first}/replay")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("replay");
    assert!(replay.status().is_success());
    settle(&app.store.db).await;
    assert_eq!(all_events(&app).await.len(), events.len());
}

/// On SQLite the writer normalizes the events a batch stores in the transaction that stores
/// them: the provider's answer comes after the contact and the fire exist, with one attempt
/// counted. With `defer_processing` (and always on PostgreSQL) the workers do it afterwards,
/// with the same result.
async fn processed_as_stored(backend: Backend) {
    let inline_store = matches!(backend, Backend::Sqlite);
    for defer in [false, true] {
        let k = kit(ProviderId::Stripe);
        let app = TestApp::builder(backend.clone())
            .config(|c| c.defer_processing = defer)
            .connection("stripe", ProviderId::Stripe, &[k.secret])
            .start()
            .await;
        let id = app
            .deliver(
                ProviderId::Stripe,
                "stripe",
                &stripe_customer_updated("evt_inline", "Ada Lovelace", 1_700_000_000),
                k.secret,
                now_options(),
            )
            .await
            .assert_outcome("accepted");
        if inline_store && !defer {
            // No waiting: the answer came after the commit that applied it.
            let row = app.admin_get(&format!("/admin/ingest/{id}")).await.json();
            assert_eq!(row["status"], "processed", "{row}");
            assert_eq!(row["attempts"], 1, "{row}");
            assert_eq!(row["fires"].as_array().map(Vec::len), Some(1), "{row}");
            app.admin_get("/admin/contacts/order.test@example.com")
                .await
                .assert_status(200);
        }
        assert_eq!(settle(&app.store.db).await, processed(1));
        let row = app.admin_get(&format!("/admin/ingest/{id}")).await.json();
        assert_eq!(row["attempts"], 1, "defer={defer}: {row}");
        assert_eq!(row["fires"].as_array().map(Vec::len), Some(1), "{row}");
        let contact = app
            .admin_get("/admin/contacts/order.test@example.com")
            .await
            .json();
        assert_eq!(contact["first_name"], "Ada", "{contact}");
    }
}

/// When the apply fails inside the writer's transaction (here a trigger the test adds makes
/// every fire insert fail), only the apply is rolled back: the provider is still answered
/// `accepted`, the event and its payload are stored `pending` with the attempt counted, and
/// once the cause is gone it is processed like any pending event, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_apply_keeps_the_stored_event() {
    let k = kit(ProviderId::Stripe);
    let app = TestApp::builder(Backend::Sqlite)
        .connection("stripe", ProviderId::Stripe, &[k.secret])
        .start()
        .await;
    let hookgate::db::Db::Sqlite { writer, .. } = &app.store.db else {
        unreachable!("a SQLite store")
    };
    sqlx::query(
        "CREATE TRIGGER test_refuse_fires BEFORE INSERT ON fires \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(writer)
    .await
    .expect("trigger");
    let id = app
        .deliver(
            ProviderId::Stripe,
            "stripe",
            &stripe_customer_updated("evt_refused", "Grace Hopper", 1_700_000_000),
            k.secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    let row = app.admin_get(&format!("/admin/ingest/{id}")).await.json();
    assert_eq!(row["status"], "pending", "{row}");
    assert!(row["attempts"].as_i64().unwrap_or(0) >= 1, "{row}");
    assert_eq!(
        row["body"]["id"], "evt_refused",
        "the payload is stored: {row}"
    );
    assert_eq!(all_fires(&app).await.len(), 0);
    app.admin_get("/admin/contacts/order.test@example.com")
        .await
        .assert_status(404);

    sqlx::query("DROP TRIGGER test_refuse_fires")
        .execute(writer)
        .await
        .expect("drop trigger");
    // The operator's replay applies it now (a worker may also take it once its lease ends:
    // the fire stays one).
    let replay = app
        .admin_post(&format!("/admin/ingest/{id}/replay"), Value::Null)
        .await;
    replay.assert_status(200);
    assert_eq!(replay.json()["status"], "processed", "{}", replay.text);
    assert_eq!(all_fires(&app).await.len(), 1);
    let contact = app
        .admin_get("/admin/contacts/order.test@example.com")
        .await
        .json();
    assert_eq!(contact["first_name"], "Grace", "{contact}");
    // The next event is applied as it is stored again.
    let next = app
        .deliver(
            ProviderId::Stripe,
            "stripe",
            &stripe_customer_updated("evt_after", "Grace Brewster", 1_700_000_100),
            k.secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    let row = app.admin_get(&format!("/admin/ingest/{next}")).await.json();
    assert_eq!(row["status"], "processed", "{row}");
    assert_eq!(all_fires(&app).await.len(), 2);
}

backend_tests!(
    processed_as_stored,
    contact_lifecycle_events,
    every_fixture_normalizes,
    ordering_and_replay,
    identity_resolution,
    events_api_and_keys,
    event_stream,
    supabase_path_and_brevo_batch,
    supabase_profile_resolves_through_user_id,
    batch_replays_events_in_order
);
