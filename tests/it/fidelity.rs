//! Provider fidelity rules the pipeline applies (issue 17), end to end over HTTP on both stores:
//! a Stripe invoice's frozen `customer_email` never beats the customer's linked contact, a
//! deleted WorkOS directory marks every contact synced from it, and `subscribed` is ordered by
//! the time the consent itself changed.

use hookgate::providers::{ProviderId, SignOptions};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::pipeline::{all_fires, settle};
use crate::support::{fixture, now_options, Backend, TestApp};
use crate::webhooks::kit;

/// A Stripe event `id` of `event_type` at `created` (Unix seconds) about `object`.
fn stripe_event(id: &str, event_type: &str, created: i64, object: Value) -> Vec<u8> {
    json!({"id": id, "object": "event", "type": event_type, "created": created,
           "livemode": false, "data": {"object": object}})
    .to_string()
    .into_bytes()
}

fn invoice_paid(id: &str, created: i64, customer: &str, customer_email: &str) -> Vec<u8> {
    stripe_event(
        id,
        "invoice.paid",
        created,
        json!({"id": format!("in_{id}"), "object": "invoice", "customer": customer,
               "customer_email": customer_email, "amount_paid": 2900, "status": "paid"}),
    )
}

fn subscription_updated(id: &str, created: i64, customer: &str) -> Vec<u8> {
    stripe_event(
        id,
        "customer.subscription.updated",
        created,
        json!({"id": "sub_fidelity", "object": "subscription", "customer": customer,
               "status": "active"}),
    )
}

/// The fires of one trigger, oldest first.
fn fires_of<'f>(fires: &'f [Value], trigger: &str) -> Vec<&'f Value> {
    fires.iter().filter(|f| f["eventType"] == trigger).collect()
}

/// Stripe `invoice.*`: the invoice's `customer_email` is a copy taken at finalization. With the
/// customer id already linked, the fire and the upsert go to the linked contact and the link
/// stays; the copy is used only for a customer nobody has seen.
async fn stripe_invoice_goes_to_the_linked_contact(backend: Backend) {
    let stripe = kit(ProviderId::Stripe);
    let app = TestApp::builder(backend)
        .connection("stripe", ProviderId::Stripe, &[stripe.secret])
        .start()
        .await;
    let send = |body: Vec<u8>| {
        let app = &app;
        async move {
            app.deliver(
                ProviderId::Stripe,
                "stripe",
                &body,
                stripe.secret,
                now_options(),
            )
            .await
            .assert_outcome("accepted");
            settle(&app.store.db).await
        }
    };
    let t = 1_765_000_000;
    // An unknown customer: the invoice's address is all there is, and it creates the link.
    send(invoice_paid(
        "evt_inv_1",
        t,
        "cus_new",
        "Old.Address@Example.com",
    ))
    .await;
    // The customer changes address; the link moves with the (non-fallback) customer event.
    send(stripe_event(
        "evt_cus_1",
        "customer.updated",
        t + 10,
        json!({"id": "cus_new", "object": "customer", "email": "new.address@example.com"}),
    ))
    .await;
    // A retried invoice.paid (and a later one) still carry the frozen old address.
    send(invoice_paid(
        "evt_inv_2",
        t + 5,
        "cus_new",
        "old.address@example.com",
    ))
    .await;
    let counts = send(invoice_paid(
        "evt_inv_3",
        t + 20,
        "cus_new",
        "old.address@example.com",
    ))
    .await;
    assert_eq!(counts.get("processed"), Some(&4), "{counts:?}");
    // The link did not move back: a subscription event resolves to the current address.
    send(subscription_updated("evt_sub_1", t + 30, "cus_new")).await;

    let fires = all_fires(&app).await;
    let invoices = fires_of(&fires, "stripe.invoice.paid");
    let emails: Vec<&str> = invoices
        .iter()
        .map(|f| f["payload"]["email"].as_str().expect("email"))
        .collect();
    assert_eq!(
        emails,
        [
            "old.address@example.com",
            "new.address@example.com",
            "new.address@example.com"
        ]
    );
    let subscription = fires_of(&fires, "stripe.customer.subscription.updated");
    assert_eq!(
        subscription[0]["payload"]["email"],
        "new.address@example.com"
    );
    let current = app
        .admin_get("/admin/contacts/new.address@example.com")
        .await
        .json();
    assert_eq!(current["custom_fields"]["stripe_customer_id"], "cus_new");

    // A customer known before any invoice: an invoice naming an address nobody uses goes to
    // the customer's contact, and no contact is created for the stale address.
    send(stripe_event(
        "evt_cus_2",
        "customer.created",
        t + 40,
        json!({"id": "cus_known", "object": "customer", "email": "jenny@example.com"}),
    ))
    .await;
    send(invoice_paid(
        "evt_inv_4",
        t + 50,
        "cus_known",
        "jenny.before@example.com",
    ))
    .await;
    let fires = all_fires(&app).await;
    let last = fires_of(&fires, "stripe.invoice.paid")
        .last()
        .copied()
        .expect("fire");
    assert_eq!(last["payload"]["email"], "jenny@example.com");
    app.admin_get("/admin/contacts/jenny.before@example.com")
        .await
        .assert_status(404);
}

