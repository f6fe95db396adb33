//! The operator console (`/console`): server-rendered HTML pages (maud) over the same store and
//! domain functions the admin API calls, one small stylesheet and one small script built into
//! the binary, nothing fetched from anywhere at run time.
//!
//! Sign-in takes the admin token or an `admin`-scoped API key, checked by [`crate::auth`] exactly
//! as a bearer token is, and opens a server-side session held in memory (a random 256-bit id in
//! an HttpOnly, SameSite=Strict cookie scoped to `/console`, `Secure` behind an https proxy,
//! expiring after [`SESSION_TTL`]). Every form that changes something carries the session's
//! random CSRF token, compared in constant time. A POST without a valid session is refused from
//! its headers, before its body is read; bodies are capped at [`API_BODY_LIMIT`] and read within
//! `body_timeout_secs`, like the admin API's.
//!
//! Sign-in attempts are rate limited per client address (as the receive path computes it, with
//! `trusted_proxies`).

mod pages;
mod view;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::auth::Principal;
use crate::http::API_BODY_LIMIT;
use crate::AppState;

/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions held at once, at most (the oldest-expiring are dropped past it).
const MAX_SESSIONS: usize = 10_000;
/// Sign-in attempts per client address: a burst of this many, then one every 6 s.
pub const SIGN_IN_BURST: u32 = 10;

const SESSION_COOKIE: &str = "hookgate_console";
/// The pre-sign-in cookie: its value is the sign-in form's CSRF token (double submit).
const LOGIN_COOKIE: &str = "hookgate_console_login";

/// The console's state: the gateway's, the open sessions and the sign-in limiter.
#[derive(Clone)]
pub struct Console {
    app: AppState,
    inner: Arc<Inner>,
}

struct Inner {
    /// Keyed by the SHA-256 of the cookie value, so a lookup never compares the secret itself.
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    sign_in: DefaultKeyedRateLimiter<IpAddr>,
}

/// A signed-in operator.
#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    principal: Principal,
    expires_at: i64,
    /// A message for the next page shown (after a form's redirect).
    flash: Option<view::Flash>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("principal", &self.principal.name)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The console's routes, with their own state; merged into the gateway's router.
pub fn routes<S>(app: AppState) -> Router<S> {
    let quota = Quota::with_period(Duration::from_secs(6))
        .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::new(SIGN_IN_BURST).unwrap_or(NonZeroU32::MIN));
    let console = Console {
        app,
        inner: Arc::new(Inner {
            sessions: Mutex::new(HashMap::new()),
            sign_in: RateLimiter::keyed(quota),
        }),
    };
    Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route("/console/assets/console.css", get(view::css))
        .route("/console/assets/console.js", get(view::js))
        .route(
            "/console/sign-in",
            get(pages::sign_in_page).post(pages::sign_in),
        )
        .route("/console/sign-out", post(pages::sign_out))
        .route("/console/ingest", get(pages::ingest))
        .route("/console/ingest/tail", get(pages::ingest_tail))
        .route("/console/ingest/{id}", get(pages::record))
        .route("/console/ingest/{id}/replay", post(pages::replay))
        .route(
            "/console/connections",
            get(pages::connections).post(pages::add_connection),
        )
        .route(
            "/console/connections/{id}/{action}",
            post(pages::connection_action),
        )
        .route(
            "/console/endpoints",
            get(pages::endpoints).post(pages::add_endpoint),
        )
        .route(
            "/console/endpoints/{id}/{action}",
            post(pages::endpoint_action),
        )
        .route("/console/deliveries", get(pages::deliveries))
        .route("/console/deliveries/requeue", post(pages::requeue))
        .route("/console/deliveries/{id}", get(pages::delivery))
        .route("/console/deliveries/{id}/resend", post(pages::resend))
        .route("/console/contacts", get(pages::contacts))
        .route("/console/triggers", get(pages::triggers))
        .route("/console/events", get(pages::events))
        .route("/console/events/tail", get(pages::events_tail))
        .route("/console/{*rest}", get(|| async { view::not_found() }))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// Headers on every console answer: no framing, no sniffing, no referrer, nothing cached, and
/// a content security policy that allows only the console's own script and stylesheet.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn session_key(cookie: &str) -> [u8; 32] {
    sha2::Sha256::digest(cookie.as_bytes()).into()
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request came over https: only a trusted proxy's `X-Forwarded-Proto` says so.
fn over_https(peer: SocketAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> bool {
    let peer_ip = crate::connections::unmapped(peer.ip());
    trusted.iter().any(|net| net.contains(&peer_ip))
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value for the console.
fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("hookgate_console=; Path=/console; Max-Age=0"))
}

