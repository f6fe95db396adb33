//! Shopify (<https://shopify.dev/docs/apps/build/webhooks>).
//!
//! - Signature: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app client secret, raw body)).
//!   Newer "Events" deliveries use lowercase, unprefixed names (`shopify-hmac-sha256`,
//!   `shopify-topic`, `shopify-event-id`, …); the header set is picked by which HMAC header is
//!   present, as shopify-app-js does.
//! - Tolerance: none; nothing but the body is signed.
//! - Event id: `X-Shopify-Event-Id` (shared by every delivery of one merchant action, Shopify's
//!   dedupe guidance), falling back to `X-Shopify-Webhook-Id`; the dedupe key is
//!   `<topic>:<event id>` because one action can produce deliveries on several topics.
//! - Event type: the `X-Shopify-Topic` header (`customers/create`); the body carries none.
//! - Retries: 8 times over 4 hours; no answer within 5 s is a failure.
//! - Quirks: customer ids are JSON numbers above 2^53; they must be kept as their digits.
//!
//! Normalizing (`normalize.rs`):
//! - Mapped topics: `customers/create`, `customers/update`, `customers/delete`,
//!   `customers_email_marketing_consent/update`, `orders/create`, `orders/paid`.
//! - Email: `email` (customers/*), `email` else `customer.email` (orders/*), `email_address`
//!   (consent); none on customers/delete, which resolves by `shopify_customer_id`.
//!   Names: `first_name`/`last_name` (orders: of `customer`).
//! - `occurred_at_ms`: `X-Shopify-Triggered-At` (or `shopify-triggered-at`), else the body's
//!   `updated_at` (consent: `consent_updated_at`).
//! - `subscribed`: consent state `subscribed` → true; `not_subscribed`, `unsubscribed`,
//!   `redacted` → false (also from a customer's `email_marketing_consent`).
//! - Contact fields: `shopify_customer_id` (identity, exact digits), `shopify_shop_domain` (from
//!   the header), `shopify_state`, `shopify_verified_email`, `shopify_phone`,
//!   `shopify_currency`, `shopify_tags`, `shopify_total_spent` and `shopify_orders_count` (older
//!   API versions), `shopify_email_marketing_state`, `shopify_email_marketing_opt_in_level`,
//!   `shopify_deleted`, `shopify_last_order_id`, `shopify_last_order_total`.
//! - Fire-only fields: `shopify_order_id`, `shopify_order_name`, `shopify_order_number`,
//!   `shopify_total_price`, `shopify_subtotal_price`, `shopify_total_tax`,
//!   `shopify_financial_status`, `shopify_fulfillment_status`, `shopify_buyer_accepts_marketing`.

mod normalize;

use crate::scheme::hmac_body;
use crate::Signing;
use crate::{
    as_object, header_str, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, Provider, ProviderId, Secret, SignError, SignOptions, Signed, Verified,
    VerifyError,
};
use http::HeaderName;

/// Topics hookgate maps.
pub const MAPPED: &[&str] = &[
    "customers/create",
    "customers/update",
    "customers/delete",
    "customers_email_marketing_consent/update",
    "orders/create",
    "orders/paid",
];

/// One of Shopify's two header naming schemes.
struct HeaderSet {
    hmac: &'static str,
    topic: &'static str,
    event_id: &'static str,
    webhook_id: &'static str,
}

const CLASSIC: HeaderSet = HeaderSet {
    hmac: "x-shopify-hmac-sha256",
    topic: "x-shopify-topic",
    event_id: "x-shopify-event-id",
    webhook_id: "x-shopify-webhook-id",
};

const EVENTS: HeaderSet = HeaderSet {
    hmac: "shopify-hmac-sha256",
    topic: "shopify-topic",
    event_id: "shopify-event-id",
    webhook_id: "shopify-webhook-id",
};

/// The HMAC header of whichever naming scheme the delivery uses, refusing duplicates.
fn hmac_header(headers: &http::HeaderMap) -> Result<(&'static str, &str), VerifyError> {
    let set = header_set(headers);
    let name = if std::ptr::eq(set, &CLASSIC) {
        "X-Shopify-Hmac-Sha256"
    } else {
        "shopify-hmac-sha256"
    };
    if !headers.contains_key(set.hmac) {
        return Err(VerifyError::MissingHeader(name));
    }
    if headers.get_all(set.hmac).iter().count() > 1 {
        return Err(VerifyError::InvalidHeader(name));
    }
    let value = header_str(headers, set.hmac).ok_or(VerifyError::InvalidHeader(name))?;
    Ok((name, value))
}

