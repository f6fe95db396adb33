//! Stripe events → normalized events (see the module header for the mapped types and fields).
//!
//! Every event carries its resource snapshot in `data.object`. Customer and checkout events give
//! an email; subscription events give only the customer id, so they resolve by
//! `stripe_customer_id`; invoices give both.

use serde_json::Value;

use super::Stripe;
use crate::normalize::{id_at, lookup, mapped_meta, parse, secs_to_ms, shape, split_name, text};
use crate::{NormalizeError, NormalizedEvent, Verified};

pub(super) fn normalize(event: &Verified<'_>) -> Result<Vec<NormalizedEvent>, NormalizeError> {
    let body = parse(event)?;
    let meta = mapped_meta(&Stripe, event, &body)?;
    let object = lookup(&body, "data.object")
        .filter(|o| o.is_object())
        .ok_or_else(|| shape("no `data.object`"))?;
    let mut out = NormalizedEvent::from_meta(meta);
    out.occurred_at_ms = body.get("created").and_then(secs_to_ms);
    out.field("stripe_livemode", body.get("livemode"));
    let event_type = out.event_type.clone();
    match event_type.as_str() {
        "customer.created" | "customer.updated" | "customer.deleted" => {
            customer(&mut out, object)?;
        }
        "checkout.session.completed" => checkout(&mut out, object)?,
        t if t.starts_with("customer.subscription.") => subscription(&mut out, &body, object)?,
        t if t.starts_with("invoice.") => invoice(&mut out, object)?,
        // `identify` maps only the types above; this arm keeps the match honest if MAPPED grows.
        other => return Err(NormalizeError::Unsupported(other.to_owned())),
    }
    Ok(vec![out])
}

/// `customer.*`: the Customer object itself.
fn customer(out: &mut NormalizedEvent, object: &Value) -> Result<(), NormalizeError> {
    let id =
        id_at(object, "id").ok_or_else(|| shape("a customer event without `data.object.id`"))?;
    out.add_id("stripe_customer_id", Some(id));
    out.set_email(text(object, "email"));
    let (first, last) = text(object, "name").map(split_name).unwrap_or_default();
    out.set_name(first.as_deref(), last.as_deref());
    out.field("stripe_phone", object.get("phone"));
    // A customer created again (or updated) after a delete is no longer deleted.
    out.set_field("stripe_deleted", out.event_type == "customer.deleted");
    Ok(())
}

/// `checkout.session.completed`: what the buyer typed is in `customer_details`; the session's
/// `customer_email` is only a pre-filled value and often null.
fn checkout(out: &mut NormalizedEvent, object: &Value) -> Result<(), NormalizeError> {
    let id = id_at(object, "id").ok_or_else(|| shape("a checkout session without `id`"))?;
    out.set_email(text(object, "customer_details.email"));
    let (first, last) = text(object, "customer_details.name")
        .map(split_name)
        .unwrap_or_default();
    out.set_name(first.as_deref(), last.as_deref());
    // `customer` is null in payment mode when no customer is created; the email still works.
    out.add_id("stripe_customer_id", id_at(object, "customer"));
    if let Some(subscription) = id_at(object, "subscription") {
        out.set_field("stripe_subscription_id", subscription);
    }
    // What the buyer ticked when the session collected promotional consent.
    match text(object, "consent.promotions") {
        Some("opt_in") => out.contact.subscribed = Some(true),
        Some("opt_out") => out.contact.subscribed = Some(false),
        _ => {}
    }
    out.set_event_field("stripe_checkout_session_id", id);
    out.event_field("stripe_amount_total", object.get("amount_total"));
    out.event_field("stripe_currency", object.get("currency"));
    out.event_field("stripe_mode", object.get("mode"));
    out.event_field("stripe_payment_status", object.get("payment_status"));
    out.event_field(
        "stripe_client_reference_id",
        object.get("client_reference_id"),
    );
    if let Some(invoice) = id_at(object, "invoice") {
        out.set_event_field("stripe_invoice_id", invoice);
    }
    Ok(())
}

/// `customer.subscription.*`: no email, only the customer id.
fn subscription(
    out: &mut NormalizedEvent,
    body: &Value,
    object: &Value,
) -> Result<(), NormalizeError> {
    let customer = id_at(object, "customer")
        .ok_or_else(|| shape("a subscription event without `data.object.customer`"))?;
    let id = id_at(object, "id").ok_or_else(|| shape("a subscription without `id`"))?;
    out.add_id("stripe_customer_id", Some(customer));
    out.set_field("stripe_subscription_id", id);
    out.field("stripe_subscription_status", object.get("status"));
    out.field(
        "stripe_cancel_at_period_end",
        object.get("cancel_at_period_end"),
    );
    // Only the first item is described: hookgate tracks one plan per customer.
    if let Some(price) = id_at(object, "items.data.0.price") {
        out.set_field("stripe_price_id", price);
    }
    if let Some(product) = id_at(object, "items.data.0.price.product") {
        out.set_field("stripe_product_id", product);
    }
    // The period moved from the subscription onto its items in API version 2025-03-31.basil.
    let period_end = lookup(object, "items.data.0.current_period_end")
        .and_then(secs_to_ms)
        .or_else(|| object.get("current_period_end").and_then(secs_to_ms));
    if let Some(ms) = period_end {
        out.set_field("stripe_current_period_end", ms);
    }
    for (key, path) in [
        ("stripe_cancel_at", "cancel_at"),
        ("stripe_canceled_at", "canceled_at"),
        ("stripe_trial_end", "trial_end"),
    ] {
        if let Some(ms) = object.get(path).and_then(secs_to_ms) {
            out.set_event_field(key, ms);
        }
    }
    out.event_field(
        "stripe_cancellation_reason",
        lookup(object, "cancellation_details.reason"),
    );
    out.event_field(
        "stripe_previous_status",
        lookup(body, "data.previous_attributes.status"),
    );
    Ok(())
}

