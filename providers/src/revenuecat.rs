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

use crate::scheme::shared_secret;
use crate::{
    json_object, str_field, AuthKind, AuthMode, EventMeta, IdentifyError, Provider, ProviderId,
    Request, Secret, SecretError, SignError, SignOptions, Signed, Verified, VerifyError,
    VerifyOptions,
};

/// Event types hookgate maps.
pub const MAPPED: &[&str] = &[
    "INITIAL_PURCHASE",
    "RENEWAL",
    "CANCELLATION",
    "UNCANCELLATION",
    "EXPIRATION",
    "BILLING_ISSUE",
    "PRODUCT_CHANGE",
    "TEST",
];

pub struct Revenuecat;

impl Provider for Revenuecat {
    fn id(&self) -> ProviderId {
        ProviderId::Revenuecat
    }

    fn auth_kind(&self) -> AuthKind {
        AuthKind::SharedSecret
    }

    fn default_tolerance_secs(&self) -> Option<u64> {
        None
    }

    fn check_secret(&self, secret: &Secret, auth: Option<&AuthMode>) -> Result<(), SecretError> {
        shared_secret::check_secret(secret, auth.unwrap_or(&AuthMode::Bearer))
    }

    fn verify<'a>(
        &self,
        request: &Request<'a>,
        secrets: &[Secret],
        options: &VerifyOptions<'_>,
    ) -> Result<Verified<'a>, VerifyError> {
        shared_secret::verify(request, secrets, options.auth.unwrap_or(&AuthMode::Bearer))?;
        Ok(Verified::new(ProviderId::Revenuecat, request))
    }

    fn identify(&self, event: &Verified<'_>) -> Result<EventMeta, IdentifyError> {
        let body = json_object(event.body())?;
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

    fn sign(
        &self,
        _body: &[u8],
        secret: &Secret,
        options: &SignOptions,
    ) -> Result<Signed, SignError> {
        let mode = options.auth.clone().unwrap_or(AuthMode::Bearer);
        shared_secret::check_secret(secret, &mode)?;
        Ok(shared_secret::sign(secret, &mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn conformance() {
        let body = br#"{"api_version":"1.0","event":{"id":"CD489E0E-5D52-4E03-966B-A7F17788E432","type":"RENEWAL","app_user_id":"u1"}}"#;
        testkit::shared_secret_conformance(&Revenuecat, body);
        let headers = http::HeaderMap::new();
        let meta = Revenuecat
            .identify(&Verified::from_store(
                ProviderId::Revenuecat,
                &headers,
                body,
            ))
            .expect("meta");
        assert_eq!(meta.event_id, "CD489E0E-5D52-4E03-966B-A7F17788E432");
        assert_eq!(meta.event_type, "RENEWAL");
        assert!(Revenuecat
            .identify(&Verified::from_store(
                ProviderId::Revenuecat,
                &headers,
                br#"{"event":{"type":"X"}}"#
            ))
            .is_err());
    }
}
