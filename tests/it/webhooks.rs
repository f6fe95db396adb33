//! The receive path over real HTTP: every row of the status table (README) for every provider,
//! exact deduplication under concurrency, and never a 2xx for an event the store did not commit.

use std::time::Duration;

use hookgate::providers::{AuthKind, ProviderId, SignOptions};
use hookgate_providers::testkit::{example_secret, rotated_secret};
use serde_json::Value;

use crate::backend_tests;
use crate::support::{fixture, now_options, Backend, TestApp, ADMIN_TOKEN};

/// What each provider's cases need.
pub struct Kit {
    pub provider: ProviderId,
    pub secret: &'static str,
    pub fixture: &'static str,
    /// A verified event of a type hookgate does not map (Supabase maps every table).
    pub unmapped: Option<&'static str>,
    pub options: fn() -> SignOptions,
}

pub fn kit(provider: ProviderId) -> Kit {
    let plain = now_options as fn() -> SignOptions;
    match provider {
        ProviderId::Stripe => Kit {
            provider,
            secret: example_secret(provider),
            fixture: "invoice.paid.json",
            unmapped: Some(
                r#"{"id":"evt_unmapped_1","object":"event","type":"payment_intent.created","data":{"object":{}}}"#,
            ),
            options: plain,
        },
        ProviderId::Clerk => Kit {
            provider,
            secret: example_secret(provider),
            fixture: "user.created.json",
            unmapped: Some(r#"{"data":{"id":"ema_1"},"object":"event","type":"email.created"}"#),
            options: plain,
        },
        ProviderId::Shopify => Kit {
            provider,
            secret: example_secret(provider),
            fixture: "customers__create.json",
            unmapped: None,
            options: || SignOptions {
                event_type: Some("customers/create".into()),
                ..now_options()
            },
        },
        ProviderId::Stytch => Kit {
            provider,
            secret: example_secret(provider),
            fixture: "dashboard.user.create.json",
            unmapped: Some(
                r#"{"source":"DIRECT","object_type":"organization","action":"CREATE","id":"organization-test-1"}"#,
            ),
            options: plain,
        },
        ProviderId::Supabase => Kit {
            provider,
            secret: example_secret(provider),
            fixture: "public.profiles.INSERT.json",
            unmapped: None,
            options: plain,
        },
        ProviderId::Workos => Kit {
            provider,
            secret: example_secret(provider),
            fixture: "user.created.json",
            unmapped: Some(
                r#"{"id":"event_01UNMAPPED","event":"organization.created","data":{"id":"org_1"},"object":"event"}"#,
            ),
            options: plain,
        },
        ProviderId::Revenuecat => Kit {
            provider,
            secret: example_secret(provider),
            fixture: "INITIAL_PURCHASE.json",
            unmapped: Some(
                r#"{"api_version":"1.0","event":{"id":"unmapped-alias-1","type":"SUBSCRIBER_ALIAS","app_user_id":"a"}}"#,
            ),
            options: plain,
        },
        ProviderId::Brevo => Kit {
            provider,
            secret: example_secret(provider),
            fixture: "hard_bounce.json",
            unmapped: Some(r#"{"event":"proxy_open","email":"someone@example.com","id":1290387}"#),
            options: plain,
        },
    }
}

/// A gateway with, per provider, `<p>` (plain), `<p>-allow` (allowlist 10.0.0.0/8),
/// `<p>-limited` (1 request/s, burst 1), `<p>-off` (disabled) and `<p>-rot` (two secrets).
async fn matrix_app(backend: Backend) -> TestApp {
    let mut builder = TestApp::builder(backend).config(|c| {
        c.max_body_bytes = 64 * 1024;
        // Every provider's row gets its unknown-id 404 logged, all from one address.
        c.unknown_id_log_per_minute = 1_000;
    });
    for p in ProviderId::ALL {
        let k = kit(p);
        let id = p.as_str();
        builder = builder
            .connection(id, p, &[k.secret])
            .connection_with(&format!("{id}-allow"), p, &[k.secret], |s| {
                s.allow_ips = vec!["10.0.0.0/8".into()]
            })
            .connection_with(&format!("{id}-limited"), p, &[k.secret], |s| {
                s.rate_limit_per_sec = Some(1);
                s.rate_limit_burst = Some(1);
            })
            .connection_with(&format!("{id}-off"), p, &[k.secret], |s| s.enabled = false)
            .connection(&format!("{id}-rot"), p, &[rotated_secret(p), k.secret]);
    }
    builder.start().await
}

fn signature_header(p: ProviderId) -> &'static str {
    match p {
        ProviderId::Stripe => "stripe-signature",
        ProviderId::Clerk | ProviderId::Stytch => "svix-signature",
        ProviderId::Shopify => "x-shopify-hmac-sha256",
        ProviderId::Workos => "workos-signature",
        ProviderId::Supabase | ProviderId::Revenuecat | ProviderId::Brevo => "authorization",
    }
}

/// Posts with the headers `sign` makes, after `edit` changed them.
async fn post_edited(
    app: &TestApp,
    k: &Kit,
    connection: &str,
    body: &[u8],
    sent_body: &[u8],
    edit: impl FnOnce(&mut Vec<(http::HeaderName, String)>),
) -> crate::support::Delivered {
    let p = k.provider;
    let secret = hookgate::providers::Secret::new(k.secret);
    let mut signed = p
        .adapter()
        .sign(body, &secret, &(k.options)())
        .expect("sign");
    edit(&mut signed.headers);
    let mut request = app
        .client
        .post(app.receive_url(p, connection))
        .body(sent_body.to_vec());
    for (name, value) in signed.headers {
        request = request.header(name, value);
    }
    crate::support::Delivered::read(request.send().await.expect("request")).await
}

async fn status_table(backend: Backend) {
    let app = matrix_app(backend).await;
    for p in ProviderId::ALL {
        let k = kit(p);
        let id = p.as_str();
        let body = fixture(p, k.fixture);
        let signed = p.adapter().auth_kind() == AuthKind::Signature;
        let (unauth_code, mismatch_code) = if signed {
            ("missing_signature_header", "signature_mismatch")
        } else {
            ("missing_credentials", "credentials_mismatch")
        };

        // 200 accepted, then 200 duplicate with the first id.
        let first = app
            .deliver(p, id, &body, k.secret, (k.options)())
            .await
            .assert_outcome("accepted");
        let again = app
            .deliver(p, id, &body, k.secret, (k.options)())
            .await
            .assert_outcome("duplicate");
        assert_eq!(
            first, again,
            "{p}: a duplicate answers with the first ingest id"
        );

        // 200 ignored for a verified event type hookgate does not map (stored).
        if let Some(unmapped) = k.unmapped {
            let ignored = app
                .deliver(p, id, unmapped.as_bytes(), k.secret, (k.options)())
                .await
                .assert_outcome("ignored");
            let record = app.admin_get(&format!("/admin/ingest/{ignored}")).await;
            assert_eq!(record.json()["outcome"], "ignored", "{p}");
            assert_eq!(record.json()["status"], "ignored", "{p}");
        }

        // 401: no signature / credentials at all.
        let bare = app
            .client
            .post(app.receive_url(p, id))
            .body(body.clone())
            .send()
            .await
            .expect("send");
        crate::support::Delivered::read(bare)
            .await
            .assert_error(401, unauth_code);
        // 401: wrong secret.
        let wrong = if matches!(p, ProviderId::Clerk | ProviderId::Stytch) {
            "whsec_d3Jvbmctc2VjcmV0"
        } else {
            "a-wrong-secret"
        };
        app.deliver(p, id, &body, wrong, (k.options)())
            .await
            .assert_error(401, mismatch_code);
        // 401: the rotated connection accepts its second secret and still rejects a wrong one.
        app.deliver(p, &format!("{id}-rot"), &body, k.secret, (k.options)())
            .await
            .assert_outcome("accepted");
        app.deliver(p, &format!("{id}-rot"), &body, wrong, (k.options)())
            .await
            .assert_error(401, mismatch_code);

        if signed {
            // 401: tampered body.
            let mut tampered = body.clone();
            tampered.extend_from_slice(b"\n ");
            post_edited(&app, &k, id, &body, &tampered, |_| {})
                .await
                .assert_error(401, "signature_mismatch");
            // 401: garbled signature header.
            let name = signature_header(p);
            post_edited(&app, &k, id, &body, &body, |h| {
                for (n, v) in h.iter_mut() {
                    if n.as_str() == name {
                        *v = "garbage".into();
                    }
                }
            })
            .await
            .assert_error(401, "invalid_signature_header");
            // 401: stale and (where the provider rejects them) future timestamps.
            if let Some(tolerance) = p.adapter().default_tolerance_secs() {
                let skew = i64::try_from(tolerance).expect("small") * 1000 + 60_000;
                let stale = SignOptions {
                    now_ms: hookgate::now_ms() - skew,
                    ..(k.options)()
                };
                app.deliver(p, id, &body, k.secret, stale)
                    .await
                    .assert_error(401, "timestamp_too_old");
                let future = SignOptions {
                    now_ms: hookgate::now_ms() + skew,
                    ..(k.options)()
                };
                let answer = app.deliver(p, id, &body, k.secret, future).await;
                if p == ProviderId::Stripe {
                    // stripe-node accepts future timestamps; the event is already stored.
                    answer.assert_outcome("duplicate");
                } else {
                    answer.assert_error(401, "timestamp_too_new");
                }
            }
        }

        // 400: verified, but not the JSON the provider sends (stored as rejected).
        let junk = b"this is not json";
        let bad = app.deliver(p, id, junk, k.secret, (k.options)()).await;
        bad.assert_error(400, "invalid_json");

        // 403: outside the allowlist (the test client is 127.0.0.1).
        app.deliver(p, &format!("{id}-allow"), &body, k.secret, (k.options)())
            .await
            .assert_error(403, "ip_not_allowed");

        // 404: unknown connection, disabled connection, provider mismatch.
        app.deliver(p, "no-such-connection", &body, k.secret, (k.options)())
            .await
            .assert_error(404, "not_found");
        app.deliver(p, &format!("{id}-off"), &body, k.secret, (k.options)())
            .await
            .assert_error(404, "not_found");
        let other = if p == ProviderId::Stripe {
            "clerk"
        } else {
            "stripe"
        };
        let mismatch = app
            .client
            .post(app.url(&format!("/integrations/{id}/webhook/{other}")))
            .body(body.clone())
            .send()
            .await
            .expect("send");
        crate::support::Delivered::read(mismatch)
            .await
            .assert_error(404, "not_found");

        // 413: over max_body_bytes (64 KiB here), with and without Content-Length.
        let mut big = b"{\"pad\":\"".to_vec();
        big.resize(70 * 1024, b'x');
        big.extend_from_slice(b"\"}");
        app.deliver(p, id, &big, k.secret, (k.options)())
            .await
            .assert_error(413, "body_too_large");
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..70).map(|_| Ok(vec![b'x'; 1024])).collect();
        let streamed = app
            .client
            .post(app.receive_url(p, id))
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .expect("send");
        crate::support::Delivered::read(streamed)
            .await
            .assert_error(413, "body_too_large");

        // 429 with Retry-After on a connection limited to 1 request/s.
        let limited = format!("{id}-limited");
        app.deliver(p, &limited, &body, k.secret, (k.options)())
            .await
            .assert_outcome("accepted");
        let throttled = app
            .deliver(p, &limited, &body, k.secret, (k.options)())
            .await;
        throttled.assert_error(429, "rate_limited");
        let retry_after: u64 = throttled.headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!(
            (1..=2).contains(&retry_after),
            "{p}: Retry-After {retry_after}"
        );
        // The small body was read, so the connection stays open for the retry.
        assert!(
            throttled.headers.get("connection").is_none(),
            "{p}: {:?}",
            throttled.headers
        );
        // A burst of refusals: all 429, but only the first (the connection's rate again) is
        // written to the ingest log; the others are counted.
        for _ in 0..5 {
            app.deliver(p, &limited, &body, k.secret, (k.options)())
                .await
                .assert_error(429, "rate_limited");
        }
    }

    // Unknown provider: 404.
    let unknown = app
        .client
        .post(app.url("/integrations/paypal/webhook/x"))
        .body("{}")
        .send()
        .await
        .expect("send");
    crate::support::Delivered::read(unknown)
        .await
        .assert_error(404, "not_found");
    // Other methods on the receive URL: 405.
    let get = app
        .client
        .get(app.receive_url(ProviderId::Stripe, "stripe"))
        .send()
        .await
        .expect("send");
    assert_eq!(get.status().as_u16(), 405);

    // Metrics reflect the traffic.
    let metrics = crate::support::metrics(&app.client, app.url("/metrics")).await;
    // Each provider's limited connection refused six requests (one, then a burst of five);
    // those past the log budget are counted, not logged: the logged rows are the rest, exactly.
    let refusals = 6 * ProviderId::ALL.len();
    let dropped: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hookgate_ingest_log_dropped_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as usize);
    assert!(
        (1..=refusals).contains(&dropped),
        "refusals counted, not logged: {dropped}\n{metrics}"
    );
    let rate_limited = |items: &[Value]| {
        items
            .iter()
            .filter(|i| i["reason"] == "rate_limited")
            .count()
    };
    // Every rejection is in the ingest log with a reason, and no secret appears anywhere in it.
    let items = app
        .ingest_until("/admin/ingest?outcome=rejected&limit=500", |items| {
            rate_limited(items) >= refusals - dropped
        })
        .await;
    assert_eq!(
        rate_limited(&items),
        refusals - dropped,
        "rate_limited rows logged = refusals ({refusals}) - dropped ({dropped})"
    );
    for p in ProviderId::ALL {
        let reasons: Vec<&str> = items
            .iter()
            .filter(|i| i["provider"] == p.as_str())
            .filter_map(|i| i["reason"].as_str())
            .collect();
        for needle in [
            "invalid_json",
            "ip_not_allowed",
            "not_found",
            "body_too_large",
            "rate_limited",
        ] {
            assert!(
                reasons.iter().any(|r| r.starts_with(needle)),
                "{p}: no {needle} in {reasons:?}"
            );
        }
    }
    for item in &items {
        let full = app
            .admin_get(&format!(
                "/admin/ingest/{}",
                item["id"].as_str().expect("id")
            ))
            .await;
        for p in ProviderId::ALL {
            let k = kit(p);
            assert!(
                !full.text.contains(k.secret),
                "secret of {p} leaked into {}",
                full.text
            );
        }
    }

    // Refusals past the log budget were counted, not logged: at most a refill or two of the
    // 1/s budget per provider during its burst of six, not six rows each.
    for p in ProviderId::ALL {
        let logged = items
            .iter()
            .filter(|i| i["provider"] == p.as_str() && i["reason"] == "rate_limited")
            .count();
        assert!((1..=3).contains(&logged), "{p}: {logged} rate_limited rows");
    }

    assert!(
        metrics.contains(
            r#"hookgate_webhook_requests_total{provider="stripe",outcome="accepted",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"hookgate_verification_failures_total{provider="clerk",reason="timestamp_too_old"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookgate_ingest_latency_seconds_bucket"),
        "{metrics}"
    );
}

