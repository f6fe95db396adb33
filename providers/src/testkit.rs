//! Test scaffolding shared by every test of hookgate, so that no test keeps its own copy:
//! - example secrets in each provider's real format ([`example_secret`], [`rotated_secret`]);
//! - the signer: what a provider would send with a body ([`sign`], [`headers`],
//!   [`fixture_sign_options`]);
//! - the conformance checks every adapter's unit tests run (happy path, tampered body, wrong
//!   secret, rotation, stale and future timestamps, missing and garbled headers) and the
//!   provider-published signature vectors in `fixtures/<provider>/vectors.toml`.
//!
//! Compiled for this crate's tests, and with the `testkit` feature for the gateway's tests, the
//! fuzz targets and the benchmark. The product never enables it.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{
    AuthKind, AuthMode, Provider, ProviderId, Request, Secret, SignOptions, Signed, VerifyError,
    VerifyOptions,
};

/// A secret of the provider's real format, so that `verify` gets past its secret checks and
/// compares signatures for real. Shared-secret providers get a `user:password` value, which is
/// valid in every `auth` mode (Basic included).
pub fn example_secret(provider: ProviderId) -> &'static str {
    match provider {
        // Stripe keys the HMAC with the `whsec_` text itself.
        ProviderId::Stripe => "whsec_example_stripe_signing_secret",
        // Svix secrets are `whsec_` + base64 of the key bytes.
        ProviderId::Clerk => "whsec_ZXhhbXBsZS1jbGVyay1zdml4LWtleQ==",
        ProviderId::Stytch => "whsec_ZXhhbXBsZS1zdHl0Y2gtc3ZpeC1rZXk=",
        ProviderId::Shopify => "shpss_example_shopify_client_secret",
        ProviderId::Workos => "example_workos_webhook_secret",
        ProviderId::Supabase => "hookgate:example-supabase-secret",
        ProviderId::Revenuecat => "hookgate:example-revenuecat-secret",
        ProviderId::Brevo => "hookgate:example-brevo-secret",
    }
}

/// A second secret of the same format, different from [`example_secret`]: the other half of a
/// rotation, or simply a wrong secret.
pub fn rotated_secret(provider: ProviderId) -> &'static str {
    match provider {
        ProviderId::Stripe => "whsec_rotated_stripe_signing_secret",
        ProviderId::Clerk | ProviderId::Stytch => "whsec_cm90YXRlZC1zdml4LXNpZ25pbmcta2V5",
        ProviderId::Shopify => "shpss_rotated_shopify_client_secret",
        ProviderId::Workos => "rotated_workos_webhook_secret",
        ProviderId::Supabase | ProviderId::Revenuecat | ProviderId::Brevo => {
            "hookgate:rotated-shared-secret"
        }
    }
}

/// The sign options a delivery of `fixtures/<provider>/<stem>.json` needs besides the clock:
/// Shopify's topic comes from the file name (`__` stands for `/`, a variant after `--` is not
/// part of it), Svix's `svix-id` and Shopify's event id are stable per fixture.
pub fn fixture_sign_options(provider: ProviderId, stem: &str, now_ms: i64) -> SignOptions {
    let topic = stem.split("--").next().unwrap_or(stem);
    let digest = crate::body_digest(stem.as_bytes());
    let slug: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let mut options = SignOptions {
        now_ms,
        ..SignOptions::default()
    };
    match provider {
        ProviderId::Clerk | ProviderId::Stytch => options.delivery_id = Some(format!("msg_{slug}")),
        ProviderId::Shopify => {
            options.event_type = Some(topic.replace("__", "/"));
            // A UUID-shaped event id.
            options.delivery_id = Some(format!(
                "{}-{}-{}-{}-{}",
                &digest[..8],
                &digest[8..12],
                &digest[12..16],
                &digest[16..20],
                &digest[20..32]
            ));
        }
        _ => {}
    }
    options
}