fn header_set(headers: &http::HeaderMap) -> &'static HeaderSet {
    if headers.contains_key(CLASSIC.hmac) || !headers.contains_key(EVENTS.hmac) {
        &CLASSIC
    } else {
        &EVENTS
    }
}

pub struct Shopify;

impl Provider for Shopify {
    fn id(&self) -> ProviderId {
        ProviderId::Shopify
    }

    fn signing(&self) -> Signing {
        Signing::BodyHmac(hmac_header)
    }

    fn identify_parsed(
        &self,
        event: &Verified<'_>,
        body: &serde_json::Value,
    ) -> Result<EventMeta, IdentifyError> {
        let headers = event.headers();
        let set = header_set(headers);
        let topic = header_str(headers, set.topic)
            .filter(|t| !t.is_empty())
            .ok_or(IdentifyError::MissingHeader("X-Shopify-Topic"))?;
        let id = header_str(headers, set.event_id)
            .or_else(|| header_str(headers, set.webhook_id))
            .filter(|t| !t.is_empty())
            .ok_or(IdentifyError::MissingHeader("X-Shopify-Event-Id"))?;
        as_object(body)?;
        Ok(EventMeta {
            event_id: format!("{topic}:{id}"),
            event_type: topic.to_owned(),
            mapped: MAPPED.contains(&topic),
        })
    }

    fn normalize(
        &self,
        event: &Verified<'_>,
        _context: &NormalizeContext<'_>,
    ) -> Result<Vec<NormalizedEvent>, NormalizeError> {
        normalize::normalize(event)
    }

    fn sign(
        &self,
        body: &[u8],
        secret: &Secret,
        options: &SignOptions,
    ) -> Result<Signed, SignError> {
        self.check_secret(secret, None)?;
        let topic = options.event_type.clone().ok_or(SignError::MissingOption(
            "Shopify needs the topic (X-Shopify-Topic)",
        ))?;
        let digest = crate::body_digest(body);
        let event_id = options
            .delivery_id
            .clone()
            .unwrap_or_else(|| format!("{}", u64::from_str_radix(&digest[..12], 16).unwrap_or(0)));
        let h = |name: &'static str, value: String| (HeaderName::from_static(name), value);
        Ok(Signed {
            headers: vec![
                h("x-shopify-hmac-sha256", hmac_body::sign(body, secret)),
                h("x-shopify-topic", topic),
                h("x-shopify-shop-domain", "example.myshopify.com".to_owned()),
                h("x-shopify-api-version", "2025-07".to_owned()),
                h(
                    "x-shopify-webhook-id",
                    format!("{}-{}", &digest[..8], &digest[8..12]),
                ),
                h("x-shopify-event-id", event_id),
                h(
                    "x-shopify-triggered-at",
                    crate::time::format_rfc3339_ms(options.now_ms),
                ),
            ],
            query: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;

    fn opts() -> SignOptions {
        SignOptions {
            event_type: Some("customers/create".into()),
            ..SignOptions::default()
        }
    }

    #[test]
    fn conformance() {
        let body = br#"{"id":706405506930370084,"email":"bob@example.com"}"#;
        testkit::signed_provider_conformance(&Shopify, body, &opts());
    }

    #[test]
    fn published_vectors() {
        testkit::published_vectors(ProviderId::Shopify);
    }

    #[test]
    fn lowercase_events_header_set() {
        let body = br#"{"id":1}"#;
        let secret = Secret::new("shpss_client_secret");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "shopify-hmac-sha256",
            hmac_body::sign(body, &secret).parse().expect("v"),
        );
        headers.insert("shopify-topic", "orders/paid".parse().expect("v"));
        headers.insert(
            "shopify-event-id",
            "98880550-7158-44d4-b7cd-2c97c8a091b5".parse().expect("v"),
        );
        let req = Request {
            headers: &headers,
            body,
            query: None,
        };
        let opts = VerifyOptions {
            now_ms: 0,
            tolerance_secs: None,
            auth: None,
        };
        let verified = Shopify.verify(&req, &[secret], &opts).expect("verifies");
        let meta = Shopify.identify(&verified).expect("meta");
        assert_eq!(
            meta.event_id,
            "orders/paid:98880550-7158-44d4-b7cd-2c97c8a091b5"
        );
        assert_eq!(meta.event_type, "orders/paid");
        assert!(meta.mapped);
    }
}
