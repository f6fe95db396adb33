//! A static shared secret (Supabase database webhooks, RevenueCat, Brevo: unsigned providers).
//!
//! The connection's `auth` mode says where the secret is presented: `bearer`
//! (`Authorization: Bearer <secret>`), `basic` (`Authorization: Basic base64(user:password)`, the
//! secret being `user:password`), `header:<Name>` (the whole header value) or `query:<param>`.
//! Comparison is constant-time over the bytes; a length difference is not hidden (the length of a
//! secret is not what protects it).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderName;

use super::ct_eq;
use crate::{header_str, AuthMode, Request, Secret, SecretError, Signed, VerifyError};

/// Verifies that the request presents one of `secrets` as `mode` says.
///
/// # Errors
/// `NoSecret` (fail closed), `MissingCredentials`, `CredentialsMismatch`.
pub fn verify(
    request: &Request<'_>,
    secrets: &[Secret],
    mode: &AuthMode,
) -> Result<(), VerifyError> {
    if secrets.iter().all(|s| s.expose().is_empty()) {
        return Err(VerifyError::NoSecret);
    }
    let presented: Vec<u8> = match mode {
        AuthMode::Bearer => {
            let value = authorization(request)?;
            match split_scheme(value, "bearer") {
                Some(token) => token.as_bytes().to_vec(),
                None => return Err(VerifyError::MissingCredentials("Authorization: Bearer")),
            }
        }
        AuthMode::Basic => {
            let value = authorization(request)?;
            let Some(encoded) = split_scheme(value, "basic") else {
                return Err(VerifyError::MissingCredentials("Authorization: Basic"));
            };
            STANDARD
                .decode(encoded)
                .map_err(|_| VerifyError::CredentialsMismatch)?
        }
        AuthMode::Header(name) => {
            let values: Vec<_> = request.headers.get_all(name).iter().collect();
            match values.as_slice() {
                [] => return Err(VerifyError::MissingCredentials("the configured header")),
                [one] => one.as_bytes().to_vec(),
                _ => return Err(VerifyError::CredentialsMismatch),
            }
        }
        AuthMode::Query(param) => {
            let mut found = None;
            for pair in request.query.unwrap_or("").split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if key == param {
                    if found.is_some() {
                        return Err(VerifyError::CredentialsMismatch);
                    }
                    found = Some(percent_decode(value));
                }
            }
            match found {
                Some(value) => value,
                None => {
                    return Err(VerifyError::MissingCredentials(
                        "the configured query parameter",
                    ))
                }
            }
        }
    };
    if secrets
        .iter()
        .filter(|s| !s.expose().is_empty())
        .any(|s| ct_eq(&presented, s.expose().as_bytes()))
    {
        Ok(())
    } else {
        Err(VerifyError::CredentialsMismatch)
    }
}

fn authorization<'a>(request: &Request<'a>) -> Result<&'a str, VerifyError> {
    if !request.headers.contains_key(http::header::AUTHORIZATION) {
        return Err(VerifyError::MissingCredentials("Authorization"));
    }
    // Two `Authorization` headers are ambiguous; refuse them as `header:<Name>` does.
    if request
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .count()
        > 1
    {
        return Err(VerifyError::CredentialsMismatch);
    }
    header_str(request.headers, "authorization").ok_or(VerifyError::CredentialsMismatch)
}

/// `"<Scheme> <rest>"` with a case-insensitive scheme name.
fn split_scheme<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = value.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Decodes `%XX` escapes and `+` in a query value; malformed escapes stay as they are.
pub fn percent_decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match hex::decode(&bytes[i + 1..i + 3]) {
                Ok(b) => {
                    out.push(b[0]);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Checks a secret can be presented in `mode`.
///
/// # Errors
/// Empty, not `user:password` for basic, or not sendable in a header.
pub fn check_secret(secret: &Secret, mode: &AuthMode) -> Result<(), SecretError> {
    let text = secret.expose();
    if text.is_empty() {
        return Err(SecretError::Empty);
    }
    if matches!(mode, AuthMode::Basic) && !text.contains(':') {
        return Err(SecretError::NotUserPassword);
    }
    if text.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        return Err(SecretError::NotHeaderSafe);
    }
    Ok(())
}

/// Presents `secret` as `mode` says (for `hookgate send` and tests).
pub fn sign(secret: &Secret, mode: &AuthMode) -> Signed {
    let text = secret.expose();
    match mode {
        AuthMode::Bearer => Signed {
            headers: vec![(http::header::AUTHORIZATION, format!("Bearer {text}"))],
            query: None,
        },
        AuthMode::Basic => Signed {
            headers: vec![(
                http::header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(text)),
            )],
            query: None,
        },
        AuthMode::Header(name) => Signed {
            headers: vec![(HeaderName::clone(name), text.to_owned())],
            query: None,
        },
        AuthMode::Query(param) => Signed {
            headers: Vec::new(),
            query: Some(format!("{param}={}", percent_encode(text))),
        },
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn req<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Request<'a> {
        Request {
            headers,
            body: b"{}",
            query,
        }
    }

    #[test]
    fn every_mode_round_trips_and_rejects_wrong_secrets() {
        let good = [Secret::new("old-secret"), Secret::new("s3cr:et/+&=")];
        for mode in [
            AuthMode::Bearer,
            AuthMode::Basic,
            AuthMode::Header(HeaderName::from_static("x-webhook-secret")),
            AuthMode::Query("token".into()),
        ] {
            let signed = sign(&good[1], &mode);
            let mut headers = HeaderMap::new();
            for (k, v) in &signed.headers {
                headers.insert(k, v.parse().expect("header value"));
            }
            let query = signed.query.as_deref();
            assert_eq!(
                verify(&req(&headers, query), &good, &mode),
                Ok(()),
                "{mode}"
            );
            let wrong = [Secret::new("nope:nope")];
            assert_eq!(
                verify(&req(&headers, query), &wrong, &mode),
                Err(VerifyError::CredentialsMismatch),
                "{mode}"
            );
            let empty = HeaderMap::new();
            assert!(matches!(
                verify(&req(&empty, None), &good, &mode),
                Err(VerifyError::MissingCredentials(_))
            ));
            assert_eq!(
                verify(&req(&headers, query), &[], &mode),
                Err(VerifyError::NoSecret)
            );
        }
    }

    #[test]
    fn percent_decoding_handles_edges() {
        assert_eq!(percent_decode("a%2Fb+c"), b"a/b c");
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("%4"), b"%4");
        assert_eq!(percent_decode("%zz"), b"%zz");
    }
}
