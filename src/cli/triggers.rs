//! `hookgate triggers define <file.json>` and `hookgate triggers list`: custom triggers and the
//! trigger catalog, on the database directly (a running gateway sees a definition at once).

use anyhow::{bail, Context as _};
use clap::Subcommand;

use crate::config::GlobalArgs;
use crate::custom::TriggerInput;
use crate::error::AppError;

#[derive(Debug, Subcommand)]
pub enum TriggersCommand {
    /// Define (or redefine) a custom trigger from a JSON file:
    /// {"id":"app.signup","workspace":"acme","payloadSchema":{"fields":[{"key":"email","type":"string","required":true}]}}
    Define {
        /// The definition file (`-` reads standard input).
        file: String,
    },
    /// List the trigger catalog: provider triggers seen and custom triggers defined.
    List {
        /// Only this workspace.
        #[arg(long)]
        workspace: Option<String>,
    },
}

/// Runs `hookgate triggers ...`.
///
/// # Errors
/// An unreadable file, an invalid definition (every problem named), or a database error.
pub async fn run(global: &GlobalArgs, command: TriggersCommand) -> anyhow::Result<()> {
    match command {
        TriggersCommand::Define { file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?
            };
            let input: TriggerInput = serde_json::from_str(&text)
                .with_context(|| format!("{file} is not a trigger definition"))?;
            let (db, _) = super::open_migrated(global).await?;
            let defined = crate::http::fires::define(&db, input, crate::now_ms())
                .await
                .map_err(explain)?;
            println!("{}", serde_json::to_string_pretty(&defined.json)?);
            eprintln!(
                "{} trigger {} in workspace {}",
                if defined.created {
                    "defined"
                } else {
                    "redefined"
                },
                defined.json["id"].as_str().unwrap_or_default(),
                defined.json["workspace"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        TriggersCommand::List { workspace } => {
            let (db, _) = super::open_migrated(global).await?;
            println!("{:<20} {:<40} {:<10} FIELDS", "WORKSPACE", "ID", "PROVIDER");
            for t in db.list_triggers(workspace.as_deref()).await? {
                let schema: crate::contacts::PayloadSchema =
                    serde_json::from_str(&t.payload_schema).unwrap_or_default();
                let fields: Vec<String> = schema
                    .fields
                    .iter()
                    .map(|f| format!("{}:{}{}", f.key, f.kind, if f.required { "!" } else { "" }))
                    .collect();
                println!(
                    "{:<20} {:<40} {:<10} {}",
                    t.workspace,
                    t.id,
                    t.provider,
                    fields.join(" ")
                );
            }
            Ok(())
        }
    }
}

/// An API error as a command-line message: the message, and each field problem on its line.
pub(crate) fn explain(error: AppError) -> anyhow::Error {
    match error {
        AppError::InvalidFields {
            message, errors, ..
        } => {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("  {}: {}", e.path, e.message))
                .collect();
            anyhow::anyhow!("{message}:\n{}", lines.join("\n"))
        }
        AppError::NotFound => anyhow::anyhow!("not found"),
        AppError::Database(e) => anyhow::Error::new(e).context("database error"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// Refuses an empty value for a required text argument.
pub(crate) fn non_empty(name: &str, value: &str) -> anyhow::Result<()> {
    if value.is_empty() {
        bail!("{name} must not be empty");
    }
    Ok(())
}
