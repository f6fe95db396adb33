//! Clerk (<https://clerk.com/docs/webhooks/overview>).
//!
//! - Signature: Clerk sends through Svix, so this is the Standard Webhooks scheme
//!   ([`crate::scheme::standard_webhooks`]): `svix-id`, `svix-timestamp`, `svix-signature`
//!   (`webhook-*` accepted too), key = base64 after `whsec_`.
//! - Tolerance: 300 s in both directions (the Svix libraries).
//! - Event id: the `svix-id` header (`msg_…`, the same when Svix re-sends a message); the body has
//!   no event id (`data.id` is the object's id). Event type: body `type`.
//! - Retries (Svix): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, then failed.
//! - Quirks: `user.deleted` and `session.*` carry no email, only the user id.
//!
//! Normalizing:
//! - Mapped types: `user.created`, `user.updated`, `user.deleted`, `session.created`,
//!   `organization.created`, `organizationMembership.created`. `occurred_at_ms` is the body's
//!   `timestamp` (already Unix ms).
//! - Email: for `user.*`, the entry of `data.email_addresses[]` whose `id` is
//!   `data.primary_email_address_id` (else the first entry); for memberships,
//!   `data.public_user_data.identifier` only when it contains `@` (it can be a phone number or a
//!   username). `user.deleted`, `session.created` and `organization.created` have none and
//!   resolve by `clerk_user_id`.
//! - Identity: `clerk_user_id` = `data.id` (user.*), `data.user_id` (session),
//!   `data.public_user_data.user_id` (membership), `data.created_by` (organization: the creator).
//! - Contact fields: `clerk_user_id`, `clerk_username`, `clerk_external_id`,
//!   `clerk_email_verified`, `clerk_created_at`, `clerk_last_sign_in_at` (Unix ms),
//!   `clerk_deleted` (`true` on user.deleted).
//! - Fire-only fields: `clerk_session_id`, `clerk_ip_address`, `clerk_organization_id`,
//!   `clerk_organization_name`, `clerk_organization_slug`, `clerk_role`, `clerk_membership_id`.

use serde_json::Value;

use crate::normalize::{id_at, lookup, mapped_meta, parse, shape, text};
use crate::Signing;
use crate::{
    as_object, str_field, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, Provider, ProviderId, Verified,
};

/// Event types hookgate maps.
pub const MAPPED: &[&str] = &[
    "user.created",
    "user.updated",
    "user.deleted",
    "session.created",
    "organization.created",
    "organizationMembership.created",
];

pub struct Clerk;

impl Provider for Clerk {
    fn id(&self) -> ProviderId {
        ProviderId::Clerk
    }

    fn signing(&self) -> Signing {
        Signing::StandardWebhooks
    }

