//! Shopify deliveries → normalized events (see the module header for the mapped topics and
//! fields).
//!
//! The topic and the shop come from headers; the body is the resource itself (a Customer, an
//! Order, or a consent change). Customer and order ids are JSON numbers above 2^53, so they are
//! always read as their exact digits, never through `f64`.

use serde_json::Value;

use super::Shopify;
use crate::normalize::{id_at, lookup, mapped_meta, parse, rfc3339_ms, shape, text};
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
    // When the payload itself last changed: the fallback if the delivery has no trigger time.
    let changed_at = match event_type.as_str() {
        "customers/create" | "customers/update" => customer(&mut out, &body)?,
        "customers/delete" => {
            let id = id_at(&body, "id").ok_or_else(|| shape("customers/delete without `id`"))?;
            out.add_id("shopify_customer_id", Some(id));
            out.set_field("shopify_deleted", true);
            None
        }
        "customers_email_marketing_consent/update" => consent(&mut out, &body)?,
        "orders/create" | "orders/paid" => order(&mut out, &body)?,
        other => return Err(NormalizeError::Unsupported(other.to_owned())),
    };
    out.occurred_at_ms = header("x-shopify-triggered-at", "shopify-triggered-at")
        .and_then(rfc3339_ms)
        .or_else(|| changed_at.and_then(rfc3339_ms));
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

/// Applies an `email_marketing_consent` object (`state`, `opt_in_level`).
fn apply_consent(out: &mut NormalizedEvent, consent: Option<&Value>) {
    let Some(consent) = consent else {
        return;
    };
    if let Some(state) = text(consent, "state") {
        out.set_field("shopify_email_marketing_state", state);
        out.contact.subscribed = subscribed(state);
    }
    out.field(
        "shopify_email_marketing_opt_in_level",
        consent.get("opt_in_level"),
    );
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
    out.field("shopify_tags", body.get("tags"));
    // Older API versions only: the customer's lifetime totals.
    out.field("shopify_total_spent", body.get("total_spent"));
    out.field("shopify_orders_count", body.get("orders_count"));
    apply_consent(out, body.get("email_marketing_consent"));
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
        assert_eq!(e.occurred_at_ms, Some(1_760_433_151_877));
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
        // Without X-Shopify-Triggered-At, the order's own updated_at (-04:00) is used.
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
