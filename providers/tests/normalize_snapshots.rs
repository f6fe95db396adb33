//! Every fixture, normalized and snapshotted, and the checks every provider must
//! pass.
//!
//! For each provider, `insta::glob!` walks `fixtures/<id>/*.json` (the `vectors.toml` files are
//! not JSON, so they are skipped). Each fixture is sent through the provider's own `sign` to get
//! the headers it would really arrive with, verified, then identified and normalized from the
//! stored bytes (`Verified::skip_verification`), as the pipeline does. A new fixture therefore means a
//! new snapshot, and a mapping change a changed one: review each with `cargo insta review`,
//! reading every value against the fixture, rather than accepting them all at once.
//!
//! Snapshots are named `<provider>@<fixture file>.snap`, because two providers can have fixtures
//! with the same file name (`session.created.json`).

use std::path::{Path, PathBuf};

use hookgate_providers::testkit;
use hookgate_providers::{
    NormalizeContext, NormalizedEvent, ProviderId, Request, Secret, Verified, VerifyError,
    VerifyOptions,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};

/// The time every delivery is signed and verified at.
const NOW_MS: i64 = 1_765_000_000_000;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The provider's JSON fixtures, sorted.
fn fixture_files(provider: ProviderId) -> Vec<PathBuf> {
    let dir = fixtures_dir().join(provider.as_str());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// A secret the provider accepts, and a different one (the shared test kit's).
fn secrets(provider: ProviderId) -> (Secret, Secret) {
    (
        Secret::new(testkit::example_secret(provider)),
        Secret::new(testkit::rotated_secret(provider)),
    )
}

/// When Shopify says each fixture's action happened (`X-Shopify-Triggered-At`, as Shopify
/// formats it: UTC with nanoseconds). Unknown fixtures get no header, which exercises the
/// fallback to the body's own `updated_at`.
fn shopify_triggered_at(stem: &str) -> Option<&'static str> {
    Some(match stem {
        "customers__create" => "2025-10-14T09:12:31.614503228Z",
        "customers_email_marketing_consent__update" => "2025-10-14T09:13:02.418276551Z",
        "orders__create" => "2025-10-14T09:20:48.125930117Z",
        "orders__paid" => "2025-10-15T14:02:17.560384902Z",
        "customers__update" => "2025-10-20T16:40:05.233817640Z",
        "customers__delete" => "2025-12-06T10:01:44.902651003Z",
        _ => return None,
    })
}

/// The headers the provider would send with this fixture, made by the provider's own `sign`.
fn delivery_headers(provider: ProviderId, path: &Path, body: &[u8], secret: &Secret) -> HeaderMap {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("utf-8 file name");
    let options = testkit::fixture_sign_options(provider, stem, NOW_MS);
    let signed = provider
        .adapter()
        .sign(body, secret, &options)
        .unwrap_or_else(|e| panic!("{}: sign: {e}", path.display()));
    let mut headers = HeaderMap::new();
    for (name, value) in signed.headers {
        headers.append(name, HeaderValue::from_str(&value).expect("header value"));
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if provider == ProviderId::Shopify {
        headers.insert(
            "x-shopify-shop-domain",
            HeaderValue::from_static("northwind-outfitters.myshopify.com"),
        );
        headers.remove("x-shopify-triggered-at");
        if let Some(at) = shopify_triggered_at(stem) {
            headers.insert(
                HeaderName::from_static("x-shopify-triggered-at"),
                HeaderValue::from_static(at),
            );
        }
    }
    headers
}

fn verify_options() -> VerifyOptions<'static> {
    VerifyOptions {
        now_ms: NOW_MS,
        tolerance_secs: None,
        auth: None,
    }
}

