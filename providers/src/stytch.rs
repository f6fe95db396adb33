//! Stytch (<https://stytch.com/docs/workspace-management/webhooks>).
//!
//! - Signature: Stytch's webhooks are "powered through Svix": the Standard Webhooks scheme exactly
//!   as for Clerk (`svix-*` or `webhook-*` headers, key = base64 after `whsec_`, 300 s both ways).
//! - Event id: the `svix-id` header (the body's `event_id` is also unique, but the header is what
//!   Svix keeps stable across re-sends).
//! - Event type: no single body field; it is `lower(source).object_type.lower(action)`, built from
//!   the body's `source` (`DIRECT`, `DASHBOARD`, `SCIM`), `object_type` and `action`, for example
//!   `dashboard.user.create` or `scim.member.update`.
//! - Retries: the Svix schedule (about 27.5 h).
//! - Quirks: DELETE events carry only ids (`id` is the user or member id).
//!
//! Normalizing:
//! - Mapped types: `<source>.user.create|update|delete` and `<source>.member.create|update|delete`
//!   for every source (`direct`, `dashboard`, `scim`). `occurred_at_ms` is the body's
//!   `timestamp` (RFC 3339 with nanoseconds).
//! - Email: consumer `user.emails[]` (the first verified entry, else the first; Stytch has no
//!   primary flag), B2B `member.email_address`; none on deletes, which resolve by
//!   `stytch_user_id` / `stytch_member_id` (the body's `id`).
//! - Names: `user.name.first_name` / `last_name`; a member's single `name` split at the first
//!   space.
//! - Contact fields: `stytch_user_id` or `stytch_member_id` (identity), `stytch_status`,
//!   `stytch_email_verified`, `stytch_external_id`, `stytch_roles` (comma-joined role ids),
//!   `stytch_organization_id`, `stytch_is_admin` (members), `stytch_vertical`,
//!   `stytch_project_id`, `stytch_deleted` (deletes).
//! - Fire-only fields: `stytch_event_id` (the body's event id).

use serde_json::Value;

use crate::normalize::{
    flag, id_at, joined, mapped_meta, parse, rfc3339_ms, shape, split_name, text,
};
use crate::Signing;
use crate::{
    as_object, str_field, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, Provider, ProviderId, Verified,
};

pub struct Stytch;

impl Provider for Stytch {
    fn id(&self) -> ProviderId {
        ProviderId::Stytch
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
        let part = |key: &'static str| {
            str_field(body, key)
                .filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                .map(str::to_ascii_lowercase)
                .ok_or(IdentifyError::UnexpectedShape(
                    "`source`, `object_type` and `action` must be present",
                ))
        };
        let (source, object_type, action) =
            (part("source")?, part("object_type")?, part("action")?);
        let mapped = matches!(object_type.as_str(), "user" | "member")
            && matches!(action.as_str(), "create" | "update" | "delete");
        Ok(EventMeta {
            event_id: crate::clerk::svix_id(event)?,
            event_type: format!("{source}.{object_type}.{action}"),
            mapped,
        })
    }

    fn normalize(
        &self,
        event: &Verified<'_>,
        _context: &NormalizeContext<'_>,
    ) -> Result<Vec<NormalizedEvent>, NormalizeError> {
        let body = parse(event)?;
        let meta = mapped_meta(self, event, &body)?;
        let mut out = NormalizedEvent::from_meta(meta);
        out.occurred_at_ms = text(&body, "timestamp").and_then(rfc3339_ms);
        out.field("stytch_vertical", body.get("vertical"));
        out.field("stytch_project_id", body.get("project_id"));
        out.event_field("stytch_event_id", body.get("event_id"));
        // `identify` built the type from lower-cased parts, so these comparisons are exact.
        let event_type = out.event_type.clone();
        let mut parts = event_type.split('.').skip(1);
        match (parts.next(), parts.next()) {
            (Some("user"), Some("delete")) => deleted(&mut out, &body, "stytch_user_id")?,
            (Some("member"), Some("delete")) => deleted(&mut out, &body, "stytch_member_id")?,
            (Some("user"), _) => user(&mut out, &body)?,
            (Some("member"), _) => member(&mut out, &body)?,
            _ => return Err(NormalizeError::Unsupported(event_type)),
        }
        Ok(vec![out])
    }
}

/// `*.delete`: only the ids remain.
fn deleted(out: &mut NormalizedEvent, body: &Value, key: &str) -> Result<(), NormalizeError> {
    let id = id_at(body, "id").ok_or_else(|| shape("a delete event without `id`"))?;
    out.add_id(key, Some(id));
    out.set_field("stytch_deleted", true);
    Ok(())
}

/// Consumer `*.user.create|update`: the User object is under `user`.
fn user(out: &mut NormalizedEvent, body: &Value) -> Result<(), NormalizeError> {
    let user = body
        .get("user")
        .filter(|u| u.is_object())
        .ok_or_else(|| shape("a user event without a `user` object"))?;
    let id = id_at(user, "user_id")
        .or_else(|| id_at(body, "id"))
        .ok_or_else(|| shape("a user event without `user.user_id`"))?;
    out.add_id("stytch_user_id", Some(id));
    let emails = user
        .get("emails")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // No primary flag exists: a verified address is the safer choice, else the first one.
    let chosen = emails
        .iter()
        .find(|e| flag(e, "verified") == Some(true) && text(e, "email").is_some())
        .or_else(|| emails.first());
    if let Some(entry) = chosen {
        out.set_email(text(entry, "email"));
        out.field("stytch_email_verified", entry.get("verified"));
    }
    out.set_name(text(user, "name.first_name"), text(user, "name.last_name"));
    out.field("stytch_status", user.get("status"));
    out.field("stytch_external_id", user.get("external_id"));
    if let Some(roles) = user.get("roles").and_then(joined) {
        out.set_field("stytch_roles", roles);
    }
    Ok(())
}

