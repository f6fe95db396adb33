//! The operator console in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, fantoccini) against a real `hookgate serve`, plus the session, CSRF and sign-in
//! limits checked with a plain HTTP client.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs them). With
//! `HOOKGATE_UPDATE_SCREENSHOTS=1` the screenshots go to `docs/screenshots/` (they are shown in
//! the README); otherwise to the test's temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::backend_tests;
use crate::cli::{hookgate, run, Server};
use crate::delivery::start_receivers;
use crate::support::{in_ci, Backend, TestStore};

const TOKEN: &str = "console-admin-token-0123456789";
const STRIPE_SECRET: &str = "whsec_console_stripe_secret";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The browser binaries, or a failure that says how to install them (never a silent skip).
fn browser_binaries() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the console browser test needs {missing:?}: install them with \
         `apt-get install -y --no-install-recommends chromium chromium-driver`{}",
        if in_ci() { " (.ci/run does it)" } else { "" }
    );
}

/// chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let driver = Driver { child, port };
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn browser(&self, profile: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-proxy-server",
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1280,900",
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go (the repository's copies come from the SQLite run only, so the two
/// runs never write the same file at once).
fn screenshot_dir(tmp: &Path, backend: &Backend) -> PathBuf {
    #[expect(clippy::disallowed_methods, reason = "tests read their own settings")]
    let update = std::env::var("HOOKGATE_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1");
    if update && matches!(backend, Backend::Sqlite) {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        tmp.join("screenshots")
    }
}

async fn shoot(browser: &Client, dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).expect("screenshot dir");
    // The viewport shows the top of the page; scroll there and let the fonts settle.
    browser
        .execute(
            "window.scrollTo(0, 0); document.activeElement.blur();",
            vec![],
        )
        .await
        .expect("scroll");
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

async fn page_text(browser: &Client) -> String {
    browser
        .execute("return document.body.innerText", vec![])
        .await
        .expect("text")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits (reloading when `reload`) until the page's text contains `needle`.
async fn until_text(browser: &Client, needle: &str, reload: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = page_text(browser).await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {needle:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        if reload {
            browser.refresh().await.expect("reload");
        }
    }
}

/// Waits (reloading) until an element matching `css` is on the page.
async fn until_element(browser: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while browser.find(Locator::Css(css)).await.is_err() {
        assert!(Instant::now() < deadline, "the page never had {css}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        browser.refresh().await.expect("reload");
    }
}

/// Waits until the loopback receiver has had `n` requests on `/ok-console`.
async fn until_received(receivers: &crate::delivery::Receivers, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while receivers.got("ok-console").len() < n {
        assert!(
            Instant::now() < deadline,
            "the receiver never got {n} requests"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(browser: &Client, css: &str, value: &str) {
    let input = browser.find(Locator::Css(css)).await.expect(css);
    input.clear().await.expect("clear");
    input.send_keys(value).await.expect("type");
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .expect("click");
}

async fn path(browser: &Client) -> String {
    browser.current_url().await.expect("url").path().to_owned()
}

/// Every visible form control on the page has a label, and the page does not scroll sideways.
async fn check_page(browser: &Client, what: &str) {
    let unlabelled = browser
        .execute(
            "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(e => !(e.labels && e.labels.length)).map(e => e.id || e.name)",
            vec![],
        )
        .await
        .expect("labels");
    assert_eq!(
        unlabelled,
        json!([]),
        "{what}: form controls without a label"
    );
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await
        .expect("width");
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "{what}: the page scrolls sideways by {overflow} px"
    );
}

fn send(dir: &Path, db: &str, fixture: &str, url: &str) -> String {
    let path = format!("{}/fixtures/stripe/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let (ok, out, err) =
        run(hookgate(dir, db).args(["send", &path, "--url", url, "--secret", STRIPE_SECRET]));
    assert!(
        ok && out.contains("\"accepted\""),
        "send {fixture}: {out} {err}"
    );
    let start = out.find('{').expect("json answer");
    let answer: Value = serde_json::from_str(out[start..].trim()).expect("json answer");
    answer["id"].as_str().expect("ingest id").to_owned()
}

/// Reads the session cookie's attributes from a sign-in made with a plain HTTP client.
async fn sign_in_over_http(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    forwarded: &[(&str, &str)],
) -> reqwest::Response {
    let mut get = http.get(format!("{base}/console/sign-in"));
    for (k, v) in forwarded {
        get = get.header(*k, *v);
    }
    let page = get.send().await.expect("sign-in page");
    let login = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hookgate_console_login="))
        .expect("login cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let csrf = login.split_once('=').expect("pair").1.to_owned();
    let mut post = http
        .post(format!("{base}/console/sign-in"))
        .header("cookie", &login)
        .form(&[("csrf", csrf.as_str()), ("token", token)]);
    for (k, v) in forwarded {
        post = post.header(*k, *v);
    }
    post.send().await.expect("sign in")
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hookgate_console=") && !v.starts_with("hookgate_console=;"))
        .map(str::to_owned)
}

async fn console_in_a_browser(backend: Backend) {
    browser_binaries();
    let store = TestStore::new(&backend).await;
    let db = store.binary_url();
    let dir = tempfile::tempdir().expect("temp dir");
    let (receivers, receiver_addr) = start_receivers().await;
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "127.0.0.1:0"
admin_token = "{TOKEN}"
trusted_proxies = ["127.0.0.1/32"]

[delivery]
allow_http = true
allow_cidrs = ["127.0.0.0/8"]
retry_schedule_secs = [5]
give_up_after_secs = 1

[[connections]]
id = "stripe-live"
provider = "stripe"
workspace = "acme"
secrets = ["{STRIPE_SECRET}"]
"#
        ),
    )
    .expect("config");
    let mut cmd = hookgate(dir.path(), &db);
    cmd.arg("--config").arg(&config).arg("serve");
    let server = tokio::task::spawn_blocking(move || Server::start(cmd))
        .await
        .expect("serve");
    let base = server.url("");
    let receive = server.url("/integrations/stripe/webhook/stripe-live");
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // --- Sessions and CSRF over plain HTTP.
    let signed = sign_in_over_http(&http, &base, TOKEN, &[]).await;
    assert_eq!(signed.status(), 303);
    let cookie = session_cookie(&signed).expect("a session cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http is not Secure: {cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_owned();
    let page = http
        .get(format!("{base}/console/connections"))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    // A state-changing POST with a valid session but no CSRF token (or a wrong one) is refused
    // and changes nothing; without a session it is refused before its body is read.
    for body in ["", "csrf=0000"] {
        let refused = http
            .post(format!("{base}/console/connections/stripe-live/disable"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(refused.status(), 403, "CSRF-less POST ({body:?})");
    }
    let stranger = http
        .post(format!("{base}/console/connections/stripe-live/disable"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=x")
        .send()
        .await
        .expect("post");
    assert_eq!(stranger.status(), 403);
    assert_eq!(stranger.headers()["connection"], "close");
    let view = http
        .get(format!("{base}/admin/connections/stripe-live"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(
        view["enabled"],
        json!(true),
        "a refused form changes nothing"
    );
    // An admin-scoped API key signs in; a key without the scope is told so; revoking the key
    // ends its session at the next request.
    let (ok, admin_key, err) =
        run(hookgate(dir.path(), &db)
            .args(["keys", "create", "--scope", "admin", "--name", "console"]));
    assert!(ok, "{err}");
    let admin_key = admin_key.trim().to_owned();
    let (ok, read_key, err) =
        run(hookgate(dir.path(), &db).args(["keys", "create", "--scope", "webhooks:read"]));
    assert!(ok, "{err}");
    let narrow = sign_in_over_http(&http, &base, read_key.trim(), &[]).await;
    assert_eq!(narrow.status(), 403);
    assert!(narrow
        .text()
        .await
        .expect("text")
        .contains("does not have the admin scope"));
    let keyed = sign_in_over_http(&http, &base, &admin_key, &[]).await;
    let keyed = session_cookie(&keyed).expect("a key signs in");
    let keyed = keyed.split(';').next().expect("pair").to_owned();
    let page = |cookie: String| {
        let http = http.clone();
        let url = format!("{base}/console/triggers");
        async move {
            http.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("page")
                .status()
                .as_u16()
        }
    };
    assert_eq!(page(keyed.clone()).await, 200);
    let key_id = admin_key.split('_').nth(1).expect("key id").to_owned();
    let (ok, _, err) = run(hookgate(dir.path(), &db).args(["keys", "revoke", &key_id]));
    assert!(ok, "{err}");
    assert_eq!(page(keyed).await, 303, "a revoked key's session ends");
    // Behind the trusted proxy over https the cookie is Secure.
    let proxied = sign_in_over_http(
        &http,
        &base,
        TOKEN,
        &[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "198.51.100.7"),
        ],
    )
    .await;
    let secure = session_cookie(&proxied).expect("a session cookie");
    assert!(secure.contains("; Secure"), "{secure}");
    // Wrong tokens: a clear message, and past the budget the client's address is refused even
    // with the right token. Another address (the browser below) is not affected.
    let wrong = sign_in_over_http(
        &http,
        &base,
        "not-the-token-at-all",
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.expect("text").contains("Wrong token"));
    let mut last = 0;
    for _ in 0..hookgate::http::console::SIGN_IN_BURST {
        last = sign_in_over_http(&http, &base, TOKEN, &[("x-forwarded-for", "203.0.113.9")])
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "sign-in attempts are rate limited per address");

    // --- The browser.
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().expect("profile");
    let browser = driver.browser(profile.path()).await;
    let shots = screenshot_dir(dir.path(), &backend);
    browser.set_window_size(1280, 900).await.expect("size");

    browser
        .goto(&format!("{base}/console"))
        .await
        .expect("open");
    assert_eq!(path(&browser).await, "/console/sign-in");
    check_page(&browser, "sign-in").await;
    fill(&browser, "#token", "wrong-token-0123456789").await;
    click(&browser, "form button[type=submit]").await;
    until_text(&browser, "Wrong token", false).await;
    // Signing in with the keyboard alone: type, then Enter.
    fill(&browser, "#token", TOKEN).await;
    browser
        .find(Locator::Css("#token"))
        .await
        .expect("token")
        .send_keys(&Key::Enter.to_string())
        .await
        .expect("enter");
    until_text(&browser, "No requests yet", false).await;
    assert_eq!(path(&browser).await, "/console/ingest");
    check_page(&browser, "empty ingest log").await;
    // The first Tab reaches the skip link.
    browser
        .active_element()
        .await
        .expect("focus")
        .send_keys(&Key::Tab.to_string())
        .await
        .expect("tab");
    let focused = browser
        .execute("return document.activeElement.textContent", vec![])
        .await
        .expect("focused");
    assert_eq!(focused, json!("Skip to content"));

    // A fixture sent with `hookgate send` appears in the open log by itself (live tail).
    let sent_dir = dir.path().to_owned();
    let db_url = db.clone();
    let receive_url = receive.clone();
    let ingest_id = tokio::task::spawn_blocking(move || {
        send(&sent_dir, &db_url, "invoice.paid.json", &receive_url)
    })
    .await
    .expect("send");
    let row = format!("tr[data-id=\"{ingest_id}\"]");
    browser
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(&row))
        .await
        .expect("the live tail shows the new request");
    until_text(&browser, "invoice.paid", false).await;
    check_page(&browser, "ingest log").await;

    // Open it: verification, timings, processing, contact, fires, headers, body.
    click(&browser, &format!("{row} a")).await;
    let record = until_text(&browser, "processed", true).await;
    for expected in [
        "Verification",
        "accepted",
        "Body read in",
        "Verified in",
        "jenny.rosen@example.com",
        "stripe.invoice.paid",
        "stripe-signature",
        "\"object\": \"event\"",
    ] {
        assert!(
            record.contains(expected) || browser.source().await.expect("source").contains(expected),
            "record page lacks {expected:?}:\n{record}"
        );
    }
    check_page(&browser, "record").await;
    shoot(&browser, &shots, "record").await;
    click(&browser, "form[action$=\"/replay\"] button").await;
    until_text(&browser, "Replayed: processed", false).await;

    // Add a connection: its receive URL is shown with a copy button.
    click(&browser, "nav a[href=\"/console/connections\"]").await;
    until_text(&browser, "Add a connection", false).await;
    fill(&browser, "#c-id", "clerk-console").await;
    browser
        .find(Locator::Css("#c-provider"))
        .await
        .expect("provider")
        .select_by_value("clerk")
        .await
        .expect("select");
    fill(
        &browser,
        "#c-secret",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .await;
    click(
        &browser,
        "form[action=\"/console/connections\"] button[type=submit]",
    )
    .await;
    until_text(&browser, "Connection clerk-console added", false).await;
    let url = browser
        .find(Locator::Css("#flash-copy"))
        .await
        .expect("receive URL")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert_eq!(
        url,
        format!("{base}/integrations/clerk/webhook/clerk-console")
    );
    click(&browser, "button[data-copy=\"flash-copy\"]").await;
    assert!(
        !browser
            .source()
            .await
            .expect("source")
            .contains("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "the secret is never shown back"
    );
    check_page(&browser, "connections").await;
    shoot(&browser, &shots, "connections").await;

    // Add an endpoint on a loopback receiver; a new event is delivered to it.
    click(&browser, "nav a[href=\"/console/endpoints\"]").await;
    until_text(&browser, "No endpoints yet", false).await;
    fill(&browser, "#e-id", "my-app").await;
    fill(
        &browser,
        "#e-url",
        &format!("http://{receiver_addr}/ok-console"),
    )
    .await;
    fill(&browser, "#e-types", "stripe.*").await;
    fill(&browser, "#e-workspace", "acme").await;
    click(
        &browser,
        "form[action=\"/console/endpoints\"] button[type=submit]",
    )
    .await;
    until_text(&browser, "Endpoint my-app added", false).await;
    let secret = browser
        .find(Locator::Css("#flash-copy"))
        .await
        .expect("secret")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(
        secret.starts_with("whsec_"),
        "the generated secret is shown once"
    );
    browser.refresh().await.expect("reload");
    assert!(
        !browser.source().await.expect("source").contains(&secret),
        "shown once only"
    );
    click(
        &browser,
        "form[action=\"/console/endpoints/my-app/test\"] button",
    )
    .await;
    until_text(&browser, "Test event to my-app: answered 200", false).await;
    check_page(&browser, "endpoints").await;
    shoot(&browser, &shots, "endpoints").await;

    let sent_dir = dir.path().to_owned();
    let db_url = db.clone();
    let receive_url = receive.clone();
    tokio::task::spawn_blocking(move || {
        send(&sent_dir, &db_url, "customer.created.json", &receive_url)
    })
    .await
    .expect("send");
    click(&browser, "a[href=\"/console/deliveries?endpoint=my-app\"]").await;
    until_element(&browser, "tbody tr td .badge.good").await;
    check_page(&browser, "deliveries").await;
    shoot(&browser, &shots, "deliveries").await;
    click(&browser, "tbody tr a[href^=\"/console/deliveries/dlv_\"]").await;
    let attempts = until_text(&browser, "Attempt log", false).await;
    assert!(
        attempts.contains("200") && attempts.contains("succeeded"),
        "{attempts}"
    );
    assert_eq!(
        receivers.got("ok-console").len(),
        2,
        "the receiver got the test event and the delivery"
    );
    // Resend it; requeue dead deliveries (there are none); replay an event from before the
    // endpoint existed.
    click(&browser, "form[action$=\"/resend\"] button").await;
    until_text(&browser, "Queued to be sent again now.", false).await;
    until_received(&receivers, 3).await;
    browser
        .goto(&format!("{base}/console/deliveries?endpoint=my-app"))
        .await
        .expect("deliveries");
    click(
        &browser,
        "form[action=\"/console/deliveries/requeue\"] button",
    )
    .await;
    until_text(&browser, "0 deliveries requeued.", false).await;
    click(&browser, "nav a[href=\"/console/endpoints\"]").await;
    click(&browser, "article.endpoint details summary").await;
    fill(&browser, "#type-my-app", "stripe.invoice.paid").await;
    click(
        &browser,
        "form[action=\"/console/endpoints/my-app/replay\"] button",
    )
    .await;
    until_text(&browser, "1 event(s) queued again for my-app.", false).await;
    until_received(&receivers, 4).await;
    let replayed: Value =
        serde_json::from_slice(&receivers.got("ok-console")[3].body).expect("json");
    assert_eq!(replayed["type"], "stripe.invoice.paid");

    // Dead-letter requeue: with a retry 5 s away and giving up after 1 s, each failed attempt
    // leaves the delivery dead. The receiver's `flaky` path fails twice, then answers 204: the
    // console's requeue sends the dead delivery again, twice, until it succeeds.
    let admin = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(TOKEN)
    };
    let made = admin(reqwest::Method::POST, "/admin/endpoints")
        .json(
            &json!({"id": "flaky-console", "url": format!("http://{receiver_addr}/flaky"),
                      "workspace": "acme", "event_types": ["stripe.invoice.paid"]}),
        )
        .send()
        .await
        .expect("create endpoint");
    assert_eq!(made.status(), 201);
    let queued = admin(
        reqwest::Method::POST,
        "/admin/endpoints/flaky-console/replay",
    )
    .send()
    .await
    .expect("replay");
    assert_eq!(queued.status(), 200);
    let queued: Value = queued.json().await.expect("json");
    assert_eq!(queued["queued"], 1, "the one invoice.paid event");
    let flaky_in = |status: &'static str| {
        let admin = &admin;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let page: Value = admin(
                    reqwest::Method::GET,
                    &format!("/admin/deliveries?endpoint=flaky-console&status={status}"),
                )
                .send()
                .await
                .expect("deliveries")
                .json()
                .await
                .expect("json");
                if page["items"].as_array().is_some_and(|i| i.len() == 1) {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "the flaky endpoint's delivery never became {status}: {page}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    for attempts in [1, 2] {
        flaky_in("dead").await;
        assert_eq!(receivers.got("flaky").len(), attempts);
        browser
            .goto(&format!("{base}/console/deliveries?endpoint=flaky-console"))
            .await
            .expect("deliveries");
        click(
            &browser,
            "form[action=\"/console/deliveries/requeue\"] button",
        )
        .await;
        until_text(&browser, "1 delivery requeued.", false).await;
    }
    flaky_in("succeeded").await;
    assert_eq!(receivers.got("flaky").len(), 3);

    // The other pages render with what exists.
    browser
        .goto(&format!("{base}/console/triggers"))
        .await
        .expect("triggers");
    until_text(&browser, "stripe.invoice.paid", false).await;
    check_page(&browser, "triggers").await;
    browser
        .goto(&format!("{base}/console/events"))
        .await
        .expect("events");
    until_text(&browser, "stripe.customer.created", false).await;
    check_page(&browser, "events").await;
    browser
        .goto(&format!(
            "{base}/console/contacts?email=jenny.rosen%40example.com&workspace=acme"
        ))
        .await
        .expect("contacts");
    until_text(&browser, "stripe_customer_id", false).await;
    check_page(&browser, "contacts").await;

    // A forged request is logged as rejected, with its reason.
    let forged = http
        .post(&receive)
        .header("stripe-signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 401);
    browser
        .goto(&format!("{base}/console/ingest"))
        .await
        .expect("ingest");
    until_text(&browser, "timestamp_too_old", true).await;
    shoot(&browser, &shots, "ingest-log").await;

    // A phone-sized window: no sideways scrolling, the navigation wraps.
    browser.set_window_size(390, 844).await.expect("size");
    browser
        .goto(&format!("{base}/console/ingest"))
        .await
        .expect("ingest");
    until_text(&browser, "invoice.paid", false).await;
    check_page(&browser, "ingest log at 390 px").await;
    shoot(&browser, &shots, "ingest-log-390").await;
    browser
        .goto(&format!("{base}/console/ingest/{ingest_id}"))
        .await
        .expect("record");
    check_page(&browser, "record at 390 px").await;
    for page in [
        "connections",
        "endpoints",
        "deliveries",
        "events",
        "triggers",
    ] {
        browser
            .goto(&format!("{base}/console/{page}"))
            .await
            .expect("page");
        check_page(&browser, &format!("{page} at 390 px")).await;
    }

    // Sign out: the session is gone for the browser and for its cookie.
    let cookie = browser
        .get_named_cookie("hookgate_console")
        .await
        .expect("session cookie");
    let stolen = format!("hookgate_console={}", cookie.value());
    click(&browser, "form.signout button").await;
    until_text(&browser, "You are signed out", false).await;
    browser
        .goto(&format!("{base}/console/ingest"))
        .await
        .expect("ingest");
    assert_eq!(path(&browser).await, "/console/sign-in");
    let after = http
        .get(format!("{base}/console/ingest"))
        .header("cookie", &stolen)
        .send()
        .await
        .expect("get");
    assert!(after.status().is_redirection(), "{}", after.status());
    let _ = browser.close().await;

    // Nothing secret reached the gateway's log.
    let log = server.log();
    for secret in [
        TOKEN,
        STRIPE_SECRET,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        secret.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    drop(driver);
    let _: SocketAddr = receiver_addr;
}

backend_tests!(console_in_a_browser);
