//! RevenueCat (<https://www.revenuecat.com/docs/integrations/webhooks>).
//!
//! - Authenticity: **unsigned**. The dashboard's optional "authorization header value" is sent
//!   verbatim as `Authorization` on every POST. With the default `auth = "bearer"` configure the
//!   dashboard value as `Bearer <secret>`; to compare the whole header value instead (any format),
//!   use `auth = "header:Authorization"`.
//! - Event id: `event.id` (the same on retries); event type: `event.type` (`INITIAL_PURCHASE`, …).
//! - Retries: up to 5 times at 5, 10, 20, 40 and 80 minutes; RevenueCat treats anything but
//!   exactly 200 as a failure, and hookgate answers exactly 200.
//! - Quirks: the email exists only if the app set the `$email` subscriber attribute.
//!
//! Normalizing:
//! - Mapped types: `INITIAL_PURCHASE`, `RENEWAL`, `CANCELLATION`, `UNCANCELLATION`,
//!   `NON_RENEWING_PURCHASE`, `SUBSCRIPTION_PAUSED`, `SUBSCRIPTION_EXTENDED`, `EXPIRATION`,
//!   `BILLING_ISSUE`, `PRODUCT_CHANGE`, `TRANSFER`, `TEST`. `occurred_at_ms` is
//!   `event.event_timestamp_ms`.
//! - Email: `event.subscriber_attributes["$email"].value`; without it the event resolves by
//!   `revenuecat_app_user_id`, given for `app_user_id`, `original_app_user_id` and every alias
//!   (the same key several times, so any of them can match). Names: `$displayName` split at the
//!   first space.
//! - `TRANSFER` has no `app_user_id`: purchases moved from the ids in `transferred_from` to those
//!   in `transferred_to`. It gives two events: the destination (the delivery's id,
//!   `revenuecat_status = active`) and the source (`<id>:from`, `revenuecat_status =
//!   transferred`: it no longer holds the entitlement).
//! - Contact fields: `revenuecat_app_user_id`, `revenuecat_original_app_user_id`,
//!   `revenuecat_product_id`, `revenuecat_entitlements` (comma-joined), `revenuecat_period_type`,
//!   `revenuecat_store`, `revenuecat_environment`, `revenuecat_expires_at` (Unix ms),
//!   `revenuecat_status` (from the type, see [`status`]), `revenuecat_cancel_reason`,
//!   `revenuecat_expiration_reason`, `revenuecat_auto_resume_at` (SUBSCRIPTION_PAUSED).
//! - Fire-only fields: `revenuecat_price` (`price_in_purchased_currency`, in
//!   `revenuecat_currency`), `revenuecat_price_usd` (`price`, which RevenueCat gives in USD),
//!   `revenuecat_currency`, `revenuecat_country_code`, `revenuecat_transaction_id`,
//!   `revenuecat_purchased_at`, `revenuecat_new_product_id`, `revenuecat_is_trial_conversion`,
//!   `revenuecat_grace_period_expires_at`, `revenuecat_transferred_from` /
//!   `revenuecat_transferred_to` and `revenuecat_transfer_role` (`to` or `from`, TRANSFER).
//! - A `NON_RENEWING_PURCHASE` (a one-off purchase) leaves the subscription's product, period,
//!   expiry and status alone: those go to the fire only.
//! - `TEST` events (sent from the dashboard) and every event from the `SANDBOX` environment
//!   describe no real purchase: they fire, but only the app user ids stay on the contact and
//!   every other field goes to the fire, so a test can never change a real subscriber's state.

use serde_json::Value;

use crate::normalize::{id_text, joined, mapped_meta, parse, shape, split_name, text};
use crate::Signing;
use crate::{
    as_object, str_field, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, Provider, ProviderId, Verified,
};

/// Event types hookgate maps.
pub const MAPPED: &[&str] = &[
    "INITIAL_PURCHASE",
    "RENEWAL",
    "CANCELLATION",
    "UNCANCELLATION",
    "NON_RENEWING_PURCHASE",
    "SUBSCRIPTION_PAUSED",
    "SUBSCRIPTION_EXTENDED",
    "EXPIRATION",
    "BILLING_ISSUE",
    "PRODUCT_CHANGE",
    "TRANSFER",
    "TEST",
];

