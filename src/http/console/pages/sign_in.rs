//! Sign-in and sign-out.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::super as console;
use super::super::view::{self};
use super::super::{Console, Peer};

use crate::auth::Scope;
use crate::error::AppError;

pub async fn home(State(c): State<Console>, headers: HeaderMap) -> Response {
    if c.session(&headers).await.is_some() {
        Redirect::to("/console/ingest").into_response()
    } else {
        Redirect::to("/console/sign-in").into_response()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    signed_out: Option<String>,
}

fn sign_in_form(login_token: &str, message: Option<(bool, &str)>) -> Markup {
    html! {
        h1 { "Sign in to hookgate" }
        @if let Some((ok, text)) = message {
            p.flash.ok[ok].error[!ok] role=(if ok { "status" } else { "alert" }) { (text) }
        }
        form.card method="post" action="/console/sign-in" {
            input type="hidden" name="csrf" value=(login_token);
            div.field {
                label for="token" { "Admin token or admin API key" }
                input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
                small { "The gateway's admin_token, or a key made with hookgate keys create --scope admin." }
            }
            button type="submit" { "Sign in" }
        }
    }
}

pub async fn sign_in_page(
    State(c): State<Console>,
    axum::extract::ConnectInfo(peer): Peer,
    headers: HeaderMap,
    query: Result<Query<SignInQuery>, QueryRejection>,
) -> Response {
    if c.session(&headers).await.is_some() {
        return Redirect::to("/console/ingest").into_response();
    }
    let token = match console::cookie(&headers, console::LOGIN_COOKIE) {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => t.to_owned(),
        _ => console::random_token(),
    };
    let signed_out = query.is_ok_and(|Query(q)| q.signed_out.is_some());
    let message = signed_out.then_some((true, "You are signed out."));
    let mut response = view::bare("Sign in", StatusCode::OK, sign_in_form(&token, message));
    let secure = console::over_https(peer, &headers, &c.app.config.trusted_proxies);
    response.headers_mut().append(
        header::SET_COOKIE,
        console::set_cookie(console::LOGIN_COOKIE, &token, 3600, secure),
    );
    response
}

pub async fn sign_in(
    State(c): State<Console>,
    axum::extract::ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(login) = console::cookie(&headers, console::LOGIN_COOKIE).map(str::to_owned) else {
        return console::closing(view::refused(
            StatusCode::FORBIDDEN,
            "Your browser did not send the sign-in cookie: open the sign-in page again (cookies must be enabled).",
        ));
    };
    let client = c.client(peer, &headers);
    let again = |status: StatusCode, text: &str| {
        view::bare("Sign in", status, sign_in_form(&login, Some((false, text))))
    };
    if !c.sign_in_allowed(client) {
        tracing::warn!(client = %client, "console sign-in refused: too many attempts");
        return console::closing(again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in attempts from your address: wait a minute and try again.",
        ));
    }
    let form = match c.read_form(&headers, body).await {
        Ok(form) => form,
        Err(response) => return response,
    };
    let sent = form.get("csrf").unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        sent.as_bytes(),
        login.as_bytes(),
    )) {
        return view::refused(
            StatusCode::FORBIDDEN,
            "This sign-in form is missing its security token (CSRF): open the sign-in page again.",
        );
    }
    let token = form.get("token").unwrap_or("");
    let mut bearer = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        bearer.insert(header::AUTHORIZATION, value);
    }
    match crate::auth::authorize(&c.app, &bearer, Scope::Admin).await {
        Ok(principal) => {
            tracing::info!(principal = %principal.name, client = %client, "console sign-in");
            let id = c.open(principal);
            let secure = console::over_https(peer, &headers, &c.app.config.trusted_proxies);
            let mut response = Redirect::to("/console/ingest").into_response();
            let h = response.headers_mut();
            h.append(
                header::SET_COOKIE,
                console::set_cookie(
                    console::SESSION_COOKIE,
                    &id,
                    console::SESSION_TTL.as_secs(),
                    secure,
                ),
            );
            h.append(
                header::SET_COOKIE,
                console::set_cookie(console::LOGIN_COOKIE, "", 0, secure),
            );
            response
        }
        Err(AppError::Forbidden) => {
            tracing::warn!(client = %client, "console sign-in refused: key without the admin scope");
            again(
                StatusCode::FORBIDDEN,
                "That API key does not have the admin scope: the console needs the admin token or an admin key.",
            )
        }
        Err(AppError::Database(e)) => {
            tracing::error!(error = %e, "console sign-in: the store failed");
            again(
                StatusCode::SERVICE_UNAVAILABLE,
                "The store could not be read; try again.",
            )
        }
        Err(_) => {
            tracing::warn!(client = %client, "console sign-in refused: wrong token");
            again(
                StatusCode::UNAUTHORIZED,
                "Wrong token: that is neither the admin token nor an API key with the admin scope.",
            )
        }
    }
}

pub async fn sign_out(
    State(c): State<Console>,
    axum::extract::ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, key, _) = match c.form(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    c.end(&key);
    tracing::info!(principal = %session.principal.name, "console sign-out");
    let secure = console::over_https(peer, &headers, &c.app.config.trusted_proxies);
    let mut response = Redirect::to("/console/sign-in?signed_out=1").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        console::set_cookie(console::SESSION_COOKIE, "", 0, secure),
    );
    response
}
