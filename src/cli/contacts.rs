//! `hookgate contacts show <email> [--workspace w]`: one contact, read from the database
//! directly. With `--json` it prints exactly what `GET /admin/contacts/<email>` answers.

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use super::format_ms;
use crate::config::GlobalArgs;

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Show one contact: core fields and every `<provider>_*` custom field.
    Show(ContactShowArgs),
}

#[derive(Debug, Args)]
pub struct ContactShowArgs {
    /// The contact's email (matched trimmed and lower-cased, as contacts are stored).
    pub email: String,
    /// The workspace the contact belongs to (a connection's `workspace`).
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// Print the contact as JSON (as the admin API shows it) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `hookgate contacts ...`.
///
/// # Errors
/// Not an email, no such contact, or a database error.
pub async fn run(global: &GlobalArgs, command: ContactsCommand) -> anyhow::Result<()> {
    let ContactsCommand::Show(args) = command;
    let Some(email) = crate::contacts::normalize_email(&args.email) else {
        bail!("{:?} is not an email address", args.email);
    };
    let (db, _) = super::open_store(global).await?;
    let row = db
        .get_contact(&args.workspace, &email)
        .await?
        .with_context(|| {
            format!(
                "no contact {email} in workspace {:?} (contacts belong to their connection's workspace; pass --workspace)",
                args.workspace
            )
        })?;
    let value = crate::http::admin::contact_json(&row);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    println!("{:<13}{}", "email", row.email);
    println!("{:<13}{}", "workspace", row.workspace);
    println!("{:<13}{}", "first name", or_dash(row.first_name.as_deref()));
    println!("{:<13}{}", "last name", or_dash(row.last_name.as_deref()));
    println!(
        "{:<13}{}",
        "subscribed",
        row.subscribed.map_or("-".to_owned(), |s| s.to_string())
    );
    println!("{:<13}{}", "created", format_ms(row.created_at));
    println!("{:<13}{}", "updated", format_ms(row.updated_at));
    let fields = value["custom_fields"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if fields.is_empty() {
        println!("{:<13}none", "fields");
    }
    // serde_json's map is sorted by key.
    for (i, (key, field)) in fields.iter().enumerate() {
        let shown = match field {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!("{:<13}{key} = {shown}", if i == 0 { "fields" } else { "" });
    }
    Ok(())
}
