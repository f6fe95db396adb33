//! `hookgate endpoints add|list|show|enable|disable|rotate|remove|test`: the endpoints events
//! are delivered to, written directly to the database (a running gateway picks changes up
//! within a second).

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use crate::config::GlobalArgs;
use crate::delivery::endpoint::{EndpointInput, EndpointSpec};
use crate::delivery::manage::{self, Saved};
use crate::delivery::store;

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Add an endpoint (or replace it with --replace). Without --secret one is generated and
    /// printed once.
    Add(EndpointAddArgs),
    /// List endpoints (secrets are never shown).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one endpoint (secrets are never shown).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Enable an endpoint; its paused deliveries are sent again.
    Enable { id: String },
    /// Disable an endpoint; its deliveries are held (`paused`) until it is enabled.
    Disable { id: String },
    /// Add a new signing secret (printed once); the previous ones keep signing for 24 h.
    Rotate {
        id: String,
        /// The new secret (`whsec_` + base64); generated when left out.
        #[arg(long, env = "HOOKGATE_NEW_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Delete an endpoint (its deliveries stay listed; unfinished ones become `dead`).
    Remove { id: String },
    /// Send one signed `hookgate.test` event to the endpoint now and print the answer.
    Test { id: String },
}

#[derive(Debug, Args)]
pub struct EndpointAddArgs {
    /// Endpoint id: [A-Za-z0-9_-]{1,64}.
    pub id: String,
    /// Destination URL (https unless `[delivery] allow_http = true`).
    #[arg(long)]
    pub url: String,
    #[arg(long, default_value = "default")]
    pub workspace: String,
    /// Event type globs (`*` matches any characters); repeatable. Default: every event.
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// Signing secret `whsec_...` (repeatable); or HOOKGATE_ENDPOINT_SECRET.
    #[arg(
        long = "secret",
        env = "HOOKGATE_ENDPOINT_SECRET",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secrets: Vec<String>,
    /// A jq program that reshapes the body (`null` skips the delivery).
    #[arg(long)]
    pub transform: Option<String>,
    #[arg(long)]
    pub max_in_flight: Option<u32>,
    #[arg(long)]
    pub rate_limit_per_sec: Option<u32>,
    /// One delivery in flight, in event order.
    #[arg(long)]
    pub ordered: bool,
    #[arg(long)]
    pub disabled: bool,
    /// Overwrite an existing endpoint of that id.
    #[arg(long)]
    pub replace: bool,
}

/// Runs `hookgate endpoints ...`.
///
/// # Errors
/// A message saying what went wrong and what to do.
pub async fn run(global: &GlobalArgs, command: EndpointsCommand) -> anyhow::Result<()> {
    let (db, config) = super::open_migrated(global).await?;
    let key = config.secret_key.as_ref();
    let now = crate::now_ms();
    let must_exist = |found: bool, id: &str| -> anyhow::Result<()> {
        if !found {
            bail!("no endpoint {id:?} (list them with `hookgate endpoints list`)");
        }
        Ok(())
    };
    match command {
        EndpointsCommand::Add(args) => {
            let input = EndpointInput {
                id: args.id,
                url: args.url,
                workspace: Some(args.workspace),
                event_types: (!args.event_types.is_empty()).then_some(args.event_types),
                secrets: (!args.secrets.is_empty()).then_some(args.secrets),
                transform: args.transform,
                max_in_flight: args.max_in_flight,
                rate_limit_per_sec: args.rate_limit_per_sec,
                ordered: Some(args.ordered),
                enabled: Some(!args.disabled),
            };
            let spec = EndpointSpec::build(&input, &config.delivery.policy)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match manage::save(&db, &spec, key, "cli", args.replace, now).await? {
                Saved::Exists => bail!(
                    "endpoint {:?} exists; add --replace to overwrite it",
                    spec.id
                ),
                Saved::Written { generated_secret } => {
                    println!("endpoint {} saved: {}", spec.id, spec.url);
                    if let Some(secret) = generated_secret {
                        println!("signing secret (shown once): {secret}");
                    }
                }
            }
        }
        EndpointsCommand::List { json } => {
            let rows = store::list_endpoints(&db).await?;
            if json {
                let items: Vec<_> = rows.iter().map(|r| manage::view(r, key, now)).collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no endpoints (add one with `hookgate endpoints add <id> --url <url>`)");
                return Ok(());
            }
            println!(
                "{:<20} {:<8} {:<12} {:<28} URL",
                "ID", "ENABLED", "WORKSPACE", "EVENT TYPES"
            );
            for r in &rows {
                println!(
                    "{:<20} {:<8} {:<12} {:<28} {}",
                    r.id,
                    r.enabled,
                    r.workspace,
                    r.globs().join(","),
                    r.url
                );
            }
        }
        EndpointsCommand::Show { id, json } => {
            let row = store::get_endpoint(&db, &id).await?;
            let Some(row) = row else {
                return must_exist(false, &id);
            };
            let view = manage::view(&row, key, now);
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else if let Some(map) = view.as_object() {
                for (k, v) in map {
                    println!("{k:<20} {v}");
                }
            }
        }
        EndpointsCommand::Enable { id } => {
            let found = store::set_endpoint_enabled(&db, &id, true, None, None, now).await?;
            must_exist(found, &id)?;
            println!("endpoint {id} enabled");
        }
        EndpointsCommand::Disable { id } => {
            let found = store::set_endpoint_enabled(
                &db,
                &id,
                false,
                Some("disabled by an operator"),
                None,
                now,
            )
            .await?;
            must_exist(found, &id)?;
            println!("endpoint {id} disabled; its deliveries are held until it is enabled");
        }
        EndpointsCommand::Rotate { id, secret } => {
            let new = manage::rotate(&db, &id, secret, key, now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let Some(new) = new else {
                return must_exist(false, &id);
            };
            println!("new signing secret (shown once): {new}");
            println!("the previous secrets keep signing for 24 h");
        }
        EndpointsCommand::Remove { id } => {
            let found = store::delete_endpoint(&db, &id, now).await?;
            must_exist(found, &id)?;
            println!("endpoint {id} removed");
        }
        EndpointsCommand::Test { id } => {
            let row = store::get_endpoint(&db, &id)
                .await?
                .with_context(|| format!("no endpoint {id:?}"))?;
            let result = manage::send_test(&row, &config.delivery, key, now)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            if result["status_code"]
                .as_u64()
                .is_none_or(|c| !(200..300).contains(&c))
            {
                bail!("the endpoint did not answer 2xx");
            }
        }
    }
    db.close().await;
    Ok(())
}
