//! The harness shared by the fuzz targets: how raw fuzzer bytes become a request, and what every
//! run must hold besides "no panic".
//!
//! Provider input layout: `<options><header lines>\0<body>`.
//! Without a NUL byte after the first byte, the whole input is the body, sent with no headers
//! and default options, so a provider's fixtures (`fixtures/<provider>/*.json`) are valid seeds
//! exactly as they are.
//!
//! - `<options>` is one byte: bits 0–1 choose the shared-secret `auth` mode (bearer, basic,
//!   `header:x-webhook-secret`, `query:token`), bits 2–3 the tolerance (provider default, 1 s,
//!   one week, `u64::MAX`), bits 4–5 the clock (a fixed instant, 0, `i64::MAX`, `i64::MIN`).
//! - Header lines are separated by `\n`. A line's first byte picks one of the provider's real
//!   header names (modulo the list's length plus one); the rest of the line is the value.
//!   The extra index means "a name of the fuzzer's own": the line is then `<name>:<value>`.
//!   Two pseudo names carry what is not a header: `:query` (the raw query string) and
//!   `:email-path` (Supabase's `email_path` connection setting).
//!
//! [`encode`] writes this layout, so seeds with real signatures can be generated
//! (`cargo run --example seeds`).

use hookgate_providers::{
    AuthKind, AuthMode, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, ProviderId, Request, Secret, SignOptions, Verified, VerifyOptions,
};
use http::{HeaderMap, HeaderName, HeaderValue};

/// The instant every signed seed is made at, and the default clock of a run.
pub const NOW_MS: i64 = 1_700_000_000_000;

const QUERY: &str = ":query";
const EMAIL_PATH: &str = ":email-path";

/// A secret of the provider's real format, so `verify` gets past its secret checks and compares
/// signatures for real (the shared test kit's; shared-secret ones are valid in every auth mode).
pub fn secret(provider: ProviderId) -> Secret {
    Secret::new(hookgate_providers::testkit::example_secret(provider))
}

/// The header names the provider's adapter reads, plus the pseudo names.
pub fn header_names(provider: ProviderId) -> &'static [&'static str] {
    match provider {
        ProviderId::Stripe => &["stripe-signature", "content-type", QUERY, EMAIL_PATH],
        ProviderId::Clerk | ProviderId::Stytch => &[
            "svix-id",
            "svix-timestamp",
            "svix-signature",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            QUERY,
            EMAIL_PATH,
        ],
        ProviderId::Shopify => &[
            "x-shopify-hmac-sha256",
            "x-shopify-topic",
            "x-shopify-event-id",
            "x-shopify-webhook-id",
            "shopify-hmac-sha256",
            "shopify-topic",
            "shopify-event-id",
            "shopify-webhook-id",
            QUERY,
            EMAIL_PATH,
        ],
        ProviderId::Workos => &["workos-signature", "content-type", QUERY, EMAIL_PATH],
        ProviderId::Supabase | ProviderId::Revenuecat | ProviderId::Brevo => &[
            "authorization",
            "x-webhook-secret",
            "content-type",
            QUERY,
            EMAIL_PATH,
        ],
    }
}

/// A decoded provider input.
pub struct Input<'a> {
    pub headers: HeaderMap,
    pub body: &'a [u8],
    pub query: Option<String>,
    pub email_path: Option<String>,
    pub auth: AuthMode,
    pub tolerance_secs: Option<u64>,
    pub now_ms: i64,
}

/// Splits raw fuzzer bytes as the module doc describes. Lines that cannot be a header (a bad
/// name or value) are skipped: `http` would refuse them before any adapter saw them.
pub fn decode(provider: ProviderId, data: &[u8]) -> Input<'_> {
    let mut input = Input {
        headers: HeaderMap::new(),
        body: data,
        query: None,
        email_path: None,
        auth: AuthMode::Bearer,
        tolerance_secs: None,
        now_ms: NOW_MS,
    };
    // The options byte may itself be 0, so the separator is searched after it.
    let Some((&options, rest)) = data.split_first() else {
        return input;
    };
    let Some(nul) = rest.iter().position(|&b| b == 0) else {
        return input;
    };
    let lines = &rest[..nul];
    input.body = &rest[nul + 1..];
    input.auth = match options & 0b11 {
        0 => AuthMode::Bearer,
        1 => AuthMode::Basic,
        2 => AuthMode::Header(HeaderName::from_static("x-webhook-secret")),
        _ => AuthMode::Query("token".to_owned()),
    };
    input.tolerance_secs = match (options >> 2) & 0b11 {
        0 => None,
        1 => Some(1),
        2 => Some(604_800),
        _ => Some(u64::MAX),
    };
    input.now_ms = match (options >> 4) & 0b11 {
        0 => NOW_MS,
        1 => 0,
        2 => i64::MAX,
        _ => i64::MIN,
    };
    let names = header_names(provider);
    for line in lines.split(|&b| b == b'\n') {
        let Some((&selector, rest)) = line.split_first() else {
            continue;
        };
        let index = usize::from(selector) % (names.len() + 1);
        let (name, value): (&[u8], &[u8]) = match names.get(index) {
            Some(name) => (name.as_bytes(), rest),
            None => match rest.iter().position(|&b| b == b':') {
                Some(colon) => (&rest[..colon], &rest[colon + 1..]),
                None => continue,
            },
        };
        if name == QUERY.as_bytes() {
            input.query = Some(String::from_utf8_lossy(value).into_owned());
        } else if name == EMAIL_PATH.as_bytes() {
            input.email_path = Some(String::from_utf8_lossy(value).into_owned());
        } else if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            // `append`, not `insert`: duplicated signature headers are a case adapters must
            // refuse, so the fuzzer must be able to send them.
            input.headers.append(name, value);
        }
    }
    input
}

