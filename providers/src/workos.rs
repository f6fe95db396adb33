//! WorkOS (<https://workos.com/docs/events/data-syncing/webhooks>).
//!
//! - Signature: `WorkOS-Signature: t=<unix milliseconds>, v1=<hex>`, HMAC-SHA256 over
//!   `{t}.{raw body}` keyed by the secret's UTF-8 bytes.
//! - Tolerance: 180 s; like workos-go and workos-python, timestamps too far in the future are
//!   rejected too (workos-node checks only the past).
//! - Event id: body `id` (`event_01…`, legacy `wh_…`); event type: body `event` (not `type`).
//! - Retries: production retries with exponential backoff up to 12 times over 3 days; order is
//!   not guaranteed.
//! - Quirks: `session.created` may carry `data.impersonator.email`, the admin impersonating the
//!   user, which is never the contact's email.
//!
//! Normalizing:
//! - Mapped types: `user.created|updated|deleted`, `dsync.user.created|updated|deleted`,
//!   `authentication.*_succeeded`, `session.created`. `occurred_at_ms` is the envelope's
//!   `created_at` (RFC 3339), else `data.updated_at`.
//! - Email: `data.email`, else the `primary` entry of `data.emails[]` (directory users).
//!   `session.created` has none and resolves by `workos_user_id`; the impersonator's email is
//!   never read.
//! - Identity: `workos_user_id` = `data.id` (user.*) or `data.user_id` (authentication.*,
//!   session.created); `workos_directory_user_id` = `data.id` (dsync.user.*).
//! - Contact fields: the identity fields, `workos_email_verified`, `workos_external_id`,
//!   `workos_last_sign_in_at` (Unix ms), `workos_deleted` (user.deleted), `workos_directory_id`,
//!   `workos_organization_id`, `workos_state`, `workos_role`, `workos_job_title`.
//! - Fire-only fields: `workos_ip_address`, `workos_user_agent`, `workos_auth_type`
//!   (authentication.*), `workos_session_id`, `workos_auth_method`, `workos_impersonated`
//!   (session.created).

use serde_json::Value;

use crate::normalize::{flag, id_at, lookup, mapped_meta, parse, rfc3339_ms, shape, text};
use crate::scheme::timestamped_hmac::{Scheme, Unit};
use crate::Signing;
use crate::{
    as_object, str_field, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, Provider, ProviderId, Verified,
};

/// The WorkOS SDKs' tolerance (180 000 ms in workos-node, 180 s in go and python).
pub const DEFAULT_TOLERANCE_SECS: u64 = 180;

const SCHEME: Scheme = Scheme {
    header: "WorkOS-Signature",
    unit: Unit::Millis,
    reject_future: true,
    separator: ", ",
};

/// Whether hookgate maps this event type.
pub fn is_mapped(event_type: &str) -> bool {
    matches!(
        event_type,
        "user.created"
            | "user.updated"
            | "user.deleted"
            | "dsync.user.created"
            | "dsync.user.updated"
            | "dsync.user.deleted"
            | "session.created"
    ) || (event_type.starts_with("authentication.") && event_type.ends_with("_succeeded"))
}

pub struct Workos;

impl Provider for Workos {
    fn id(&self) -> ProviderId {
        ProviderId::Workos
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
            str_field(body, "event").ok_or(IdentifyError::UnexpectedShape("no `event` type"))?;
        Ok(EventMeta {
            event_id: id.to_owned(),
            event_type: event_type.to_owned(),
            mapped: is_mapped(event_type),
        })
    }

