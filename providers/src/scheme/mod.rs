//! Signature schemes shared by several providers.
//!
//! - [`standard_webhooks`]: Svix / Standard Webhooks (Clerk, Stytch).
//! - [`timestamped_hmac`]: `t=<timestamp>,v1=<hex>` headers (Stripe in seconds, WorkOS in ms).
//! - [`hmac_body`]: a base64 HMAC of the body alone (Shopify).
//! - [`shared_secret`]: a static secret in a header or the query string (Supabase, RevenueCat,
//!   Brevo).
//!
//! Every comparison of a signature or a secret is constant-time ([`subtle`]); every scheme accepts
//! several secrets (rotation) and several signatures where its provider sends them.

pub mod hmac_body;
pub mod shared_secret;
pub mod standard_webhooks;
pub mod timestamped_hmac;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::VerifyError;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // `new_from_slice` accepts keys of every length for HMAC, so the error arm cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of every length")
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings (the length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks a signed timestamp (Unix ms) against `now_ms` and the tolerance.
/// `reject_future` follows the provider's SDK: Svix and WorkOS reject both directions, Stripe
/// only timestamps that are too old.
pub(crate) fn check_timestamp(
    signed_ms: i64,
    now_ms: i64,
    tolerance_secs: u64,
    reject_future: bool,
) -> Result<(), VerifyError> {
    let tolerance_ms = i64::try_from(tolerance_secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    if now_ms.saturating_sub(signed_ms) > tolerance_ms {
        return Err(VerifyError::TimestampTooOld { tolerance_secs });
    }
    if reject_future && signed_ms.saturating_sub(now_ms) > tolerance_ms {
        return Err(VerifyError::TimestampTooNew { tolerance_secs });
    }
    Ok(())
}

/// Parses a decimal timestamp: ASCII digits only, no sign, no spaces, at most 18 digits.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_window() {
        assert!(check_timestamp(1_000_000, 1_000_000, 300, true).is_ok());
        assert!(check_timestamp(1_000_000 - 300_000, 1_000_000, 300, true).is_ok());
        assert_eq!(
            check_timestamp(1_000_000 - 300_001, 1_000_000, 300, true),
            Err(VerifyError::TimestampTooOld {
                tolerance_secs: 300
            })
        );
        assert_eq!(
            check_timestamp(1_000_000 + 300_001, 1_000_000, 300, true),
            Err(VerifyError::TimestampTooNew {
                tolerance_secs: 300
            })
        );
        assert!(check_timestamp(1_000_000 + 900_000, 1_000_000, 300, false).is_ok());
        // Extreme values saturate instead of overflowing.
        assert!(check_timestamp(i64::MIN, 0, u64::MAX, true).is_err());
        assert!(check_timestamp(i64::MAX, i64::MIN, 1, true).is_err());
    }

    #[test]
    fn timestamps_parse_strictly() {
        assert_eq!(parse_timestamp("1614265330"), Some(1_614_265_330));
        for bad in [
            "",
            "-5",
            "+5",
            " 5",
            "5 ",
            "1e9",
            "0x10",
            "9999999999999999999",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
