//! Property tests: on arbitrary headers and bodies every adapter rejects the request (a random
//! input must not verify against a real secret) and no adapter method or header parser panics.
//!
//! The cargo-fuzz targets in `fuzz/` explore the same space for millions of executions; these run
//! a few hundred cases per property in the normal suite so that a regression shows up in CI.

use hookgate_providers::scheme::{standard_webhooks, timestamped_hmac};
use hookgate_providers::{brevo, clerk, revenuecat, stripe, testkit};
use hookgate_providers::{
    AuthKind, AuthMode, NormalizeContext, ProviderId, Request, Secret, Verified, VerifyOptions,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

const NOW_MS: i64 = 1_700_000_000_000;

/// A secret of each provider's real format (the shared test kit's).
fn secret(provider: ProviderId) -> Secret {
    Secret::new(testkit::example_secret(provider))
}

/// Every header name an adapter reads, so arbitrary values reach the parsers.
const REAL_HEADERS: &[&str] = &[
    "stripe-signature",
    "workos-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-shopify-hmac-sha256",
    "x-shopify-topic",
    "x-shopify-event-id",
    "x-shopify-webhook-id",
    "shopify-hmac-sha256",
    "shopify-topic",
    "shopify-event-id",
    "shopify-webhook-id",
    "authorization",
    "x-webhook-secret",
];

/// Keys the adapters look up, so generated JSON reaches past the first `get`.
const KEYS: &[&str] = &[
    "id",
    "type",
    "event",
    "data",
    "object",
    "email",
    "record",
    "old_record",
    "table",
    "schema",
    "created",
    "created_at",
    "updated_at",
    "customer",
    "first_name",
    "last_name",
    "email_addresses",
    "primary_email_address_id",
    "app_user_id",
    "subscriber_attributes",
    "items",
    "date",
    "ts_event",
    "message-id",
];

/// Event types the adapters map, so generated bodies sometimes normalize.
fn event_types() -> Vec<&'static str> {
    let mut types = vec![
        "INSERT",
        "UPDATE",
        "DELETE",
        "user.created",
        "dsync.user.created",
        "member.create",
        "customers/create",
    ];
    for mapped in [
        stripe::MAPPED,
        clerk::MAPPED,
        revenuecat::MAPPED,
        brevo::MAPPED,
    ] {
        types.extend_from_slice(mapped);
    }
    types
}

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        3 => prop::sample::select(REAL_HEADERS).prop_map(HeaderName::from_static),
        1 => "[a-z][a-z0-9-]{0,16}".prop_map(|n| HeaderName::from_bytes(n.as_bytes()).expect("name")),
    ]
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    // Arbitrary bytes; the ones `http` refuses are dropped (no adapter could receive them).
    let bytes = prop::collection::vec(any::<u8>(), 0..80)
        .prop_filter_map("not a header value", |b| HeaderValue::from_bytes(&b).ok());
    // Shapes close to the real formats, so parsing gets past its first check.
    let near_misses = prop_oneof![
        "t=[0-9]{0,20}(, ?v[01]=[0-9a-f]{0,64}){0,3}",
        "(v1a?,[A-Za-z0-9+/=]{0,48} ?){0,3}",
        "-?[0-9]{0,20}",
        "(Bearer|Basic|bearer) [ -~]{0,40}",
        "msg_[A-Za-z0-9]{0,27}",
    ]
    .prop_filter_map("not a header value", |v| HeaderValue::from_str(&v).ok());
    prop_oneof![1 => bytes, 2 => near_misses]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec((header_name(), header_value()), 0..6).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, value);
        }
        map
    })
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,24}".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(Value::String),
        prop::sample::select(KEYS).prop_map(|k| Value::String(k.to_owned())),
        prop::sample::select(event_types()).prop_map(|t| Value::String(t.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    4 => prop::sample::select(KEYS).prop_map(str::to_owned),
                    1 => "[ -~]{0,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json().prop_map(|v| serde_json::to_vec(&v).expect("serializes")),
    ]
}

