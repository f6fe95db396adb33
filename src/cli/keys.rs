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
        KeysCommand::Create { scopes, name } => {
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            let (id, key, hash) = crate::auth::mint();
            db.insert_api_key(&id, &hash, &name, &scopes.join(" "), crate::now_ms())
                .await?;
            println!("{key}");
            eprintln!(
                "created key {id} ({name}) with scopes {}; it is shown only this once",
                scopes.join(", ")
            );
            Ok(())
        }
        KeysCommand::List => {
            println!(
                "{:<14} {:<20} {:<40} {:<26} REVOKED",
                "ID", "NAME", "SCOPES", "CREATED (UTC)"
            );
            for k in db.list_api_keys().await? {
                println!(
                    "{:<14} {:<20} {:<40} {:<26} {}",
                    k.id,
                    k.name,
                    k.scopes,
                    format_ms(k.created_at),
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