pub struct Revenuecat;

impl Provider for Revenuecat {
    fn id(&self) -> ProviderId {
        ProviderId::Revenuecat
    }

    fn signing(&self) -> Signing {
        Signing::SharedSecret
    }

    fn identify_parsed(
        &self,
        _event: &Verified<'_>,
        body: &serde_json::Value,
    ) -> Result<EventMeta, IdentifyError> {
        let body = as_object(body)?;
        let inner = body
            .get("event")
            .and_then(|e| e.as_object())
            .ok_or(IdentifyError::UnexpectedShape("no `event` object"))?;
        let id = str_field(inner, "id").ok_or(IdentifyError::UnexpectedShape("no `event.id`"))?;
        let event_type =
            str_field(inner, "type").ok_or(IdentifyError::UnexpectedShape("no `event.type`"))?;
        Ok(EventMeta {
            event_id: id.to_owned(),
            event_type: event_type.to_owned(),
            mapped: MAPPED.contains(&event_type),
        })
    }

    fn normalize(
        &self,
        event: &Verified<'_>,
        _context: &NormalizeContext<'_>,
    ) -> Result<Vec<NormalizedEvent>, NormalizeError> {
        let body = parse(event)?;
        let meta = mapped_meta(self, event, &body)?;
        let inner = body
            .get("event")
            .filter(|e| e.is_object())
            .ok_or_else(|| shape("no `event` object"))?;
        if meta.event_type == "TRANSFER" {
            return transfer(&meta.event_id, inner);
        }
        let mut out = NormalizedEvent::from_meta(meta);
        out.occurred_at_ms = inner.get("event_timestamp_ms").and_then(Value::as_i64);

        // Subscriber attributes are `{"value": ..., "updated_at_ms": ...}` objects.
        let attributes = inner.get("subscriber_attributes");
        let attribute = |name: &str| {
            attributes
                .and_then(|a| a.get(name))
                .and_then(|a| text(a, "value"))
        };
        out.set_email(attribute("$email"));
        let (first, last) = attribute("$displayName")
            .map(split_name)
            .unwrap_or_default();
        out.set_name(first.as_deref(), last.as_deref());

        // Every id the subscriber has been known by, most recent first; any may match a contact.
        let aliases = inner.get("aliases").and_then(Value::as_array);
        let ids = [inner.get("app_user_id"), inner.get("original_app_user_id")]
            .into_iter()
            .flatten()
            .chain(aliases.into_iter().flatten());
        for id in ids {
            out.add_id("revenuecat_app_user_id", id_text(id));
        }
        if out.identity.ids.is_empty() && out.identity.email.is_none() {
            return Err(shape("an event without `app_user_id` or `$email`"));
        }

        out.field(
            "revenuecat_original_app_user_id",
            inner.get("original_app_user_id"),
        );
        out.field("revenuecat_product_id", inner.get("product_id"));
        let entitlements = inner
            .get("entitlement_ids")
            .and_then(joined)
            .or_else(|| text(inner, "entitlement_id").map(str::to_owned));
        if let Some(entitlements) = entitlements {
            out.set_field("revenuecat_entitlements", entitlements);
        }
        out.field("revenuecat_period_type", inner.get("period_type"));
        out.field("revenuecat_store", inner.get("store"));
        out.field("revenuecat_environment", inner.get("environment"));
        out.field("revenuecat_expires_at", inner.get("expiration_at_ms"));
        if let Some(status) = status(&out.event_type) {
            out.set_field("revenuecat_status", status);
        }
        out.field("revenuecat_cancel_reason", inner.get("cancel_reason"));
        out.field(
            "revenuecat_expiration_reason",
            inner.get("expiration_reason"),
        );
        out.field("revenuecat_auto_resume_at", inner.get("auto_resume_at_ms"));

        // `price` is in USD; the amount the buyer paid, in `currency`, is the other one.
        out.event_field("revenuecat_price", inner.get("price_in_purchased_currency"));
        out.event_field("revenuecat_price_usd", inner.get("price"));
        out.event_field("revenuecat_currency", inner.get("currency"));
        out.event_field("revenuecat_country_code", inner.get("country_code"));
        out.event_field("revenuecat_transaction_id", inner.get("transaction_id"));
        out.event_field("revenuecat_purchased_at", inner.get("purchased_at_ms"));
        out.event_field("revenuecat_new_product_id", inner.get("new_product_id"));
        out.event_field(
            "revenuecat_is_trial_conversion",
            inner.get("is_trial_conversion"),
        );
        out.event_field(
            "revenuecat_grace_period_expires_at",
            inner.get("grace_period_expiration_at_ms"),
        );

        if out.event_type == "NON_RENEWING_PURCHASE" {
            // A one-off purchase says nothing about the subscription the contact may have.
            move_to_fire(&mut out, |key| {
                matches!(
                    key,
                    "revenuecat_product_id" | "revenuecat_period_type" | "revenuecat_expires_at"
                )
            });
        }
        if is_test(&out.event_type, inner) {
            // Keep only the id on the contact; the rest describes a made-up purchase.
            move_to_fire(&mut out, |key| key != "revenuecat_app_user_id");
        }
        Ok(vec![out])
    }
}

