//! Shopify deliveries → normalized events (see the module header for the mapped topics and
//! fields).
//!
//! The topic and the shop come from headers; the body is the resource itself (a Customer, an
//! Order, or a consent change). Customer and order ids are JSON numbers above 2^53, so they are
//! always read as their exact digits, never through `f64`.

use serde_json::Value;

use super::Shopify;
use crate::normalize::{id_at, lookup, mapped_meta, parse, rfc3339_ms, shape, snake_case, text};
use crate::{header_str, NormalizeError, NormalizedEvent, Verified};

pub(super) fn normalize(event: &Verified<'_>) -> Result<Vec<NormalizedEvent>, NormalizeError> {
    let body = parse(event)?;
    let meta = mapped_meta(&Shopify, event, &body)?;
    let headers = event.headers();
    let header = |classic: &str, events: &str| {
        header_str(headers, classic)
            .or_else(|| header_str(headers, events))
            .filter(|v| !v.trim().is_empty())
    };
    let mut out = NormalizedEvent::from_meta(meta);
    if let Some(shop) = header("x-shopify-shop-domain", "shopify-shop-domain") {
        out.set_field("shopify_shop_domain", shop);
    }
    let event_type = out.event_type.clone();
    // When the signed body says the change happened. `X-Shopify-Triggered-At` is not signed, so
    // anyone replaying a captured body could set it to make stale data look new.
    let changed_at = match event_type.as_str() {
        "customers/create" | "customers/update" => customer(&mut out, &body)?,
        "customers/delete" => {
            let id = id_at(&body, "id").ok_or_else(|| shape("customers/delete without `id`"))?;
            out.add_id("shopify_customer_id", Some(id));
            out.set_field("shopify_deleted", true);
            None
        }
        "customers_email_marketing_consent/update" => consent(&mut out, &body)?,
        "customer.tags_added" | "customer.tags_removed" => tags(&mut out, &body)?,
        "customers/purchasing_summary" => purchasing_summary(&mut out, &body)?,
        "orders/create" | "orders/paid" => order(&mut out, &body)?,
        other => return Err(NormalizeError::Unsupported(other.to_owned())),
    };
    out.occurred_at_ms = changed_at.and_then(rfc3339_ms);
    Ok(vec![out])
}

/// `subscribed` for an email marketing consent state. `pending` (double opt-in not confirmed)
/// and `invalid` say nothing about the contact's wish, so they leave it unchanged.
fn subscribed(state: &str) -> Option<bool> {
    match state {
        "subscribed" => Some(true),
        "not_subscribed" | "unsubscribed" | "redacted" => Some(false),
        _ => None,
    }
}

/// Applies an `email_marketing_consent` object (`state`, `opt_in_level`,
/// `consent_updated_at`): `subscribed` is as old as the consent, whichever event carries it.
fn apply_consent(out: &mut NormalizedEvent, consent: Option<&Value>) {
    let Some(consent) = consent else {
        return;
    };
    if let Some(state) = text(consent, "state") {
        out.set_field("shopify_email_marketing_state", state);
        out.contact.subscribed = subscribed(state);
        if out.contact.subscribed.is_some() {
            out.contact.subscribed_at_ms = text(consent, "consent_updated_at").and_then(rfc3339_ms);
        }
    }
    out.field(
        "shopify_email_marketing_opt_in_level",
        consent.get("opt_in_level"),
    );
}

/// The numeric id at the end of a `gid://shopify/<kind>/<id>` of the expected kind.
fn gid_id(value: Option<&Value>, kind: &str) -> Option<String> {
    let rest = value?.as_str()?.strip_prefix("gid://shopify/")?;
    let id = rest.strip_prefix(kind)?.strip_prefix('/')?;
    // Some gids carry a query (`?...`) after the id.
    let id = id.split('?').next()?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_owned())
}

