//! The console's pages and form actions. Reads and writes go through the same store and domain
//! functions as the admin API (`db`, `connections`, `delivery::manage`, `delivery::store`, the
//! pipeline's replay), so the console can do nothing the API could not.

use std::str::FromStr as _;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use hookgate_providers::ProviderId;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::view::{self, badge, copy_field, csrf, field, select, time, time_opt, Flash};
use super::{Console, Peer};
use crate::auth::Scope;
use crate::connections::{self, ConnectionInput, ConnectionView};
use crate::db::rows::{FireRow, IngestSummary};
use crate::db::{FireFilter, IngestFilter, Outcome};
use crate::delivery::endpoint::{EndpointInput, EndpointSpec};
use crate::delivery::manage::{self, Saved};
use crate::delivery::store::{self, DeliveryFilter, STATUSES};
use crate::error::AppError;
use crate::resolution::Status;

type Page = Result<Response, Response>;

/// What a failed read or write shows: the admin API's message for input errors, a plain
/// sentence for store errors (logged with their cause, never shown).
fn message(error: &AppError) -> String {
    match error {
        AppError::Invalid(m) | AppError::Conflict(m) | AppError::DestinationNotAllowed(m) => {
            m.clone()
        }
        AppError::NotFound => "Not found.".into(),
        AppError::Database(e) => {
            tracing::error!(error = %e, "console: the store failed");
            "The store could not be read or written; try again.".into()
        }
        other => other.to_string(),
    }
}

fn store_error(e: impl Into<AppError>) -> Response {
    let error = e.into();
    view::refused(StatusCode::SERVICE_UNAVAILABLE, &message(&error))
}

/// After a form: leave `flash` for the next page and go to `to` (303, so a reload does not post
/// again).
fn done(console: &Console, key: &[u8; 32], flash: Flash, to: &str) -> Response {
    console.flash(key, flash);
    Redirect::to(to).into_response()
}

/// `https://host` or `http://host` as the browser reached the gateway.
fn base_url(console: &Console, peer: std::net::SocketAddr, headers: &HeaderMap) -> String {
    let https = super::over_https(peer, headers, &console.app.config.trusted_proxies);
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("{}://{host}", if https { "https" } else { "http" })
}

fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

fn empty(text: &str) -> Markup {
    html! { p.empty data-empty { (text) } }
}

// ---------------------------------------------------------------- sign-in

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
    let token = match super::cookie(&headers, super::LOGIN_COOKIE) {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => t.to_owned(),
        _ => super::random_token(),
    };
    let signed_out = query.is_ok_and(|Query(q)| q.signed_out.is_some());
    let message = signed_out.then_some((true, "You are signed out."));
    let mut response = view::bare("Sign in", StatusCode::OK, sign_in_form(&token, message));
    let secure = super::over_https(peer, &headers, &c.app.config.trusted_proxies);
    response.headers_mut().append(
        header::SET_COOKIE,
        super::set_cookie(super::LOGIN_COOKIE, &token, 3600, secure),
    );
    response
}