/// Thirty identical deliveries at once: exactly one is stored, 29 are duplicates of it.
async fn concurrent_duplicates(backend: Backend) {
    let app = TestApp::builder(backend)
        .connection(
            "stripe",
            ProviderId::Stripe,
            &[kit(ProviderId::Stripe).secret],
        )
        .connection("clerk", ProviderId::Clerk, &[kit(ProviderId::Clerk).secret])
        .start()
        .await;
    for p in [ProviderId::Stripe, ProviderId::Clerk] {
        let k = kit(p);
        let body = fixture(p, k.fixture);
        let answers = futures::future::join_all(
            (0..30).map(|_| app.deliver(p, p.as_str(), &body, k.secret, (k.options)())),
        )
        .await;
        let mut accepted = Vec::new();
        let mut duplicate = Vec::new();
        for a in &answers {
            a.assert_status(200);
            let json = a.json();
            match json["status"].as_str() {
                Some("accepted") => accepted.push(json["id"].as_str().expect("id").to_owned()),
                Some("duplicate") => duplicate.push(json["id"].as_str().expect("id").to_owned()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(accepted.len(), 1, "{p}: exactly one accepted");
        assert_eq!(duplicate.len(), 29, "{p}: 29 duplicates");
        assert!(
            duplicate.iter().all(|d| d == &accepted[0]),
            "{p}: duplicates name the first id"
        );
        let list = app
            .admin_get(&format!(
                "/admin/ingest?connection={p}&outcome=duplicate&limit=100"
            ))
            .await
            .json();
        assert_eq!(list["items"].as_array().expect("items").len(), 29);
        let record = app
            .admin_get(&format!("/admin/ingest/{}", accepted[0]))
            .await
            .json();
        let event_id = record["event_id"].as_str().expect("event id").to_owned();
        assert_eq!(
            app.store
                .db
                .count_stored(p.as_str(), &event_id)
                .await
                .expect("count"),
            1
        );
    }
}

/// Slow clients: a body that stalls past `body_timeout_secs` gets 408; headers that stall past
/// `header_timeout_secs` get the connection closed. Neither is stored as an event.
async fn read_timeouts(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::builder(backend)
        .connection(
            "stripe",
            ProviderId::Stripe,
            &[kit(ProviderId::Stripe).secret],
        )
        .start()
        .await;
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /integrations/stripe/webhook/stripe HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"id\":")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .ok();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");

    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"POST /integrations/stripe/webhook/stripe HTTP/1.1\r\nhost:")
        .await
        .expect("write");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the server closes a connection whose headers stall"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // The gateway still serves others.
    let k = kit(ProviderId::Stripe);
    let served = app
        .deliver(
            ProviderId::Stripe,
            "stripe",
            &fixture(ProviderId::Stripe, k.fixture),
            k.secret,
            now_options(),
        )
        .await
        .assert_outcome("accepted");
    // Neither stalled request is stored: the ingest log holds the delivery above and one 408
    // refusal without an event (the stalled body); the stalled head never reached a handler.
    let rows = app.admin_get("/admin/ingest?limit=100").await.json();
    let items = rows["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{rows:#}");
    let accepted: Vec<&Value> = items
        .iter()
        .filter(|i| i["outcome"] == "accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{rows:#}");
    assert_eq!(accepted[0]["id"], served.as_str());
    let refused = items
        .iter()
        .find(|i| i["outcome"] == "rejected")
        .expect("the 408 is logged");
    assert_eq!(refused["http_status"], 408, "{refused}");
    assert_eq!(refused["reason"], "body_timeout", "{refused}");
    assert!(
        refused["event_id"].is_null() && refused["status"].is_null(),
        "a refused body is not an event: {refused}"
    );
}

/// Allowlists: `@brevo` expands to Brevo's published ranges, and `X-Forwarded-For` is used only
/// from `trusted_proxies`, taking the right-most untrusted hop.
async fn allowlists_and_proxies(backend: Backend) {
    let k = kit(ProviderId::Brevo);
    let app = TestApp::builder(backend)
        .config(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().expect("net")])
        .connection_with("brevo", ProviderId::Brevo, &[k.secret], |s| {
            s.allow_ips = vec!["@brevo".into()]
        })
        .start()
        .await;
    let send = |xff: Option<&'static str>, body: &'static str| {
        let app = &app;
        async move {
            let mut request = app
                .client
                .post(app.receive_url(ProviderId::Brevo, "brevo"))
                .bearer_auth(k.secret)
                .body(body);
            if let Some(xff) = xff {
                request = request.header("x-forwarded-for", xff);
            }
            crate::support::Delivered::read(request.send().await.expect("send")).await
        }
    };
    send(
        None,
        r#"{"event":"delivered","email":"a@example.com","id":1,"ts_epoch":1}"#,
    )
    .await
    .assert_error(403, "ip_not_allowed");
    send(
        Some("1.179.112.10"),
        r#"{"event":"delivered","email":"a@example.com","id":1,"ts_epoch":2}"#,
    )
    .await
    .assert_outcome("accepted");
    send(
        Some("172.246.250.1, 127.0.0.1"),
        r#"{"event":"delivered","email":"a@example.com","id":1,"ts_epoch":3}"#,
    )
    .await
    .assert_outcome("accepted");
    // A spoofed left-most hop does not help: the right-most untrusted hop is what counts.
    send(
        Some("1.179.112.10, 8.8.8.8"),
        r#"{"event":"delivered","email":"a@example.com","id":1,"ts_epoch":4}"#,
    )
    .await
    .assert_error(403, "ip_not_allowed");
    let record = app
        .admin_get("/admin/ingest?outcome=accepted&limit=1")
        .await
        .json();
    assert_eq!(record["items"][0]["client_addr"], "172.246.250.1");
}