/// A directory user of `directory`, as WorkOS sends `dsync.user.created`.
fn directory_user(event_id: &str, user_id: &str, email: &str, directory: &str) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&fixture(ProviderId::Workos, "dsync.user.created.json"))
            .expect("fixture");
    body["id"] = json!(event_id);
    body["data"]["id"] = json!(user_id);
    body["data"]["email"] = json!(email);
    body["data"]["emails"] = json!([{"primary": true, "type": "work", "value": email}]);
    body["data"]["directory_id"] = json!(directory);
    body.to_string().into_bytes()
}

/// WorkOS `dsync.deleted` names no user: every contact of the directory is marked deleted and
/// gets its own fire; contacts of other directories are untouched.
async fn dsync_deleted_marks_every_contact_of_the_directory(backend: Backend) {
    let workos = kit(ProviderId::Workos);
    let app = TestApp::builder(backend)
        .connection("workos", ProviderId::Workos, &[workos.secret])
        .start()
        .await;
    let directory = "directory_01K5W3A7P2R9M4X8T1V6B3N5QZ";
    let users = [
        (
            "event_f1",
            "directory_user_f1",
            "ada@okafor-design.example.com",
            directory,
        ),
        (
            "event_f2",
            "directory_user_f2",
            "grace@okafor-design.example.com",
            directory,
        ),
        (
            "event_f3",
            "directory_user_f3",
            "other@elsewhere.example.com",
            "directory_other",
        ),
    ];
    for (event, user, email, dir) in users {
        app.deliver(
            ProviderId::Workos,
            "workos",
            &directory_user(event, user, email, dir),
            workos.secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    }
    settle(&app.store.db).await;
    let deleted = fixture(ProviderId::Workos, "dsync.deleted.json");
    app.deliver(
        ProviderId::Workos,
        "workos",
        &deleted,
        workos.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    let counts = settle(&app.store.db).await;
    assert_eq!(counts.get("processed"), Some(&4), "{counts:?}");
    assert_eq!(counts.get("ignored"), None, "{counts:?}");

    let fires = all_fires(&app).await;
    let mut marked: Vec<&str> = fires_of(&fires, "workos.dsync.deleted")
        .iter()
        .map(|f| f["payload"]["email"].as_str().expect("email"))
        .collect();
    marked.sort_unstable();
    assert_eq!(
        marked,
        [
            "ada@okafor-design.example.com",
            "grace@okafor-design.example.com"
        ]
    );
    for (_, _, email, dir) in users {
        let contact = app
            .admin_get(&format!("/admin/contacts/{email}"))
            .await
            .json();
        assert_eq!(
            contact["custom_fields"]["workos_deleted"],
            dir == directory,
            "{email}: {contact}"
        );
    }
    // Each fire carries the directory's name, and the same delivery again adds none.
    assert!(fires_of(&fires, "workos.dsync.deleted")
        .iter()
        .all(|f| f["payload"]["workos_directory_name"] == "Okafor Design SCIM"));
    app.deliver(
        ProviderId::Workos,
        "workos",
        &deleted,
        workos.secret,
        now_options(),
    )
    .await
    .assert_outcome("duplicate");
    assert_eq!(all_fires(&app).await.len(), fires.len());

    // A directory nobody was synced from: processed, nothing to mark.
    let mut empty: Value = serde_json::from_slice(&deleted).expect("json");
    empty["id"] = json!("event_f_empty");
    empty["data"]["id"] = json!("directory_nobody");
    app.deliver(
        ProviderId::Workos,
        "workos",
        empty.to_string().as_bytes(),
        workos.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    let counts = settle(&app.store.db).await;
    assert_eq!(counts.get("processed"), Some(&5), "{counts:?}");
    assert_eq!(all_fires(&app).await.len(), fires.len());
}

/// Shopify options for `topic`.
fn topic(topic: &str) -> SignOptions {
    SignOptions {
        event_type: Some(topic.to_owned()),
        ..now_options()
    }
}

/// `subscribed` is ordered by when the consent itself changed: an older API version's
/// customers/update re-sending an unchanged Shopify consent cannot resubscribe a contact that
/// Brevo unsubscribed since; a newer consent can.
async fn subscribed_is_ordered_by_its_own_time(backend: Backend) {
    let shopify = kit(ProviderId::Shopify);
    let brevo = kit(ProviderId::Brevo);
    let app = TestApp::builder(backend)
        .connection("shopify", ProviderId::Shopify, &[shopify.secret])
        .connection("brevo", ProviderId::Brevo, &[brevo.secret])
        .start()
        .await;
    let email = "bob.biller@example.com";
    let subscribed = || async {
        app.admin_get(&format!("/admin/contacts/{email}"))
            .await
            .json()["subscribed"]
            .clone()
    };
    // 2025-10-14: Bob subscribes in Shopify.
    let consent = fixture(
        ProviderId::Shopify,
        "customers_email_marketing_consent__update.json",
    );
    app.deliver(
        ProviderId::Shopify,
        "shopify",
        &consent,
        shopify.secret,
        topic("customers_email_marketing_consent/update"),
    )
    .await
    .assert_outcome("accepted");
    settle(&app.store.db).await;
    assert_eq!(subscribed().await, true);
    // 2025-12-04: he unsubscribes from a Brevo campaign.
    let mut unsubscribe: Value =
        serde_json::from_slice(&fixture(ProviderId::Brevo, "unsubscribe.json")).expect("json");
    unsubscribe["email"] = json!(email);
    app.deliver(
        ProviderId::Brevo,
        "brevo",
        unsubscribe.to_string().as_bytes(),
        brevo.secret,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
    settle(&app.store.db).await;
    assert_eq!(subscribed().await, false);
    // 2025-12-10: his Shopify profile changes; the update re-sends the October consent.
    let mut update: Value = serde_json::from_slice(&fixture(
        ProviderId::Shopify,
        "customers__update--2024-10.json",
    ))
    .expect("json");
    update["updated_at"] = json!("2025-12-10T09:00:00-05:00");
    update["note"] = json!("Moved to the Toronto office.");
    app.deliver(
        ProviderId::Shopify,
        "shopify",
        update.to_string().as_bytes(),
        shopify.secret,
        topic("customers/update"),
    )
    .await
    .assert_outcome("accepted");
    settle(&app.store.db).await;
    assert_eq!(
        subscribed().await,
        false,
        "an old consent re-sent stays old"
    );
    let contact = app
        .admin_get(&format!("/admin/contacts/{email}"))
        .await
        .json();
    assert_eq!(
        contact["custom_fields"]["shopify_tags"],
        "wholesale, newsletter"
    );
    // 2025-12-12: he subscribes again in Shopify; that consent is newer than the Brevo one.
    let mut again: Value = serde_json::from_slice(&consent).expect("json");
    again["email_marketing_consent"]["consent_updated_at"] = json!("2025-12-12T08:30:00-05:00");
    app.deliver(
        ProviderId::Shopify,
        "shopify",
        again.to_string().as_bytes(),
        shopify.secret,
        topic("customers_email_marketing_consent/update"),
    )
    .await
    .assert_outcome("accepted");
    let counts = settle(&app.store.db).await;
    assert_eq!(counts.get("processed"), Some(&4), "{counts:?}");
    assert_eq!(subscribed().await, true);
}

/// The Shopify topic header is not signed: a correctly signed order replayed under
/// `customers/delete` is refused at the door (400 `unexpected_payload`, the ingest log naming
/// the misfit), so it can never
/// delete a contact. The same order under its own topic is accepted.
async fn shopify_topic_must_fit_the_signed_body(backend: Backend) {
    let shopify = kit(ProviderId::Shopify);
    let app = TestApp::builder(backend)
        .connection("shopify", ProviderId::Shopify, &[shopify.secret])
        .start()
        .await;
    let order = fixture(ProviderId::Shopify, "orders__paid.json");
    let refused = app
        .deliver(
            ProviderId::Shopify,
            "shopify",
            &order,
            shopify.secret,
            topic("customers/delete"),
        )
        .await;
    refused.assert_error(400, "unexpected_payload");
    let logged = app
        .ingest_until("/admin/ingest?provider=shopify", |items| !items.is_empty())
        .await;
    assert_eq!(logged[0]["outcome"], "rejected", "{logged:?}");
    assert!(
        logged[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("X-Shopify-Topic does not fit the body, which is an Order")),
        "{logged:?}"
    );
    app.deliver(
        ProviderId::Shopify,
        "shopify",
        &order,
        shopify.secret,
        topic("orders/paid"),
    )
    .await
    .assert_outcome("accepted");
    let counts = settle(&app.store.db).await;
    assert_eq!(counts.get("processed"), Some(&1), "{counts:?}");
    let contact = app
        .admin_get("/admin/contacts/bob.biller@example.com")
        .await
        .json();
    assert_ne!(
        contact["custom_fields"]["shopify_deleted"], true,
        "{contact}"
    );
}

backend_tests!(
    shopify_topic_must_fit_the_signed_body,
    stripe_invoice_goes_to_the_linked_contact,
    dsync_deleted_marks_every_contact_of_the_directory,
    subscribed_is_ordered_by_its_own_time
);