/// The invariants every normalized event keeps, whatever the provider.
fn check_invariants(provider: ProviderId, event: &NormalizedEvent, path: &Path) {
    let at = path.display();
    let prefix = format!("{}_", provider.as_str());
    assert!(!event.event_id.is_empty(), "{at}: empty event id");
    assert!(!event.event_type.is_empty(), "{at}: empty event type");
    let is_key = |key: &str| {
        key.starts_with(&prefix)
            && key.len() > prefix.len()
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    for (key, value) in event.contact.fields.iter().chain(&event.event_fields) {
        assert!(is_key(key), "{at}: field key {key:?}");
        assert!(
            matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)),
            "{at}: {key} = {value} is not a scalar"
        );
        assert!(value.as_str() != Some(""), "{at}: {key} is empty");
    }
    for key in event.event_fields.keys() {
        assert!(
            !event.contact.fields.contains_key(key),
            "{at}: {key} is both a contact and a fire-only field"
        );
    }
    for (key, value) in &event.identity.ids {
        assert!(is_key(key) && key.ends_with("_id"), "{at}: id key {key:?}");
        assert!(!value.is_empty(), "{at}: empty {key}");
        assert!(
            event.contact.fields.contains_key(key),
            "{at}: identity field {key} is not on the contact"
        );
    }
    if let Some(email) = &event.identity.email {
        assert!(email.contains('@'), "{at}: email {email:?}");
    }
    assert!(
        event.identity.email.is_some() || !event.identity.ids.is_empty(),
        "{at}: the event can never be resolved to a contact"
    );
    for name in [&event.contact.first_name, &event.contact.last_name]
        .into_iter()
        .flatten()
    {
        assert!(!name.trim().is_empty(), "{at}: empty name");
    }
}

#[test]
fn fixtures_normalize() {
    for provider in ProviderId::ALL {
        let adapter = provider.adapter();
        let (secret, _) = secrets(provider);
        let mut settings = insta::Settings::clone_current();
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| {
            insta::glob!(
                "../../fixtures",
                &format!("{}/*.json", provider.as_str()),
                |path| {
                    let body = std::fs::read(path).expect("fixture");
                    let headers = delivery_headers(provider, path, &body, &secret);
                    let request = Request {
                        headers: &headers,
                        body: &body,
                        query: None,
                    };
                    adapter
                        .verify(&request, std::slice::from_ref(&secret), &verify_options())
                        .unwrap_or_else(|e| panic!("{}: verify: {e}", path.display()));

                    let stored = Verified::skip_verification(provider, &headers, &body);
                    let meta = adapter
                        .identify(&stored)
                        .unwrap_or_else(|e| panic!("{}: identify: {e}", path.display()));
                    assert!(
                        meta.mapped,
                        "{}: every fixture is a mapped event",
                        path.display()
                    );
                    let events = adapter
                        .normalize(&stored, &NormalizeContext::default())
                        .unwrap_or_else(|e| panic!("{}: normalize: {e}", path.display()));
                    assert!(!events.is_empty(), "{}: no events", path.display());
                    for event in &events {
                        check_invariants(provider, event, path);
                    }
                    let batch = body.first() == Some(&b'[');
                    if !batch {
                        assert_eq!(events.len(), 1);
                        assert_eq!(events[0].event_id, meta.event_id);
                        assert_eq!(events[0].event_type, meta.event_type);
                    }
                    insta::assert_json_snapshot!(
                        provider.as_str(),
                        json!({ "identify": meta, "normalize": events })
                    );
                }
            );
        });
    }
}

#[test]
fn every_provider_conforms() {
    for provider in ProviderId::ALL {
        let adapter = provider.adapter();
        let files = fixture_files(provider);
        assert!(!files.is_empty(), "{provider}: at least one fixture");
        let (secret, other) = secrets(provider);
        for path in &files {
            let body = std::fs::read(path).expect("fixture");
            let headers = delivery_headers(provider, path, &body, &secret);
            let request = Request {
                headers: &headers,
                body: &body,
                query: None,
            };
            assert!(
                adapter
                    .verify(&request, std::slice::from_ref(&secret), &verify_options())
                    .is_ok(),
                "{}: the right secret verifies",
                path.display()
            );
            let rejected =
                adapter.verify(&request, std::slice::from_ref(&other), &verify_options());
            assert!(
                matches!(
                    rejected,
                    Err(VerifyError::SignatureMismatch | VerifyError::CredentialsMismatch)
                ),
                "{}: another secret must be rejected, got {rejected:?}",
                path.display()
            );
            let meta = adapter
                .identify(&Verified::skip_verification(provider, &headers, &body))
                .expect("identify");
            assert!(!meta.event_id.is_empty(), "{}: event id", path.display());
        }
    }
}

