//! Stripe (<https://docs.stripe.com/webhooks>).
//!
//! - Signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>][,v0=<hex>]`, HMAC-SHA256
//!   over `{t}.{raw body}` keyed by the endpoint secret **as-is**, `whsec_` prefix included (it is
//!   not base64-decoded, unlike Svix). Any `v1` may match (Stripe sends two while a secret rolls).
//! - Tolerance: 300 s, and like stripe-node only timestamps that are too old are rejected.
//! - Event id: body `id` (`evt_…`); event type: body `type`.
//! - Retries: live mode retries with exponential backoff for up to three days; order is not
//!   guaranteed and duplicates happen.
//! - Quirks: thin events (`"object": "v2.core.event"`) are a different product; they verify, but
//!   hookgate does not map them, so they are stored as `ignored`. Payload shapes follow the
//!   endpoint's pinned `api_version`; the mapping reads both pre- and post-`basil` locations.
//!
//! Normalizing (`normalize.rs`):
//! - Mapped types: `customer.created|updated|deleted`, `checkout.session.completed`,
//!   `customer.subscription.created|updated|deleted`, `invoice.paid`, `invoice.payment_failed`.
//! - Email: `data.object.email` (customer.*), `data.object.customer_details.email` (checkout),
//!   `data.object.customer_email` (invoice.*); none on subscription events, which resolve by
//!   `stripe_customer_id`. Names: `name` (customer.*) or `customer_details.name` (checkout),
//!   split at the first space. `occurred_at_ms` = `created` × 1000.
//! - Contact fields: `stripe_customer_id` (identity), `stripe_livemode`, `stripe_phone`,
//!   `stripe_deleted` (customer.deleted), `stripe_subscription_id`, `stripe_subscription_status`,
//!   `stripe_price_id`, `stripe_product_id`, `stripe_current_period_end` (Unix ms),
//!   `stripe_cancel_at_period_end`.
//! - Fire-only fields: `stripe_checkout_session_id`, `stripe_amount_total`, `stripe_currency`,
//!   `stripe_mode`, `stripe_payment_status`, `stripe_client_reference_id`, `stripe_invoice_id`,
//!   `stripe_invoice_number`, `stripe_invoice_status`, `stripe_amount_due`, `stripe_amount_paid`,
//!   `stripe_billing_reason`, `stripe_attempt_count`, `stripe_hosted_invoice_url`,
//!   `stripe_cancel_at`, `stripe_canceled_at`, `stripe_trial_end` (Unix ms),
//!   `stripe_cancellation_reason`, `stripe_previous_status`.

mod normalize;

use crate::scheme::timestamped_hmac::{Scheme, Unit};
use crate::Signing;
use crate::{
    as_object, str_field, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, Provider, ProviderId, Verified,
};

/// stripe-node's `DEFAULT_TOLERANCE`.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

const SCHEME: Scheme = Scheme {
    header: "Stripe-Signature",
    unit: Unit::Seconds,
    reject_future: false,
    separator: ",",
};

/// Event types hookgate maps into contacts and fires.
pub const MAPPED: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
];

pub struct Stripe;

impl Provider for Stripe {
    fn id(&self) -> ProviderId {
        ProviderId::Stripe
    }

    fn signing(&self) -> Signing {
        Signing::Timestamped(&SCHEME, DEFAULT_TOLERANCE_SECS)
    }

    fn identify_parsed(
        &self,
        _event: &Verified<'_>,
        body: &serde_json::Value,
    ) -> Result<EventMeta, IdentifyError> {
        let body = as_object(body)?;
        let id = str_field(body, "id").ok_or(IdentifyError::UnexpectedShape("no event `id`"))?;
        let event_type =
            str_field(body, "type").ok_or(IdentifyError::UnexpectedShape("no event `type`"))?;
        let thin = str_field(body, "object") == Some("v2.core.event");
        Ok(EventMeta {
            event_id: id.to_owned(),
            event_type: event_type.to_owned(),
            mapped: !thin && MAPPED.contains(&event_type),
        })
    }

