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

use crate::scheme::timestamped_hmac::{Scheme, Unit};
use crate::{
    json_object, str_field, AuthKind, AuthMode, EventMeta, IdentifyError, Provider, ProviderId,
    Request, Secret, SecretError, SignError, SignOptions, Signed, Verified, VerifyError,
    VerifyOptions,
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

    fn auth_kind(&self) -> AuthKind {
        AuthKind::Signature
    }

    fn default_tolerance_secs(&self) -> Option<u64> {
        Some(DEFAULT_TOLERANCE_SECS)
    }

    fn check_secret(&self, secret: &Secret, _auth: Option<&AuthMode>) -> Result<(), SecretError> {
        if secret.expose().is_empty() {
            Err(SecretError::Empty)
        } else {
            Ok(())
        }
    }

    fn verify<'a>(
        &self,
        request: &Request<'a>,
        secrets: &[Secret],
        options: &VerifyOptions<'_>,
    ) -> Result<Verified<'a>, VerifyError> {
        let tolerance = options.tolerance_secs.unwrap_or(DEFAULT_TOLERANCE_SECS);
        SCHEME.verify(request, secrets, options.now_ms, tolerance)?;
        Ok(Verified::new(ProviderId::Workos, request))
    }

    fn identify(&self, event: &Verified<'_>) -> Result<EventMeta, IdentifyError> {
        let body = json_object(event.body())?;
        let id = str_field(&body, "id").ok_or(IdentifyError::UnexpectedShape("no event `id`"))?;
        let event_type =
            str_field(&body, "event").ok_or(IdentifyError::UnexpectedShape("no `event` type"))?;
        Ok(EventMeta {
            event_id: id.to_owned(),
            event_type: event_type.to_owned(),
            mapped: is_mapped(event_type),
        })
    }

    fn sign(
        &self,
        body: &[u8],
        secret: &Secret,
        options: &SignOptions,
    ) -> Result<Signed, SignError> {
        self.check_secret(secret, None)?;
        Ok(SCHEME.sign(body, secret, options.now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn conformance() {
        let body = br#"{"id":"event_01","event":"user.created","data":{"email":"a@example.com"}}"#;
        testkit::signed_provider_conformance(
            &Workos,
            "sk_workos_secret",
            "second_secret",
            body,
            &SignOptions::default(),
        );
    }

    #[test]
    fn published_vectors() {
        testkit::published_vectors(ProviderId::Workos);
    }

    #[test]
    fn mapped_types() {
        assert!(is_mapped("authentication.password_succeeded"));
        assert!(is_mapped("dsync.user.deleted"));
        assert!(!is_mapped("authentication.password_failed"));
        assert!(!is_mapped("organization.created"));
    }
}
