//! The console's page shell, its built-in assets and small rendering helpers.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::Session;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// A message shown once at the top of the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
    /// A value to copy (a receive URL, a secret shown once), with its label.
    pub copy: Option<(String, String)>,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash {
            ok: true,
            text: text.into(),
            copy: None,
        }
    }

    pub fn error(text: impl Into<String>) -> Flash {
        Flash {
            ok: false,
            text: text.into(),
            copy: None,
        }
    }

    pub fn with_copy(mut self, label: impl Into<String>, value: impl Into<String>) -> Flash {
        self.copy = Some((label.into(), value.into()));
        self
    }
}

pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

pub async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    let mut response = text.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// The navigation: (path, label).
const NAV: [(&str, &str); 7] = [
    ("/console/ingest", "Ingest log"),
    ("/console/connections", "Connections"),
    ("/console/endpoints", "Endpoints"),
    ("/console/deliveries", "Deliveries"),
    ("/console/contacts", "Contacts"),
    ("/console/triggers", "Triggers"),
    ("/console/events", "Events"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · hookgate" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A signed-in page: skip link, navigation, sign-out, the session's message, then `content`.
pub fn page(session: &Session, active: &str, title: &str, content: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/ingest" { "hookgate" }
                    nav aria-label="Console" {
                        ul {
                            @for (path, label) in NAV {
                                li {
                                    @if path == active {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.signout method="post" action="/console/sign-out" {
                        (csrf(session))
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    @if let Some(flash) = &session.flash {
                        (flash_box(flash))
                    }
                    (content)
                }
            }
        }
    };
    Html(markup.into_string()).into_response()
}

fn flash_box(flash: &Flash) -> Markup {
    html! {
        div.flash.ok[flash.ok].error[!flash.ok] role=(if flash.ok { "status" } else { "alert" }) {
            p { (flash.text) }
            @if let Some((label, value)) = &flash.copy {
                (copy_field("flash-copy", label, value))
            }
        }
    }
}

/// A read-only field with a copy button (the button needs the script; the field can always be
/// selected by hand).
pub fn copy_field(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.copy {
            label for=(id) { (label) }
            div.copyrow {
                input id=(id) type="text" readonly value=(value);
                button type="button" data-copy=(id) { "Copy" }
            }
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A page for someone not signed in (the sign-in page itself).
pub fn bare(title: &str, status: StatusCode, content: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main id="main" {
                    (content)
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// A refusal with a message and a way back.
pub fn refused(status: StatusCode, message: &str) -> Response {
    bare(
        "Refused",
        status,
        html! {
            h1 { "Refused" }
            p.flash.error role="alert" { (message) }
            p { a href="/console/sign-in" { "Sign in" } " · " a href="/console/ingest" { "Ingest log" } }
        },
    )
}

pub fn not_found() -> Response {
    bare(
        "Not found",
        StatusCode::NOT_FOUND,
        html! {
            h1 { "Not found" }
            p { "Nothing is at this address. " a href="/console/ingest" { "Back to the ingest log" } }
        },
    )
}

/// Unix milliseconds as RFC 3339 (UTC).
pub fn time(ms: i64) -> String {
    hookgate_providers::time::format_rfc3339_ms(ms)
}

/// Like [`time`], for an optional value.
pub fn time_opt(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_default()
}

/// A status word as a coloured badge (the word itself carries the meaning).
pub fn badge(word: &str) -> Markup {
    let tone = match word {
        "accepted" | "processed" | "succeeded" | "enabled" => "good",
        "rejected" | "failed" | "dead" | "disabled" => "bad",
        "pending" | "retrying" | "unresolved" | "paused" => "warn",
        _ => "plain",
    };
    html! { span class={ "badge " (tone) } { (word) } }
}

/// A text input with its label.
pub fn field(id: &str, name: &str, label: &str, value: Option<&str>, hint: Option<&str>) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) name=(name) type="text" value=[value] aria-describedby=[hint.map(|_| format!("{id}-hint"))];
            @if let Some(hint) = hint {
                small id={ (id) "-hint" } { (hint) }
            }
        }
    }
}

/// A select with its label; `options` are (value, label), `selected` the current value.
pub fn select(
    id: &str,
    name: &str,
    label: &str,
    options: &[(&str, &str)],
    selected: Option<&str>,
) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            select id=(id) name=(name) {
                @for (value, text) in options {
                    option value=(value) selected[Some(*value) == selected] { (text) }
                }
            }
        }
    }
}

/// Pretty JSON for a `<pre>`.
pub fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
