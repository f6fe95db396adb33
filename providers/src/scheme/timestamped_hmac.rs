//! `t=<timestamp>,v1=<hex>` signature headers: Stripe (`Stripe-Signature`, seconds) and WorkOS
//! (`WorkOS-Signature`, milliseconds, items separated by `", "`).
//!
//! Signed bytes: the timestamp text exactly as sent, `.`, the raw body; HMAC-SHA256 keyed by the
//! secret's UTF-8 bytes as they are (Stripe's `whsec_` prefix is part of the key), lowercase hex.
//! Items are split on `,` and trimmed, so both separators parse; every `v1` item is a candidate
//! (Stripe sends several while a secret is rolled); other schemes (`v0`) are ignored.

use http::HeaderName;

use super::{check_timestamp, ct_eq, hmac_sha256, parse_timestamp};
use crate::{header_str, Request, Secret, Signed, VerifyError};

/// The unit of the signed timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
}

/// One provider's variant of the scheme.
#[derive(Debug, Clone, Copy)]
pub struct Scheme {
    /// The header name as the provider documents it (matched case-insensitively).
    pub header: &'static str,
    pub unit: Unit,
    /// Whether timestamps too far in the future are rejected (the provider SDK's behaviour).
    pub reject_future: bool,
    /// The separator the provider puts between items (`,` or `", "`), used by `sign`.
    pub separator: &'static str,
}

/// The parsed header: the timestamp text and every `v1` signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub timestamp: &'a str,
    pub signatures: Vec<Vec<u8>>,
}

impl Scheme {
    /// Parses the signature header.
    ///
    /// # Errors
    /// Missing header, no `t`, or no decodable `v1`.
    pub fn parse<'a>(&self, request: &Request<'a>) -> Result<Parsed<'a>, VerifyError> {
        if !request.headers.contains_key(self.header) {
            return Err(VerifyError::MissingHeader(self.header));
        }
        if request.headers.get_all(self.header).iter().count() > 1 {
            return Err(VerifyError::InvalidHeader(self.header));
        }
        let value = header_str(request.headers, self.header)
            .ok_or(VerifyError::InvalidHeader(self.header))?;
        parse_value(value).ok_or(VerifyError::InvalidHeader(self.header))
    }

    /// Verifies the request against any of `secrets`.
    ///
    /// # Errors
    /// The first failing check, in the order header → timestamp → signature.
    pub fn verify(
        &self,
        request: &Request<'_>,
        secrets: &[Secret],
        now_ms: i64,
        tolerance_secs: u64,
    ) -> Result<(), VerifyError> {
        let keys: Vec<&[u8]> = secrets
            .iter()
            .map(|s| s.expose().as_bytes())
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        let parsed = self.parse(request)?;
        let ts =
            parse_timestamp(parsed.timestamp).ok_or(VerifyError::InvalidHeader(self.header))?;
        let ts_ms = match self.unit {
            Unit::Seconds => ts.saturating_mul(1000),
            Unit::Millis => ts,
        };
        check_timestamp(ts_ms, now_ms, tolerance_secs, self.reject_future)?;
        for key in keys {
            let expected = hmac_sha256(key, &[parsed.timestamp.as_bytes(), b".", request.body]);
            if parsed.signatures.iter().any(|s| ct_eq(s, &expected)) {
                return Ok(());
            }
        }
        Err(VerifyError::SignatureMismatch)
    }

    /// Signs `body` as the provider would.
    pub fn sign(&self, body: &[u8], secret: &Secret, now_ms: i64) -> Signed {
        let ts = match self.unit {
            Unit::Seconds => now_ms.div_euclid(1000),
            Unit::Millis => now_ms,
        }
        .to_string();
        let mac = hmac_sha256(secret.expose().as_bytes(), &[ts.as_bytes(), b".", body]);
        let value = format!("t={ts}{}v1={}", self.separator, hex::encode(mac));
        Signed {
            headers: vec![(HeaderName::from_static(lower(self.header)), value)],
            query: None,
        }
    }
}

/// Header names are static and ASCII; `HeaderName::from_static` needs them lowercase.
fn lower(name: &'static str) -> &'static str {
    match name {
        "Stripe-Signature" => "stripe-signature",
        "WorkOS-Signature" => "workos-signature",
        other => other,
    }
}

/// Parses `t=..,v1=..[,v1=..][,v0=..]`; `None` when there is no `t` or no decodable `v1`.
pub fn parse_value(value: &str) -> Option<Parsed<'_>> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.trim().split_once('=') else {
            continue;
        };
        match key {
            "t" if timestamp.is_none() => timestamp = Some(val),
            "v1" => {
                if let Ok(bytes) = hex::decode(val) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Some(Parsed {
            timestamp,
            signatures,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stripe_and_workos_forms() {
        let p = parse_value("t=12,v1=00ff,v1=abcd,v0=zz").expect("parses");
        assert_eq!(p.timestamp, "12");
        assert_eq!(p.signatures, vec![vec![0, 255], vec![0xab, 0xcd]]);
        let p = parse_value("t=1700000000000, v1=0a").expect("parses");
        assert_eq!(p.timestamp, "1700000000000");
        assert!(parse_value("v1=0a").is_none());
        assert!(parse_value("t=1").is_none());
        assert!(parse_value("t=1,v1=nothex").is_none());
        assert!(parse_value("").is_none());
    }
}