/// Answers a request refused before its body was read: the connection cannot carry another.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A form's fields.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(bytes: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// A field's value, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A field as an owned string (`None` when absent or empty).
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// A checkbox.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl Console {
    /// The session of a request, if its cookie names one that is open and its credential is
    /// still good (a revoked or expired API key ends its sessions).
    async fn session(&self, headers: &HeaderMap) -> Option<(Session, [u8; 32])> {
        self.lookup(headers, false).await
    }

    /// As [`Console::session`]; with `take_flash` the session's message is handed over once (a
    /// page shows it; live-tail polls and form posts leave it for the page).
    async fn lookup(&self, headers: &HeaderMap, take_flash: bool) -> Option<(Session, [u8; 32])> {
        let key = session_key(cookie(headers, SESSION_COOKIE)?);
        let session = {
            let mut sessions = self
                .inner
                .sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let session = sessions.get_mut(&key)?;
            if session.expires_at <= crate::now_ms() {
                sessions.remove(&key);
                return None;
            }
            let found = session.clone();
            if take_flash {
                session.flash = None;
            }
            found
        };
        if !session.principal.still_valid(&self.app).await {
            self.end(&key);
            return None;
        }
        Some((session, key))
    }

    /// The session of a page request, or a redirect to the sign-in page.
    async fn page_session(&self, headers: &HeaderMap) -> Result<Session, Response> {
        match self.lookup(headers, true).await {
            Some((session, _)) => Ok(session),
            None => Err(Redirect::to("/console/sign-in").into_response()),
        }
    }

    fn open(&self, principal: Principal) -> String {
        let id = random_token();
        let now = crate::now_ms();
        let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, s| s.expires_at > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| *k)
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            session_key(&id),
            Session {
                csrf: random_token(),
                principal,
                expires_at: now.saturating_add(ttl),
                flash: None,
            },
        );
        id
    }

    fn end(&self, key: &[u8; 32]) {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// Leaves a message for the session's next page.
    fn flash(&self, key: &[u8; 32], flash: view::Flash) {
        if let Some(s) = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(key)
        {
            s.flash = Some(flash);
        }
    }

    /// A state-changing request: its session from the headers first (else 403 without
    /// reading the body), then its body within the limits, then its CSRF token.
    async fn form(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(Session, [u8; 32], Form), Response> {
        let Some((session, key)) = self.session(headers).await else {
            return Err(closing(view::refused(
                StatusCode::FORBIDDEN,
                "Your console session has ended or never began: sign in again.",
            )));
        };
        let form = self.read_form(headers, body).await?;
        let sent = form.get("csrf").unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return Err(view::refused(
                StatusCode::FORBIDDEN,
                "This form is missing its security token (CSRF): reload the page and try again.",
            ));
        }
        Ok((session, key, form))
    }

    async fn read_form(&self, headers: &HeaderMap, body: Body) -> Result<Form, Response> {
        match crate::http::webhook::read_body(
            body,
            headers,
            API_BODY_LIMIT,
            self.app.config.body_timeout_secs,
        )
        .await
        {
            Ok(bytes) => Ok(Form::parse(&bytes)),
            Err(error) => Err(closing(error.into_response())),
        }
    }

    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        crate::http::webhook::client_addr(peer, headers, &self.app.config.trusted_proxies)
    }

    /// Takes one sign-in attempt from the client's budget; `false` when it is used up.
    fn sign_in_allowed(&self, client: IpAddr) -> bool {
        if self.inner.sign_in.len() > 100_000 {
            self.inner.sign_in.retain_recent();
        }
        self.inner.sign_in.check_key(&client).is_ok()
    }
}

/// The peer address, as the accept loop provides it.
type Peer = ConnectInfo<SocketAddr>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_forms_and_https() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; hookgate_console=abc; hookgate_console_login=def"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("def"));
        assert_eq!(cookie(&headers, "missing"), None);

        let form = Form::parse(b"csrf=x%20y&empty=&drop_old=1&secret=+s3cret+");
        assert_eq!(form.get("csrf"), Some("x y"));
        assert_eq!(form.get("empty"), None);
        assert!(form.checked("drop_old") && !form.checked("absent"));
        assert_eq!(form.text("secret").as_deref(), Some("s3cret"));

        let proxy: ipnet::IpNet = "10.0.0.0/8".parse().expect("net");
        let mut forwarded = HeaderMap::new();
        forwarded.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let from_proxy: SocketAddr = "10.1.2.3:5000".parse().expect("addr");
        let stranger: SocketAddr = "192.0.2.1:5000".parse().expect("addr");
        assert!(over_https(from_proxy, &forwarded, &[proxy]));
        assert!(
            !over_https(stranger, &forwarded, &[proxy]),
            "only a trusted proxy is believed"
        );
        assert!(!over_https(from_proxy, &HeaderMap::new(), &[proxy]));

        let set = set_cookie(SESSION_COOKIE, "v", 60, true);
        assert_eq!(
            set.to_str().expect("text"),
            "hookgate_console=v; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token());
    }
}