    fn normalize(
        &self,
        event: &Verified<'_>,
        _context: &NormalizeContext<'_>,
    ) -> Result<Vec<NormalizedEvent>, NormalizeError> {
        let body = parse(event)?;
        let meta = mapped_meta(self, event, &body)?;
        let data = body
            .get("data")
            .filter(|d| d.is_object())
            .ok_or_else(|| shape("no `data` object"))?;
        let mut out = NormalizedEvent::from_meta(meta);
        out.occurred_at_ms = text(&body, "created_at")
            .and_then(rfc3339_ms)
            .or_else(|| text(data, "updated_at").and_then(rfc3339_ms));
        let event_type = out.event_type.clone();
        match event_type.as_str() {
            "user.created" | "user.updated" | "user.deleted" => user(&mut out, data)?,
            "session.created" => session(&mut out, data)?,
            t if t.starts_with("dsync.user.") => directory_user(&mut out, data)?,
            t if t.starts_with("authentication.") => authentication(&mut out, data)?,
            other => return Err(NormalizeError::Unsupported(other.to_owned())),
        }
        Ok(vec![out])
    }
}

/// The contact's own email: `data.email`, else the primary of `data.emails[]`. Only these two
/// places are read, so an impersonator's address can never be taken for the user's.
fn email(data: &Value) -> Option<&str> {
    text(data, "email").or_else(|| {
        data.get("emails")?
            .as_array()?
            .iter()
            .find(|e| flag(e, "primary") == Some(true))
            .and_then(|e| text(e, "value"))
    })
}

/// `user.*`: the User object.
fn user(out: &mut NormalizedEvent, data: &Value) -> Result<(), NormalizeError> {
    let id = id_at(data, "id").ok_or_else(|| shape("a user event without `data.id`"))?;
    out.add_id("workos_user_id", Some(id));
    out.set_email(email(data));
    out.set_name(text(data, "first_name"), text(data, "last_name"));
    out.field("workos_email_verified", data.get("email_verified"));
    out.field("workos_external_id", data.get("external_id"));
    if let Some(ms) = text(data, "last_sign_in_at").and_then(rfc3339_ms) {
        out.set_field("workos_last_sign_in_at", ms);
    }
    if out.event_type == "user.deleted" {
        out.set_field("workos_deleted", true);
    }
    Ok(())
}

/// `dsync.user.*`: a Directory User, a different id space from User Management users.
fn directory_user(out: &mut NormalizedEvent, data: &Value) -> Result<(), NormalizeError> {
    let id = id_at(data, "id").ok_or_else(|| shape("a directory user without `data.id`"))?;
    out.add_id("workos_directory_user_id", Some(id));
    out.set_email(email(data));
    out.set_name(text(data, "first_name"), text(data, "last_name"));
    out.field("workos_directory_id", data.get("directory_id"));
    out.field("workos_organization_id", data.get("organization_id"));
    out.field("workos_state", data.get("state"));
    out.field("workos_role", lookup(data, "role.slug"));
    out.field("workos_job_title", data.get("job_title"));
    Ok(())
}

/// `authentication.*_succeeded`: who signed in, from where.
fn authentication(out: &mut NormalizedEvent, data: &Value) -> Result<(), NormalizeError> {
    let user = id_at(data, "user_id");
    let address = text(data, "email");
    if user.is_none() && address.is_none() {
        return Err(shape(
            "an authentication event without `user_id` or `email`",
        ));
    }
    out.set_email(address);
    out.add_id("workos_user_id", user);
    out.event_field("workos_auth_type", data.get("type"));
    out.event_field("workos_ip_address", data.get("ip_address"));
    out.event_field("workos_user_agent", data.get("user_agent"));
    Ok(())
}