/// `invoice.*`: the invoice's `customer_email` is a copy taken when the invoice was finalized,
/// so a late or retried `invoice.paid` can carry an address the customer has since changed.
/// With a customer id it is only a fallback: the customer's linked contact wins.
fn invoice(out: &mut NormalizedEvent, object: &Value) -> Result<(), NormalizeError> {
    let id = id_at(object, "id").ok_or_else(|| shape("an invoice without `id`"))?;
    out.set_email(text(object, "customer_email"));
    let customer = id_at(object, "customer");
    out.identity.email_is_fallback = customer.is_some() && out.identity.email.is_some();
    out.add_id("stripe_customer_id", customer);
    // Current API versions nest the subscription under `parent`; older ones have it on top.
    let subscription = id_at(object, "parent.subscription_details.subscription")
        .or_else(|| id_at(object, "subscription"));
    if let Some(subscription) = subscription {
        out.set_field("stripe_subscription_id", subscription);
    }
    out.set_event_field("stripe_invoice_id", id);
    out.event_field("stripe_invoice_number", object.get("number"));
    out.event_field("stripe_invoice_status", object.get("status"));
    out.event_field("stripe_amount_due", object.get("amount_due"));
    out.event_field("stripe_amount_paid", object.get("amount_paid"));
    out.event_field("stripe_currency", object.get("currency"));
    out.event_field("stripe_billing_reason", object.get("billing_reason"));
    out.event_field("stripe_attempt_count", object.get("attempt_count"));
    out.event_field(
        "stripe_hosted_invoice_url",
        object.get("hosted_invoice_url"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testkit::{normalize, normalize_one};
    use crate::{NormalizeContext, NormalizeError, ProviderId};

    const STRIPE: ProviderId = ProviderId::Stripe;
    const CUSTOMER: &str = "cus_TEx8pQ2mZrV4aB";

    fn customer_id() -> (String, String) {
        ("stripe_customer_id".to_owned(), CUSTOMER.to_owned())
    }

    #[test]
    fn customer_events_give_email_name_and_id() {
        let e = normalize_one(STRIPE, &[], "customer.updated.json");
        assert_eq!(e.event_id, "evt_1SKD8pKx4nR7tPqZr3Tw6YhC");
        assert_eq!(e.identity.email.as_deref(), Some("jenny.rosen@example.com"));
        assert_eq!(e.identity.ids, vec![customer_id()]);
        assert_eq!(e.contact.first_name.as_deref(), Some("Jenny"));
        assert_eq!(e.contact.last_name.as_deref(), Some("Rosen-Park"));
        assert_eq!(e.contact.fields["stripe_customer_id"], json!(CUSTOMER));
        assert_eq!(e.occurred_at_ms, Some(1_760_978_405_000));
        let deleted = normalize_one(STRIPE, &[], "customer.deleted.json");
        assert_eq!(deleted.contact.fields["stripe_deleted"], json!(true));
    }

    #[test]
    fn subscription_events_have_no_email_but_the_customer_id() {
        for name in [
            "customer.subscription.created.json",
            "customer.subscription.updated.json",
            "customer.subscription.deleted.json",
        ] {
            let e = normalize_one(STRIPE, &[], name);
            assert_eq!(e.identity.email, None, "{name}");
            assert_eq!(e.identity.ids, vec![customer_id()], "{name}");
            let f = &e.contact.fields;
            assert_eq!(
                f["stripe_subscription_id"],
                json!("sub_1SIb3fKx4nR7tPqZyH6kLm2N")
            );
            assert_eq!(
                f["stripe_price_id"],
                json!("price_1S8uVwKx4nR7tPqZ3aBcDeFg")
            );
            assert_eq!(f["stripe_product_id"], json!("prod_T4vWxYz1AbCdEf"));
            assert_eq!(f["stripe_cancel_at_period_end"], json!(false));
        }
        let updated = normalize_one(STRIPE, &[], "customer.subscription.updated.json");
        assert_eq!(
            updated.contact.fields["stripe_subscription_status"],
            json!("past_due")
        );
        assert_eq!(
            updated.contact.fields["stripe_current_period_end"],
            json!(1_765_703_553_000_i64)
        );
        assert_eq!(
            updated.event_fields["stripe_previous_status"],
            json!("active")
        );
    }

    #[test]
    fn checkout_uses_customer_details_not_customer_email() {
        let e = normalize_one(STRIPE, &[], "checkout.session.completed.json");
        assert_eq!(e.identity.email.as_deref(), Some("jenny.rosen@example.com"));
        assert!(
            !e.identity.email_is_fallback,
            "the buyer typed this address"
        );
        assert_eq!(
            e.contact.subscribed,
            Some(true),
            "consent.promotions opt_in"
        );
        assert_eq!(e.contact.first_name.as_deref(), Some("Jenny"));
        assert_eq!(e.contact.last_name.as_deref(), Some("Rosen"));
        assert_eq!(e.event_fields["stripe_amount_total"], json!(2900));
    }

    #[test]
    fn checkout_consent_sets_subscribed() {
        for (promotions, expected) in [
            (json!("opt_in"), Some(true)),
            (json!("opt_out"), Some(false)),
            (json!(null), None),
        ] {
            let body = json!({
                "id": "evt_c", "type": "checkout.session.completed", "created": 1,
                "data": {"object": {
                    "id": "cs_1", "customer": "cus_1",
                    "customer_details": {"email": "a@example.com"},
                    "consent": {"promotions": promotions, "terms_of_service": null}
                }}
            });
            let events = normalize(
                STRIPE,
                &[],
                body.to_string().as_bytes(),
                &NormalizeContext::default(),
            )
            .expect("normalizes");
            assert_eq!(events[0].contact.subscribed, expected, "{promotions}");
        }
    }

    #[test]
    fn customer_events_write_the_deleted_flag_both_ways() {
        for (name, deleted) in [
            ("customer.created.json", false),
            ("customer.updated.json", false),
            ("customer.deleted.json", true),
        ] {
            let e = normalize_one(STRIPE, &[], name);
            assert_eq!(e.contact.fields["stripe_deleted"], json!(deleted), "{name}");
        }
    }

    #[test]
    fn invoices_give_email_customer_and_amounts() {
        let e = normalize_one(STRIPE, &[], "invoice.payment_failed.json");
        assert_eq!(e.identity.email.as_deref(), Some("jenny.rosen@example.com"));
        assert!(
            e.identity.email_is_fallback,
            "an invoice's customer_email is a frozen copy"
        );
        assert_eq!(e.identity.ids, vec![customer_id()]);
        assert_eq!(
            e.contact.fields["stripe_subscription_id"],
            json!("sub_1SIb3fKx4nR7tPqZyH6kLm2N")
        );
        assert_eq!(e.event_fields["stripe_amount_paid"], json!(0));
        assert_eq!(
            e.event_fields["stripe_invoice_id"],
            json!("in_1SThR2Kx4nR7tPqZ9kLp4MnB")
        );
    }

    #[test]
    fn older_api_versions_and_expanded_objects() {
        let body = json!({
            "id": "evt_old", "type": "customer.subscription.updated", "created": 1,
            "data": {"object": {
                "id": "sub_1", "customer": {"id": "cus_1", "object": "customer"},
                "status": "active", "current_period_end": 2,
                "items": {"data": [{"price": {"id": "price_1", "product": {"id": "prod_1"}}}]}
            }}
        });
        let events = normalize(
            STRIPE,
            &[],
            body.to_string().as_bytes(),
            &NormalizeContext::default(),
        )
        .expect("normalizes");
        let f = &events[0].contact.fields;
        assert_eq!(f["stripe_customer_id"], json!("cus_1"));
        assert_eq!(f["stripe_product_id"], json!("prod_1"));
        assert_eq!(f["stripe_current_period_end"], json!(2000));
    }

    #[test]
    fn missing_essentials_and_unmapped_types_are_errors() {
        let run = |body: serde_json::Value| {
            normalize(
                STRIPE,
                &[],
                body.to_string().as_bytes(),
                &NormalizeContext::default(),
            )
        };
        assert!(matches!(
            run(
                json!({"id": "evt", "type": "customer.created", "data": {"object": {"email": "a@example.com"}}})
            ),
            Err(NormalizeError::UnexpectedShape(_))
        ));
        assert!(matches!(
            run(
                json!({"id": "evt", "type": "customer.subscription.created", "data": {"object": {"id": "sub_1"}}})
            ),
            Err(NormalizeError::UnexpectedShape(_))
        ));
        assert!(matches!(
            run(json!({"id": "evt", "type": "invoice.paid", "data": []})),
            Err(NormalizeError::UnexpectedShape(_))
        ));
        assert_eq!(
            run(json!({"id": "evt", "type": "charge.succeeded", "data": {"object": {}}})),
            Err(NormalizeError::Unsupported("charge.succeeded".into()))
        );
        assert!(matches!(
            run(json!({"id": "evt", "object": "v2.core.event", "type": "customer.created"})),
            Err(NormalizeError::Unsupported(_))
        ));
    }
}
