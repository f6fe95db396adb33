//! `hookgate logs show <id>`: one ingest record in full, read from the database directly. With
//! `--json` it prints exactly what `GET /admin/ingest/<id>` answers.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use super::format_ms;
use crate::config::GlobalArgs;
use crate::db::{Db, FireFilter};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The record's id (the first column of `hookgate logs`, the `id` a delivery was answered
    /// with).
    pub id: String,
    /// Print the record as JSON (as the admin API shows it) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `hookgate logs show`.
///
/// # Errors
/// No such record, or the database cannot be read.
pub async fn run(global: &GlobalArgs, args: ShowArgs) -> anyhow::Result<()> {
    let (db, _) = super::open_store(global).await?;
    let record = crate::http::admin::ingest_json(&db, &args.id)
        .await?
        .with_context(|| {
            format!(
                "no ingest record {:?} (ids are the first column of `hookgate logs`)",
                args.id
            )
        })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        print!("{}", render(&db, &record).await?);
    }
    Ok(())
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The record as text: one `name  value` line per field that is set, then the headers and the
/// body.
async fn render(db: &Db, r: &Value) -> anyhow::Result<String> {
    let mut out = String::new();
    let line = |out: &mut String, name: &str, value: &str| {
        let _ = writeln!(out, "{name:<13}{value}");
    };
    line(&mut out, "id", text(r, "id").unwrap_or("-"));
    if let Some(ms) = r["received_at"].as_i64() {
        line(&mut out, "received", &format_ms(ms));
    }
    line(
        &mut out,
        "connection",
        &format!(
            "{} ({}, workspace {})",
            text(r, "connection_id").unwrap_or("-"),
            text(r, "provider").unwrap_or("-"),
            text(r, "workspace").unwrap_or("-"),
        ),
    );
    line(
        &mut out,
        "outcome",
        &format!(
            "{}, answered HTTP {}",
            text(r, "outcome").unwrap_or("-"),
            r["http_status"]
        ),
    );
    if let Some(first) = text(r, "duplicate_of") {
        line(&mut out, "duplicate of", first);
    }
    match (text(r, "event_type"), text(r, "event_id")) {
        (Some(t), Some(id)) => line(&mut out, "event", &format!("{t} {id}")),
        (Some(t), None) => line(&mut out, "event", t),
        _ => {}
    }
    if let Some(reason) = text(r, "reason") {
        line(&mut out, "reason", reason);
    }
    if let Some(client) = text(r, "client_addr") {
        line(&mut out, "client", client);
    }
    line(&mut out, "path", text(r, "path").unwrap_or("-"));
    if let (Some(read), Some(verify)) = (r["read_us"].as_i64(), r["verify_us"].as_i64()) {
        line(
            &mut out,
            "timing",
            &format!("body read in {read} µs, verified in {verify} µs"),
        );
    }
    if let Some(status) = text(r, "status") {
        let attempts = r["attempts"].as_i64().unwrap_or(0);
        let mut value = format!(
            "{status} ({attempts} attempt{})",
            if attempts == 1 { "" } else { "s" }
        );
        if let Some(why) = text(r, "status_reason") {
            let _ = write!(value, ": {why}");
        }
        if let Some(ms) = r["processed_at"].as_i64() {
            let _ = write!(value, ", at {}", format_ms(ms));
        }
        line(&mut out, "processing", &value);
    }
    if let Some(email) = text(r, "contact_email") {
        line(&mut out, "contact", email);
    }
    let fires: Vec<i64> = r["fires"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    for (i, seq) in fires.iter().enumerate() {
        let fire = db
            .list_fires(&FireFilter {
                after_seq: seq - 1,
                limit: 1,
                ..FireFilter::default()
            })
            .await?
            .into_iter()
            .find(|f| f.seq == *seq);
        let described = match fire {
            Some(f) => format!(
                "{seq} {} ({})",
                f.trigger_id,
                f.email.as_deref().unwrap_or("no email")
            ),
            None => seq.to_string(),
        };
        line(&mut out, if i == 0 { "fires" } else { "" }, &described);
    }
    if fires.is_empty() && text(r, "status").is_some() {
        line(&mut out, "fires", "none");
    }
    out.push_str("headers (secret values redacted)\n");
    for pair in r["headers"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {}: {}",
            pair[0].as_str().unwrap_or(""),
            pair[1].as_str().unwrap_or("")
        );
    }
    let size = r["body_size"].as_i64().unwrap_or(0);
    let truncated = r["body_truncated"].as_bool().unwrap_or(false);
    let _ = writeln!(
        out,
        "body ({size} bytes{})",
        if truncated {
            ", of which the first 4 KiB are kept"
        } else {
            ", as received"
        }
    );
    // The bytes as received (the JSON form re-orders keys), indented; not UTF-8: base64.
    let raw = db
        .get_ingest(text(r, "id").unwrap_or(""))
        .await?
        .map(|row| row.body);
    let body = match raw.as_deref().map(std::str::from_utf8) {
        Some(Ok(utf8)) => utf8.to_owned(),
        Some(Err(_)) => format!(
            "(not UTF-8, base64) {}",
            text(r, "body_base64").unwrap_or("")
        ),
        None => String::new(),
    };
    for body_line in body.lines() {
        let _ = writeln!(out, "  {body_line}");
    }
    Ok(out)
}
