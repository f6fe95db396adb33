//! Contacts, the trigger catalog and the live event view.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::super::view::{self, badge, field, time, time_opt};
use super::super::Console;
use super::{empty, nonempty, query_string, store_error, text, Page};
use crate::db::rows::FireRow;
use crate::db::FireFilter;

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
