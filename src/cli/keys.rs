//! `hookgate keys create|list|revoke`: API keys for the events API, on the database directly.

use anyhow::bail;
use clap::Subcommand;

use super::format_ms;
use crate::auth::Scope;
use crate::config::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Mint a key; it is printed once and only its hash is stored.
    Create {
        /// webhooks:read | webhooks:write | admin (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<Scope>,
        /// A name to recognise the key by.
        #[arg(long, default_value = "unnamed")]
        name: String,
        /// Limit the key to one workspace: it lists, streams and creates test events there
        /// only (default: every workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// Days until the key stops working (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by its id.
    Revoke { id: String },
}

/// Runs `hookgate keys ...`.
///
/// # Errors
/// Unknown key ids, database errors.
pub async fn run(global: &GlobalArgs, command: KeysCommand) -> anyhow::Result<()> {
    let (db, _) = super::open_migrated(global).await?;
    match command {
        KeysCommand::Create {
            scopes,
            name,
            workspace,
            expires_days,
        } => {
            if workspace
                .as_ref()
                .is_some_and(|w| w.is_empty() || w.len() > 128)
            {
                bail!("--workspace: must be 1 to 128 characters");
            }
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            let (id, key, hash) = crate::auth::mint();
            let now = crate::now_ms();
            let expires_at = expires_days.map(|d| now + i64::from(d) * 86_400_000);
            db.insert_api_key(
                &id,
                &hash,
                &name,
                &scopes.join(" "),
                now,
                workspace.as_deref(),
                expires_at,
            )
            .await?;
            println!("{key}");
            eprintln!(
                "created key {id} ({name}) with scopes {} for {}{}; it is shown only this once",
                scopes.join(", "),
                workspace
                    .as_deref()
                    .map_or("every workspace".to_owned(), |w| format!("workspace {w}")),
                expires_at.map_or(String::new(), |at| format!(", expiring {}", format_ms(at)))
            );
            Ok(())
        }
        KeysCommand::List => {
            println!(
                "{:<14} {:<20} {:<40} {:<12} {:<26} {:<26} REVOKED",
                "ID", "NAME", "SCOPES", "WORKSPACE", "CREATED (UTC)", "EXPIRES (UTC)"
            );
            for k in db.list_api_keys().await? {
                println!(
                    "{:<14} {:<20} {:<40} {:<12} {:<26} {:<26} {}",
                    k.id,
                    k.name,
                    k.scopes,
                    k.workspace.as_deref().unwrap_or("*"),
                    format_ms(k.created_at),
                    k.expires_at.map(format_ms).unwrap_or_default(),
                    k.revoked_at.map(format_ms).unwrap_or_default()
                );
            }
            Ok(())
        }
        KeysCommand::Revoke { id } => {
            if db.revoke_api_key(&id, crate::now_ms()).await? {
                println!("revoked {id}");
                Ok(())
            } else {
                bail!("no active key {id:?}")
            }
        }
    }
}
