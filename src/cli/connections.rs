//! `hookgate connections add|list|show|disable|enable|rotate|remove|reencrypt`: connections in
//! the database, written directly (a running gateway picks the changes up).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::config::GlobalArgs;
use crate::connections::{self, ConnectionInput, ConnectionView};
use crate::crypto::SecretKey;
use crate::db::Db;

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Add a connection (or replace it with --replace).
    Add(ConnectionAddArgs),
    /// List connections (secrets are never shown).
    List,
    /// Show one connection (secrets are never shown).
    Show { id: String },
    /// Disable a connection: its receive URL answers 404 until it is enabled again.
    Disable { id: String },
    /// Enable a disabled connection.
    Enable { id: String },
    /// Add a new secret; the previous one stays valid until --drop-old (rotation window).
    Rotate {
        id: String,
        /// The new secret (or use HOOKGATE_NEW_SECRET to keep it out of the shell history).
        #[arg(long, env = "HOOKGATE_NEW_SECRET", hide_env_values = true)]
        secret: String,
        /// Remove every older secret now instead of keeping the previous one.
        #[arg(long)]
        drop_old: bool,
    },
    /// Delete a connection (its ingest log stays).
    Remove { id: String },
    /// Rewrite every connection's secrets encrypted with HOOKGATE_SECRET_KEY (plaintext rows
    /// written before the key was set become encrypted; encrypted rows get a fresh nonce).
    Reencrypt,
}

#[derive(Debug, Args)]
pub struct ConnectionAddArgs {
    #[command(flatten)]
    pub connection: ConnectionInput,
    /// Replace an existing connection with the same id.
    #[arg(long)]
    pub replace: bool,
}

/// Runs `hookgate connections ...`.
///
/// # Errors
/// A message saying what went wrong and what to do.
pub async fn run(global: &GlobalArgs, command: ConnectionsCommand) -> anyhow::Result<()> {
    let (db, config) = super::open_migrated(global).await?;
    execute(&db, config.secret_key.as_ref(), command).await
}

/// Runs one `hookgate connections ...` command on an open store, with `key` for the secrets at
/// rest.
///
/// # Errors
/// A message saying what went wrong and what to do.
pub async fn execute(
    db: &Db,
    key: Option<&SecretKey>,
    command: ConnectionsCommand,
) -> anyhow::Result<()> {
    let now = crate::now_ms();
    match command {
        ConnectionsCommand::Add(args) => add(db, key, args, now).await,
        ConnectionsCommand::List => {
            let rows = db.list_connections().await?;
            if rows.is_empty() {
                println!("no connections (add one with `hookgate connections add <id> --provider <p> --secret <s>`)");
            }
            println!(
                "{:<24} {:<11} {:<12} {:<8} {:<7} {:<9} RECEIVE PATH",
                "ID", "PROVIDER", "WORKSPACE", "ENABLED", "SECRETS", "ENCRYPTED"
            );
            for row in &rows {
                let v = ConnectionView::new(row, key);
                // `?`: the secrets are encrypted and this command has no key to count them.
                let count = v
                    .secrets_count
                    .map_or_else(|| "?".to_owned(), |n| n.to_string());
                println!(
                    "{:<24} {:<11} {:<12} {:<8} {:<7} {:<9} {}",
                    v.row.id,
                    v.row.provider,
                    v.row.workspace,
                    v.row.enabled,
                    count,
                    v.secrets_encrypted,
                    v.receive_path
                );
            }
            Ok(())
        }
        ConnectionsCommand::Show { id } => {
            let row = db
                .get_connection(&id)
                .await?
                .with_context(|| format!("no connection {id:?}"))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&ConnectionView::new(&row, key))?
            );
            Ok(())
        }
        ConnectionsCommand::Disable { id } => toggle(db, &id, false, now).await,
        ConnectionsCommand::Enable { id } => toggle(db, &id, true, now).await,
        ConnectionsCommand::Rotate {
            id,
            secret,
            drop_old,
        } => match connections::rotate(db, key, &id, &secret, drop_old, now).await? {
            Some(count) => {
                println!(
                    "rotated {id}: {count} secret(s) now valid{}",
                    if drop_old {
                        ""
                    } else {
                        " (the previous one stays valid until you rotate with --drop-old)"
                    }
                );
                Ok(())
            }
            None => bail!("no connection {id:?}"),
        },
        ConnectionsCommand::Reencrypt => {
            let Some(key) = key else {
                bail!("reencrypt needs the key to encrypt with: set HOOKGATE_SECRET_KEY (or `secret_key` in the config file)");
            };
            let count = connections::reencrypt(db, key, now).await?;
            println!("re-encrypted the secrets of {count} connection(s) with the configured key (running gateways pick the rows up within {} s)", crate::CONNECTION_REFRESH.as_secs());
            Ok(())
        }
        ConnectionsCommand::Remove { id } => {
            if db.delete_connection(&id).await? {
                println!("removed {id} (its ingest log is kept)");
                Ok(())
            } else {
                bail!("no connection {id:?}")
            }
        }
    }
}

async fn add(
    db: &Db,
    key: Option<&SecretKey>,
    args: ConnectionAddArgs,
    now: i64,
) -> anyhow::Result<()> {
    let spec = args.connection.into_spec()?;
    crate::policy::check_new_secrets(&spec.id, spec.provider, &spec.secrets)?;
    if !connections::save(db, &spec, key, "cli", args.replace, now).await? {
        bail!(
            "connection {:?} exists; use --replace to overwrite it",
            spec.id
        );
    }
    println!(
        "added {} ({}); receive path /integrations/{}/webhook/{} (a running gateway picks it up within {} s)",
        spec.id,
        spec.provider,
        spec.provider,
        spec.id,
        crate::CONNECTION_REFRESH.as_secs()
    );
    Ok(())
}

async fn toggle(db: &Db, id: &str, enabled: bool, now: i64) -> anyhow::Result<()> {
    if db.set_enabled(id, enabled, now).await? {
        println!("{} {id}", if enabled { "enabled" } else { "disabled" });
        Ok(())
    } else {
        bail!("no connection {id:?}")
    }
}
