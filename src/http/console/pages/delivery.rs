//! Endpoints (add, test, enable, disable, replay) and deliveries (list, attempt log, resend,
//! requeue).

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::super::view::{self, badge, csrf, field, select, time, Flash};
use super::super::Console;
use super::{done, empty, message, nonempty, query_string, store_error, text, Page};
use crate::delivery::endpoint::{EndpointInput, EndpointSpec};
use crate::delivery::manage::{self, Saved};
use crate::delivery::store::{self, DeliveryFilter, STATUSES};
use crate::error::AppError;

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

pub(super) fn delivery_table(rows: &[store::DeliveryRow]) -> Markup {
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