/// `customers/create|update`: the body is the Customer. Returns its `updated_at`.
fn customer<'b>(
    out: &mut NormalizedEvent,
    body: &'b Value,
) -> Result<Option<&'b str>, NormalizeError> {
    let id = id_at(body, "id").ok_or_else(|| shape("a customer without `id`"))?;
    out.add_id("shopify_customer_id", Some(id));
    out.set_email(text(body, "email"));
    out.set_name(text(body, "first_name"), text(body, "last_name"));
    out.field("shopify_state", body.get("state"));
    out.field("shopify_verified_email", body.get("verified_email"));
    out.field("shopify_phone", body.get("phone"));
    out.field("shopify_currency", body.get("currency"));
    // Older API versions only (before 2025-01): tags, lifetime totals and the consent.
    out.field("shopify_tags", body.get("tags"));
    out.field("shopify_total_spent", body.get("total_spent"));
    out.field("shopify_orders_count", body.get("orders_count"));
    apply_consent(out, body.get("email_marketing_consent"));
    // A customer created again (or updated) after a delete is no longer deleted.
    out.set_field("shopify_deleted", false);
    Ok(text(body, "updated_at"))
}

/// `customers_email_marketing_consent/update`: a small body with the address, the customer id
/// and the new consent. Returns the consent's `consent_updated_at`.
fn consent<'b>(
    out: &mut NormalizedEvent,
    body: &'b Value,
) -> Result<Option<&'b str>, NormalizeError> {
    let email = text(body, "email_address");
    let id = id_at(body, "customer_id");
    if email.is_none() && id.is_none() {
        return Err(shape(
            "a consent update without `email_address` or `customer_id`",
        ));
    }
    out.set_email(email);
    out.add_id("shopify_customer_id", id);
    apply_consent(out, body.get("email_marketing_consent"));
    Ok(text(body, "email_marketing_consent.consent_updated_at"))
}

/// `customer.tags_added|removed` (API 2025-01 and later): `{customerId, tags, occurredAt}`.
/// Each tag becomes its own boolean field, so additions and removals from separate events
/// combine instead of overwriting one list. Returns `occurredAt`.
fn tags<'b>(out: &mut NormalizedEvent, body: &'b Value) -> Result<Option<&'b str>, NormalizeError> {
    let id = gid_id(body.get("customerId"), "Customer")
        .ok_or_else(|| shape("a tags event without a `customerId` gid"))?;
    out.add_id("shopify_customer_id", Some(id));
    let added = out.event_type == "customer.tags_added";
    let tags: Vec<&str> = body
        .get("tags")
        .and_then(Value::as_array)
        .ok_or_else(|| shape("a tags event without a `tags` list"))?
        .iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    for tag in &tags {
        // Shopify compares tags without regard to case, as `snake_case` does.
        let key = snake_case(tag);
        if !key.is_empty() {
            out.set_field(&format!("shopify_tag_{key}"), added);
        }
    }
    if !tags.is_empty() {
        let name = if added {
            "shopify_tags_added"
        } else {
            "shopify_tags_removed"
        };
        out.set_event_field(name, tags.join(","));
    }
    Ok(text(body, "occurredAt"))
}

/// `customers/purchasing_summary` (API 2025-01 and later): the customer's order count, amount
/// spent and last order, which customer bodies no longer carry. Returns `occurredAt`.
fn purchasing_summary<'b>(
    out: &mut NormalizedEvent,
    body: &'b Value,
) -> Result<Option<&'b str>, NormalizeError> {
    let id = gid_id(body.get("customerId"), "Customer")
        .ok_or_else(|| shape("a purchasing summary without a `customerId` gid"))?;
    out.add_id("shopify_customer_id", Some(id));
    out.field("shopify_orders_count", body.get("numberOfOrders"));
    out.field("shopify_total_spent", lookup(body, "amountSpent.amount"));
    out.field(
        "shopify_total_spent_currency",
        lookup(body, "amountSpent.currencyCode"),
    );
    if let Some(order) = gid_id(body.get("lastOrderId"), "Order") {
        out.set_field("shopify_last_order_id", order);
    }
    Ok(text(body, "occurredAt"))
}