/// Whether an event describes no real purchase: a dashboard `TEST`, or any event from the
/// store's sandbox.
fn is_test(event_type: &str, inner: &Value) -> bool {
    event_type == "TEST" || text(inner, "environment") == Some("SANDBOX")
}

/// Moves the contact fields `moved` selects to the fire.
fn move_to_fire(out: &mut NormalizedEvent, moved: impl Fn(&str) -> bool) {
    let fields = std::mem::take(&mut out.contact.fields);
    for (key, value) in fields {
        if moved(&key) {
            out.event_fields.insert(key, value);
        } else {
            out.contact.fields.insert(key, value);
        }
    }
}

/// `TRANSFER`: the purchases moved from the `transferred_from` ids to the `transferred_to` ids.
/// One event for the destination (it holds the entitlement now) and one for the source (it no
/// longer does).
fn transfer(event_id: &str, inner: &Value) -> Result<Vec<NormalizedEvent>, NormalizeError> {
    let ids = |key: &str| -> Vec<String> {
        inner
            .get(key)
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(id_text).collect())
            .unwrap_or_default()
    };
    let (from, to) = (ids("transferred_from"), ids("transferred_to"));
    if from.is_empty() || to.is_empty() {
        return Err(shape(
            "a TRANSFER without `transferred_from` and `transferred_to` ids",
        ));
    }
    let test = is_test("TRANSFER", inner);
    let side = |id: String, role: &str, mine: &[String], other: &[String], status: &str| {
        let mut out = NormalizedEvent::new(id, "TRANSFER");
        out.occurred_at_ms = inner.get("event_timestamp_ms").and_then(Value::as_i64);
        for id in mine {
            out.add_id("revenuecat_app_user_id", Some(id.clone()));
        }
        out.set_field("revenuecat_status", status);
        out.field("revenuecat_store", inner.get("store"));
        out.field("revenuecat_environment", inner.get("environment"));
        out.set_event_field("revenuecat_transfer_role", role);
        let other_key = if role == "to" {
            "revenuecat_transferred_from"
        } else {
            "revenuecat_transferred_to"
        };
        out.set_event_field(other_key, other.join(","));
        if test {
            move_to_fire(&mut out, |key| key != "revenuecat_app_user_id");
        }
        out
    };
    Ok(vec![
        side(event_id.to_owned(), "to", &to, &from, "active"),
        side(
            format!("{event_id}:from"),
            "from",
            &from,
            &to,
            "transferred",
        ),
    ])
}