pub async fn sign_in(
    State(c): State<Console>,
    axum::extract::ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(login) = super::cookie(&headers, super::LOGIN_COOKIE).map(str::to_owned) else {
        return super::closing(view::refused(
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
        return super::closing(again(
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
            let secure = super::over_https(peer, &headers, &c.app.config.trusted_proxies);
            let mut response = Redirect::to("/console/ingest").into_response();
            let h = response.headers_mut();
            h.append(
                header::SET_COOKIE,
                super::set_cookie(
                    super::SESSION_COOKIE,
                    &id,
                    super::SESSION_TTL.as_secs(),
                    secure,
                ),
            );
            h.append(
                header::SET_COOKIE,
                super::set_cookie(super::LOGIN_COOKIE, "", 0, secure),
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
    let secure = super::over_https(peer, &headers, &c.app.config.trusted_proxies);
    let mut response = Redirect::to("/console/sign-in?signed_out=1").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        super::set_cookie(super::SESSION_COOKIE, "", 0, secure),
    );
    response
}

// ---------------------------------------------------------------- ingest log

#[derive(Debug, Default, Deserialize)]
pub struct IngestParams {
    connection: Option<String>,
    provider: Option<String>,
    outcome: Option<String>,
    event_type: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
    after: Option<String>,
    limit: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The admin API's ingest filters, checked the same way.
fn ingest_filter(p: &IngestParams) -> Result<IngestFilter, String> {
    let outcome = nonempty(&p.outcome);
    if let Some(o) = &outcome {
        if !Outcome::ALL.iter().any(|k| k.as_str() == o) {
            return Err("outcome must be accepted, duplicate, ignored or rejected".into());
        }
    }
    let status = nonempty(&p.status);
    if let Some(s) = &status {
        if !Status::ALL.iter().any(|k| k.as_str() == s) {
            let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            return Err(format!("status must be one of {}", names.join(", ")));
        }
    }
    for (name, v) in [("cursor", &p.cursor), ("after", &p.after)] {
        if let Some(c) = nonempty(v) {
            if ulid::Ulid::from_string(&c).is_err() {
                return Err(format!("{name} is not a value the console gave"));
            }
        }
    }
    let limit = match nonempty(&p.limit) {
        None => 50,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=500).contains(&n) => n,
            _ => return Err("limit must be between 1 and 500".into()),
        },
    };
    Ok(IngestFilter {
        connection: nonempty(&p.connection),
        provider: nonempty(&p.provider),
        outcome,
        event_type: nonempty(&p.event_type),
        status,
        before_id: nonempty(&p.cursor),
        after_id: nonempty(&p.after),
        limit,
    })
}

fn ingest_row(s: &IngestSummary) -> Markup {
    html! {
        tr data-id=(s.id) {
            td { a href={ "/console/ingest/" (s.id) } { time datetime=(time(s.received_at)) { (time(s.received_at)) } } }
            td { (s.connection_id) }
            td { (s.provider) }
            td { (badge(&s.outcome)) " " (s.http_status) }
            td { (s.event_type.as_deref().unwrap_or("")) }
            td { @if let Some(st) = &s.status { (badge(st)) } }
            td.reason { (s.reason.as_deref().or(s.status_reason.as_deref()).unwrap_or("")) }
        }
    }
}

fn ingest_table(rows: &[IngestSummary]) -> Markup {
    html! {
        div.scroll {
            table {
                caption.sr { "Requests, newest first" }
                thead { tr {
                    th scope="col" { "Received (UTC)" }
                    th scope="col" { "Connection" }
                    th scope="col" { "Provider" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "Event type" }
                    th scope="col" { "Processing" }
                    th scope="col" { "Reason" }
                } }
                tbody id="tail-rows" {
                    @for s in rows { (ingest_row(s)) }
                }
            }
        }
    }
}

fn tail_box(url: &str, label: &str) -> Markup {
    html! {
        div.tail data-tail=(url) data-target="tail-rows" {
            input type="checkbox" id="tail-on" checked;
            label for="tail-on" { (label) }
            span.tailstatus role="status" aria-live="polite" {}
        }
    }
}

pub async fn ingest(
    State(c): State<Console>,
    headers: HeaderMap,
    query: Result<Query<IngestParams>, QueryRejection>,
) -> Page {
    let session = c.page_session(&headers).await?;
    let p = query.ok().map(|Query(q)| q).unwrap_or_default();
    let filter = ingest_filter(&p);
    let (rows, problem) = match &filter {
        Ok(f) => (c.app.db.list_ingest(f).await.map_err(store_error)?, None),
        Err(e) => (Vec::new(), Some(e.clone())),
    };
    let filters = [
        ("connection", p.connection.as_deref()),
        ("provider", p.provider.as_deref()),
        ("outcome", p.outcome.as_deref()),
        ("event_type", p.event_type.as_deref()),
        ("status", p.status.as_deref()),
    ];
    let limit = filter.as_ref().map_or(50, |f| f.limit);
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let mut providers: Vec<(&str, &str)> = vec![("", "any")];
    providers.extend(ProviderId::ALL.iter().map(|p| (p.as_str(), p.as_str())));
    let mut outcomes: Vec<(&str, &str)> = vec![("", "any")];
    outcomes.extend(Outcome::ALL.iter().map(|o| (o.as_str(), o.as_str())));
    let mut statuses: Vec<(&str, &str)> = vec![("", "any")];
    statuses.extend(Status::ALL.iter().map(|s| (s.as_str(), s.as_str())));
    let content = html! {
        form.filters method="get" action="/console/ingest" aria-label="Filter the ingest log" {
            (field("f-connection", "connection", "Connection", p.connection.as_deref(), None))
            (select("f-provider", "provider", "Provider", &providers, p.provider.as_deref()))
            (select("f-outcome", "outcome", "Outcome", &outcomes, p.outcome.as_deref()))
            (field("f-event-type", "event_type", "Event type", p.event_type.as_deref(), None))
            (select("f-status", "status", "Processing", &statuses, p.status.as_deref()))
            div.actions {
                button type="submit" { "Filter" }
                a href="/console/ingest" { "Clear" }
            }
        }
        @if let Some(problem) = &problem {
            p.flash.error role="alert" { (problem) }
        }
        @if nonempty(&p.cursor).is_none() && problem.is_none() {
            (tail_box(&format!("/console/ingest/tail?{}", query_string(&filters)), "Live tail (new requests appear at the top)"))
        }
        (ingest_table(&rows))
        @if rows.is_empty() && problem.is_none() {
            @if filters.iter().all(|(_, v)| v.is_none_or(str::is_empty)) {
                p.empty data-empty {
                    "No requests yet: "
                    a href="/console/connections" { "add a connection" }
                    " and point a provider's webhook at its receive URL (or try one with hookgate send)."
                }
            } @else {
                (empty("No request matches these filters."))
            }
        }
        @if let Some(next) = next {
            p.pager {
                a href={ "/console/ingest?" (query_string(&[filters.as_slice(), &[("cursor", Some(next.as_str()))]].concat())) } { "Older requests →" }
            }
        }
    };
    Ok(view::page(
        &session,
        "/console/ingest",
        "Ingest log",
        content,
    ))
}

pub async fn ingest_tail(
    State(c): State<Console>,
    headers: HeaderMap,
    query: Result<Query<IngestParams>, QueryRejection>,
) -> Response {
    if c.session(&headers).await.is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let p = query.ok().map(|Query(q)| q).unwrap_or_default();
    let Ok(mut filter) = ingest_filter(&p) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    filter.before_id = None;
    filter.limit = 100;
    match c.app.db.list_ingest(&filter).await {
        Ok(mut rows) => {
            if filter.after_id.is_some() {
                rows.reverse();
            }
            Html(html! { @for s in &rows { (ingest_row(s)) } }.into_string()).into_response()
        }
        Err(e) => store_error(e),
    }
}

// ---------------------------------------------------------------- one record

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fires_of(record: &Value) -> Vec<i64> {
    record["fires"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// A fire and its deliveries (the deliveries made around the fire's creation, of its type).
async fn fire_with_deliveries(
    c: &Console,
    seq: i64,
) -> Result<Option<(FireRow, Vec<store::DeliveryRow>)>, AppError> {
    let fires = c
        .app
        .db
        .list_fires(&FireFilter {
            after_seq: seq - 1,
            limit: 1,
            ..FireFilter::default()
        })
        .await?;
    let Some(fire) = fires.into_iter().find(|f| f.seq == seq) else {
        return Ok(None);
    };
    let deliveries = store::list_deliveries(
        &c.app.db,
        &DeliveryFilter {
            event_type: Some(fire.trigger_id.clone()),
            since: Some(fire.created_at),
            until: Some(fire.created_at + 1),
            limit: 500,
            ..DeliveryFilter::default()
        },
    )
    .await?
    .into_iter()
    .filter(|d| d.fire_seq == seq)
    .collect();
    Ok(Some((fire, deliveries)))
}

fn delivery_rows(rows: &[store::DeliveryRow]) -> Markup {
    html! {
        @for d in rows {
            @let id = crate::delivery::delivery_id(d.seq);
            tr data-id=(id) {
                td { a href={ "/console/deliveries/" (id) } { (id) } }
                td { (d.endpoint_id) }
                td { (d.event_type) }
                td { (badge(&d.status)) }
                td { (d.attempts) }
                td { (d.last_status_code.map(|c| c.to_string()).unwrap_or_default()) }
                td.reason { (d.last_error.as_deref().unwrap_or("")) }
                td { (time(d.created_at)) }
            }
        }
    }
}

fn delivery_table(rows: &[store::DeliveryRow]) -> Markup {
    html! {
        div.scroll {
            table {
                caption.sr { "Deliveries, newest first" }
                thead { tr {
                    th scope="col" { "Delivery" }
                    th scope="col" { "Endpoint" }
                    th scope="col" { "Event type" }
                    th scope="col" { "Status" }
                    th scope="col" { "Attempts" }
                    th scope="col" { "Last answer" }
                    th scope="col" { "Last error" }
                    th scope="col" { "Created (UTC)" }
                } }
                tbody { (delivery_rows(rows)) }
            }
        }
    }
}

pub async fn record(State(c): State<Console>, headers: HeaderMap, Path(id): Path<String>) -> Page {
    let session = c.page_session(&headers).await?;
    let Some(r) = crate::http::admin::ingest_json(&c.app.db, &id)
        .await
        .map_err(store_error)?
    else {
        return Err(view::not_found());
    };
    let mut fires = Vec::new();
    for seq in fires_of(&r) {
        if let Some(found) = fire_with_deliveries(&c, seq).await.map_err(store_error)? {
            fires.push(found);
        }
    }
    let outcome = text(&r, "outcome");
    let replayable = matches!(outcome.as_str(), "accepted" | "ignored");
    let workspace = text(&r, "workspace");
    let contact = text(&r, "contact_email");
    let headers_list: Vec<(String, String)> = r["headers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|pair| {
                    Some((
                        pair.get(0)?.as_str()?.to_owned(),
                        pair.get(1)?.as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let body = match &r["body"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => view::pretty(other),
    };
    let us = |key: &str| {
        r[key]
            .as_i64()
            .map(|v| format!("{v} µs"))
            .unwrap_or_default()
    };
    let content = html! {
        div.grid {
            section.card aria-labelledby="h-request" {
                h2 id="h-request" { "Request" }
                dl {
                    dt { "Ingest id" } dd { code { (text(&r, "id")) } }
                    dt { "Received" } dd { (r["received_at"].as_i64().map(time).unwrap_or_default()) }
                    dt { "Connection" } dd { a href={ "/console/ingest?connection=" (text(&r, "connection_id")) } { (text(&r, "connection_id")) } " (" (text(&r, "provider")) ")" }
                    dt { "Client address" } dd { (text(&r, "client_addr")) }
                    dt { "Path" } dd { code { (text(&r, "path")) } }
                    dt { "Body size" } dd { (text(&r, "body_size")) " bytes" }
                }
            }
            section.card aria-labelledby="h-verify" {
                h2 id="h-verify" { "Verification" }
                dl {
                    dt { "Outcome" } dd { (badge(&outcome)) " answered " (text(&r, "http_status")) }
                    @if !text(&r, "reason").is_empty() {
                        dt { "Reason" } dd { code { (text(&r, "reason")) } }
                    }
                    dt { "Event" } dd { (text(&r, "event_type")) " " code { (text(&r, "event_id")) } }
                    @if !text(&r, "duplicate_of").is_empty() {
                        dt { "Duplicate of" } dd { a href={ "/console/ingest/" (text(&r, "duplicate_of")) } { (text(&r, "duplicate_of")) } }
                    }
                    dt { "Body read in" } dd { (us("read_us")) }
                    dt { "Verified in" } dd { (us("verify_us")) }
                }
            }
            section.card aria-labelledby="h-processing" {
                h2 id="h-processing" { "Processing" }
                dl {
                    dt { "Status" } dd { @if text(&r, "status").is_empty() { "not stored as an event" } @else { (badge(&text(&r, "status"))) } }
                    @if !text(&r, "status_reason").is_empty() {
                        dt { "Why" } dd { (text(&r, "status_reason")) }
                    }
                    dt { "Attempts" } dd { (text(&r, "attempts")) }
                    dt { "Processed" } dd { (time_opt(r["processed_at"].as_i64())) }
                    dt { "Contact" } dd {
                        @if contact.is_empty() { "none" } @else {
                            a href={ "/console/contacts?" (query_string(&[("email", Some(contact.as_str())), ("workspace", Some(workspace.as_str()))])) } { (contact) }
                        }
                    }
                }
                @if replayable {
                    form method="post" action={ "/console/ingest/" (text(&r, "id")) "/replay" } {
                        (csrf(&session))
                        button type="submit" { "Replay normalization" }
                    }
                }
            }
        }
        section aria-labelledby="h-fires" {
            h2 id="h-fires" { "Fires and deliveries" }
            @if fires.is_empty() {
                (empty("No fires: the event made none (yet). Rejected, duplicate and ignored requests never fire."))
            }
            @for (fire, deliveries) in &fires {
                article.card {
                    h3 { "Fire " (fire.seq) ": " code { (fire.trigger_id) } }
                    details {
                        summary { "Payload" }
                        pre { (serde_json::from_str::<Value>(&fire.payload).map(|v| view::pretty(&v)).unwrap_or_else(|_| fire.payload.clone())) }
                    }
                    @if deliveries.is_empty() {
                        p.empty { "No deliveries: no enabled endpoint subscribed to this event." }
                    } @else {
                        (delivery_table(deliveries))
                    }
                }
            }
        }
        section aria-labelledby="h-headers" {
            h2 id="h-headers" { "Headers" }
            p.hint { "Secret-bearing values are stored as [redacted]." }
            div.scroll {
                table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
                    tbody {
                        @for (name, value) in &headers_list {
                            tr { td { code { (name) } } td.wrap { code { (value) } } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-body" {
            h2 id="h-body" { "Body" }
            @if r["body_truncated"].as_bool() == Some(true) {
                p.hint { "Only the first 4 KiB of a rejected request's body is kept." }
            }
            @if r.get("body_base64").is_some() {
                p.hint { "The body is not UTF-8; the API shows it as base64." }
            }
            pre.body tabindex="0" aria-label="Request body" { (body) }
        }
    };
    Ok(view::page(
        &session,
        "/console/ingest",
        &format!("Request {id}"),
        content,
    ))
}

pub async fn replay(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (session, key, _) = match c.form(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = format!("/console/ingest/{id}");
    let event = match c.app.db.load_event(&id).await {
        Ok(Some(event)) => event,
        Ok(None) => {
            return done(
                &c,
                &key,
                Flash::error("Only stored (accepted or ignored) events can be replayed."),
                &back,
            )
        }
        Err(e) => return store_error(e),
    };
    let flash = match c.app.pipeline.replay(&event).await {
        Ok(Some(applied)) => {
            tracing::info!(ingest_id = %id, principal = %session.principal.name, status = applied.outcome.as_str(), "event replayed from the console");
            Flash::ok(format!(
                "Replayed: {} ({} fire{}; a replay never fires twice).",
                applied.outcome.as_str(),
                applied.fires.len(),
                if applied.fires.len() == 1 { "" } else { "s" }
            ))
        }
        Ok(None) => Flash::error("The event is gone."),
        Err(e) => Flash::error(message(&AppError::Database(e))),
    };
    done(&c, &key, flash, &back)
}

// ---------------------------------------------------------------- connections

pub async fn connections(
    State(c): State<Console>,
    axum::extract::ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Page {
    let session = c.page_session(&headers).await?;
    let rows = c.app.db.list_connections().await.map_err(store_error)?;
    let key = c.app.config.secret_key.as_ref();
    let views: Vec<ConnectionView> = rows.iter().map(|r| ConnectionView::new(r, key)).collect();
    let base = base_url(&c, peer, &headers);
    let providers: Vec<(&str, &str)> = ProviderId::ALL
        .iter()
        .map(|p| (p.as_str(), p.as_str()))
        .collect();
    let content = html! {
        @if views.is_empty() {
            (empty("No connections yet: add one below, then point the provider's webhook at its receive URL."))
        }
        @for v in &views {
            @let id = &v.row.id;
            article.card.conn {
                h2 { (id) " " (badge(if v.row.enabled { "enabled" } else { "disabled" })) }
                p.meta {
                    (v.row.provider) " · workspace " (v.row.workspace) " · "
                    @match v.secrets_count { Some(n) => { (n) " secret" @if n != 1 { "s" } }, None => "secrets encrypted with another key" }
                    @if v.secrets_encrypted { " (encrypted)" }
                }
                (copy_field(&format!("url-{id}"), "Receive URL", &format!("{base}{}", v.receive_path)))
                div.actions {
                    form method="post" action={ "/console/connections/" (id) "/" (if v.row.enabled { "disable" } else { "enable" }) } {
                        (csrf(&session))
                        button type="submit" { (if v.row.enabled { "Disable" } else { "Enable" }) }
                    }
                    a href={ "/console/ingest?connection=" (id) } { "Its requests" }
                }
                details {
                    summary { "Rotate secret" }
                    form.stack method="post" action={ "/console/connections/" (id) "/rotate" } {
                        (csrf(&session))
                        div.field {
                            label for={ "rotate-" (id) } { "New secret" }
                            input id={ "rotate-" (id) } name="secret" type="password" autocomplete="off" required;
                        }
                        div.check {
                            input id={ "drop-" (id) } name="drop_old" type="checkbox" value="1";
                            label for={ "drop-" (id) } { "Drop the previous secrets now (otherwise they stay valid)" }
                        }
                        button type="submit" { "Rotate" }
                    }
                }
            }
        }
        section.card aria-labelledby="h-add" {
            h2 id="h-add" { "Add a connection" }
            form.stack method="post" action="/console/connections" {
                (csrf(&session))
                (field("c-id", "id", "Connection id", None, Some("The last segment of the receive URL: letters, digits, _ and -.")))
                (select("c-provider", "provider", "Provider", &providers, None))
                div.field {
                    label for="c-secret" { "Secret" }
                    input id="c-secret" name="secret" type="password" autocomplete="off" required aria-describedby="c-secret-hint";
                    small id="c-secret-hint" { "The provider's signing secret (or shared secret, at least 16 characters). It is never shown again." }
                }
                (field("c-workspace", "workspace", "Workspace", None, Some("Optional; default: default.")))
                (field("c-allow", "allow_ips", "Allowed addresses", None, Some("Optional, comma-separated CIDRs or @brevo, @stripe, @svix.")))
                (field("c-auth", "auth", "Auth mode", None, Some("Unsigned providers only: bearer, basic, header:<Name> or query:<param>.")))
                button type="submit" { "Add connection" }
            }
        }
    };
    Ok(view::page(
        &session,
        "/console/connections",
        "Connections",
        content,
    ))
}

pub async fn add_connection(
    State(c): State<Console>,
    axum::extract::ConnectInfo(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (session, key, form) = match c.form(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = "/console/connections";
    let provider = match ProviderId::from_str(form.get("provider").unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return done(&c, &key, Flash::error(format!("provider: {e}")), back),
    };
    let mut input = ConnectionInput::new(
        form.get("id").unwrap_or(""),
        provider,
        form.text("secret").into_iter().collect(),
    );
    input.workspace = form.text("workspace");
    input.auth = form.text("auth");
    input.allow_ips = form
        .get("allow_ips")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let spec = match input.into_spec() {
        Ok(spec) => spec,
        Err(e) => return done(&c, &key, Flash::error(format!("{e:#}")), back),
    };
    if let Err(e) = crate::policy::check_new_secrets(&spec.id, spec.provider, &spec.secrets) {
        return done(&c, &key, Flash::error(format!("{e:#}")), back);
    }
    let written = match connections::save(
        &c.app.db,
        &spec,
        c.app.config.secret_key.as_ref(),
        "console",
        false,
        crate::now_ms(),
    )
    .await
    {
        Ok(w) => w,
        Err(e) => return store_error(e),
    };
    if !written {
        return done(
            &c,
            &key,
            Flash::error(format!("Connection {:?} exists already.", spec.id)),
            back,
        );
    }
    if let Err(e) = c.app.registry.reload(&c.app.db).await {
        return store_error(e);
    }
    tracing::info!(connection = %spec.id, provider = spec.provider.as_str(), principal = %session.principal.name, "connection added from the console");
    let url = format!(
        "{}/integrations/{}/webhook/{}",
        base_url(&c, peer, &headers),
        spec.provider.as_str(),
        spec.id
    );
    done(
        &c,
        &key,
        Flash::ok(format!(
            "Connection {} added. Point the provider's webhook at its receive URL:",
            spec.id
        ))
        .with_copy("Receive URL", url),
        back,
    )
}

pub async fn connection_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (session, key, form) = match c.form(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = "/console/connections";
    let db = &c.app.db;
    let flash = match action.as_str() {
        "disable" | "enable" => {
            let enabled = action == "enable";
            match db.set_enabled(&id, enabled, crate::now_ms()).await {
                Ok(true) => Flash::ok(format!("Connection {id} {action}d.")),
                Ok(false) => Flash::error(format!("No connection {id:?}.")),
                Err(e) => return store_error(e),
            }
        }
        "rotate" => {
            let Some(secret) = form.get("secret") else {
                return done(&c, &key, Flash::error("Enter the new secret."), back);
            };
            match connections::rotate(
                db,
                c.app.config.secret_key.as_ref(),
                &id,
                secret,
                form.checked("drop_old"),
                crate::now_ms(),
            )
            .await
            {
                Ok(Some(_)) => Flash::ok(if form.checked("drop_old") {
                    format!("Connection {id}: secret rotated; the previous ones no longer pass.")
                } else {
                    format!("Connection {id}: secret rotated; the previous ones still pass until you drop them.")
                }),
                Ok(None) => Flash::error(format!("No connection {id:?}.")),
                Err(e) => Flash::error(format!("{e:#}")),
            }
        }
        _ => return view::not_found(),
    };
    if let Err(e) = c.app.registry.reload(db).await {
        return store_error(e);
    }
    tracing::info!(connection = %id, action = %action, principal = %session.principal.name, "connection changed from the console");
    done(&c, &key, flash, back)
}

// ---------------------------------------------------------------- endpoints and deliveries

pub async fn endpoints(State(c): State<Console>, headers: HeaderMap) -> Page {
    let session = c.page_session(&headers).await?;
    let rows = store::list_endpoints(&c.app.db)
        .await
        .map_err(store_error)?;
    let now = crate::now_ms();
    let views: Vec<Value> = rows
        .iter()
        .map(|r| manage::view(r, c.app.config.secret_key.as_ref(), now))
        .collect();
    let content = html! {
        @if views.is_empty() {
            (empty("No endpoints yet: add one below, and every matching event is delivered to it, signed."))
        }
        @for v in &views {
            @let id = text(v, "id");
            @let enabled = v["enabled"].as_bool() == Some(true);
            article.card.endpoint {
                h2 { (id) " " (badge(if enabled { "enabled" } else { "disabled" })) }
                p.meta { code { (text(v, "url")) } }
                p.meta {
                    "workspace " (text(v, "workspace")) " · events "
                    (v["event_types"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default())
                    " · " (text(v, "signing_secrets")) " signing secret(s)"
                }
                @if !text(v, "disabled_reason").is_empty() {
                    p.flash.error { "Disabled: " (text(v, "disabled_reason")) }
                }
                div.actions {
                    form method="post" action={ "/console/endpoints/" (id) "/test" } {
                        (csrf(&session))
                        button type="submit" { "Send a test event" }
                    }
                    form method="post" action={ "/console/endpoints/" (id) "/" (if enabled { "disable" } else { "enable" }) } {
                        (csrf(&session))
                        button type="submit" { (if enabled { "Disable" } else { "Enable" }) }
                    }
                    a href={ "/console/deliveries?endpoint=" (id) } { "Deliveries" }
                    a href={ "/console/deliveries?status=dead&endpoint=" (id) } { "Dead letters" }
                }
                details {
                    summary { "Replay events" }
                    form.stack method="post" action={ "/console/endpoints/" (id) "/replay" } {
                        (csrf(&session))
                        (field(&format!("since-{id}"), "since", "Since", None, Some("Unix milliseconds or RFC 3339; empty: from the first event.")))
                        (field(&format!("until-{id}"), "until", "Until", None, Some("Empty: up to now.")))
                        (field(&format!("type-{id}"), "event_type", "Event type", None, Some("Empty: every type the endpoint subscribes to.")))
                        button type="submit" { "Queue again" }
                    }
                }
            }
        }
        section.card aria-labelledby="h-add" {
            h2 id="h-add" { "Add an endpoint" }
            form.stack method="post" action="/console/endpoints" {
                (csrf(&session))
                (field("e-id", "id", "Endpoint id", None, Some("Letters, digits, _ and -.")))
                (field("e-url", "url", "URL", None, Some("https:// (http:// only with allow_http); private addresses only inside allow_cidrs.")))
                (field("e-types", "event_types", "Event types", None, Some("Comma-separated globs such as stripe.*, contact.suppressed; empty: every event.")))
                (field("e-workspace", "workspace", "Workspace", None, Some("Optional; default: default.")))
                button type="submit" { "Add endpoint" }
            }
        }
    };
    Ok(view::page(
        &session,
        "/console/endpoints",
        "Endpoints",
        content,
    ))
}

pub async fn add_endpoint(State(c): State<Console>, headers: HeaderMap, body: Body) -> Response {
    let (session, key, form) = match c.form(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = "/console/endpoints";
    let input = EndpointInput {
        id: form.text("id").unwrap_or_default(),
        url: form.text("url").unwrap_or_default(),
        workspace: form.text("workspace"),
        event_types: form.get("event_types").map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        ..EndpointInput::default()
    };
    let spec = match EndpointSpec::build(&input, &c.app.config.delivery.policy) {
        Ok(spec) => spec,
        Err(e) => return done(&c, &key, Flash::error(e.to_string()), back),
    };
    let saved = manage::save(
        &c.app.db,
        &spec,
        c.app.config.secret_key.as_ref(),
        "console",
        false,
        crate::now_ms(),
    )
    .await;
    let flash = match saved {
        Ok(Saved::Exists) => Flash::error(format!("Endpoint {:?} exists already.", spec.id)),
        Ok(Saved::Written { generated_secret }) => {
            tracing::info!(endpoint = %spec.id, principal = %session.principal.name, "endpoint added from the console");
            let flash = Flash::ok(format!(
                "Endpoint {} added. Its signing secret is shown this once: copy it to the receiver.",
                spec.id
            ));
            match generated_secret {
                Some(secret) => flash.with_copy("Signing secret", secret),
                None => flash,
            }
        }
        Err(e) => Flash::error(message(&AppError::from(e))),
    };
    done(&c, &key, flash, back)
}

pub async fn endpoint_action(
    State(c): State<Console>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> Response {
    let (session, key, form) = match c.form(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let back = "/console/endpoints";
    let db = &c.app.db;
    let now = crate::now_ms();
    let row = match store::get_endpoint(db, &id).await {
        Ok(Some(row)) => row,
        Ok(None) => return done(&c, &key, Flash::error(format!("No endpoint {id:?}.")), back),
        Err(e) => return store_error(e),
    };
    let flash = match action.as_str() {
        "test" => {
            match manage::send_test(
                &row,
                &c.app.config.delivery,
                c.app.config.secret_key.as_ref(),
                now,
            )
            .await
            {
                Ok(result) => {
                    let code = result["status_code"].as_u64().unwrap_or(0);
                    let ms = result["duration_ms"].as_u64().unwrap_or(0);
                    if (200..300).contains(&code) {
                        Flash::ok(format!("Test event to {id}: answered {code} in {ms} ms."))
                    } else {
                        Flash::error(format!(
                            "Test event to {id} failed: {}",
                            text(&result, "error")
                        ))
                    }
                }
                Err(e) => Flash::error(message(&AppError::from(e))),
            }
        }
        "enable" | "disable" => {
            let enabled = action == "enable";
            let reason = (!enabled).then_some("disabled by an operator");
            match store::set_endpoint_enabled(db, &id, enabled, reason, None, now).await {
                Ok(_) => {
                    c.app.signals.fires.notify_waiters();
                    Flash::ok(format!("Endpoint {id} {action}d."))
                }
                Err(e) => return store_error(e),
            }
        }
        "replay" => {
            let time_field = |name: &str| {
                form.get(name)
                    .map(|t| crate::http::api::parse_time(name, t))
                    .transpose()
            };
            let range = time_field("since").and_then(|s| Ok((s, time_field("until")?)));
            match range {
                Err(e) => Flash::error(message(&e)),
                Ok((since, until)) => {
                    match manage::replay(db, &row, since, until, form.get("event_type"), now).await
                    {
                        Ok(n) => {
                            c.app.signals.fires.notify_waiters();
                            Flash::ok(format!("{n} event(s) queued again for {id}."))
                        }
                        Err(e) => return store_error(e),
                    }
                }
            }
        }
        _ => return view::not_found(),
    };
    tracing::info!(endpoint = %id, action = %action, principal = %session.principal.name, "endpoint action from the console");
    done(&c, &key, flash, back)
}

#[derive(Debug, Default, Deserialize)]
pub struct DeliveryParams {
    endpoint: Option<String>,
    status: Option<String>,
    event_type: Option<String>,
    cursor: Option<String>,
}

pub async fn deliveries(
    State(c): State<Console>,
    headers: HeaderMap,
    query: Result<Query<DeliveryParams>, QueryRejection>,
) -> Page {
    let session = c.page_session(&headers).await?;
    let p = query.ok().map(|Query(q)| q).unwrap_or_default();
    let status = nonempty(&p.status);
    let mut problem = None;
    if let Some(s) = &status {
        if !STATUSES.contains(&s.as_str()) {
            problem = Some(format!("status must be one of {}", STATUSES.join(", ")));
        }
    }
    let before_seq = match nonempty(&p.cursor) {
        None => None,
        Some(c) => match crate::delivery::parse_delivery_id(&c) {
            Some(n) => Some(n),
            None => {
                problem = Some("cursor is not a value the console gave".into());
                None
            }
        },
    };
    let limit = 50;
    let rows = if problem.is_none() {
        store::list_deliveries(
            &c.app.db,
            &DeliveryFilter {
                endpoint: nonempty(&p.endpoint),
                status: status.clone(),
                event_type: nonempty(&p.event_type),
                before_seq,
                limit,
                ..DeliveryFilter::default()
            },
        )
        .await
        .map_err(store_error)?
    } else {
        Vec::new()
    };
    let mut statuses: Vec<(&str, &str)> = vec![("", "any")];
    statuses.extend(STATUSES.iter().map(|s| (*s, *s)));
    let filters = [
        ("endpoint", p.endpoint.as_deref()),
        ("status", p.status.as_deref()),
        ("event_type", p.event_type.as_deref()),
    ];
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| crate::delivery::delivery_id(r.seq)))
        .flatten();
    let dead: Vec<(&str, &str)> = STATUSES
        .iter()
        .filter(|s| !matches!(**s, "pending" | "retrying"))
        .map(|s| (*s, *s))
        .collect();
    let content = html! {
        form.filters method="get" action="/console/deliveries" aria-label="Filter deliveries" {
            (field("d-endpoint", "endpoint", "Endpoint", p.endpoint.as_deref(), None))
            (select("d-status", "status", "Status", &statuses, p.status.as_deref()))
            (field("d-type", "event_type", "Event type", p.event_type.as_deref(), None))
            div.actions {
                button type="submit" { "Filter" }
                a href="/console/deliveries" { "Clear" }
            }
        }
        @if let Some(problem) = &problem {
            p.flash.error role="alert" { (problem) }
        }
        (delivery_table(&rows))
        @if rows.is_empty() && problem.is_none() {
            (empty("No deliveries here: they appear when an event matches an enabled endpoint (add one under Endpoints)."))
        }
        @if let Some(next) = next {
            p.pager { a href={ "/console/deliveries?" (query_string(&[filters.as_slice(), &[("cursor", Some(next.as_str()))]].concat())) } { "Older deliveries →" } }
        }
        section.card aria-labelledby="h-requeue" {
            h2 id="h-requeue" { "Requeue (dead-letter queue)" }
            p.hint { "Puts every matching delivery back in line with a fresh retry schedule." }
            form.stack method="post" action="/console/deliveries/requeue" {
                (csrf(&session))
                (field("r-endpoint", "endpoint", "Endpoint", p.endpoint.as_deref(), Some("Empty: every endpoint.")))
                (select("r-status", "status", "Status", &dead, Some("dead")))
                (field("r-type", "event_type", "Event type", p.event_type.as_deref(), Some("Empty: every type.")))
                button type="submit" { "Requeue" }
            }
        }
    };
    Ok(view::page(
        &session,
        "/console/deliveries",
        "Deliveries",
        content,
    ))
}

pub async fn delivery(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Page {
    let session = c.page_session(&headers).await?;
    let Some(seq) = crate::delivery::parse_delivery_id(&id) else {
        return Err(view::not_found());
    };
    let Some(d) = store::get_delivery(&c.app.db, seq)
        .await
        .map_err(store_error)?
    else {
        return Err(view::not_found());
    };
    let attempts = store::attempts(&c.app.db, seq).await.map_err(store_error)?;
    let v = manage::delivery_view(&d);
    let id = crate::delivery::delivery_id(seq);
    let content = html! {
        section.card {
            dl {
                dt { "Endpoint" } dd { a href={ "/console/deliveries?endpoint=" (d.endpoint_id) } { (d.endpoint_id) } }
                dt { "Event" } dd { (d.event_type) " · event " (d.fire_seq) " · " code { (text(&v, "message_id")) } }
                dt { "Status" } dd { (badge(&d.status)) }
                dt { "Attempts" } dd { (d.attempts) }
                @if let Some(next) = v["next_attempt_at"].as_i64() {
                    dt { "Next attempt" } dd { (time(next)) }
                }
                dt { "Created" } dd { (time(d.created_at)) }
            }
            form method="post" action={ "/console/deliveries/" (id) "/resend" } {
                (csrf(&session))
                button type="submit" { "Send again now" }
            }
        }
        h2 { "Attempt log" }
        @if attempts.is_empty() {
            (empty("No attempt yet: the delivery waits for its first turn."))
        } @else {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { "Started (UTC)" }
                        th scope="col" { "Duration" }
                        th scope="col" { "Answer" }
                        th scope="col" { "Error" }
                        th scope="col" { "Response body (first 4 KiB)" }
                    } }
                    tbody {
                        @for a in &attempts {
                            tr {
                                td { (a.attempt) }
                                td { (time(a.started_at)) }
                                td { (a.duration_ms) " ms" }
                                td { @if a.status_code == 0 { "no answer" } @else { (a.status_code) } }
                                td.reason { (a.error.as_deref().unwrap_or("")) }
                                td.wrap { code { (a.response_body.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(view::page(
        &session,
        "/console/deliveries",
        &format!("Delivery {id}"),
        content,
    ))
}

pub async fn resend(
    State(c): State<Console>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let (_, key, _) = match c.form(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(seq) = crate::delivery::parse_delivery_id(&id) else {
        return view::not_found();
    };
    let flash = match store::resend(&c.app.db, seq, crate::now_ms()).await {
        Ok(true) => {
            c.app.signals.fires.notify_waiters();
            Flash::ok("Queued to be sent again now.")
        }
        Ok(false) => Flash::error("No such delivery."),
        Err(e) => return store_error(e),
    };
    done(&c, &key, flash, &format!("/console/deliveries/{id}"))
}

pub async fn requeue(State(c): State<Console>, headers: HeaderMap, body: Body) -> Response {
    let (_, key, form) = match c.form(&headers, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let status = form.text("status");
    let back = format!(
        "/console/deliveries?{}",
        query_string(&[
            ("endpoint", form.get("endpoint")),
            ("status", status.as_deref()),
            ("event_type", form.get("event_type")),
        ])
    );
    if status.as_deref().is_some_and(|s| !STATUSES.contains(&s)) {
        return done(
            &c,
            &key,
            Flash::error(format!("status must be one of {}", STATUSES.join(", "))),
            &back,
        );
    }
    let filter = DeliveryFilter {
        endpoint: form.text("endpoint"),
        status,
        event_type: form.text("event_type"),
        ..DeliveryFilter::default()
    };
    let flash = match store::requeue(&c.app.db, &filter, crate::now_ms()).await {
        Ok(n) => {
            c.app.signals.fires.notify_waiters();
            Flash::ok(format!(
                "{n} deliver{} requeued.",
                if n == 1 { "y" } else { "ies" }
            ))
        }
        Err(e) => return store_error(e),
    };
    done(&c, &key, flash, &back)
}

// ---------------------------------------------------------------- contacts, triggers, events

#[derive(Debug, Default, Deserialize)]
pub struct ContactParams {
    email: Option<String>,
    workspace: Option<String>,
}

pub async fn contacts(
    State(c): State<Console>,
    headers: HeaderMap,
    query: Result<Query<ContactParams>, QueryRejection>,
) -> Page {
    let session = c.page_session(&headers).await?;
    let p = query.ok().map(|Query(q)| q).unwrap_or_default();
    let workspace = nonempty(&p.workspace).unwrap_or_else(|| "default".into());
    let asked = nonempty(&p.email);
    let mut problem = None;
    let mut found = None;
    if let Some(email) = &asked {
        match crate::contacts::normalize_email(email) {
            None => problem = Some("That is not an email address.".to_owned()),
            Some(email) => {
                match c
                    .app
                    .db
                    .get_contact(&workspace, &email)
                    .await
                    .map_err(store_error)?
                {
                    Some(row) => found = Some(crate::http::admin::contact_json(&row)),
                    None => {
                        problem = Some(format!(
                            "No contact {email} in workspace {workspace}: contacts are made when events name them."
                        ))
                    }
                }
            }
        }
    }
    let content = html! {
        form.filters method="get" action="/console/contacts" aria-label="Look up a contact" {
            (field("k-email", "email", "Email", asked.as_deref(), None))
            (field("k-workspace", "workspace", "Workspace", Some(&workspace), None))
            div.actions { button type="submit" { "Look up" } }
        }
        @if let Some(problem) = &problem {
            p.flash.error role="alert" { (problem) }
        }
        @if asked.is_none() {
            (empty("Enter an email address to see the contact hookgate keeps for it."))
        }
        @if let Some(v) = &found {
            section.card {
                h2 { (text(v, "email")) }
                dl {
                    dt { "Workspace" } dd { (text(v, "workspace")) }
                    dt { "First name" } dd { (text(v, "first_name")) }
                    dt { "Last name" } dd { (text(v, "last_name")) }
                    dt { "Subscribed" } dd { (text(v, "subscribed")) }
                    dt { "Created" } dd { (time_opt(v["created_at"].as_i64())) }
                    dt { "Updated" } dd { (time_opt(v["updated_at"].as_i64())) }
                }
                h3 { "Custom fields" }
                div.scroll {
                    table {
                        thead { tr { th scope="col" { "Field" } th scope="col" { "Value" } } }
                        tbody {
                            @if let Some(fields) = v["custom_fields"].as_object() {
                                @for (k, val) in fields {
                                    tr { td { code { (k) } } td.wrap { (match val { Value::String(s) => s.clone(), other => other.to_string() }) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(view::page(
        &session,
        "/console/contacts",
        "Contacts",
        content,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct WorkspaceParams {
    workspace: Option<String>,
}

pub async fn triggers(
    State(c): State<Console>,
    headers: HeaderMap,
    query: Result<Query<WorkspaceParams>, QueryRejection>,
) -> Page {
    let session = c.page_session(&headers).await?;
    let p = query.ok().map(|Query(q)| q).unwrap_or_default();
    let workspace = nonempty(&p.workspace);
    let rows = c
        .app
        .db
        .list_triggers(workspace.as_deref())
        .await
        .map_err(store_error)?;
    let content = html! {
        form.filters method="get" action="/console/triggers" aria-label="Filter triggers" {
            (field("t-workspace", "workspace", "Workspace", workspace.as_deref(), None))
            div.actions { button type="submit" { "Filter" } a href="/console/triggers" { "Clear" } }
        }
        @if rows.is_empty() {
            (empty("No triggers yet: each one appears when its first event is processed (send one from a provider, or define a custom trigger)."))
        }
        @for t in &rows {
            @let schema = serde_json::from_str::<Value>(&t.payload_schema).unwrap_or(Value::Null);
            details.card {
                summary { code { (t.id) } " · " (t.provider) " · workspace " (t.workspace) }
                div.scroll {
                    table {
                        caption.sr { "Payload schema of " (t.id) }
                        thead { tr { th scope="col" { "Key" } th scope="col" { "Type" } th scope="col" { "Required" } } }
                        tbody {
                            @for f in schema["fields"].as_array().into_iter().flatten() {
                                tr {
                                    td { code { (text(f, "key")) } }
                                    td { (text(f, "type")) }
                                    td { (if f["required"].as_bool() == Some(true) { "yes" } else { "no" }) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(view::page(
        &session,
        "/console/triggers",
        "Trigger catalog",
        content,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct EventParams {
    event_type: Option<String>,
    workspace: Option<String>,
    after: Option<String>,
}

fn fire_row(f: &FireRow) -> Markup {
    let payload = serde_json::from_str::<Value>(&f.payload)
        .map(|v| view::pretty(&v))
        .unwrap_or_else(|_| f.payload.clone());
    html! {
        tr data-id=(f.seq) {
            td { (f.seq) }
            td { (time(f.created_at)) }
            td { code { (f.trigger_id) } @if f.provider == "test" { " " (badge("test")) } }
            td { (f.workspace) }
            td {
                @if let Some(ingest) = &f.ingest_id {
                    a href={ "/console/ingest/" (ingest) } { (f.email.as_deref().unwrap_or("record")) }
                } @else {
                    (f.email.as_deref().unwrap_or(""))
                }
            }
            td { details { summary { "Payload" } pre { (payload) } } }
        }
    }
}

pub async fn events(
    State(c): State<Console>,
    headers: HeaderMap,
    query: Result<Query<EventParams>, QueryRejection>,
) -> Page {
    let session = c.page_session(&headers).await?;
    let p = query.ok().map(|Query(q)| q).unwrap_or_default();
    let mut fires = c
        .app
        .db
        .list_fires(&FireFilter {
            trigger_id: nonempty(&p.event_type),
            workspace: nonempty(&p.workspace),
            limit: 50,
            newest: true,
            ..FireFilter::default()
        })
        .await
        .map_err(store_error)?;
    fires.reverse();
    let latest = match fires.first() {
        Some(f) => f.seq,
        None => c.app.db.latest_fire_seq().await.map_err(store_error)?,
    };
    let tail = format!(
        "/console/events/tail?{}",
        query_string(&[
            ("event_type", p.event_type.as_deref()),
            ("workspace", p.workspace.as_deref()),
        ])
    );
    let content = html! {
        form.filters method="get" action="/console/events" aria-label="Filter events" {
            (field("v-type", "event_type", "Event type", p.event_type.as_deref(), None))
            (field("v-workspace", "workspace", "Workspace", p.workspace.as_deref(), None))
            div.actions { button type="submit" { "Filter" } a href="/console/events" { "Clear" } }
        }
        div.tail data-tail=(tail) data-target="tail-rows" data-after=(latest) {
            input type="checkbox" id="tail-on" checked;
            label for="tail-on" { "Live (new events appear at the top)" }
            span.tailstatus role="status" aria-live="polite" {}
        }
        div.scroll {
            table {
                caption.sr { "Events, newest first" }
                thead { tr {
                    th scope="col" { "Cursor" }
                    th scope="col" { "Time (UTC)" }
                    th scope="col" { "Event type" }
                    th scope="col" { "Workspace" }
                    th scope="col" { "Contact" }
                    th scope="col" { "Payload" }
                } }
                tbody id="tail-rows" { @for f in &fires { (fire_row(f)) } }
            }
        }
        @if fires.is_empty() {
            (empty("No events yet: they appear here as the pipeline processes deliveries from your connections."))
        }
    };
    Ok(view::page(
        &session,
        "/console/events",
        "Event stream",
        content,
    ))
}

pub async fn events_tail(
    State(c): State<Console>,
    headers: HeaderMap,
    query: Result<Query<EventParams>, QueryRejection>,
) -> Response {
    if c.session(&headers).await.is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let p = query.ok().map(|Query(q)| q).unwrap_or_default();
    let Some(after_seq) =
        nonempty(&p.after).map_or(Some(0), |a| a.parse::<i64>().ok().filter(|n| *n >= 0))
    else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match c
        .app
        .db
        .list_fires(&FireFilter {
            after_seq,
            trigger_id: nonempty(&p.event_type),
            workspace: nonempty(&p.workspace),
            limit: 200,
            ..FireFilter::default()
        })
        .await
    {
        Ok(mut fires) => {
            fires.reverse();
            Html(html! { @for f in &fires { (fire_row(f)) } }.into_string()).into_response()
        }
        Err(e) => store_error(e),
    }
}
