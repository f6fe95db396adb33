//! The Svix / Standard Webhooks scheme (Clerk and Stytch deliver through Svix).
//!
//! Headers `svix-id`, `svix-timestamp` (Unix seconds) and `svix-signature`, or the unbranded
//! `webhook-id`, `webhook-timestamp` and `webhook-signature`. The signature header holds one or
//! more space-separated `<version>,<base64>` entries; only `v1` entries are compared and any other
//! version (for example asymmetric `v1a`) is skipped, as the Svix libraries do.
//! Signed bytes: `{id}.{timestamp}.{raw body}`, HMAC-SHA256 keyed by the base64-decoded secret
//! (an optional `whsec_` prefix is removed first). The timestamp must be within the tolerance in
//! both directions (Svix default 300 s).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderName;

use super::{check_timestamp, ct_eq, hmac_sha256, parse_timestamp};
use crate::{header_str, Request, Secret, SecretError, Signed, VerifyError};

/// The Svix libraries' default timestamp tolerance.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

/// The three headers a delivery carries, in whichever naming it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signature: &'a str,
}

/// Reads the `svix-*` headers, or the `webhook-*` ones when no `svix-id` is present.
///
/// # Errors
/// A missing header, named as the sender should have sent it.
pub fn headers<'a>(request: &Request<'a>) -> Result<Headers<'a>, VerifyError> {
    let (id, ts, sig) = if request.headers.contains_key("svix-id") {
        ("svix-id", "svix-timestamp", "svix-signature")
    } else if request.headers.contains_key("webhook-id") {
        ("webhook-id", "webhook-timestamp", "webhook-signature")
    } else {
        return Err(VerifyError::MissingHeader("svix-id"));
    };
    let get = |name: &'static str| {
        if !request.headers.contains_key(name) {
            return Err(VerifyError::MissingHeader(name));
        }
        // Svix sends each header once. Two copies are ambiguous (which one did the sender sign,
        // and which one would a proxy keep?), so they are refused rather than resolved by order.
        if request.headers.get_all(name).iter().count() > 1 {
            return Err(VerifyError::InvalidHeader(name));
        }
        header_str(request.headers, name).ok_or(VerifyError::InvalidHeader(name))
    };
    Ok(Headers {
        id: get(id)?,
        timestamp: get(ts)?,
        signature: get(sig)?,
    })
}

/// Decodes a `whsec_<base64>` (or bare base64) secret into key bytes.
///
/// # Errors
/// When the secret is empty or not base64.
pub fn decode_secret(secret: &Secret) -> Result<Vec<u8>, SecretError> {
    let text = secret.expose();
    let text = text.strip_prefix("whsec_").unwrap_or(text);
    if text.is_empty() {
        return Err(SecretError::Empty);
    }
    match STANDARD.decode(text) {
        Ok(key) if !key.is_empty() => Ok(key),
        Ok(_) => Err(SecretError::Empty),
        Err(_) => Err(SecretError::NotBase64),
    }
}

/// Verifies a Standard Webhooks delivery.
///
/// # Errors
/// The first failing check, in the order headers → timestamp → signature.
pub fn verify(
    request: &Request<'_>,
    secrets: &[Secret],
    now_ms: i64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    let keys: Vec<Vec<u8>> = secrets
        .iter()
        .filter_map(|s| decode_secret(s).ok())
        .collect();
    if keys.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let h = headers(request)?;
    let sig_name = if request.headers.contains_key("svix-id") {
        "svix-signature"
    } else {
        "webhook-signature"
    };
    let ts_name = if sig_name == "svix-signature" {
        "svix-timestamp"
    } else {
        "webhook-timestamp"
    };
    let ts = parse_timestamp(h.timestamp).ok_or(VerifyError::InvalidHeader(ts_name))?;
    let mut candidates = Vec::new();
    for entry in h.signature.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, sig)) = entry.split_once(',') else {
            continue;
        };
        if version != "v1" {
            continue;
        }
        if let Ok(bytes) = STANDARD.decode(sig) {
            candidates.push(bytes);
        }
    }
    if candidates.is_empty() {
        return Err(VerifyError::InvalidHeader(sig_name));
    }
    check_timestamp(ts.saturating_mul(1000), now_ms, tolerance_secs, true)?;
    for key in &keys {
        let expected = hmac_sha256(
            key,
            &[
                h.id.as_bytes(),
                b".",
                h.timestamp.as_bytes(),
                b".",
                request.body,
            ],
        );
        if candidates.iter().any(|c| ct_eq(c, &expected)) {
            return Ok(());
        }
    }
    Err(VerifyError::SignatureMismatch)
}

/// Signs `body` as Svix would, with `svix-*` header names.
///
/// # Errors
/// When the secret is not `whsec_` + base64.
pub fn sign(body: &[u8], secret: &Secret, id: &str, now_ms: i64) -> Result<Signed, SecretError> {
    let key = decode_secret(secret)?;
    let ts = (now_ms.div_euclid(1000)).to_string();
    let mac = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    Ok(Signed {
        headers: vec![
            (HeaderName::from_static("svix-id"), id.to_owned()),
            (HeaderName::from_static("svix-timestamp"), ts),
            (
                HeaderName::from_static("svix-signature"),
                format!("v1,{}", STANDARD.encode(mac)),
            ),
        ],
        query: None,
    })
}

/// A Svix-style message id derived from the body, so sending the same payload twice is a retry.
pub fn default_msg_id(body: &[u8]) -> String {
    format!("msg_{}", &crate::body_digest(body)[..27])
}