    fn identify_parsed(
        &self,
        event: &Verified<'_>,
        body: &serde_json::Value,
    ) -> Result<EventMeta, IdentifyError> {
        let body = as_object(body)?;
        let event_type =
            str_field(body, "type").ok_or(IdentifyError::UnexpectedShape("no event `type`"))?;
        Ok(EventMeta {
            event_id: svix_id(event)?,
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
        let data = body
            .get("data")
            .filter(|d| d.is_object())
            .ok_or_else(|| shape("no `data` object"))?;
        let mut out = NormalizedEvent::from_meta(meta);
        out.occurred_at_ms = body.get("timestamp").and_then(Value::as_i64);
        let event_type = out.event_type.clone();
        match event_type.as_str() {
            "user.created" | "user.updated" => user(&mut out, data)?,
            "user.deleted" => {
                let id =
                    id_at(data, "id").ok_or_else(|| shape("user.deleted without `data.id`"))?;
                out.add_id("clerk_user_id", Some(id));
                out.set_field("clerk_deleted", true);
                out.field("clerk_external_id", data.get("external_id"));
            }
            "session.created" => {
                let user = id_at(data, "user_id")
                    .ok_or_else(|| shape("a session without `data.user_id`"))?;
                out.add_id("clerk_user_id", Some(user));
                out.event_field("clerk_session_id", data.get("id"));
                // The request that created the session, else the session's own activity record.
                let ip = lookup(&body, "event_attributes.http_request.client_ip")
                    .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                    .or_else(|| lookup(data, "latest_activity.ip_address"));
                out.event_field("clerk_ip_address", ip);
            }
            "organization.created" => {
                let id =
                    id_at(data, "id").ok_or_else(|| shape("an organization without `data.id`"))?;
                // No member is named yet; the creator is the contact this event is about.
                out.add_id("clerk_user_id", id_at(data, "created_by"));
                out.set_event_field("clerk_organization_id", id);
                out.event_field("clerk_organization_name", data.get("name"));
                out.event_field("clerk_organization_slug", data.get("slug"));
            }
            "organizationMembership.created" => membership(&mut out, data)?,
            other => return Err(NormalizeError::Unsupported(other.to_owned())),
        }
        Ok(vec![out])
    }
}

/// `user.created` / `user.updated`: `data` is the whole User object.
fn user(out: &mut NormalizedEvent, data: &Value) -> Result<(), NormalizeError> {
    let id = id_at(data, "id").ok_or_else(|| shape("a user event without `data.id`"))?;
    out.add_id("clerk_user_id", Some(id));
    let addresses = data
        .get("email_addresses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // The primary address is named by id, not by position: after a change it can be any entry.
    let primary = text(data, "primary_email_address_id");
    let chosen = addresses
        .iter()
        .find(|a| primary.is_some() && text(a, "id") == primary)
        .or_else(|| addresses.first());
    if let Some(address) = chosen {
        out.set_email(text(address, "email_address"));
        if let Some(status) = text(address, "verification.status") {
            out.set_field("clerk_email_verified", status == "verified");
        }
    }
    out.set_name(text(data, "first_name"), text(data, "last_name"));
    out.field("clerk_username", data.get("username"));
    out.field("clerk_external_id", data.get("external_id"));
    out.field("clerk_created_at", data.get("created_at"));
    out.field("clerk_last_sign_in_at", data.get("last_sign_in_at"));
    Ok(())
}

/// `organizationMembership.created`: the member is described by `public_user_data`.
fn membership(out: &mut NormalizedEvent, data: &Value) -> Result<(), NormalizeError> {
    let user = id_at(data, "public_user_data.user_id")
        .ok_or_else(|| shape("a membership without `data.public_user_data.user_id`"))?;
    out.add_id("clerk_user_id", Some(user));
    // The identifier is whatever the user signs in with: only an email if it looks like one.
    out.set_email(text(data, "public_user_data.identifier").filter(|i| i.contains('@')));
    out.set_name(
        text(data, "public_user_data.first_name"),
        text(data, "public_user_data.last_name"),
    );
    out.event_field("clerk_membership_id", data.get("id"));
    out.event_field("clerk_organization_id", lookup(data, "organization.id"));
    out.event_field("clerk_organization_name", lookup(data, "organization.name"));
    out.event_field("clerk_organization_slug", lookup(data, "organization.slug"));
    out.event_field("clerk_role", data.get("role"));
    Ok(())
}

/// The Svix message id of a verified delivery (`svix-id`, or `webhook-id` when unbranded).
pub(crate) fn svix_id(event: &Verified<'_>) -> Result<String, IdentifyError> {
    ["svix-id", "webhook-id"]
        .into_iter()
        .find_map(|name| crate::header_str(event.headers(), name))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or(IdentifyError::MissingHeader("svix-id"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;

    #[test]
    fn conformance() {
        let body = br#"{"data":{"id":"user_1"},"object":"event","type":"user.created"}"#;
        testkit::signed_provider_conformance(&Clerk, body, &SignOptions::default());
    }

    #[test]
    fn published_vectors() {
        testkit::published_vectors(ProviderId::Clerk);
    }

    #[test]
    fn unbranded_headers_and_other_versions() {
        let body = br#"{"type":"user.created"}"#;
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let now = 1_700_000_000_000;
        let signed = Clerk
            .sign(
                body,
                &secret,
                &SignOptions {
                    now_ms: now,
                    ..SignOptions::default()
                },
            )
            .expect("sign");
        let mut headers = http::HeaderMap::new();
        for (name, value) in &signed.headers {
            let name = name.as_str().replace("svix-", "webhook-");
            let value = if name == "webhook-signature" {
                format!("v1a,AAAA v2,{} {value}", &value[3..])
            } else {
                value.clone()
            };
            headers.insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
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
        let verified = Clerk.verify(&req, &[secret], &opts).expect("verifies");
        assert!(Clerk
            .identify(&verified)
            .expect("meta")
            .event_id
            .starts_with("msg_"));
    }

    fn svix(name: &str) -> [(&'static str, String); 1] {
        [("svix-id", format!("msg_{name}"))]
    }

    fn one(name: &str) -> NormalizedEvent {
        let [(k, v)] = svix(name);
        testkit::normalize_one(ProviderId::Clerk, &[(k, &v)], name)
    }

    #[test]
    fn primary_email_is_found_by_id_not_position() {
        let e = one("user.updated.json");
        // The fixture's primary address is the second entry.
        assert_eq!(
            e.identity.email.as_deref(),
            Some("maya@okafor-design.example.com")
        );
        assert_eq!(e.event_id, "msg_user.updated.json");
        assert_eq!(e.contact.last_name.as_deref(), Some("Okafor-Reyes"));
        assert_eq!(
            e.contact.fields["clerk_email_verified"],
            serde_json::json!(true)
        );
        assert_eq!(e.occurred_at_ms, Some(1_760_978_405_117));
        let body = br#"{"type":"user.created","data":{"id":"user_1","primary_email_address_id":"idn_missing","email_addresses":[{"id":"idn_a","email_address":"first@example.com"},{"id":"idn_b","email_address":"second@example.com"}]}}"#;
        let events = testkit::normalize(
            ProviderId::Clerk,
            &[("svix-id", "msg_1")],
            body,
            &NormalizeContext::default(),
        )
        .expect("normalizes");
        assert_eq!(
            events[0].identity.email.as_deref(),
            Some("first@example.com"),
            "falls back to the first entry"
        );
    }

    #[test]
    fn deletes_and_sessions_resolve_by_user_id() {
        let user = (
            "clerk_user_id".to_owned(),
            "user_2tK9mXq4Rz7Lp3Vw8Nb6Hc1YdJf".to_owned(),
        );
        for name in [
            "user.deleted.json",
            "session.created.json",
            "organization.created.json",
        ] {
            let e = one(name);
            assert_eq!(e.identity.email, None, "{name}");
            assert_eq!(e.identity.ids, vec![user.clone()], "{name}");
        }
        assert_eq!(
            one("user.deleted.json").contact.fields["clerk_deleted"],
            serde_json::json!(true)
        );
        let session = one("session.created.json");
        assert_eq!(
            session.event_fields["clerk_session_id"],
            serde_json::json!("sess_2tK9n1Hp6Wq3Xz8Rm4Lv7Cb2YdNs")
        );
    }

    #[test]
    fn membership_identifier_is_an_email_only_with_an_at_sign() {
        let e = one("organizationMembership.created.json");
        assert_eq!(e.identity.email.as_deref(), Some("maya.okafor@example.com"));
        assert_eq!(e.contact.first_name.as_deref(), Some("Maya"));
        let body = br#"{"type":"organizationMembership.created","data":{"id":"orgmem_1","public_user_data":{"identifier":"+15555550100","user_id":"user_1"}}}"#;
        let events = testkit::normalize(
            ProviderId::Clerk,
            &[("svix-id", "msg_2")],
            body,
            &NormalizeContext::default(),
        )
        .expect("normalizes");
        assert_eq!(events[0].identity.email, None);
        assert_eq!(events[0].identity.ids[0].1, "user_1");
    }

    #[test]
    fn unmapped_and_malformed_events() {
        let run = |body: &[u8]| {
            testkit::normalize(
                ProviderId::Clerk,
                &[("svix-id", "msg_3")],
                body,
                &NormalizeContext::default(),
            )
        };
        assert_eq!(
            run(br#"{"type":"email.created","data":{}}"#),
            Err(NormalizeError::Unsupported("email.created".into()))
        );
        assert!(matches!(
            run(br#"{"type":"user.created","data":{"email_addresses":[]}}"#),
            Err(NormalizeError::UnexpectedShape(_))
        ));
        assert!(matches!(
            run(br#"{"type":"session.created","data":"x"}"#),
            Err(NormalizeError::UnexpectedShape(_))
        ));
        assert!(matches!(
            testkit::normalize(
                ProviderId::Clerk,
                &[],
                br#"{"type":"user.created","data":{}}"#,
                &NormalizeContext::default()
            ),
            Err(NormalizeError::UnexpectedShape(_))
        ));
    }

    #[test]
    fn invalid_secret_is_reported() {
        assert_eq!(
            Clerk.check_secret(&Secret::new("whsec_not base64!"), None),
            Err(SecretError::NotBase64)
        );
        assert_eq!(
            Clerk.check_secret(&Secret::new("whsec_"), None),
            Err(SecretError::Empty)
        );
        assert!(Clerk
            .check_secret(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None)
            .is_ok());
    }
}