/// `orders/create|paid`: the body is the Order; `customer` is absent for guest checkouts.
/// Returns the order's `updated_at`.
fn order<'b>(
    out: &mut NormalizedEvent,
    body: &'b Value,
) -> Result<Option<&'b str>, NormalizeError> {
    let id = id_at(body, "id").ok_or_else(|| shape("an order without `id`"))?;
    out.set_email(text(body, "email").or_else(|| text(body, "customer.email")));
    out.set_name(
        text(body, "customer.first_name"),
        text(body, "customer.last_name"),
    );
    out.add_id("shopify_customer_id", id_at(body, "customer.id"));
    // `total_spent` is a lifetime total, which only the customer object (older API versions)
    // knows; one order's total is kept under its own name instead.
    out.field("shopify_total_spent", lookup(body, "customer.total_spent"));
    out.set_field("shopify_last_order_id", id.clone());
    out.field("shopify_last_order_total", body.get("total_price"));
    out.field("shopify_currency", body.get("currency"));
    out.set_event_field("shopify_order_id", id);
    out.event_field("shopify_order_name", body.get("name"));
    out.event_field("shopify_order_number", body.get("order_number"));
    out.event_field("shopify_total_price", body.get("total_price"));
    out.event_field("shopify_subtotal_price", body.get("subtotal_price"));
    out.event_field("shopify_total_tax", body.get("total_tax"));
    out.event_field("shopify_financial_status", body.get("financial_status"));
    out.event_field("shopify_fulfillment_status", body.get("fulfillment_status"));
    out.event_field(
        "shopify_buyer_accepts_marketing",
        body.get("buyer_accepts_marketing"),
    );
    Ok(text(body, "updated_at"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testkit::{fixture, normalize, normalize_one};
    use crate::{NormalizeContext, NormalizeError, ProviderId};

    const SHOPIFY: ProviderId = ProviderId::Shopify;
    const CUSTOMER: &str = "706405506930370084";

    fn headers(topic: &'static str) -> [(&'static str, &'static str); 4] {
        [
            ("x-shopify-topic", topic),
            ("x-shopify-event-id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
            (
                "x-shopify-shop-domain",
                "northwind-outfitters.myshopify.com",
            ),
            ("x-shopify-triggered-at", "2025-10-14T09:12:31.877041743Z"),
        ]
    }

    #[test]
    fn customer_ids_keep_their_exact_digits() {
        let e = normalize_one(
            SHOPIFY,
            &headers("customers/create"),
            "customers__create.json",
        );
        assert_eq!(
            e.identity.ids,
            vec![("shopify_customer_id".to_owned(), CUSTOMER.to_owned())]
        );
        assert_eq!(e.contact.fields["shopify_customer_id"], json!(CUSTOMER));
        assert_eq!(e.identity.email.as_deref(), Some("bob.biller@example.com"));
        assert_eq!(e.contact.first_name.as_deref(), Some("Bob"));
        assert_eq!(e.contact.fields["shopify_state"], json!("disabled"));
        assert_eq!(
            e.contact.fields["shopify_shop_domain"],
            json!("northwind-outfitters.myshopify.com")
        );
        assert_eq!(
            e.event_id,
            "customers/create:98880550-7158-44d4-b7cd-2c97c8a091b5"
        );
        // The body's updated_at (05:12:31-04:00), not the unsigned X-Shopify-Triggered-At.
        assert_eq!(e.occurred_at_ms, Some(1_760_433_151_000));
        assert_eq!(e.contact.fields["shopify_deleted"], json!(false));
    }

    #[test]
    fn event_time_comes_from_the_signed_body_never_the_header() {
        // A replayed body under a made-up trigger time keeps the body's own times.
        let far_future = [
            ("x-shopify-event-id", "e1"),
            ("x-shopify-triggered-at", "2099-01-01T00:00:00.000000000Z"),
        ];
        for (topic, file, expected) in [
            (
                "customers/update",
                "customers__update.json",
                Some(1_760_978_405_000),
            ),
            (
                "customers_email_marketing_consent/update",
                "customers_email_marketing_consent__update.json",
                Some(1_760_433_182_000),
            ),
            ("orders/paid", "orders__paid.json", Some(1_760_536_937_000)),
            (
                "customer.tags_added",
                "customer.tags_added.json",
                Some(1_761_055_407_118),
            ),
            (
                "customers/purchasing_summary",
                "customers__purchasing_summary.json",
                Some(1_760_536_938_207),
            ),
            ("customers/delete", "customers__delete.json", None),
        ] {
            let headers = [("x-shopify-topic", topic), far_future[0], far_future[1]];
            let events = normalize(
                SHOPIFY,
                &headers,
                &fixture(SHOPIFY, file),
                &NormalizeContext::default(),
            )
            .expect("normalizes");
            assert_eq!(events[0].occurred_at_ms, expected, "{topic}");
        }
    }

    #[test]
    fn tags_and_purchasing_summary_since_2025_01() {
        let added = normalize_one(
            SHOPIFY,
            &headers("customer.tags_added"),
            "customer.tags_added.json",
        );
        assert_eq!(added.identity.email, None);
        assert_eq!(
            added.identity.ids,
            vec![("shopify_customer_id".to_owned(), CUSTOMER.to_owned())]
        );
        assert_eq!(added.contact.fields["shopify_tag_wholesale"], json!(true));
        assert_eq!(added.contact.fields["shopify_tag_vip_tier_2"], json!(true));
        assert_eq!(
            added.event_fields["shopify_tags_added"],
            json!("wholesale,VIP Tier 2")
        );
        let removed = normalize_one(
            SHOPIFY,
            &headers("customer.tags_removed"),
            "customer.tags_removed.json",
        );
        assert_eq!(
            removed.contact.fields["shopify_tag_vip_tier_2"],
            json!(false)
        );
        assert!(!removed.contact.fields.contains_key("shopify_tag_wholesale"));

        let summary = normalize_one(
            SHOPIFY,
            &headers("customers/purchasing_summary"),
            "customers__purchasing_summary.json",
        );
        let f = &summary.contact.fields;
        assert_eq!(f["shopify_customer_id"], json!(CUSTOMER));
        assert_eq!(f["shopify_orders_count"], json!(1));
        assert_eq!(f["shopify_total_spent"], json!("141.25"));
        assert_eq!(f["shopify_total_spent_currency"], json!("CAD"));
        assert_eq!(f["shopify_last_order_id"], json!("820982911946154508"));

        for bad in [
            &br#"{"customerId":"gid://shopify/Order/1","tags":["a"]}"#[..],
            br#"{"customerId":"gid://shopify/Customer/","tags":["a"]}"#,
            br#"{"customerId":"gid://shopify/Customer/1","tags":"a"}"#,
        ] {
            assert!(matches!(
                normalize(
                    SHOPIFY,
                    &headers("customer.tags_added")[..2],
                    bad,
                    &NormalizeContext::default()
                ),
                Err(NormalizeError::UnexpectedShape(_))
            ));
        }
    }

    #[test]
    fn subscribed_is_as_old_as_the_consent() {
        // An older API version's customers/update re-sends the consent given on 2025-10-14.
        let e = normalize_one(
            SHOPIFY,
            &headers("customers/update"),
            "customers__update--2024-10.json",
        );
        assert_eq!(e.contact.subscribed, Some(true));
        assert_eq!(e.occurred_at_ms, Some(1_760_978_405_000));
        assert_eq!(e.contact.subscribed_at_ms, Some(1_760_433_182_000));
        assert_eq!(
            e.contact.fields["shopify_tags"],
            json!("wholesale, newsletter")
        );
        let consent = normalize_one(
            SHOPIFY,
            &headers("customers_email_marketing_consent/update"),
            "customers_email_marketing_consent__update.json",
        );
        assert_eq!(consent.contact.subscribed_at_ms, Some(1_760_433_182_000));
        // 2025-01 and later customer bodies carry no consent at all.
        let current = normalize_one(
            SHOPIFY,
            &headers("customers/update"),
            "customers__update.json",
        );
        assert_eq!(current.contact.subscribed, None);
        assert_eq!(current.contact.subscribed_at_ms, None);
    }

    #[test]
    fn delete_has_only_the_id() {
        let e = normalize_one(
            SHOPIFY,
            &headers("customers/delete"),
            "customers__delete.json",
        );
        assert_eq!(e.identity.email, None);
        assert_eq!(e.identity.ids[0].1, CUSTOMER);
        assert_eq!(e.contact.fields["shopify_deleted"], json!(true));
    }

    #[test]
    fn consent_states_set_subscribed() {
        let topic = "customers_email_marketing_consent/update";
        let e = normalize_one(
            SHOPIFY,
            &headers(topic),
            "customers_email_marketing_consent__update.json",
        );
        assert_eq!(e.contact.subscribed, Some(true));
        assert_eq!(e.identity.email.as_deref(), Some("bob.biller@example.com"));
        assert_eq!(e.identity.ids[0].1, CUSTOMER);
        for (state, expected) in [
            ("not_subscribed", Some(false)),
            ("unsubscribed", Some(false)),
            ("redacted", Some(false)),
            ("pending", None),
        ] {
            let body = format!(
                r#"{{"customer_id":1,"email_address":"a@example.com","email_marketing_consent":{{"state":"{state}"}}}}"#
            );
            let events = normalize(
                SHOPIFY,
                &headers(topic)[..2],
                body.as_bytes(),
                &NormalizeContext::default(),
            )
            .expect("normalizes");
            assert_eq!(events[0].contact.subscribed, expected, "{state}");
        }
        let body = br#"{"id":1,"email":"a@example.com","email_marketing_consent":{"state":"unsubscribed"}}"#;
        let events = normalize(
            SHOPIFY,
            &headers("customers/update")[..2],
            body,
            &NormalizeContext::default(),
        )
        .expect("normalizes");
        assert_eq!(events[0].contact.subscribed, Some(false));
    }

    #[test]
    fn orders_take_the_customer_and_totals() {
        let e = normalize_one(SHOPIFY, &headers("orders/paid")[..3], "orders__paid.json");
        assert_eq!(e.identity.email.as_deref(), Some("bob.biller@example.com"));
        assert_eq!(e.identity.ids[0].1, CUSTOMER);
        assert_eq!(e.contact.last_name.as_deref(), Some("Biller"));
        assert_eq!(
            e.contact.fields["shopify_last_order_id"],
            json!("820982911946154508")
        );
        assert_eq!(e.event_fields["shopify_total_price"], json!("141.25"));
        assert_eq!(e.event_fields["shopify_financial_status"], json!("paid"));
        // The order's own updated_at (-04:00).
        assert_eq!(e.occurred_at_ms, Some(1_760_536_937_000));
        // A guest order has no customer object: the order email alone identifies the contact.
        let body = br#"{"id":5,"email":"guest@example.com","total_price":"1.00"}"#;
        let events = normalize(
            SHOPIFY,
            &headers("orders/create")[..2],
            body,
            &NormalizeContext::default(),
        )
        .expect("normalizes");
        assert_eq!(
            events[0].identity.email.as_deref(),
            Some("guest@example.com")
        );
        assert!(events[0].identity.ids.is_empty());
    }

    #[test]
    fn errors() {
        let body = fixture(SHOPIFY, "customers__delete.json");
        assert!(matches!(
            normalize(SHOPIFY, &[], &body, &NormalizeContext::default()),
            Err(NormalizeError::UnexpectedShape(_))
        ));
        assert_eq!(
            normalize(
                SHOPIFY,
                &headers("app/uninstalled")[..2],
                &body,
                &NormalizeContext::default()
            ),
            Err(NormalizeError::Unsupported("app/uninstalled".into()))
        );
        assert!(matches!(
            normalize(
                SHOPIFY,
                &headers("customers/delete")[..2],
                b"{}",
                &NormalizeContext::default()
            ),
            Err(NormalizeError::UnexpectedShape(_))
        ));
    }
}