/// Writes the layout [`decode`] reads: `headers` are (name, value) pairs, pseudo names included.
pub fn encode(provider: ProviderId, options: u8, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let names = header_names(provider);
    let mut out = vec![options];
    for (name, value) in headers {
        match names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
            // A selector must not be NUL or `\n`, the separators; adding len + 1 selects the same.
            Some(index) => {
                let selector = (index..=usize::from(u8::MAX))
                    .step_by(names.len() + 1)
                    .find(|&s| s != 0 && s != usize::from(b'\n'))
                    .and_then(|s| u8::try_from(s).ok())
                    .unwrap_or(u8::MAX);
                out.push(selector);
            }
            None => {
                out.push(u8::try_from(names.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(name.as_bytes());
                out.push(b':');
            }
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(0);
    out.extend_from_slice(body);
    out
}

/// One provider run: `verify` with a real secret, then `identify` and `normalize` on the body as
/// if it had been verified (so the JSON paths are fuzzed whatever the signature says).
pub fn provider(provider: ProviderId, data: &[u8]) {
    let input = decode(provider, data);
    let adapter = provider.adapter();
    let request = Request {
        headers: &input.headers,
        body: input.body,
        query: input.query.as_deref(),
    };
    let shared = matches!(adapter.auth_kind(), AuthKind::SharedSecret);
    let options = VerifyOptions {
        now_ms: input.now_ms,
        tolerance_secs: input.tolerance_secs,
        auth: shared.then_some(&input.auth),
    };
    let secrets = [secret(provider)];
    if let Err(error) = adapter.verify(&request, &secrets, &options) {
        // Messages and codes are built for every rejection; they must not panic either.
        let _ = (error.to_string(), error.code());
    }

    sign_round_trip(provider, &input);

    let verified = Verified::skip_verification(provider, &input.headers, input.body);
    let identified = adapter.identify(&verified);
    if let Err(error) = &identified {
        let _ = (error.to_string(), error.code());
    }
    let context = NormalizeContext {
        email_path: input.email_path.as_deref(),
    };
    let normalized = adapter.normalize(&verified, &context);
    if let Err(error) = &normalized {
        let _ = error.to_string();
    }
    check_agreement(provider, &identified, &normalized);
}

/// Whatever the body, what the adapter's `sign` produces must be sendable and must verify.
fn sign_round_trip(provider: ProviderId, input: &Input<'_>) {
    let adapter = provider.adapter();
    let shared = matches!(adapter.auth_kind(), AuthKind::SharedSecret);
    let options = SignOptions {
        now_ms: NOW_MS,
        delivery_id: None,
        event_type: Some("customers/create".to_owned()),
        auth: shared.then(|| input.auth.clone()),
    };
    let secret = secret(provider);
    let signed = match adapter.sign(input.body, &secret, &options) {
        Ok(signed) => signed,
        Err(error) => panic!("{provider}: cannot sign with a valid secret: {error}"),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in signed.headers {
        let Ok(value) = HeaderValue::from_str(&value) else {
            panic!("{provider}: sign made a header value http refuses: {value:?}");
        };
        headers.append(name, value);
    }
    let request = Request {
        headers: &headers,
        body: input.body,
        query: signed.query.as_deref(),
    };
    let verify = VerifyOptions {
        now_ms: NOW_MS,
        tolerance_secs: None,
        auth: options.auth.as_ref(),
    };
    if let Err(error) = adapter.verify(&request, &[secret], &verify) {
        panic!("{provider}: a signed request does not verify: {error}");
    }
}

/// What `identify` and `normalize` must agree on, whatever the body: normalize starts from
/// identify, maps exactly the events identify calls mapped, and (except for Brevo batches, whose
/// elements carry their own keys) reports the same event id and type as the ingest log.
pub fn check_agreement(
    provider: ProviderId,
    identified: &Result<EventMeta, IdentifyError>,
    normalized: &Result<Vec<NormalizedEvent>, NormalizeError>,
) {
    let meta = match (identified, normalized) {
        (Err(_), Ok(_)) => panic!("{provider}: normalize accepted a body identify rejects"),
        (Err(_), Err(_)) => return,
        (Ok(meta), _) => meta,
    };
    assert!(
        !meta.event_id.is_empty(),
        "{provider}: identify gave an empty event id"
    );
    let events = match normalized {
        Ok(events) => events,
        Err(NormalizeError::Unsupported(event_type)) => {
            assert!(
                !meta.mapped || is_batch(provider, meta),
                "{provider}: a mapped event is unsupported"
            );
            assert_eq!(
                event_type, &meta.event_type,
                "{provider}: unsupported type differs"
            );
            return;
        }
        Err(_) => return,
    };
    assert!(
        meta.mapped,
        "{provider}: normalize accepted an unmapped event"
    );
    assert!(!events.is_empty(), "{provider}: normalize gave no event");
    for event in events {
        assert!(
            !event.event_id.is_empty(),
            "{provider}: normalize gave an empty event id"
        );
    }
    if !is_batch(provider, meta) {
        assert_eq!(events.len(), 1, "{provider}: one delivery, several events");
        assert_eq!(
            events[0].event_id, meta.event_id,
            "{provider}: event ids differ"
        );
        assert_eq!(
            events[0].event_type, meta.event_type,
            "{provider}: event types differ"
        );
    }
}

fn is_batch(provider: ProviderId, meta: &EventMeta) -> bool {
    provider == ProviderId::Brevo && meta.event_type == hookgate_providers::brevo::BATCH_TYPE
}

/// A `t=..,v1=..` header value (Stripe-Signature, WorkOS-Signature): the parser on its own, then
/// the whole scheme through the adapter with the value as the provider's header.
pub fn timestamped_header(provider: ProviderId, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(parsed) = hookgate_providers::scheme::timestamped_hmac::parse_value(&text) {
        assert!(
            !parsed.signatures.is_empty(),
            "parsed without a v1 signature"
        );
        assert!(
            text.contains(parsed.timestamp),
            "timestamp not from the value"
        );
    }
    let hookgate_providers::Signing::Timestamped(scheme, _) = provider.adapter().signing() else {
        panic!("{provider} does not use the timestamped scheme");
    };
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(scheme.header, value);
    let request = Request {
        headers: &headers,
        body: b"{}",
        query: None,
    };
    let _ = scheme.parse(&request);
    let options = VerifyOptions {
        now_ms: NOW_MS,
        tolerance_secs: None,
        auth: None,
    };
    let _ = provider
        .adapter()
        .verify(&request, &[secret(provider)], &options);
}

/// Svix / Standard Webhooks headers: `<naming>id\ntimestamp\nsignature`, where the first byte's
/// low bit picks `svix-*` or `webhook-*` names and each later line may be missing.
pub fn svix_headers(data: &[u8]) {
    let Some((&naming, rest)) = data.split_first() else {
        return;
    };
    let names = if naming & 1 == 0 {
        ["svix-id", "svix-timestamp", "svix-signature"]
    } else {
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    };
    let mut headers = HeaderMap::new();
    for (name, value) in names.iter().zip(rest.split(|&b| b == b'\n')) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(*name, value);
        }
    }
    let request = Request {
        headers: &headers,
        body: b"{}",
        query: None,
    };
    if let Ok(parsed) = hookgate_providers::scheme::standard_webhooks::headers(&request) {
        // What the parser returns is exactly what was sent.
        let sent = |i: usize| headers.get(names[i]).and_then(|v| v.to_str().ok());
        assert_eq!(Some(parsed.id), sent(0));
        assert_eq!(Some(parsed.timestamp), sent(1));
        assert_eq!(Some(parsed.signature), sent(2));
    }
    let options = VerifyOptions {
        now_ms: NOW_MS,
        tolerance_secs: None,
        auth: None,
    };
    let secrets = [secret(ProviderId::Clerk)];
    let _ = hookgate_providers::scheme::standard_webhooks::verify(
        &request,
        &secrets,
        options.now_ms,
        hookgate_providers::scheme::standard_webhooks::DEFAULT_TOLERANCE_SECS,
    );
}
