//! The admin API: the ingest log (filters, stable cursor, full records with redacted headers and
//! bounded reject bodies) and connection management with write-only secrets.

use std::collections::HashSet;

use hookgate::providers::ProviderId;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::support::{auth_options, fixture, now_options, Backend, TestApp};
use crate::webhooks::kit;

async fn ingest_log(backend: Backend) {
    let stripe = kit(ProviderId::Stripe);
    let brevo = kit(ProviderId::Brevo);
    // Without workers, so the processing status stays `pending` for the filter checks below.
    let app = TestApp::builder(backend)
        .config(|c| c.workers = false)
        .connection("stripe", ProviderId::Stripe, &[stripe.secret])
        .connection("brevo", ProviderId::Brevo, &[brevo.secret])
        .start()
        .await;
    let mut accepted = Vec::new();
    for name in [
        "customer.created.json",
        "customer.updated.json",
        "invoice.paid.json",
        "invoice.payment_failed.json",
    ] {
        let id = app
            .deliver(
                ProviderId::Stripe,
                "stripe",
                &fixture(ProviderId::Stripe, name),
                stripe.secret,
                now_options(),
            )
            .await
            .assert_outcome("accepted");
        accepted.push(id);
    }
    let brevo_id = app
        .deliver(
            ProviderId::Brevo,
            "brevo",
            &fixture(ProviderId::Brevo, "delivered.json"),
            brevo.secret,
            auth_options("bearer"),
        )
        .await
        .assert_outcome("accepted");
    // A rejected request with a 10 KB body: the log keeps a bounded prefix.
    let mut big = b"{\"id\":\"evt_big\",\"type\":\"invoice.paid\",\"pad\":\"".to_vec();
    big.resize(10_000, b'x');
    big.extend_from_slice(b"\"}");
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &big,
        "whsec_wrong",
        now_options(),
    )
    .await
    .assert_error(401, "signature_mismatch");

    // Newest first; filters.
    let all = app
        .ingest_until("/admin/ingest", |items| items.len() == 6)
        .await;
    assert_eq!(all.len(), 6);
    let ids: Vec<&str> = all.iter().map(|i| i["id"].as_str().expect("id")).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");
    let stripe_only = app
        .admin_get("/admin/ingest?connection=stripe&outcome=accepted")
        .await
        .json();
    assert_eq!(stripe_only["items"].as_array().expect("items").len(), 4);
    let by_type = app
        .admin_get("/admin/ingest?event_type=invoice.paid")
        .await
        .json();
    assert_eq!(by_type["items"].as_array().expect("items").len(), 1);
    let by_provider = app.admin_get("/admin/ingest?provider=brevo").await.json();
    assert_eq!(by_provider["items"][0]["id"], brevo_id.as_str());
    let pending = app.admin_get("/admin/ingest?status=pending").await.json();
    assert_eq!(pending["items"].as_array().expect("items").len(), 5);

    // Stable cursor: pages of 2 cover every record once, then next_cursor is null.
    let mut seen = HashSet::new();
    let mut path = "/admin/ingest?limit=2".to_owned();
    loop {
        let page = app.admin_get(&path).await.json();
        for item in page["items"].as_array().expect("items") {
            assert!(
                seen.insert(item["id"].as_str().expect("id").to_owned()),
                "a record appeared twice"
            );
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/admin/ingest?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);

    // Bad filters are 400s that say what is wrong.
    for bad in [
        "/admin/ingest?outcome=maybe",
        "/admin/ingest?status=done",
        "/admin/ingest?limit=0",
        "/admin/ingest?limit=abc",
        "/admin/ingest?cursor=nope",
        // Query strings that do not parse get the JSON error shape too, on every route.
        "/admin/deliveries?limit=abc",
    ] {
        let r = app.admin_get(bad).await;
        r.assert_status(400);
        assert!(
            r.json()["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{bad}: {}",
            r.text
        );
    }
    app.admin_get("/admin/ingest/01J0000000000000000000NONE")
        .await
        .assert_error(404, "not_found");
    for path in [
        "/admin/connections?replace=maybe",
        "/admin/endpoints?replace=maybe",
    ] {
        let r = app.admin_post(path, serde_json::json!({})).await;
        r.assert_error(400, "invalid_request");
        assert!(
            r.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains("replace")),
            "{path}: {}",
            r.text
        );
    }

    // One full record: body, ids, redacted headers.
    let record = app
        .admin_get(&format!("/admin/ingest/{}", accepted[2]))
        .await
        .json();
    assert_eq!(record["event_type"], "invoice.paid");
    assert_eq!(record["outcome"], "accepted");
    assert_eq!(record["status"], "pending");
    assert_eq!(record["body"]["type"], "invoice.paid");
    assert!(record["event_id"]
        .as_str()
        .is_some_and(|e| e.starts_with("evt_")));
    assert_eq!(record["client_addr"], "127.0.0.1");
    assert!(record["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .any(|h| h[0] == "stripe-signature"));
    let brevo_record = app.admin_get(&format!("/admin/ingest/{brevo_id}")).await;
    assert!(
        !brevo_record.text.contains(brevo.secret),
        "bearer token leaked: {}",
        brevo_record.text
    );
    assert!(brevo_record.json()["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .any(|h| h[0] == "authorization" && h[1] == "[redacted]"));
    let rejected = app.admin_get("/admin/ingest?outcome=rejected").await.json();
    let reject_id = rejected["items"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(rejected["items"][0]["body_size"], 10_002);
    let full = app
        .admin_get(&format!("/admin/ingest/{reject_id}"))
        .await
        .json();
    assert_eq!(full["body_truncated"], true);
    assert_eq!(full["body"].as_str().expect("text prefix").len(), 4096);
    assert!(full["reason"]
        .as_str()
        .expect("reason")
        .starts_with("signature_mismatch"));
}

async fn connections_api(backend: Backend) {
    let app = TestApp::builder(backend).start().await;
    let secret = "whsec_api_created_stripe_secret";
    let created = app
        .admin_post("/admin/connections", json!({"id": "from-api", "provider": "stripe", "workspace": "acme", "secrets": [secret], "tolerance_secs": 600}))
        .await;
    created.assert_status(201);
    assert!(
        !created.text.contains(secret),
        "secrets are write-only: {}",
        created.text
    );
    let view = created.json();
    assert_eq!(view["secrets_count"], 1);
    assert_eq!(
        view["receive_path"],
        "/integrations/stripe/webhook/from-api"
    );
    assert_eq!(view["tolerance_secs"], 600);
    // Usable at once.
    let body = fixture(ProviderId::Stripe, "customer.created.json");
    app.deliver(ProviderId::Stripe, "from-api", &body, secret, now_options())
        .await
        .assert_outcome("accepted");

    app.admin_post(
        "/admin/connections",
        json!({"id": "from-api", "provider": "stripe", "secrets": [secret]}),
    )
    .await
    .assert_error(409, "conflict");
    app.admin_post(
        "/admin/connections?replace=true",
        json!({"id": "from-api", "provider": "stripe", "workspace": "acme", "secrets": [secret]}),
    )
    .await
    .assert_status(201);
    for (bad, needle) in [
        (
            json!({"id": "x", "provider": "paypal", "secrets": ["s"]}),
            "provider",
        ),
        (
            json!({"id": "x", "provider": "clerk", "secrets": ["whsec_%%%"]}),
            "secrets[0]",
        ),
        (
            json!({"id": "bad id", "provider": "stripe", "secrets": ["s"]}),
            "id",
        ),
        (
            json!({"id": "x", "provider": "stripe", "secrets": ["s"], "colour": "red"}),
            "colour",
        ),
        (
            json!({"id": "x", "provider": "brevo", "secrets": ["s"], "allow_ips": ["300.1.1.1"]}),
            "allow_ips[0]",
        ),
    ] {
        let r = app.admin_post("/admin/connections", bad.clone()).await;
        r.assert_status(400);
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(needle), "{bad}: {message}");
        assert!(!r.text.contains("whsec_%%%"), "secret echoed: {}", r.text);
    }

    let list = app.admin_get("/admin/connections").await;
    assert!(!list.text.contains(secret));
    assert_eq!(
        list.json()["connections"].as_array().expect("list").len(),
        1
    );
    let one = app.admin_get("/admin/connections/from-api").await.json();
    assert_eq!(one["workspace"], "acme");

    // Disable → 404 at once; enable → accepted again.
    app.admin_post("/admin/connections/from-api/disable", Value::Null)
        .await
        .assert_status(200);
    let updated = fixture(ProviderId::Stripe, "customer.updated.json");
    app.deliver(
        ProviderId::Stripe,
        "from-api",
        &updated,
        secret,
        now_options(),
    )
    .await
    .assert_error(404, "not_found");
    app.admin_post("/admin/connections/from-api/enable", Value::Null)
        .await
        .assert_status(200);
    app.deliver(
        ProviderId::Stripe,
        "from-api",
        &updated,
        secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");

    // Rotate: both secrets valid; then drop the old one.
    let next = "whsec_rotated_stripe_secret";
    let rotated = app
        .admin_post(
            "/admin/connections/from-api/rotate",
            json!({"secret": next}),
        )
        .await;
    rotated.assert_status(200);
    assert_eq!(rotated.json()["secrets_count"], 2);
    assert!(!rotated.text.contains(next));
    let deleted = fixture(ProviderId::Stripe, "customer.deleted.json");
    app.deliver(
        ProviderId::Stripe,
        "from-api",
        &deleted,
        next,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    let invoice = fixture(ProviderId::Stripe, "invoice.paid.json");
    app.deliver(
        ProviderId::Stripe,
        "from-api",
        &invoice,
        secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    app.admin_post(
        "/admin/connections/from-api/rotate",
        json!({"secret": next, "drop_old": true}),
    )
    .await
    .assert_status(200);
    let failed = fixture(ProviderId::Stripe, "invoice.payment_failed.json");
    app.deliver(
        ProviderId::Stripe,
        "from-api",
        &failed,
        secret,
        now_options(),
    )
    .await
    .assert_error(401, "signature_mismatch");
    app.admin_post("/admin/connections/nope/rotate", json!({"secret": next}))
        .await
        .assert_error(404, "not_found");

    // Delete.
    let r = app
        .client
        .delete(app.url("/admin/connections/from-api"))
        .bearer_auth(crate::support::ADMIN_TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 204);
    app.deliver(ProviderId::Stripe, "from-api", &failed, next, now_options())
        .await
        .assert_error(404, "not_found");
}

/// The store on its own: record → duplicate (in one batch) → query.
async fn db_story(backend: Backend) {
    use hookgate::db::{IngestFilter, IngestKind, NewIngest, WriteOutcome};
    let store = crate::support::TestStore::new(&backend).await;
    store.db.migrate().await.expect("migrate");
    let row = |id: &str, kind: IngestKind, event: Option<&str>| NewIngest {
        id: id.to_owned(),
        kind,
        received_at: 1_700_000_000_000,
        connection_id: "c1".into(),
        provider: "stripe",
        workspace: Some("default".into()),
        http_status: 200,
        event_id: event.map(str::to_owned),
        event_type: Some("invoice.paid".into()),
        reason: None,
        client_addr: Some("127.0.0.1".into()),
        path: "/integrations/stripe/webhook/c1".into(),
        headers: "[]".into(),
        body: bytes::Bytes::from_static(b"{\"id\":\"evt_1\"}"),
        body_size: 14,
        body_truncated: false,
        read_us: Some(1),
        verify_us: Some(1),
    };
    let ids: Vec<String> = (0..4).map(|_| ulid::Ulid::new().to_string()).collect();
    let outcomes = store
        .db
        .write_batch(&[
            row(&ids[0], IngestKind::Accepted, Some("evt_1")),
            row(&ids[1], IngestKind::Accepted, Some("evt_1")),
            row(&ids[2], IngestKind::Ignored, Some("evt_2")),
            row(&ids[3], IngestKind::Rejected, None),
        ])
        .await
        .expect("batch commits");
    assert_eq!(
        outcomes,
        vec![
            WriteOutcome::Stored,
            WriteOutcome::Duplicate {
                first_id: ids[0].clone()
            },
            WriteOutcome::Stored,
            WriteOutcome::Logged
        ]
    );
    // Across batches too.
    let again = store
        .db
        .write_batch(&[row(
            &ulid::Ulid::new().to_string(),
            IngestKind::Ignored,
            Some("evt_1"),
        )])
        .await
        .expect("commit");
    assert_eq!(
        again,
        vec![WriteOutcome::Duplicate {
            first_id: ids[0].clone()
        }]
    );
    assert_eq!(
        store.db.count_stored("c1", "evt_1").await.expect("count"),
        1
    );
    let listed = store
        .db
        .list_ingest(&IngestFilter {
            limit: 10,
            ..IngestFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 5);
    let dup = store
        .db
        .get_ingest(&ids[1])
        .await
        .expect("get")
        .expect("present");
    assert_eq!(dup.summary.outcome, "duplicate");
    assert_eq!(dup.summary.duplicate_of.as_deref(), Some(ids[0].as_str()));
    assert_eq!(dup.body, b"{\"id\":\"evt_1\"}");
    let ignored = store
        .db
        .get_ingest(&ids[2])
        .await
        .expect("get")
        .expect("present");
    assert_eq!(ignored.summary.status.as_deref(), Some("ignored"));
    let rejected = store
        .db
        .get_ingest(&ids[3])
        .await
        .expect("get")
        .expect("present");
    assert_eq!(rejected.summary.status, None);
    // Migrations are idempotent.
    store.db.migrate().await.expect("second migrate is a no-op");
}

backend_tests!(ingest_log, connections_api, db_story);
