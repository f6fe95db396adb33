//! Standard Webhooks (v1, symmetric) signing of outbound deliveries.
//!
//! Headers: `webhook-id` (the event's message id), `webhook-timestamp` (Unix seconds of this
//! attempt) and `webhook-signature`: one space-separated `v1,<base64>` entry per active secret,
//! each an HMAC-SHA256 of `<id>.<timestamp>.<body>` keyed by the base64-decoded part of the
//! secret after `whsec_`. The HMAC itself is the providers crate's inbound Standard Webhooks
//! scheme (the same code that verifies Clerk and Stytch), so signing and verifying cannot drift.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hookgate_providers::scheme::standard_webhooks;
use hookgate_providers::Secret;
use rand::RngCore as _;

/// The prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a text is not a usable endpoint secret (never quotes the text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointSecretError {
    #[error("must start with `whsec_` followed by base64 of the key")]
    NoPrefix,
    #[error("the part after `whsec_` is not base64")]
    NotBase64,
    #[error("the key must be between 24 and 64 bytes; it decodes to {0} bytes")]
    Length(usize),
}

/// Checks that `text` is `whsec_` + base64 of a 24..=64 byte key (the range the Standard
/// Webhooks libraries accept).
///
/// # Errors
/// What is wrong with it.
pub fn check_secret(text: &str) -> Result<(), EndpointSecretError> {
    let Some(b64) = text.strip_prefix(SECRET_PREFIX) else {
        return Err(EndpointSecretError::NoPrefix);
    };
    let key = STANDARD
        .decode(b64)
        .map_err(|_| EndpointSecretError::NotBase64)?;
    if !(24..=64).contains(&key.len()) {
        return Err(EndpointSecretError::Length(key.len()));
    }
    Ok(())
}

/// A fresh secret: 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The three headers of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

impl SignatureHeaders {
    /// `request` with the three headers added.
    pub fn apply(self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request
            .header("webhook-id", self.id)
            .header("webhook-timestamp", self.timestamp)
            .header("webhook-signature", self.signature)
    }
}

/// Signs `body` for `msg_id` at `timestamp_secs` with every secret in `secrets` (unusable
/// secrets are skipped; they were refused when saved).
pub fn sign(
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
    secrets: &[String],
) -> SignatureHeaders {
    let entries: Vec<String> = secrets
        .iter()
        .filter_map(|s| signature_entry(msg_id, timestamp_secs, body, s))
        .collect();
    SignatureHeaders {
        id: msg_id.to_owned(),
        timestamp: timestamp_secs.to_string(),
        signature: entries.join(" "),
    }
}

/// One `v1,<base64>` entry, computed by the providers crate's scheme.
fn signature_entry(msg_id: &str, timestamp_secs: i64, body: &[u8], secret: &str) -> Option<String> {
    let signed = standard_webhooks::sign(
        body,
        &Secret::new(secret),
        msg_id,
        timestamp_secs.saturating_mul(1000),
    )
    .ok()?;
    signed
        .headers
        .into_iter()
        .find(|(name, _)| name.as_str() == "svix-signature")
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The signing test vector of the Standard Webhooks reference libraries
    // (standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py,
    // `test_sign_function`; the other libraries' tests use the same values).
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_PAYLOAD: &str = r#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_published_vector() {
        let h = sign(
            VECTOR_MSG_ID,
            VECTOR_TIMESTAMP,
            VECTOR_PAYLOAD.as_bytes(),
            &[VECTOR_SECRET.to_owned()],
        );
        assert_eq!(h.signature, VECTOR_SIGNATURE);
        assert_eq!(h.id, VECTOR_MSG_ID);
        assert_eq!(h.timestamp, "1614265330");
    }

    #[test]
    fn one_entry_per_secret_and_each_verifies() {
        let other = generate_secret();
        let secrets = [VECTOR_SECRET.to_owned(), other.clone()];
        let h = sign(VECTOR_MSG_ID, VECTOR_TIMESTAMP, b"{}", &secrets);
        let entries: Vec<&str> = h.signature.split(' ').collect();
        assert_eq!(entries.len(), 2, "{}", h.signature);
        assert!(entries.iter().all(|e| e.starts_with("v1,")));
        // The inbound verifier accepts the delivery with either secret alone.
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", h.id.parse().expect("id"));
        headers.insert("webhook-timestamp", h.timestamp.parse().expect("ts"));
        headers.insert("webhook-signature", h.signature.parse().expect("sig"));
        for secret in &secrets {
            let request = hookgate_providers::Request {
                headers: &headers,
                body: b"{}",
                query: None,
            };
            standard_webhooks::verify(
                &request,
                &[Secret::new(secret.clone())],
                VECTOR_TIMESTAMP * 1000,
                300,
            )
            .expect("verifies");
        }
        // A different body does not.
        let request = hookgate_providers::Request {
            headers: &headers,
            body: b"{ }",
            query: None,
        };
        assert!(standard_webhooks::verify(
            &request,
            &[Secret::new(other)],
            VECTOR_TIMESTAMP * 1000,
            300
        )
        .is_err());
    }

    #[test]
    fn secret_format() {
        assert_eq!(check_secret(VECTOR_SECRET), Ok(()));
        assert_eq!(check_secret(&generate_secret()), Ok(()));
        assert_eq!(
            check_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(EndpointSecretError::NoPrefix)
        );
        assert_eq!(
            check_secret("whsec_not*base64"),
            Err(EndpointSecretError::NotBase64)
        );
        assert_eq!(
            check_secret("whsec_c2hvcnQ="),
            Err(EndpointSecretError::Length(5))
        );
    }
}