/// JSON pointers to every value below the root. Arrays are entered at their first element only:
/// later elements have the same shape, and walking them all makes large orders slow without
/// finding anything new.
fn pointers(value: &Value, pointer: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let key = k.replace('~', "~0").replace('/', "~1");
                (format!("{pointer}/{key}"), v)
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .take(1)
            .map(|v| (format!("{pointer}/0"), v))
            .collect(),
        _ => Vec::new(),
    };
    for (child, v) in children {
        out.push(child.clone());
        pointers(v, &child, out);
    }
}

/// `normalize` returns `Ok` or `Err` but never panics, whatever part of a real payload is
/// missing, empty or of the wrong type, and whatever headers are missing: each value of each
/// fixture is replaced in turn by `null`, `""` and `-1.5`.
fn survives_damaged_fixtures(provider: ProviderId) {
    let adapter = provider.adapter();
    let (secret, _) = secrets(provider);
    // The email path only matters to Supabase; elsewhere one context is enough.
    let contexts: &[NormalizeContext<'_>] = if provider == ProviderId::Supabase {
        &[
            NormalizeContext { email_path: None },
            NormalizeContext {
                email_path: Some("record.0.x"),
            },
        ]
    } else {
        &[NormalizeContext { email_path: None }]
    };
    let normalize = |headers: &HeaderMap, bytes: &[u8]| {
        for context in contexts {
            let _ = adapter.normalize(
                &Verified::skip_verification(provider, headers, bytes),
                context,
            );
        }
    };
    for path in fixture_files(provider) {
        let body = std::fs::read(&path).expect("fixture");
        let headers = delivery_headers(provider, &path, &body, &secret);
        normalize(&HeaderMap::new(), &body);
        for whole in [&b"null"[..], b"[]", b"[null]", b"{}", b"\"\""] {
            normalize(&headers, whole);
        }
        for cut in [0, 1, body.len() / 2, body.len().saturating_sub(1)] {
            let stored = Verified::skip_verification(provider, &headers, &body[..cut]);
            assert!(adapter
                .normalize(&stored, &NormalizeContext::default())
                .is_err());
        }
        let mut value: Value = serde_json::from_slice(&body).expect("fixture is JSON");
        let mut all = Vec::new();
        pointers(&value, "", &mut all);
        for pointer in &all {
            for replacement in [json!(null), json!(""), json!(-1.5)] {
                let Some(slot) = value.pointer_mut(pointer) else {
                    continue;
                };
                let original = std::mem::replace(slot, replacement);
                let bytes = serde_json::to_vec(&value).expect("serialize");
                if let Some(slot) = value.pointer_mut(pointer) {
                    *slot = original;
                }
                normalize(&headers, &bytes);
            }
        }
    }
}

/// One test per provider, so the harness runs them in parallel. The `match` is exhaustive, so
/// adding a provider without its test does not compile.
macro_rules! damage_tests {
    ($($test:ident => $provider:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                survives_damaged_fixtures(ProviderId::$provider);
            }
        )*

        #[allow(dead_code)]
        fn every_provider_has_a_damage_test(provider: ProviderId) {
            match provider {
                $(ProviderId::$provider => {})*
            }
        }
    };
}

damage_tests! {
    stripe_survives_damaged_fixtures => Stripe,
    clerk_survives_damaged_fixtures => Clerk,
    shopify_survives_damaged_fixtures => Shopify,
    stytch_survives_damaged_fixtures => Stytch,
    supabase_survives_damaged_fixtures => Supabase,
    workos_survives_damaged_fixtures => Workos,
    revenuecat_survives_damaged_fixtures => Revenuecat,
    brevo_survives_damaged_fixtures => Brevo,
}
