//! Hostile input on the receive URL, over real loopback HTTP: one table of requests a provider
//! would never send (or an attacker would), each with the status the gateway must answer and
//! whether the ingest log records it. After every row the process still answers `/healthz`, no
//! bad request has produced an `accepted` row, and every logged row is complete.
//!
//! Requests reqwest cannot express (bytes reqwest would normalise, oversized heads, chunked
//! bodies the server stops reading) go over a raw `TcpStream`.

use std::net::SocketAddr;
use std::time::Duration;

use hookgate::db::IngestFilter;
use hookgate::providers::{ProviderId, Secret};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend_tests;
use crate::support::{fixture, now_options, Backend, TestApp};

const STRIPE: &str = "whsec_bad_input_stripe_secret";
const CLERK: &str = "whsec_YmFkLWlucHV0LWNsZXJrLXNpZ25pbmcta2V5";
const BREVO: &str = "bad-input-brevo-token";
const MB: usize = 1024 * 1024;

/// How a row's request goes over the wire.
enum Req {
    /// Through reqwest: method, path, headers (appended, so duplicates stay duplicates), body.
    Http {
        method: Method,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Raw bytes: the request head (without the final empty line's `Connection: close`, which
    /// is added) and a body written by a separate task.
    Raw { head: String, body: Vec<u8> },
}

/// One row of the table.
struct Row {
    name: &'static str,
    req: Req,
    status: u16,
    /// `{"error": code}` in the answer, when the gateway (rather than hyper) answers.
    code: Option<&'static str>,
    /// The ingest log records the request as rejected with this reason (`None`: not logged).
    logged: Option<&'static str>,
    /// The request is legitimate and stored as `accepted`.
    accepted: bool,
}

/// Signs `body` for `provider` and returns the headers to send.
fn signed(provider: ProviderId, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    provider
        .adapter()
        .sign(body, &Secret::new(secret), &now_options())
        .expect("sign")
        .headers
        .into_iter()
        .map(|(n, v)| (n.as_str().to_owned(), v))
        .collect()
}

fn post(path: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Req {
    Req::Http {
        method: Method::POST,
        path: path.to_owned(),
        headers,
        body,
    }
}

fn json_ct(mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers.push(("content-type".into(), "application/json".into()));
    headers
}

/// A POST head for a raw request to `path` with extra header lines.
fn raw_head(path: &str, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nhost: gateway\r\n{extra}")
}

/// The answer to a raw request: status (0 if the server closed without answering) and text.
struct RawAnswer {
    status: u16,
    text: String,
}

/// Sends a raw request and reads until the server closes the connection. The body is written by
/// its own task so that a server that answers early and stops reading cannot block the test; a
/// write error (the server closed) is expected then and ignored.
async fn raw(addr: SocketAddr, head: &str, body: Vec<u8>) -> RawAnswer {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = format!("{head}connection: close\r\n\r\n").into_bytes();
    let writer = tokio::spawn(async move {
        if wr.write_all(&head).await.is_ok() {
            for chunk in body.chunks(64 * 1024) {
                if wr.write_all(chunk).await.is_err() {
                    break;
                }
            }
        }
        // Keep the write half open until the answer is read: half-closing early could make
        // the server drop the request.
        wr
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                // A reset after the answer (the server closed with our bytes unread).
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server neither answered nor closed the connection"
    );
    writer.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    RawAnswer { status, text }
}

/// `body` as HTTP/1.1 chunks of 64 KiB, with the closing chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 1000 + 16);
    for chunk in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn table() -> Vec<Row> {
    let stripe = "/integrations/stripe/webhook/stripe";
    let clerk = "/integrations/clerk/webhook/clerk";
    let brevo = "/integrations/brevo/webhook/brevo";
    let invalid_utf8 = b"{\"id\":\"evt_\xff\xfe\xc3\x28\",\"type\":\"invoice.paid\"}\x80".to_vec();
    let deep_object = {
        let mut b = "{\"a\":".repeat(100_000);
        b.push('1');
        b.push_str(&"}".repeat(100_000));
        b.into_bytes()
    };
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let nul_id = br#"{"id":"evt_nul\u0000here","object":"event","type":"invoice.paid"}"#.to_vec();
    let invoice = fixture(ProviderId::Stripe, "invoice.paid.json");
    let user = fixture(ProviderId::Clerk, "user.created.json");
    let ten_mb = vec![b'x'; 10 * MB];
    let wrong_secret = signed(
        ProviderId::Stripe,
        "whsec_not_the_configured_one",
        &invalid_utf8,
    );
    let many_headers: String = (0..10_000).map(|i| format!("x-flood-{i}: v\r\n")).collect();
    let huge_header = format!("x-huge: {}\r\n", "h".repeat(MB));
    let two_stripe = {
        let mut h = signed(ProviderId::Stripe, STRIPE, &invoice);
        h.extend(signed(ProviderId::Stripe, "whsec_second_signer", &invoice));
        json_ct(h)
    };
    let two_svix = {
        let mut h = signed(ProviderId::Clerk, CLERK, &user);
        let (_, sig) = h
            .iter()
            .find(|(n, _)| n == "svix-signature")
            .cloned()
            .expect("svix-signature");
        h.push(("svix-signature".into(), sig));
        json_ct(h)
    };
    let brevo_body = br#"{"event":"delivered","email":"dup@example.com","id":7,"ts_epoch":1}"#;
    let two_auth = vec![
        ("authorization".into(), format!("Bearer {BREVO}")),
        ("authorization".into(), "Bearer someone-else".into()),
    ];
    let text_plain = {
        let mut h = signed(ProviderId::Stripe, STRIPE, &invoice);
        h.push(("content-type".into(), "text/plain; charset=utf-8".into()));
        h
    };
    let long_id = "a".repeat(1000);
    let path_row = |name, path: String, status, code| Row {
        name,
        req: Req::Raw {
            head: raw_head(&path, "content-length: 2\r\n"),
            body: b"{}".to_vec(),
        },
        status,
        code,
        logged: None,
        accepted: false,
    };
    let method_row = |name, method: Method| Row {
        name,
        req: Req::Http {
            method,
            path: stripe.to_owned(),
            headers: Vec::new(),
            body: invoice.clone(),
        },
        status: 405,
        code: None,
        logged: None,
        accepted: false,
    };

    vec![
        Row {
            name: "empty body, no signature",
            req: post(stripe, Vec::new(), Vec::new()),
            status: 401,
            code: Some("missing_signature_header"),
            logged: Some("missing_signature_header"),
            accepted: false,
        },
        Row {
            name: "empty body, correctly signed",
            req: post(stripe, signed(ProviderId::Stripe, STRIPE, b""), Vec::new()),
            status: 400,
            code: Some("invalid_json"),
            logged: Some("invalid_json"),
            accepted: false,
        },
        Row {
            name: "invalid UTF-8 body, signed with another secret",
            req: post(stripe, wrong_secret, invalid_utf8.clone()),
            status: 401,
            code: Some("signature_mismatch"),
            logged: Some("signature_mismatch"),
            accepted: false,
        },
        Row {
            name: "invalid UTF-8 body, no signature (Svix)",
            req: post(clerk, Vec::new(), invalid_utf8.clone()),
            status: 401,
            code: Some("missing_signature_header"),
            logged: Some("missing_signature_header"),
            accepted: false,
        },
        Row {
            name: "invalid UTF-8 body, correctly signed",
            req: post(
                stripe,
                signed(ProviderId::Stripe, STRIPE, &invalid_utf8),
                invalid_utf8.clone(),
            ),
            status: 400,
            code: Some("invalid_json"),
            logged: Some("invalid_json"),
            accepted: false,
        },
        Row {
            name: "JSON object nested 100 000 deep, correctly signed",
            req: post(
                stripe,
                json_ct(signed(ProviderId::Stripe, STRIPE, &deep_object)),
                deep_object.clone(),
            ),
            status: 400,
            code: Some("invalid_json"),
            logged: Some("invalid_json"),
            accepted: false,
        },
        Row {
            name: "JSON array nested 100 000 deep, correctly signed (Svix)",
            req: post(
                clerk,
                json_ct(signed(ProviderId::Clerk, CLERK, &deep_array)),
                deep_array.clone(),
            ),
            status: 400,
            code: Some("invalid_json"),
            logged: Some("invalid_json"),
            accepted: false,
        },
        Row {
            name: "correctly signed JSON whose event id holds a NUL character",
            req: post(
                stripe,
                json_ct(signed(ProviderId::Stripe, STRIPE, &nul_id)),
                nul_id.clone(),
            ),
            status: 400,
            code: Some("unexpected_payload"),
            logged: Some("unexpected_payload"),
            accepted: false,
        },
        Row {
            name: "10 MB body with Content-Length",
            req: Req::Raw {
                head: raw_head(stripe, &format!("content-length: {}\r\n", ten_mb.len())),
                body: ten_mb.clone(),
            },
            status: 413,
            code: Some("body_too_large"),
            logged: Some("body_too_large"),
            accepted: false,
        },
        Row {
            name: "10 MB chunked body without Content-Length",
            req: Req::Raw {
                head: raw_head(stripe, "transfer-encoding: chunked\r\n"),
                body: chunked(&ten_mb),
            },
            status: 413,
            code: Some("body_too_large"),
            logged: Some("body_too_large"),
            accepted: false,
        },
        Row {
            // hyper refuses more than 100 headers before any handler runs.
            name: "10 000 headers",
            req: Req::Raw {
                head: raw_head(stripe, &format!("{many_headers}content-length: 2\r\n")),
                body: b"{}".to_vec(),
            },
            status: 431,
            code: None,
            logged: None,
            accepted: false,
        },
        Row {
            // The request head is over the accept loop's 256 KiB buffer.
            name: "one 1 MB header",
            req: Req::Raw {
                head: raw_head(stripe, &format!("{huge_header}content-length: 2\r\n")),
                body: b"{}".to_vec(),
            },
            status: 431,
            code: None,
            logged: None,
            accepted: false,
        },
        Row {
            name: "two Stripe-Signature headers",
            req: post(stripe, two_stripe, invoice.clone()),
            status: 401,
            code: Some("invalid_signature_header"),
            logged: Some("invalid_signature_header"),
            accepted: false,
        },
        Row {
            name: "two svix-signature headers, both valid",
            req: post(clerk, two_svix, user.clone()),
            status: 401,
            code: Some("invalid_signature_header"),
            logged: Some("invalid_signature_header"),
            accepted: false,
        },
        Row {
            name: "two Authorization headers on a shared-secret connection",
            req: post(brevo, two_auth, brevo_body.to_vec()),
            status: 401,
            code: Some("credentials_mismatch"),
            logged: Some("credentials_mismatch"),
            accepted: false,
        },
        Row {
            // Providers sign the raw bytes; the content type is not signed and is not checked.
            name: "text/plain content type, correctly signed JSON",
            req: post(stripe, text_plain, invoice.clone()),
            status: 200,
            code: None,
            logged: None,
            accepted: true,
        },
        Row {
            name: "no content type at all, correctly signed JSON (Svix)",
            req: post(clerk, signed(ProviderId::Clerk, CLERK, &user), user.clone()),
            status: 200,
            code: None,
            logged: None,
            accepted: true,
        },
        method_row("GET on the receive URL", Method::GET),
        method_row("PUT on the receive URL", Method::PUT),
        method_row("DELETE on the receive URL", Method::DELETE),
        path_row(
            "connection id `..`",
            "/integrations/stripe/webhook/..".into(),
            404,
            Some("not_found"),
        ),
        path_row(
            "`../..` out of the receive URL (not normalised into /healthz)",
            "/integrations/stripe/webhook/../../../healthz".into(),
            404,
            Some("not_found"),
        ),
        path_row(
            "connection id with %2F",
            "/integrations/stripe/webhook/stripe%2F..".into(),
            404,
            Some("not_found"),
        ),
        path_row(
            "connection id with percent-encoded unicode",
            "/integrations/stripe/webhook/str%C3%AFpe".into(),
            404,
            Some("not_found"),
        ),
        path_row(
            "connection id with percent-encoded invalid UTF-8",
            "/integrations/stripe/webhook/stripe%FF".into(),
            404,
            Some("not_found"),
        ),
        path_row(
            // hyper lets raw UTF-8 through to the router; it is not a valid id.
            "connection id with raw unicode bytes",
            "/integrations/stripe/webhook/strïpe".into(),
            404,
            Some("not_found"),
        ),
        path_row(
            "connection id of 1 000 characters",
            format!("/integrations/stripe/webhook/{long_id}"),
            404,
            Some("not_found"),
        ),
        path_row(
            "unknown provider",
            "/integrations/paypal/webhook/stripe".into(),
            404,
            Some("not_found"),
        ),
        Row {
            // A well-formed id could be a dashboard typo, so it is logged for the operator.
            name: "well-formed but unknown connection id",
            req: post(
                "/integrations/stripe/webhook/stripe-typo",
                json_ct(signed(ProviderId::Stripe, STRIPE, &invoice)),
                invoice.clone(),
            ),
            status: 404,
            code: Some("not_found"),
            logged: Some("not_found"),
            accepted: false,
        },
        Row {
            name: "provider segment differs from the connection's provider",
            req: post(
                "/integrations/clerk/webhook/stripe",
                json_ct(signed(ProviderId::Stripe, STRIPE, &invoice)),
                invoice.clone(),
            ),
            status: 404,
            code: Some("not_found"),
            logged: Some("not_found"),
            accepted: false,
        },
    ]
}

/// Asserts that an ingest row is complete: every column a reader relies on is there and
/// consistent with the outcome.
#[track_caller]
fn assert_complete(row: &hookgate::db::rows::IngestRow) {
    let s = &row.summary;
    let what = format!("{} {} {:?}", s.id, s.outcome, s.reason);
    assert!(ulid::Ulid::from_string(&s.id).is_ok(), "{what}");
    assert!(s.received_at > 0, "{what}");
    assert!(
        ["stripe", "clerk", "brevo"].contains(&s.connection_id.as_str())
            || s.connection_id == "stripe-typo",
        "{what}"
    );
    assert!(s.provider.parse::<ProviderId>().is_ok(), "{what}");
    assert_eq!(s.client_addr.as_deref(), Some("127.0.0.1"), "{what}");
    assert!(row.path.starts_with("/integrations/"), "{what}");
    let headers: Vec<[String; 2]> = serde_json::from_str(&row.headers).expect("headers JSON");
    assert!(!headers.is_empty(), "{what}");
    assert!(
        i64::try_from(row.body.len()).expect("size") <= s.body_size,
        "{what}"
    );
    assert_eq!(
        row.body_truncated,
        i64::try_from(row.body.len()).expect("size") < s.body_size,
        "{what}"
    );
    match s.outcome.as_str() {
        "accepted" => {
            assert_eq!(s.http_status, 200, "{what}");
            assert!(s.event_id.is_some() && s.event_type.is_some(), "{what}");
            assert!(s.status.is_some() && s.reason.is_none(), "{what}");
            assert!(!row.body_truncated, "{what}");
        }
        "rejected" => {
            assert!((400..500).contains(&s.http_status), "{what}");
            assert!(s.reason.as_deref().is_some_and(|r| !r.is_empty()), "{what}");
            assert!(s.event_id.is_none() && s.status.is_none(), "{what}");
            assert!(
                row.body.len() <= hookgate::http::webhook::REJECT_BODY_PREFIX,
                "{what}"
            );
        }
        other => panic!("no {other} row is expected here: {what}"),
    }
}

async fn hostile_requests(backend: Backend) {
    let app = TestApp::builder(backend)
        .connection("stripe", ProviderId::Stripe, &[STRIPE])
        .connection("clerk", ProviderId::Clerk, &[CLERK])
        .connection("brevo", ProviderId::Brevo, &[BREVO])
        .start()
        .await;
    let all = IngestFilter {
        limit: 1000,
        ..IngestFilter::default()
    };
    let mut logged = 0;
    let mut accepted = 0;
    for row in table() {
        let name = row.name;
        let (status, text) = match row.req {
            Req::Http {
                method,
                path,
                headers,
                body,
            } => {
                let mut request = app.client.request(method, app.url(&path)).body(body);
                for (n, v) in headers {
                    request = request.header(n, v);
                }
                let answer = crate::support::Delivered::read(
                    request
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {e}")),
                )
                .await;
                (answer.status.as_u16(), answer.text)
            }
            Req::Raw { head, body } => {
                let answer = raw(app.addr, &head, body).await;
                let body = answer
                    .text
                    .split_once("\r\n\r\n")
                    .map(|(_, b)| b.to_owned())
                    .unwrap_or_default();
                assert_ne!(answer.status, 0, "{name}: no answer: {:?}", answer.text);
                (answer.status, body)
            }
        };
        assert_eq!(status, row.status, "{name}: answered {text}");
        if let Some(code) = row.code {
            let json: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
            assert_eq!(json["error"], code, "{name}: {text}");
        }
        if row.accepted {
            let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(json["status"], "accepted", "{name}: {text}");
            accepted += 1;
        }

        // The process is still up.
        let health = app
            .client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: /healthz after the row: {e}"));
        assert_eq!(health.status().as_u16(), 200, "{name}: /healthz");

        // The ingest log holds exactly the rows expected so far (rejections are logged without
        // waiting for the commit, so wait for a row that should appear).
        if row.logged.is_some() || row.accepted {
            logged += 1;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let rows = loop {
            let rows = app.store.db.list_ingest(&all).await.expect("list ingest");
            if rows.len() >= logged || std::time::Instant::now() > deadline {
                break rows;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(rows.len(), logged, "{name}: ingest rows {rows:#?}");
        let stored = rows.iter().filter(|r| r.outcome == "accepted").count();
        assert_eq!(
            stored, accepted,
            "{name}: an accepted row for a bad request"
        );
        if let Some(reason) = row.logged {
            // The newest row is this request's (requests are sequential).
            let newest = &rows[0];
            assert_eq!(newest.outcome, "rejected", "{name}");
            assert_eq!(i32::from(row.status), newest.http_status, "{name}");
            let code = newest.reason.as_deref().unwrap_or("");
            assert!(code.starts_with(reason), "{name}: reason {code}");
        }
        for summary in &rows {
            let full = app
                .store
                .db
                .get_ingest(&summary.id)
                .await
                .expect("get ingest")
                .expect("row");
            assert_complete(&full);
            // The admin API renders every row, whatever its body.
            app.admin_get(&format!("/admin/ingest/{}", summary.id))
                .await
                .assert_status(200);
        }
    }

    // serde_json's recursion limit (128) turned the deep bodies into a parse error rather
    // than a stack overflow, and the reason says so.
    let deep = app
        .store
        .db
        .list_ingest(&IngestFilter {
            outcome: Some("rejected".into()),
            limit: 1000,
            ..IngestFilter::default()
        })
        .await
        .expect("list");
    let recursion = deep
        .iter()
        .filter(|r| {
            r.reason
                .as_deref()
                .is_some_and(|t| t.contains("recursion limit exceeded"))
        })
        .count();
    assert_eq!(recursion, 2, "both deep bodies hit the recursion limit");
    // The listing shows every row too.
    let listed = app.admin_get("/admin/ingest?limit=500").await;
    listed.assert_status(200);
    assert_eq!(
        listed.json()["items"].as_array().expect("items").len(),
        logged
    );
    // And a normal delivery still goes through afterwards.
    app.deliver(
        ProviderId::Stripe,
        "stripe",
        &fixture(ProviderId::Stripe, "customer.created.json"),
        STRIPE,
        now_options(),
    )
    .await
    .assert_outcome("accepted");
}

backend_tests!(hostile_requests);

/// A verified event whose contact fields hold NUL (an end user can type one into their name at
/// the provider): it is processed like any other, and it does not hold up the events after it.
async fn nul_in_verified_payload(backend: Backend) {
    let app = TestApp::builder(backend)
        .connection("clerk", ProviderId::Clerk, &[CLERK])
        .start()
        .await;
    let mut user: serde_json::Value =
        serde_json::from_slice(&fixture(ProviderId::Clerk, "user.created.json")).expect("json");
    user["data"]["first_name"] = "Ma\u{0}ya".into();
    user["data"]["last_name"] = "\u{0}".into();
    user["data"]["id"] = "user_nul\u{0}id".into();
    let poisoned = serde_json::to_vec(&user).expect("json");
    let first = app
        .deliver(ProviderId::Clerk, "clerk", &poisoned, CLERK, now_options())
        .await
        .assert_outcome("accepted");
    // Another user, so that the first contact's names stay the ones the first event wrote.
    let mut other: serde_json::Value =
        serde_json::from_slice(&fixture(ProviderId::Clerk, "user.updated.json")).expect("json");
    other["data"]["id"] = "user_someone_else".into();
    other["data"]["email_addresses"][0]["email_address"] = "someone.else@example.com".into();
    let next = serde_json::to_vec(&other).expect("json");
    let second = app
        .deliver(ProviderId::Clerk, "clerk", &next, CLERK, now_options())
        .await
        .assert_outcome("accepted");
    crate::pipeline::settle(&app.store.db).await;
    for id in [&first, &second] {
        let record = app.admin_get(&format!("/admin/ingest/{id}")).await.json();
        assert_eq!(record["status"], "processed", "{record}");
    }
    let email = user["data"]["email_addresses"][0]["email_address"]
        .as_str()
        .expect("email");
    let contact = app.admin_get(&format!("/admin/contacts/{email}")).await;
    contact.assert_status(200);
    // The NUL became U+FFFD in the name columns (JSON columns keep it, escaped).
    let json = contact.json();
    let names = format!("{} {}", json["first_name"], json["last_name"]);
    assert!(names.contains('\u{FFFD}'), "{names}");
}

backend_tests!(nul_in_verified_payload);
