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

use crate::scheme::standard_webhooks;
use crate::{
    json_object, str_field, AuthKind, AuthMode, EventMeta, IdentifyError, Provider, ProviderId,
    Request, Secret, SecretError, SignError, SignOptions, Signed, Verified, VerifyError,
    VerifyOptions,
};

pub struct Stytch;

impl Provider for Stytch {
    fn id(&self) -> ProviderId {
        ProviderId::Stytch
    }

    fn auth_kind(&self) -> AuthKind {
        AuthKind::Signature
    }

    fn default_tolerance_secs(&self) -> Option<u64> {
        Some(standard_webhooks::DEFAULT_TOLERANCE_SECS)
    }

    fn check_secret(&self, secret: &Secret, _auth: Option<&AuthMode>) -> Result<(), SecretError> {
        standard_webhooks::decode_secret(secret).map(|_| ())
    }

    fn verify<'a>(
        &self,
        request: &Request<'a>,
        secrets: &[Secret],
        options: &VerifyOptions<'_>,
    ) -> Result<Verified<'a>, VerifyError> {
        let tolerance = options
            .tolerance_secs
            .unwrap_or(standard_webhooks::DEFAULT_TOLERANCE_SECS);
        standard_webhooks::verify(request, secrets, options.now_ms, tolerance)?;
        Ok(Verified::new(ProviderId::Stytch, request))
    }

    fn identify(&self, event: &Verified<'_>) -> Result<EventMeta, IdentifyError> {
        let body = json_object(event.body())?;
        let part = |key: &'static str| {
            str_field(&body, key)
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

    fn sign(
        &self,
        body: &[u8],
        secret: &Secret,
        options: &SignOptions,
    ) -> Result<Signed, SignError> {
        let id = options
            .delivery_id
            .clone()
            .unwrap_or_else(|| crate::clerk::default_msg_id(body));
        Ok(standard_webhooks::sign(body, secret, &id, options.now_ms)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn conformance() {
        let body =
            br#"{"source":"DASHBOARD","object_type":"user","action":"CREATE","id":"user-test-1"}"#;
        testkit::signed_provider_conformance(
            &Stytch,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_c3R5dGNoLXJvdGF0ZWQ=",
            body,
            &SignOptions::default(),
        );
    }

    #[test]
    fn published_vectors() {
        testkit::published_vectors(ProviderId::Stytch);
    }

    #[test]
    fn type_is_derived_from_three_fields() {
        let mut headers = http::HeaderMap::new();
        headers.insert("svix-id", "msg_1".parse().expect("value"));
        let body = br#"{"source":"SCIM","object_type":"member","action":"UPDATE"}"#;
        let meta = Stytch
            .identify(&Verified::from_store(ProviderId::Stytch, &headers, body))
            .expect("meta");
        assert_eq!(meta.event_type, "scim.member.update");
        assert!(meta.mapped);
        let body = br#"{"source":"DIRECT","object_type":"organization","action":"CREATE"}"#;
        let meta = Stytch
            .identify(&Verified::from_store(ProviderId::Stytch, &headers, body))
            .expect("meta");
        assert!(!meta.mapped);
        let body = br#"{"source":"DIRECT","object_type":"user"}"#;
        assert!(Stytch
            .identify(&Verified::from_store(ProviderId::Stytch, &headers, body))
            .is_err());
    }
}