/// `session.created`: only the user id identifies the contact. An impersonated session is
/// flagged, but the impersonator (an admin) is never the contact.
fn session(out: &mut NormalizedEvent, data: &Value) -> Result<(), NormalizeError> {
    let user = id_at(data, "user_id").ok_or_else(|| shape("a session without `data.user_id`"))?;
    out.add_id("workos_user_id", Some(user));
    out.field("workos_organization_id", data.get("organization_id"));
    out.event_field("workos_session_id", data.get("id"));
    out.event_field("workos_auth_method", data.get("auth_method"));
    out.event_field("workos_ip_address", data.get("ip_address"));
    out.event_field("workos_user_agent", data.get("user_agent"));
    let impersonated = data.get("impersonator").is_some_and(Value::is_object);
    out.set_event_field("workos_impersonated", impersonated);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;

    #[test]
    fn conformance() {
        let body = br#"{"id":"event_01","event":"user.created","data":{"email":"a@example.com"}}"#;
        testkit::signed_provider_conformance(&Workos, body, &SignOptions::default());
    }

    #[test]
    fn published_vectors() {
        testkit::published_vectors(ProviderId::Workos);
    }

    fn one(name: &str) -> NormalizedEvent {
        testkit::normalize_one(ProviderId::Workos, &[], name)
    }

    #[test]
    fn impersonated_session_never_takes_the_impersonator_email() {
        let e = one("session.created.json");
        assert_eq!(e.identity.email, None);
        assert_eq!(
            e.identity.ids,
            vec![(
                "workos_user_id".to_owned(),
                "user_01K7F3X9QZ2M8R4T6V1B5N0C7D".to_owned()
            )]
        );
        let text = serde_json::to_string(&e).expect("serialize");
        assert!(!text.contains("support.admin@example.org"), "{text}");
        assert!(!text.contains("Investigating"), "{text}");
        assert_eq!(
            e.event_fields["workos_impersonated"],
            serde_json::json!(true)
        );
        // Even a session whose only email anywhere is the impersonator's stays email-less.
        let body = br#"{"id":"event_1","event":"session.created","data":{"user_id":"user_1","impersonator":{"email":"admin@example.org"},"emails":[]}}"#;
        let events =
            testkit::normalize(ProviderId::Workos, &[], body, &NormalizeContext::default())
                .expect("normalizes");
        assert_eq!(events[0].identity.email, None);
    }

    #[test]
    fn users_and_directory_users() {
        let e = one("user.updated.json");
        assert_eq!(
            e.identity.email.as_deref(),
            Some("marcelina.davis@example.com")
        );
        assert_eq!(e.identity.ids[0].0, "workos_user_id");
        assert_eq!(e.contact.last_name.as_deref(), Some("Davis-Okoro"));
        assert_eq!(e.occurred_at_ms, Some(1_760_978_405_162));
        let d = one("dsync.user.updated.json");
        assert_eq!(d.identity.ids[0].0, "workos_directory_user_id");
        assert_eq!(d.contact.fields["workos_role"], serde_json::json!("admin"));
        assert_eq!(
            d.contact.fields["workos_state"],
            serde_json::json!("active")
        );
        // An older directory user with only `emails[]`: the primary entry, not the first.
        let body = br#"{"id":"event_2","event":"dsync.user.created","data":{"id":"directory_user_1","emails":[{"primary":false,"value":"home@example.net"},{"primary":true,"value":"work@example.com"}]}}"#;
        let events =
            testkit::normalize(ProviderId::Workos, &[], body, &NormalizeContext::default())
                .expect("normalizes");
        assert_eq!(
            events[0].identity.email.as_deref(),
            Some("work@example.com")
        );
        assert_eq!(events[0].occurred_at_ms, None);
    }

    #[test]
    fn authentication_events() {
        let e = one("authentication.password_succeeded.json");
        assert_eq!(
            e.identity.email.as_deref(),
            Some("marcelina.davis@example.com")
        );
        assert_eq!(e.identity.ids[0].1, "user_01K7F3X9QZ2M8R4T6V1B5N0C7D");
        assert_eq!(
            e.event_fields["workos_ip_address"],
            serde_json::json!("198.51.100.77")
        );
        let body = br#"{"id":"event_3","event":"authentication.password_failed","data":{}}"#;
        assert_eq!(
            testkit::normalize(ProviderId::Workos, &[], body, &NormalizeContext::default()),
            Err(NormalizeError::Unsupported(
                "authentication.password_failed".into()
            ))
        );
    }

    #[test]
    fn mapped_types() {
        assert!(is_mapped("authentication.password_succeeded"));
        assert!(is_mapped("dsync.user.deleted"));
        assert!(!is_mapped("authentication.password_failed"));
        assert!(!is_mapped("organization.created"));
    }
}
