//! A base64 HMAC-SHA256 of the raw body alone, keyed by the secret's bytes (Shopify).
//! Nothing else is signed: there is no timestamp, so there is no replay window.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{ct_eq, hmac_sha256};
use crate::{Secret, VerifyError};

/// Verifies `signature_b64` (the header's value) over `body` against any of `secrets`.
///
/// # Errors
/// `InvalidHeader(header)` when the value is not base64 of 32 bytes; `SignatureMismatch`.
pub fn verify(
    body: &[u8],
    signature_b64: &str,
    header: &'static str,
    secrets: &[Secret],
) -> Result<(), VerifyError> {
    let keys: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.expose().as_bytes())
        .filter(|k| !k.is_empty())
        .collect();
    if keys.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let given = STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| VerifyError::InvalidHeader(header))?;
    if given.len() != 32 {
        return Err(VerifyError::InvalidHeader(header));
    }
    if keys.iter().any(|k| ct_eq(&given, &hmac_sha256(k, &[body]))) {
        Ok(())
    } else {
        Err(VerifyError::SignatureMismatch)
    }
}

/// The header value for `body` under `secret`.
pub fn sign(body: &[u8], secret: &Secret) -> String {
    STANDARD.encode(hmac_sha256(secret.expose().as_bytes(), &[body]))
}