/// B2B `*.member.create|update`: the Member object is under `member`.
fn member(out: &mut NormalizedEvent, body: &Value) -> Result<(), NormalizeError> {
    let member = body
        .get("member")
        .filter(|m| m.is_object())
        .ok_or_else(|| shape("a member event without a `member` object"))?;
    let id = id_at(member, "member_id")
        .or_else(|| id_at(body, "id"))
        .ok_or_else(|| shape("a member event without `member.member_id`"))?;
    out.add_id("stytch_member_id", Some(id));
    out.set_email(text(member, "email_address"));
    out.field(
        "stytch_email_verified",
        member.get("email_address_verified"),
    );
    let (first, last) = text(member, "name").map(split_name).unwrap_or_default();
    out.set_name(first.as_deref(), last.as_deref());
    out.field("stytch_status", member.get("status"));
    out.field("stytch_organization_id", member.get("organization_id"));
    out.field("stytch_external_id", member.get("external_id"));
    out.field("stytch_is_admin", member.get("is_admin"));
    let roles: Vec<&str> = member
        .get("roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| text(r, "role_id"))
        .collect();
    if !roles.is_empty() {
        out.set_field("stytch_roles", roles.join(","));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;

    #[test]
    fn conformance() {
        let body =
            br#"{"source":"DASHBOARD","object_type":"user","action":"CREATE","id":"user-test-1"}"#;
        testkit::signed_provider_conformance(&Stytch, body, &SignOptions::default());
    }

    #[test]
    fn published_vectors() {
        testkit::published_vectors(ProviderId::Stytch);
    }

    fn one(name: &str) -> NormalizedEvent {
        let id = format!("msg_{name}");
        testkit::normalize_one(ProviderId::Stytch, &[("svix-id", &id)], name)
    }

    #[test]
    fn users_prefer_a_verified_email() {
        let created = one("dashboard.user.create.json");
        // The only address is unverified: the first entry is still the email.
        assert_eq!(
            created.identity.email.as_deref(),
            Some("ada.lovelace@example.com")
        );
        assert_eq!(
            created.identity.ids,
            vec![(
                "stytch_user_id".to_owned(),
                "user-test-16d9ba61-97a1-4ba4-9720-b03761dc50c6".to_owned()
            )]
        );
        let updated = one("direct.user.update.json");
        assert_eq!(updated.contact.last_name.as_deref(), Some("King"));
        assert_eq!(updated.occurred_at_ms, Some(1_760_978_405_118));
        let body = br#"{"source":"DIRECT","object_type":"user","action":"UPDATE","id":"user-1","user":{"user_id":"user-1","emails":[{"email":"old@example.com","verified":false},{"email":"new@example.com","verified":true}]}}"#;
        let events = testkit::normalize(
            ProviderId::Stytch,
            &[("svix-id", "msg_1")],
            body,
            &NormalizeContext::default(),
        )
        .expect("normalizes");
        assert_eq!(events[0].identity.email.as_deref(), Some("new@example.com"));
    }

    #[test]
    fn members_split_their_name() {
        let e = one("dashboard.member.update.json");
        assert_eq!(
            e.identity.email.as_deref(),
            Some("grace.hopper@example.com")
        );
        assert_eq!(e.identity.ids[0].0, "stytch_member_id");
        assert_eq!(e.contact.first_name.as_deref(), Some("Grace"));
        assert_eq!(e.contact.last_name.as_deref(), Some("B. Hopper"));
        assert_eq!(
            e.contact.fields["stytch_roles"],
            serde_json::json!("stytch_member,stytch_admin")
        );
    }

    #[test]
    fn deletes_resolve_by_id() {
        for (name, key) in [
            ("direct.user.delete.json", "stytch_user_id"),
            ("direct.member.delete.json", "stytch_member_id"),
        ] {
            let e = one(name);
            assert_eq!(e.identity.email, None);
            assert_eq!(e.identity.ids.len(), 1);
            assert_eq!(e.identity.ids[0].0, key);
            assert_eq!(e.contact.fields["stytch_deleted"], serde_json::json!(true));
        }
        let body = br#"{"source":"DIRECT","object_type":"member","action":"CREATE","id":"m"}"#;
        assert!(matches!(
            testkit::normalize(
                ProviderId::Stytch,
                &[("svix-id", "msg_1")],
                body,
                &NormalizeContext::default()
            ),
            Err(NormalizeError::UnexpectedShape(_))
        ));
    }

    #[test]
    fn type_is_derived_from_three_fields() {
        let mut headers = http::HeaderMap::new();
        headers.insert("svix-id", "msg_1".parse().expect("value"));
        let body = br#"{"source":"SCIM","object_type":"member","action":"UPDATE"}"#;
        let meta = Stytch
            .identify(&Verified::skip_verification(
                ProviderId::Stytch,
                &headers,
                body,
            ))
            .expect("meta");
        assert_eq!(meta.event_type, "scim.member.update");
        assert!(meta.mapped);
        let body = br#"{"source":"DIRECT","object_type":"organization","action":"CREATE"}"#;
        let meta = Stytch
            .identify(&Verified::skip_verification(
                ProviderId::Stytch,
                &headers,
                body,
            ))
            .expect("meta");
        assert!(!meta.mapped);
        let body = br#"{"source":"DIRECT","object_type":"user"}"#;
        assert!(Stytch
            .identify(&Verified::skip_verification(
                ProviderId::Stytch,
                &headers,
                body
            ))
            .is_err());
    }
}