/// The subscription state an event type implies (`None`: the type says nothing about it).
/// `SUBSCRIPTION_PAUSED` says a pause starts at the end of the period, so access stays until the
/// `EXPIRATION` that follows (RevenueCat's own advice), and `NON_RENEWING_PURCHASE` is no
/// subscription: neither changes the status.
fn status(event_type: &str) -> Option<&'static str> {
    match event_type {
        "INITIAL_PURCHASE"
        | "RENEWAL"
        | "UNCANCELLATION"
        | "PRODUCT_CHANGE"
        | "SUBSCRIPTION_EXTENDED" => Some("active"),
        "CANCELLATION" => Some("cancelled"),
        "EXPIRATION" => Some("expired"),
        "BILLING_ISSUE" => Some("billing_issue"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;
    use serde_json::json;

    fn one(name: &str) -> NormalizedEvent {
        testkit::normalize_one(ProviderId::Revenuecat, &[], name)
    }

    fn ids() -> Vec<(String, String)> {
        [
            "usr_7Hq2Lm9Xp4",
            "$RCAnonymousID:6b0f9c2e4d1a4b7c8e3f5a9d2c1b0e7f",
        ]
        .into_iter()
        .map(|id| ("revenuecat_app_user_id".to_owned(), id.to_owned()))
        .collect()
    }

    #[test]
    fn without_email_the_app_user_ids_identify() {
        for name in [
            "CANCELLATION.json",
            "EXPIRATION.json",
            "UNCANCELLATION.json",
        ] {
            let e = one(name);
            assert_eq!(e.identity.email, None, "{name}");
            assert_eq!(e.identity.ids, ids(), "{name}");
            assert_eq!(
                e.contact.fields["revenuecat_app_user_id"],
                json!("usr_7Hq2Lm9Xp4")
            );
        }
        let cancelled = one("CANCELLATION.json");
        assert_eq!(
            cancelled.contact.fields["revenuecat_status"],
            json!("cancelled")
        );
        assert_eq!(
            cancelled.contact.fields["revenuecat_cancel_reason"],
            json!("UNSUBSCRIBE")
        );
    }

    #[test]
    fn with_email_and_display_name() {
        let e = one("INITIAL_PURCHASE.json");
        assert_eq!(e.identity.email.as_deref(), Some("li.wei@example.com"));
        assert_eq!(e.identity.ids, ids());
        assert_eq!(e.contact.first_name.as_deref(), Some("Li"));
        assert_eq!(e.contact.last_name.as_deref(), Some("Wei"));
        let f = &e.contact.fields;
        assert_eq!(f["revenuecat_status"], json!("active"));
        assert_eq!(f["revenuecat_entitlements"], json!("pro"));
        assert_eq!(f["revenuecat_expires_at"], json!(1_763_111_551_000_i64));
        assert_eq!(e.event_fields["revenuecat_price"], json!(9.99));
        assert_eq!(e.event_fields["revenuecat_price_usd"], json!(9.99));
        assert_eq!(e.occurred_at_ms, Some(1_760_433_155_127));
    }

    #[test]
    fn test_events_leave_the_subscription_alone() {
        let e = one("TEST.json");
        assert_eq!(
            e.contact.fields.keys().collect::<Vec<_>>(),
            vec!["revenuecat_app_user_id"]
        );
        assert_eq!(
            e.event_fields["revenuecat_product_id"],
            json!("test_product")
        );
    }

    #[test]
    fn price_is_the_purchased_currency_and_price_usd_is_usd() {
        let e = one("NON_RENEWING_PURCHASE.json");
        assert_eq!(e.event_fields["revenuecat_price"], json!(32.99));
        assert_eq!(e.event_fields["revenuecat_currency"], json!("CAD"));
        assert_eq!(e.event_fields["revenuecat_price_usd"], json!(24.01));
        // A one-off purchase leaves the subscription's product and status alone.
        assert!(!e.contact.fields.contains_key("revenuecat_product_id"));
        assert!(!e.contact.fields.contains_key("revenuecat_status"));
        assert_eq!(
            e.event_fields["revenuecat_product_id"],
            json!("com.example.notes.export_pack")
        );
        assert_eq!(e.contact.fields["revenuecat_entitlements"], json!("export"));
    }

    #[test]
    fn transfer_moves_the_entitlement_between_ids() {
        let events = testkit::normalize(
            ProviderId::Revenuecat,
            &[],
            &testkit::fixture(ProviderId::Revenuecat, "TRANSFER.json"),
            &NormalizeContext::default(),
        )
        .expect("normalizes");
        assert_eq!(events.len(), 2);
        let (to, from) = (&events[0], &events[1]);
        assert_eq!(to.event_id, "8E2C51A7-3D94-4F0B-9A6E-71C4D2B8F305");
        assert_eq!(from.event_id, "8E2C51A7-3D94-4F0B-9A6E-71C4D2B8F305:from");
        assert_eq!(to.identity.ids[0].1, "usr_7Hq2Lm9Xp4");
        assert_eq!(
            from.identity.ids[0].1,
            "$RCAnonymousID:0d3e8a71c5b94f26a1e7c9b4d2f60a85"
        );
        assert_eq!(to.contact.fields["revenuecat_status"], json!("active"));
        assert_eq!(
            from.contact.fields["revenuecat_status"],
            json!("transferred")
        );
        assert_eq!(
            to.event_fields["revenuecat_transferred_from"],
            json!("$RCAnonymousID:0d3e8a71c5b94f26a1e7c9b4d2f60a85")
        );
        assert_eq!(from.event_fields["revenuecat_transfer_role"], json!("from"));
        assert!(to.identity.email.is_none() && from.identity.email.is_none());
    }

    #[test]
    fn extended_paused_and_sandbox() {
        let extended = one("SUBSCRIPTION_EXTENDED.json");
        assert_eq!(
            extended.contact.fields["revenuecat_status"],
            json!("active")
        );
        assert_eq!(
            extended.contact.fields["revenuecat_expires_at"],
            json!(1_766_334_751_000_i64)
        );
        let paused = one("SUBSCRIPTION_PAUSED.json");
        assert!(!paused.contact.fields.contains_key("revenuecat_status"));
        assert_eq!(
            paused.contact.fields["revenuecat_auto_resume_at"],
            json!(1_768_926_751_000_i64)
        );
        // A sandbox renewal fires but changes nothing but the ids on the contact.
        let body = br#"{"event":{"id":"s1","type":"RENEWAL","app_user_id":"u1","environment":"SANDBOX","product_id":"p","expiration_at_ms":5}}"#;
        let events = testkit::normalize(
            ProviderId::Revenuecat,
            &[],
            body,
            &NormalizeContext::default(),
        )
        .expect("normalizes");
        assert_eq!(
            events[0].contact.fields.keys().collect::<Vec<_>>(),
            vec!["revenuecat_app_user_id"]
        );
        assert_eq!(events[0].event_fields["revenuecat_status"], json!("active"));
        assert_eq!(events[0].event_fields["revenuecat_expires_at"], json!(5));
    }

    #[test]
    fn aliases_only_and_missing_ids() {
        let run = |body: &[u8]| {
            testkit::normalize(
                ProviderId::Revenuecat,
                &[],
                body,
                &NormalizeContext::default(),
            )
        };
        let events = run(br#"{"event":{"id":"e1","type":"RENEWAL","aliases":["a","b"]}}"#)
            .expect("normalizes");
        assert_eq!(events[0].identity.ids.len(), 2);
        assert!(matches!(
            run(br#"{"event":{"id":"e2","type":"RENEWAL"}}"#),
            Err(NormalizeError::UnexpectedShape(_))
        ));
        assert!(matches!(
            run(br#"{"event":{"id":"e3","type":"TRANSFER","transferred_to":["a"]}}"#),
            Err(NormalizeError::UnexpectedShape(_))
        ));
        assert_eq!(
            run(br#"{"event":{"id":"e4","type":"SUBSCRIBER_ALIAS","app_user_id":"a"}}"#),
            Err(NormalizeError::Unsupported("SUBSCRIBER_ALIAS".into()))
        );
    }

    #[test]
    fn conformance() {
        let body = br#"{"api_version":"1.0","event":{"id":"CD489E0E-5D52-4E03-966B-A7F17788E432","type":"RENEWAL","app_user_id":"u1"}}"#;
        testkit::shared_secret_conformance(&Revenuecat, body);
        let headers = http::HeaderMap::new();
        let meta = Revenuecat
            .identify(&Verified::skip_verification(
                ProviderId::Revenuecat,
                &headers,
                body,
            ))
            .expect("meta");
        assert_eq!(meta.event_id, "CD489E0E-5D52-4E03-966B-A7F17788E432");
        assert_eq!(meta.event_type, "RENEWAL");
        assert!(Revenuecat
            .identify(&Verified::skip_verification(
                ProviderId::Revenuecat,
                &headers,
                br#"{"event":{"type":"X"}}"#
            ))
            .is_err());
    }
}
