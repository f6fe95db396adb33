//! Brevo (<https://developers.brevo.com/docs/transactional-webhooks>).
//!
//! - Authenticity: **unsigned**. Brevo offers a bearer token (`auth: {type: bearer}`), basic auth
//!   in the notify URL, custom headers, and published source ranges: configure a shared secret with
//!   `auth` (default `bearer`) and, ideally, `allow_ips = ["@brevo"]`.
//! - Event id: **none** (the body's `id` is the webhook's own id, the same for every event). The
//!   synthetic dedupe key is `sha256:<hex of the raw body>`; a retry carries the same body.
//! - Event type: the body's `event` (`delivered`, `hard_bounce`, `unsubscribed`, …). A batched
//!   webhook posts a JSON array of events; its ingest type is `batch` and the pipeline treats each
//!   element as its own event.
//! - Retries: only timeouts and HTTP 429 are retried ("4xx except 429 and any 5xx … discard the
//!   webhook"), so hookgate answers 429, never 503, when it cannot store a Brevo delivery.
//! - Quirks: older docs spell `hard_bounced`/`soft_bounced`; both spellings are mapped.

use crate::scheme::shared_secret;
use crate::{
    json_object, str_field, AuthKind, AuthMode, EventMeta, IdentifyError, Provider, ProviderId,
    Request, Secret, SecretError, SignError, SignOptions, Signed, Verified, VerifyError,
    VerifyOptions,
};

/// Event names hookgate maps.
pub const MAPPED: &[&str] = &[
    "delivered",
    "opened",
    "unique_opened",
    "click",
    "soft_bounce",
    "soft_bounced",
    "hard_bounce",
    "hard_bounced",
    "spam",
    "complaint",
    "unsubscribed",
    "blocked",
    "contact_updated",
    "list_addition",
    "contact_deleted",
];

/// The ingest event type of a batched (JSON array) delivery.
pub const BATCH_TYPE: &str = "batch";

pub struct Brevo;

impl Provider for Brevo {
    fn id(&self) -> ProviderId {
        ProviderId::Brevo
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
        Ok(Verified::new(ProviderId::Brevo, request))
    }

    fn identify(&self, event: &Verified<'_>) -> Result<EventMeta, IdentifyError> {
        let event_id = format!("sha256:{}", crate::body_digest(event.body()));
        let value: serde_json::Value = serde_json::from_slice(event.body())
            .map_err(|e| IdentifyError::InvalidJson(e.to_string()))?;
        if let serde_json::Value::Array(items) = value {
            if items.is_empty() {
                return Err(IdentifyError::UnexpectedShape("an empty batch"));
            }
            let mut mapped = false;
            for item in &items {
                let name = item.as_object().and_then(|o| str_field(o, "event")).ok_or(
                    IdentifyError::UnexpectedShape("a batch element has no `event`"),
                )?;
                mapped |= MAPPED.contains(&name);
            }
            return Ok(EventMeta {
                event_id,
                event_type: BATCH_TYPE.to_owned(),
                mapped,
            });
        }
        let body = json_object(event.body())?;
        let name = str_field(&body, "event").ok_or(IdentifyError::UnexpectedShape("no `event`"))?;
        Ok(EventMeta {
            event_id,
            event_type: name.to_owned(),
            mapped: MAPPED.contains(&name),
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
        let body =
            br#"{"event":"hard_bounce","email":"a@example.com","id":814119,"ts_event":1700000000}"#;
        testkit::shared_secret_conformance(&Brevo, body);
    }

    #[test]
    fn batches_and_single_events() {
        let headers = http::HeaderMap::new();
        let id = |b: &[u8]| Brevo.identify(&Verified::from_store(ProviderId::Brevo, &headers, b));
        let batch = br#"[{"event":"delivered","email":"a@example.com"},{"event":"opened","email":"b@example.com"}]"#;
        let meta = id(batch).expect("batch");
        assert_eq!(meta.event_type, BATCH_TYPE);
        assert!(meta.mapped);
        assert!(meta.event_id.starts_with("sha256:"));
        assert!(id(b"[]").is_err());
        assert!(id(br#"[{"email":"x"}]"#).is_err());
        assert!(
            !id(br#"{"event":"proxy_open","email":"a@example.com"}"#)
                .expect("meta")
                .mapped
        );
        assert!(id(br#"{"event":"hard_bounced"}"#).expect("meta").mapped);
    }
}
