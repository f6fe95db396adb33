//! The ingest log with its live tail, one record, and replay.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use hookgate_providers::ProviderId;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::super::view::{self, badge, csrf, field, select, time, time_opt, Flash};
use super::super::Console;
use super::delivery::delivery_table;
use super::{done, empty, message, nonempty, query_string, store_error, text, Page};
use crate::db::rows::{FireRow, IngestSummary};
use crate::db::{FireFilter, IngestFilter, Outcome};
use crate::delivery::store::{self, DeliveryFilter};
use crate::error::AppError;
use crate::resolution::Status;

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