/// Signs `body` as `provider` would with `secret`: the headers to send and, for query-string
/// auth, the query.
///
/// # Panics
/// When the adapter cannot sign (a secret of the wrong format) or makes a header value `http`
/// refuses: both are bugs in the test or the adapter.
pub fn sign(
    provider: ProviderId,
    body: &[u8],
    secret: &str,
    options: &SignOptions,
) -> (HeaderMap, Option<String>) {
    let signed = provider
        .adapter()
        .sign(body, &Secret::new(secret), options)
        .unwrap_or_else(|e| panic!("{provider}: sign: {e}"));
    (headers(&signed), signed.query)
}

const NOW_MS: i64 = 1_700_000_000_000;

/// The signed headers as a `HeaderMap`.
///
/// # Panics
/// When a header value is one `http` refuses.
pub fn headers(signed: &Signed) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in &signed.headers {
        map.append(
            name.clone(),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

fn verify(
    provider: &dyn Provider,
    headers: &HeaderMap,
    body: &[u8],
    query: Option<&str>,
    secrets: &[Secret],
    auth: Option<&AuthMode>,
) -> Result<(), VerifyError> {
    let request = Request {
        headers,
        body,
        query,
    };
    let options = VerifyOptions {
        now_ms: NOW_MS,
        tolerance_secs: None,
        auth,
    };
    provider.verify(&request, secrets, &options).map(|_| ())
}

/// The conformance list for a provider that signs its deliveries.
/// The secrets are [`example_secret`] and, as the second of a rotation, [`rotated_secret`].
pub fn signed_provider_conformance(provider: &dyn Provider, body: &[u8], base: &SignOptions) {
    assert_eq!(provider.auth_kind(), AuthKind::Signature);
    let first = Secret::new(example_secret(provider.id()));
    let second = Secret::new(rotated_secret(provider.id()));
    let both = [first.clone(), second.clone()];
    let sign = |secret: &Secret, now_ms: i64| {
        let options = SignOptions {
            now_ms,
            ..base.clone()
        };
        provider.sign(body, secret, &options).expect("sign")
    };
    let signed = sign(&first, NOW_MS);
    let h = headers(&signed);

    // Happy path, and the event can be identified with a non-empty id.
    let request = Request {
        headers: &h,
        body,
        query: None,
    };
    let options = VerifyOptions {
        now_ms: NOW_MS,
        tolerance_secs: None,
        auth: None,
    };
    let verified = provider
        .verify(&request, &both, &options)
        .expect("valid signature");
    let meta = provider.identify(&verified).expect("identify");
    assert!(!meta.event_id.is_empty());

    // Rotation: a delivery signed with the second secret passes.
    let by_second = headers(&sign(&second, NOW_MS));
    assert_eq!(
        verify(provider, &by_second, body, None, &both, None),
        Ok(())
    );
    assert_eq!(
        verify(
            provider,
            &by_second,
            body,
            None,
            std::slice::from_ref(&first),
            None
        ),
        Err(VerifyError::SignatureMismatch)
    );

    // Tampered body and wrong secret.
    let mut tampered = body.to_vec();
    tampered.push(b' ');
    assert_eq!(
        verify(provider, &h, &tampered, None, &both, None),
        Err(VerifyError::SignatureMismatch)
    );
    let wrong = [Secret::new("whsec_d3Jvbmctc2VjcmV0LWJ5dGVz")];
    assert_eq!(
        verify(provider, &h, body, None, &wrong, None),
        Err(VerifyError::SignatureMismatch)
    );

    // Fail closed without secrets.
    assert_eq!(
        verify(provider, &h, body, None, &[], None),
        Err(VerifyError::NoSecret)
    );

    // Stale and future timestamps.
    if let Some(tolerance) = provider.default_tolerance_secs() {
        let tolerance_ms = i64::try_from(tolerance).expect("small") * 1000;
        let stale = headers(&sign(&first, NOW_MS - tolerance_ms - 5_000));
        assert_eq!(
            verify(provider, &stale, body, None, &both, None),
            Err(VerifyError::TimestampTooOld {
                tolerance_secs: tolerance
            })
        );
        let edge = headers(&sign(&first, NOW_MS - tolerance_ms + 5_000));
        assert_eq!(verify(provider, &edge, body, None, &both, None), Ok(()));
        let future = headers(&sign(&first, NOW_MS + tolerance_ms + 5_000));
        let result = verify(provider, &future, body, None, &both, None);
        if provider.id() == ProviderId::Stripe {
            assert_eq!(result, Ok(()), "stripe-node accepts future timestamps");
        } else {
            assert_eq!(
                result,
                Err(VerifyError::TimestampTooNew {
                    tolerance_secs: tolerance
                })
            );
        }
    }

    // Every signature-bearing header: missing, then garbled.
    let signature_headers: Vec<&HeaderName> = signed
        .headers
        .iter()
        .map(|(n, _)| n)
        .filter(|n| {
            let n = n.as_str();
            n.contains("signature")
                || n.contains("hmac")
                || n.ends_with("-id") && n.starts_with("svix")
                || n.ends_with("timestamp")
        })
        .collect();
    assert!(!signature_headers.is_empty());
    for name in signature_headers {
        let mut missing = h.clone();
        missing.remove(name);
        assert!(
            matches!(
                verify(provider, &missing, body, None, &both, None),
                Err(VerifyError::MissingHeader(_))
            ),
            "removing {name} must be a missing header"
        );
        // The same header twice, even with both copies valid, is ambiguous and refused.
        let mut doubled = h.clone();
        let value = h.get(name).expect("signed header").clone();
        doubled.append(name, value);
        assert_eq!(
            verify(provider, &doubled, body, None, &both, None),
            Err(VerifyError::InvalidHeader(match name.as_str() {
                n if n.starts_with("x-shopify") => "X-Shopify-Hmac-Sha256",
                "stripe-signature" => "Stripe-Signature",
                "workos-signature" => "WorkOS-Signature",
                n => provider_header_name(n),
            })),
            "{name} twice"
        );
        for garbage in ["garbage", "", "t=,v1=", "v1,", "\u{7f}"] {
            let Ok(value) = HeaderValue::from_str(garbage) else {
                continue;
            };
            let mut garbled = h.clone();
            garbled.insert(name, value);
            let result = verify(provider, &garbled, body, None, &both, None);
            assert!(
                matches!(
                    result,
                    Err(VerifyError::InvalidHeader(_) | VerifyError::SignatureMismatch)
                ),
                "garbled {name} = {garbage:?} gave {result:?}"
            );
        }
    }
}

/// The conformance list for a shared-secret provider, in every `auth` mode.
pub fn shared_secret_conformance(provider: &dyn Provider, body: &[u8]) {
    assert_eq!(provider.auth_kind(), AuthKind::SharedSecret);
    assert_eq!(provider.default_tolerance_secs(), None);
    let both = [
        Secret::new("first-secret"),
        Secret::new("user:second-secret"),
    ];
    for mode in [
        AuthMode::Bearer,
        AuthMode::Basic,
        AuthMode::Header(HeaderName::from_static("x-webhook-secret")),
        AuthMode::Query("token".into()),
    ] {
        let options = SignOptions {
            auth: Some(mode.clone()),
            ..SignOptions::default()
        };
        let signed = provider.sign(body, &both[1], &options).expect("sign");
        let h = headers(&signed);
        let q = signed.query.as_deref();
        let request = Request {
            headers: &h,
            body,
            query: q,
        };
        let verify_options = VerifyOptions {
            now_ms: NOW_MS,
            tolerance_secs: None,
            auth: Some(&mode),
        };
        let verified = provider
            .verify(&request, &both, &verify_options)
            .expect("valid secret");
        assert!(!provider
            .identify(&verified)
            .expect("identify")
            .event_id
            .is_empty());
        assert_eq!(
            verify(provider, &h, body, q, &both[..1], Some(&mode)),
            Err(VerifyError::CredentialsMismatch),
            "{mode}: wrong secret"
        );
        assert!(matches!(
            verify(provider, &HeaderMap::new(), body, None, &both, Some(&mode)),
            Err(VerifyError::MissingCredentials(_))
        ));
        assert_eq!(
            verify(provider, &h, body, q, &[], Some(&mode)),
            Err(VerifyError::NoSecret)
        );
        // The credential presented twice (two headers, or the parameter twice) is refused.
        let mut doubled = h.clone();
        for (name, value) in &h {
            doubled.append(name, value.clone());
        }
        let doubled_query = q.map(|q| format!("{q}&{q}"));
        assert_eq!(
            verify(
                provider,
                &doubled,
                body,
                doubled_query.as_deref(),
                &both,
                Some(&mode)
            ),
            Err(VerifyError::CredentialsMismatch),
            "{mode}: the credential twice"
        );
    }
}

/// The `&'static str` a scheme names a Svix header by (the names are already lowercase).
fn provider_header_name(name: &str) -> &'static str {
    [
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "shopify-hmac-sha256",
    ]
    .into_iter()
    .find(|n| *n == name)
    .unwrap_or("unknown")
}

/// Runs every vector in `fixtures/<provider>/vectors.toml` (published by the provider or its
/// official SDK tests; each records its source).
pub fn published_vectors(provider: ProviderId) {
    let path = format!(
        "{}/../fixtures/{}/vectors.toml",
        env!("CARGO_MANIFEST_DIR"),
        provider.as_str()
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: toml::Table = toml::from_str(&text).expect("vectors.toml parses");
    let vectors = doc["vector"].as_array().expect("[[vector]] entries");
    assert!(!vectors.is_empty());
    let mut valid = 0;
    for v in vectors {
        let name = v["name"].as_str().expect("name");
        assert!(
            !v["source"].as_str().expect("source").is_empty(),
            "{name}: source"
        );
        let mut h = HeaderMap::new();
        for (k, val) in v["headers"].as_table().expect("headers") {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(val.as_str().expect("header text")).expect("header value"),
            );
        }
        let body = v["body"].as_str().expect("body").as_bytes();
        let secret = Secret::new(v["secret"].as_str().expect("secret"));
        let now_ms = v["now"].as_integer().expect("now") * 1000;
        let request = Request {
            headers: &h,
            body,
            query: None,
        };
        let options = VerifyOptions {
            now_ms,
            tolerance_secs: None,
            auth: None,
        };
        let result = provider
            .adapter()
            .verify(&request, std::slice::from_ref(&secret), &options);
        match v["expect"].as_str().expect("expect") {
            "valid" => {
                assert!(result.is_ok(), "{name}: expected valid, got {result:?}");
                valid += 1;
            }
            // Each invalid vector fails for its own reason (a tampered body, a stale timestamp,
            // a header that cannot hold a signature), named by its `error` code.
            "invalid" => {
                let expected = v["error"]
                    .as_str()
                    .expect("an invalid vector names its error");
                assert_eq!(
                    result.as_ref().err().map(VerifyError::code),
                    Some(expected),
                    "{name}: expected {expected}, got {result:?}"
                );
            }
            other => panic!("{name}: unknown expectation {other}"),
        }
    }
    assert!(valid > 0, "at least one published vector must verify");
}

/// The bytes of `fixtures/<provider>/<name>`, exactly as stored.
pub fn fixture(provider: ProviderId, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../fixtures/{}/{name}",
        env!("CARGO_MANIFEST_DIR"),
        provider.as_str()
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Normalizes `body` as if it had been verified with these headers and stored.
pub fn normalize(
    provider: ProviderId,
    headers: &[(&str, &str)],
    body: &[u8],
    context: &crate::NormalizeContext<'_>,
) -> Result<Vec<crate::NormalizedEvent>, crate::NormalizeError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    let verified = crate::Verified::skip_verification(provider, &map, body);
    provider.adapter().normalize(&verified, context)
}

/// Normalizes a fixture that must give exactly one event.
pub fn normalize_one(
    provider: ProviderId,
    headers: &[(&str, &str)],
    name: &str,
) -> crate::NormalizedEvent {
    let body = fixture(provider, name);
    let mut events = normalize(
        provider,
        headers,
        &body,
        &crate::NormalizeContext::default(),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(events.len(), 1, "{name}: one event");
    events.remove(0)
}
