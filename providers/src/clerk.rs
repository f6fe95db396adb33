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

use crate::scheme::standard_webhooks;
use crate::{
    json_object, str_field, AuthKind, AuthMode, EventMeta, IdentifyError, Provider, ProviderId,
    Request, Secret, SecretError, SignError, SignOptions, Signed, Verified, VerifyError,
    VerifyOptions,
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
        Ok(Verified::new(ProviderId::Clerk, request))
    }

    fn identify(&self, event: &Verified<'_>) -> Result<EventMeta, IdentifyError> {
        let body = json_object(event.body())?;
        let event_type =
            str_field(&body, "type").ok_or(IdentifyError::UnexpectedShape("no event `type`"))?;
        Ok(EventMeta {
            event_id: svix_id(event)?,
            event_type: event_type.to_owned(),
            mapped: MAPPED.contains(&event_type),
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
            .unwrap_or_else(|| default_msg_id(body));
        Ok(standard_webhooks::sign(body, secret, &id, options.now_ms)?)
    }
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

/// A Svix-style message id derived from the body, so re-sending a payload is a retry.
pub(crate) fn default_msg_id(body: &[u8]) -> String {
    format!("msg_{}", &crate::body_digest(body)[..27])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn conformance() {
        let body = br#"{"data":{"id":"user_1"},"object":"event","type":"user.created"}"#;
        testkit::signed_provider_conformance(
            &Clerk,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_dGVzdC1yb3RhdGVkLXNlY3JldA==",
            body,
            &SignOptions::default(),
        );
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
