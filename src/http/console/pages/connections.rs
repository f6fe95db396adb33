//! Connections: list with receive URLs, add, rotate, disable, enable.

use std::str::FromStr as _;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use hookgate_providers::ProviderId;
use maud::html;

use super::super::view::{self, badge, copy_field, csrf, field, select, Flash};
use super::super::{Console, Peer};
use super::{base_url, done, empty, store_error, Page};
use crate::connections::{self, ConnectionInput, ConnectionView};

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