    fn normalize(
        &self,
        event: &Verified<'_>,
        _context: &NormalizeContext<'_>,
    ) -> Result<Vec<NormalizedEvent>, NormalizeError> {
        normalize::normalize(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;

    #[test]
    fn conformance() {
        let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{}}}"#;
        testkit::signed_provider_conformance(&Stripe, body, &SignOptions::default());
    }

    #[test]
    fn published_vectors() {
        testkit::published_vectors(ProviderId::Stripe);
    }

    #[test]
    fn future_timestamps_pass_like_stripe_node() {
        let body = br#"{"id":"evt_2","type":"customer.created"}"#;
        let secret = Secret::new("whsec_x");
        let now = 1_700_000_000_000;
        let signed = Stripe
            .sign(
                body,
                &secret,
                &SignOptions {
                    now_ms: now + 3_600_000,
                    ..SignOptions::default()
                },
            )
            .expect("sign");
        let headers = testkit::headers(&signed);
        let req = Request {
            headers: &headers,
            body,
            query: None,
        };
        let opts = VerifyOptions {
            now_ms: now,
            tolerance_secs: None,
            auth: None,
        };
        assert!(Stripe.verify(&req, &[secret], &opts).is_ok());
    }

    #[test]
    fn any_v1_entry_may_match_and_v0_is_ignored() {
        let body = br#"{"id":"evt_3","type":"customer.created"}"#;
        let secret = Secret::new("whsec_x");
        let now = 1_700_000_000_000;
        let signed = Stripe
            .sign(
                body,
                &secret,
                &SignOptions {
                    now_ms: now,
                    ..SignOptions::default()
                },
            )
            .expect("sign");
        let good = signed.headers[0].1.clone();
        let (t, v1) = good.split_once(',').expect("t and v1");
        let valid_mac = v1.strip_prefix("v1=").expect("v1 entry");
        let verify = |value: String| {
            let mut headers = http::HeaderMap::new();
            headers.insert("stripe-signature", value.parse().expect("header"));
            let req = Request {
                headers: &headers,
                body,
                query: None,
            };
            let opts = VerifyOptions {
                now_ms: now,
                tolerance_secs: None,
                auth: None,
            };
            Stripe
                .verify(&req, std::slice::from_ref(&secret), &opts)
                .map(|_| ())
        };
        // The valid v1 entry after a wrong one (and a v0 entry) passes.
        assert_eq!(
            verify(format!(
                "{t},v0={},v1={},{v1}",
                "ab".repeat(32),
                "00".repeat(32)
            )),
            Ok(())
        );
        // v0 is ignored: a delivery whose only valid signature is its v0 entry (the right MAC,
        // under the legacy scheme name) is refused, whichever entry comes first.
        assert_eq!(
            verify(format!("{t},v0={valid_mac},v1={}", "00".repeat(32))),
            Err(VerifyError::SignatureMismatch)
        );
        assert_eq!(
            verify(format!("{t},v1={},v0={valid_mac}", "00".repeat(32))),
            Err(VerifyError::SignatureMismatch)
        );
    }

    #[test]
    fn identify_reads_id_and_type() {
        let headers = http::HeaderMap::new();
        let body = br#"{"id":"evt_9","type":"invoice.paid"}"#;
        let meta = Stripe
            .identify(&Verified::skip_verification(
                ProviderId::Stripe,
                &headers,
                body,
            ))
            .expect("meta");
        assert_eq!(
            meta,
            EventMeta {
                event_id: "evt_9".into(),
                event_type: "invoice.paid".into(),
                mapped: true
            }
        );
        let thin = br#"{"id":"evt_9","object":"v2.core.event","type":"invoice.paid"}"#;
        let meta = Stripe
            .identify(&Verified::skip_verification(
                ProviderId::Stripe,
                &headers,
                thin,
            ))
            .expect("meta");
        assert!(!meta.mapped);
        for bad in [
            &b"[]"[..],
            b"not json",
            br#"{"type":"x"}"#,
            br#"{"id":"evt","type":""}"#,
        ] {
            assert!(Stripe
                .identify(&Verified::skip_verification(
                    ProviderId::Stripe,
                    &headers,
                    bad
                ))
                .is_err());
        }
    }
}