backend_tests!(
    status_table,
    concurrent_duplicates,
    read_timeouts,
    allowlists_and_proxies
);

/// Admin routes answer 401 without the bearer token.
#[tokio::test]
async fn admin_requires_token() {
    let app = TestApp::builder(Backend::Sqlite).start().await;
    for path in [
        "/admin/ingest",
        "/admin/connections",
        "/admin/ingest/01J00000000000000000000000",
    ] {
        let r = app.client.get(app.url(path)).send().await.expect("send");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth("wrong-token-wrong-token")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    let r = app
        .client
        .get(app.url("/admin/ingest"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let health = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(health.status().as_u16(), 200);
    let ready: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready");
}

/// `hookgate send` signs every fixture of every provider the way the provider would, and the
/// gateway accepts each one (every fixture is a mapped event). Shared-secret providers are sent
/// in each `auth` mode.
async fn send_every_fixture(backend: Backend) {
    let modes = ["bearer", "basic", "header:X-Webhook-Secret", "query:token"];
    let mut builder = TestApp::builder(backend);
    for p in ProviderId::ALL {
        let k = kit(p);
        if p.adapter().auth_kind() == AuthKind::Signature {
            builder = builder.connection(p.as_str(), p, &[k.secret]);
        } else {
            for (i, mode) in modes.iter().enumerate() {
                let secret = if *mode == "basic" {
                    "user:it-basic-password"
                } else {
                    k.secret
                };
                builder = builder.connection_with(&format!("{p}-{i}"), p, &[secret], |s| {
                    s.auth = Some(mode.parse().expect("mode"))
                });
            }
        }
    }
    let app = builder.start().await;
    for p in ProviderId::ALL {
        let dir = format!("{}/fixtures/{p}", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("fixture dir")
            .map(|e| e.expect("entry").path())
            .filter(|f| f.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{p} has fixtures");
        for (n, file) in files.iter().enumerate() {
            let signed_provider = p.adapter().auth_kind() == AuthKind::Signature;
            let (connection, mode, secret) = if signed_provider {
                (p.as_str().to_owned(), None, kit(p).secret)
            } else {
                let i = n % modes.len();
                let secret = if modes[i] == "basic" {
                    "user:it-basic-password"
                } else {
                    kit(p).secret
                };
                (format!("{p}-{i}"), Some(modes[i].to_owned()), secret)
            };
            let args = hookgate::cli::send::SendArgs {
                fixture: file.clone(),
                url: app.receive_url(p, &connection),
                secret: secret.to_owned(),
                provider: None,
                auth: mode.map(|m| m.parse().expect("auth mode")),
                delivery_id: None,
                topic: None,
                skew_secs: 0,
            };
            let request = hookgate::cli::send::signed_request(&args, hookgate::now_ms())
                .expect("sign fixture");
            let mut post = app.client.post(&request.url).body(request.body);
            for (name, value) in request.headers {
                post = post.header(name, value);
            }
            let answer = crate::support::Delivered::read(post.send().await.expect("send")).await;
            assert_eq!(
                answer.status.as_u16(),
                200,
                "{}: {}",
                file.display(),
                answer.text
            );
            assert_eq!(
                answer.json()["status"],
                "accepted",
                "{}: {}",
                file.display(),
                answer.text
            );
        }
    }
}

backend_tests!(send_every_fixture);
