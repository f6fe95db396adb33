//! Operator subcommands that work on the database directly (`connections`, `logs`) or on a
//! running gateway over HTTP (`send`). Output is for people: tables and clear one-line errors.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use hookgate_providers::{AuthMode, ProviderId, Secret, SignOptions};

use crate::config::{ConnectionAddArgs, ConnectionSpec, ConnectionsCommand, LogsArgs, SendArgs};
use crate::connections::{self, ConnectionView};
use crate::crypto::SecretKey;
use crate::db::{Db, IngestFilter};

/// Runs `hookgate connections ...`.
///
/// # Errors
/// A message saying what went wrong and what to do.
pub async fn connections_command(
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
                    v.id,
                    v.provider,
                    v.workspace,
                    v.enabled,
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
    let spec = ConnectionSpec::build(
        &args.id,
        args.provider,
        Some(args.workspace),
        args.secrets,
        args.tolerance_secs,
        args.allow_ips,
        args.auth.as_deref(),
        args.email_path,
        args.user_id_column,
        args.rate_limit_per_sec,
        args.rate_limit_burst,
        true,
    )?;
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

/// Runs `hookgate keys ...`.
///
/// # Errors
/// Unknown scopes, unknown key ids, database errors.
pub async fn keys_command(db: &Db, command: crate::config::KeysCommand) -> anyhow::Result<()> {
    use crate::config::KeysCommand;
    match command {
        KeysCommand::Create { scopes, name } => {
            let parsed: Vec<crate::auth::Scope> = scopes
                .iter()
                .map(|s| s.parse::<crate::auth::Scope>().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()?;
            let scopes: Vec<&str> = parsed.iter().map(|s| s.as_str()).collect();
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

/// Runs `hookgate logs`: the newest `limit` records oldest first, then with `--follow` new ones
/// as they arrive (polling every 500 ms).
///
/// # Errors
/// Database errors.
pub async fn logs(db: &Db, args: LogsArgs) -> anyhow::Result<()> {
    if let Some(o) = &args.outcome {
        if !["accepted", "duplicate", "ignored", "rejected"].contains(&o.as_str()) {
            bail!("--outcome must be accepted, duplicate, ignored or rejected");
        }
    }
    let mut filter = IngestFilter {
        connection: args.connection.clone(),
        provider: args.provider.clone(),
        outcome: args.outcome.clone(),
        limit: args.limit.clamp(1, 10_000),
        ..IngestFilter::default()
    };
    let mut first = db.list_ingest(&filter).await?;
    first.reverse();
    let mut stdout = std::io::stdout();
    if !args.json {
        writeln!(
            stdout,
            "{:<26} {:<24} {:<11} {:<18} {:<9} {:<4} {:<34} REASON",
            "ID", "RECEIVED (UTC)", "PROVIDER", "CONNECTION", "OUTCOME", "HTTP", "EVENT"
        )?;
    }
    let mut last = None;
    for item in &first {
        print_item(&mut stdout, item, args.json)?;
        last = Some(item.id.clone());
    }
    if !args.follow {
        return Ok(());
    }
    // Follow from the newest record seen (or from now when there was none).
    filter.after_id = Some(last.unwrap_or_else(|| ulid::Ulid::new().to_string()));
    filter.limit = 500;
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        for item in db.list_ingest(&filter).await? {
            print_item(&mut stdout, &item, args.json)?;
            filter.after_id = Some(item.id.clone());
        }
        stdout.flush()?;
    }
}

fn print_item(
    out: &mut impl std::io::Write,
    item: &crate::db::rows::IngestSummary,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(item)?)?;
        return Ok(());
    }
    let event = match (&item.event_type, &item.event_id) {
        (Some(t), Some(id)) => format!("{t} {id}"),
        (Some(t), None) => t.clone(),
        _ => "-".into(),
    };
    writeln!(
        out,
        "{:<26} {:<24} {:<11} {:<18} {:<9} {:<4} {:<34} {}",
        item.id,
        format_ms(item.received_at),
        item.provider,
        item.connection_id,
        item.outcome,
        item.http_status,
        truncate(&event, 34),
        item.reason.as_deref().unwrap_or(""),
    )?;
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// A log line's time: RFC 3339 in UTC.
fn format_ms(ms: i64) -> String {
    hookgate_providers::time::format_rfc3339_ms(ms)
}

/// The provider a fixture belongs to: `--provider`, else its parent directory's name.
fn fixture_provider(path: &Path, explicit: Option<ProviderId>) -> anyhow::Result<ProviderId> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let dir = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("");
    dir.parse().with_context(|| {
        format!("cannot tell the provider from the directory {dir:?}; pass --provider")
    })
}

/// A request as `send` posts it.
pub struct SignedRequest {
    pub url: String,
    pub headers: Vec<(http::HeaderName, String)>,
    pub body: Vec<u8>,
}

/// Builds the signed request `send` posts.
///
/// # Errors
/// Unreadable fixture, unknown provider, unusable secret.
pub fn signed_request(args: &SendArgs, now_ms: i64) -> anyhow::Result<SignedRequest> {
    let provider = fixture_provider(&args.fixture, args.provider)?;
    let body = std::fs::read(&args.fixture)
        .with_context(|| format!("cannot read fixture {}", args.fixture.display()))?;
    let topic = args.topic.clone().or_else(|| {
        (provider == ProviderId::Shopify).then(|| {
            args.fixture
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                // `__` stands for `/`; a `--<variant>` suffix names a second fixture of a topic.
                .split("--")
                .next()
                .unwrap_or("")
                .replace("__", "/")
        })
    });
    let auth = args
        .auth
        .as_deref()
        .map(str::parse::<AuthMode>)
        .transpose()?;
    let options = SignOptions {
        now_ms: now_ms + args.skew_secs * 1000,
        delivery_id: args.delivery_id.clone(),
        event_type: topic,
        auth,
    };
    let signed = provider
        .adapter()
        .sign(&body, &Secret::new(args.secret.clone()), &options)
        .map_err(|e| anyhow::anyhow!("cannot sign for {provider}: {e}"))?;
    let mut url = args.url.clone();
    if let Some(query) = signed.query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query);
    }
    let mut headers = signed.headers;
    headers.push((http::header::CONTENT_TYPE, "application/json".into()));
    headers.push((
        http::header::USER_AGENT,
        format!("hookgate-send/{}", env!("CARGO_PKG_VERSION")),
    ));
    Ok(SignedRequest { url, headers, body })
}

/// Runs `hookgate send`: prints the status and the gateway's answer; fails on a non-2xx.
///
/// # Errors
/// The request could not be built or sent, or the gateway did not answer 2xx.
pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let SignedRequest { url, headers, body } = signed_request(&args, crate::now_ms())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut request = client.post(&url).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    // With `query:<param>` auth the URL carries the secret, and reqwest's errors quote the URL:
    // report the address without its query instead.
    let shown = url.split('?').next().unwrap_or_default().to_owned();
    let response = request
        .send()
        .await
        .map_err(reqwest::Error::without_url)
        .with_context(|| format!("cannot reach {shown}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!("{} {}", status.as_u16(), text);
    if !status.is_success() {
        bail!("the gateway answered {status}");
    }
    Ok(())
}
