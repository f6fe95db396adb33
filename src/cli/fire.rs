//! `hookgate fire <trigger> --payload <json> --key <k> [--workspace w] [--occurred-at t]`: fires
//! a custom trigger from the command line, on the database directly. The fire is committed as a
//! pending event, checked exactly as `POST /v1/fires` checks it; a running gateway processes it
//! at its next poll (within half a second), or the next gateway to start does.

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::Value;

use super::triggers::{explain, non_empty};
use crate::config::GlobalArgs;
use crate::error::AppError;
use crate::http::fires::{accept_fire, FireAnswer, FireRequest};

#[derive(Debug, Args)]
pub struct FireArgs {
    /// The custom trigger's id (defined with `hookgate triggers define`).
    pub trigger: String,
    /// The payload: a JSON object, or @<file> to read one.
    #[arg(long)]
    pub payload: String,
    /// The idempotency key: a second fire with the same key in the workspace does nothing.
    #[arg(long)]
    pub key: String,
    /// The trigger's workspace.
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// When it happened: Unix milliseconds or RFC 3339 (default: now).
    #[arg(long)]
    pub occurred_at: Option<String>,
}

/// Runs `hookgate fire`.
///
/// # Errors
/// Invalid input (every payload problem named), an unknown trigger, a key used before for a
/// different fire, or a database error.
pub async fn run(global: &GlobalArgs, args: FireArgs) -> anyhow::Result<()> {
    non_empty("--key", &args.key)?;
    let text = match args.payload.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => args.payload.clone(),
    };
    let payload: Value = serde_json::from_str(&text).context("--payload is not JSON")?;
    let occurred_at = args.occurred_at.map(|t| match t.parse::<i64>() {
        Ok(ms) => Value::from(ms),
        Err(_) => Value::String(t),
    });
    let (db, _) = super::open_migrated(global).await?;
    let request = FireRequest {
        trigger: args.trigger.clone(),
        workspace: Some(args.workspace.clone()),
        payload,
        key: args.key,
        occurred_at,
        client_addr: None,
        path: "hookgate fire".into(),
        headers: "[]".into(),
    };
    match accept_fire(&db, request, crate::now_ms()).await {
        Ok(FireAnswer::Accepted { id }) => {
            println!("{id}");
            eprintln!(
                "accepted: {} in workspace {} is stored as {id} and will be processed by the gateway",
                args.trigger, args.workspace
            );
            Ok(())
        }
        Ok(FireAnswer::Duplicate { id }) => {
            println!("{id}");
            eprintln!(
                "duplicate: this key already fired the same event as {id}; nothing new stored"
            );
            Ok(())
        }
        Err(AppError::NotFound) => bail!(
            "no custom trigger {:?} in workspace {:?} (define it with `hookgate triggers define`)",
            args.trigger,
            args.workspace
        ),
        Err(error) => Err(explain(error)),
    }
}