/// Every JSON fixture, with the headers its provider would send it with (made by the
/// provider's own `sign`), per provider: the starting points of [`fixture_mutants`].
fn fixture_deliveries() -> Vec<Vec<(HeaderMap, Value)>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let mut out = Vec::new();
    for provider in ProviderId::ALL {
        let dir = root.join(provider.as_str());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let mut deliveries = Vec::new();
        for file in files {
            let body = std::fs::read(&file).expect("fixture");
            let stem = file.file_stem().and_then(|s| s.to_str()).expect("name");
            let options = testkit::fixture_sign_options(provider, stem, NOW_MS);
            let signed = provider
                .adapter()
                .sign(&body, &secret(provider), &options)
                .expect("sign");
            let mut headers = HeaderMap::new();
            for (name, value) in signed.headers {
                headers.append(name, HeaderValue::from_str(&value).expect("header value"));
            }
            deliveries.push((
                headers,
                serde_json::from_slice(&body).expect("fixture JSON"),
            ));
        }
        out.push(deliveries);
    }
    out
}

/// JSON pointers to every leaf (and empty container) of `value`.
fn leaves(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                leaves(v, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

/// A real delivery with up to three of its leaves replaced by generated values: close enough
/// to the real shape that identify and normalize often succeed (so the checks that only run on
/// success run), different enough to reach their edge cases.
fn fixture_mutants() -> impl Strategy<Value = (HeaderMap, Vec<u8>)> {
    (
        // A provider, then one of its fixtures: each provider gets its share of the cases.
        prop::sample::select(fixture_deliveries()).prop_flat_map(prop::sample::select),
        prop::collection::vec((any::<prop::sample::Index>(), json()), 0..3),
    )
        .prop_map(|((headers, mut value), edits)| {
            for (index, replacement) in edits {
                let mut paths = Vec::new();
                leaves(&value, String::new(), &mut paths);
                if paths.is_empty() {
                    break;
                }
                let path = index.get(&paths).clone();
                if let Some(slot) = value.pointer_mut(&path) {
                    *slot = replacement;
                } else {
                    value = replacement;
                }
            }
            (headers, serde_json::to_vec(&value).expect("serializes"))
        })
}

/// Header sets around the Standard Webhooks names: each of `<prefix>-id`, `-timestamp` and
/// `-signature` zero or more times with arbitrary values, among other headers.
fn standard_webhooks_like_headers() -> impl Strategy<Value = HeaderMap> {
    (
        prop::sample::select(&["svix", "webhook"][..]),
        prop::collection::vec(
            (
                prop::sample::select(&["id", "timestamp", "signature"][..]),
                header_value(),
            ),
            0..5,
        ),
        headers(),
    )
        .prop_map(|(prefix, named, mut map)| {
            for (name, value) in named {
                let name = HeaderName::from_bytes(format!("{prefix}-{name}").as_bytes())
                    .expect("header name");
                map.append(name, value);
            }
            map
        })
}

fn auth_modes() -> [AuthMode; 4] {
    [
        AuthMode::Bearer,
        AuthMode::Basic,
        AuthMode::Header(HeaderName::from_static("x-webhook-secret")),
        AuthMode::Query("token".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verify_rejects_arbitrary_requests(
        headers in headers(),
        body in body(),
        query in proptest::option::of("[ -~]{0,40}"),
        now_ms in prop_oneof![Just(NOW_MS), any::<i64>()],
        tolerance_secs in proptest::option::of(any::<u64>()),
    ) {
        let request = Request { headers: &headers, body: &body, query: query.as_deref() };
        for provider in ProviderId::ALL {
            let adapter = provider.adapter();
            let secrets = [secret(provider)];
            let modes: Vec<Option<AuthMode>> = match adapter.auth_kind() {
                AuthKind::SharedSecret => auth_modes().into_iter().map(Some).collect(),
                AuthKind::Signature => vec![None],
            };
            for auth in &modes {
                let options = VerifyOptions { now_ms, tolerance_secs, auth: auth.as_ref() };
                let result = adapter.verify(&request, &secrets, &options);
                prop_assert!(result.is_err(), "{provider} verified a random request");
            }
        }
    }
}

/// Runs 256 cases of `strategy` through `test` (as `proptest!` does), failing with the shrunk
/// counterexample. Used where a property's check sits behind a branch: the caller counts how
/// often the branch ran and asserts it did, so a strategy that never reaches it cannot pass
/// unnoticed.
fn run_cases<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

#[test]
fn identify_and_normalize_never_panic() {
    // Per provider: cases where normalize succeeded, so the consistency checks ran.
    let normalized: Vec<AtomicUsize> = ProviderId::ALL
        .iter()
        .map(|_| AtomicUsize::new(0))
        .collect();
    run_cases(
        (
            prop_oneof![(headers(), body()), fixture_mutants()],
            proptest::option::of("[a-z_.0-9]{0,20}"),
        ),
        |((headers, body), email_path)| {
            for (i, provider) in ProviderId::ALL.into_iter().enumerate() {
                let adapter = provider.adapter();
                let verified = Verified::skip_verification(provider, &headers, &body);
                let identified = adapter.identify(&verified);
                if let Ok(meta) = &identified {
                    prop_assert!(!meta.event_id.is_empty(), "{provider}: empty event id");
                }
                let context = NormalizeContext {
                    email_path: email_path.as_deref(),
                };
                if let Ok(events) = adapter.normalize(&verified, &context) {
                    normalized[i].fetch_add(1, Ordering::Relaxed);
                    // normalize starts from identify: it maps only what identify calls mapped
                    // and, except for a Brevo batch, reports the same event id and type.
                    let meta = identified.as_ref().map_err(|_| {
                        TestCaseError::fail(format!(
                            "{provider}: normalize accepted what identify rejects"
                        ))
                    })?;
                    prop_assert!(meta.mapped, "{provider}: normalized an unmapped event");
                    for event in &events {
                        prop_assert!(!event.event_id.is_empty(), "{provider}: empty event id");
                    }
                    if !(provider == ProviderId::Brevo && meta.event_type == brevo::BATCH_TYPE) {
                        prop_assert_eq!(events.len(), 1);
                        prop_assert_eq!(&events[0].event_id, &meta.event_id);
                        prop_assert_eq!(&events[0].event_type, &meta.event_type);
                    }
                }
            }
            Ok(())
        },
    );
    let counts: Vec<(ProviderId, usize)> = ProviderId::ALL
        .into_iter()
        .zip(normalized.iter().map(|c| c.load(Ordering::Relaxed)))
        .collect();
    println!("cases normalized per provider: {counts:?}");
    assert!(
        counts.iter().all(|(_, n)| *n > 0),
        "for some provider no generated case normalized, so its consistency checks never ran: {counts:?}"
    );
}

/// The header parser on arbitrary text and on text shaped like the real header: whenever it
/// parses, it found at least one signature.
#[test]
fn timestamped_header_parser_never_panics() {
    let parsed = AtomicUsize::new(0);
    run_cases(
        prop_oneof![
            any::<String>(),
            "t=[0-9]{0,12}(, ?v[01]=[0-9a-f]{0,8}){0,3}"
        ],
        |value| {
            if let Some(p) = timestamped_hmac::parse_value(&value) {
                parsed.fetch_add(1, Ordering::Relaxed);
                prop_assert!(!p.signatures.is_empty());
            }
            Ok(())
        },
    );
    let parsed = parsed.into_inner();
    assert!(
        parsed > 0,
        "no generated value parsed, so the check never ran"
    );
}

#[test]
fn timestamped_header_parser_on_near_misses() {
    let parsed = AtomicUsize::new(0);
    run_cases(
        "(t|v1|v0)=[0-9a-fA-F ,=]{0,40}(, ?(t|v1)=[0-9a-f]{0,8}){0,3}",
        |value| {
            if let Some(p) = timestamped_hmac::parse_value(&value) {
                parsed.fetch_add(1, Ordering::Relaxed);
                prop_assert!(value.contains(p.timestamp));
            }
            Ok(())
        },
    );
    let parsed = parsed.into_inner();
    assert!(
        parsed > 0,
        "no generated value parsed, so the check never ran"
    );
}

#[test]
fn standard_webhooks_headers_never_panic() {
    let parsed = AtomicUsize::new(0);
    run_cases(standard_webhooks_like_headers(), |headers| {
        let request = Request {
            headers: &headers,
            body: b"{}",
            query: None,
        };
        if let Ok(p) = standard_webhooks::headers(&request) {
            parsed.fetch_add(1, Ordering::Relaxed);
            let id = headers.get("svix-id").or_else(|| headers.get("webhook-id"));
            prop_assert_eq!(id.and_then(|v| v.to_str().ok()), Some(p.id));
        }
        Ok(())
    });
    let parsed = parsed.into_inner();
    assert!(
        parsed > 0,
        "no generated header set parsed, so the check never ran"
    );
}
