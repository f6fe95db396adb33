//! A connection's definition: [`ConnectionInput`], its fields as given (declared once: serde
//! reads it from a `[[connections]]` table of the file and from `POST /admin/connections`, clap
//! flattens it into `hookgate connections add`), and [`ConnectionSpec`], the validated form,
//! made in one place, [`ConnectionInput::into_spec`]. Adding a field touches this input, the
//! spec, the row (`db::rows::ConnectionRow`, whose serialized form is also what the APIs show;
//! `db::ConnectionWrite` and the column lists of `db/sql/connections.rs`; the two conversions
//! `connections::spec_from_row` and `connections::save`) and the migration.

use std::fmt;

use anyhow::{bail, Context};
use clap::Args;
use hookgate_providers::{ip_ranges, AuthKind, AuthMode, ProviderId, Secret};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// A connection's fields as written by an operator, before validation.
#[derive(Clone, Deserialize, Args, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInput {
    /// Connection id, the last segment of the receive URL: [A-Za-z0-9_-]{1,64}.
    #[arg(value_name = "ID")]
    pub id: String,
    /// stripe | clerk | shopify | stytch | supabase | workos | revenuecat | brevo
    #[arg(long)]
    #[serde(deserialize_with = "provider_from_str")]
    #[schema(value_type = ProviderName)]
    pub provider: ProviderId,
    /// The signing secret or shared secret (repeat for rotation); or HOOKGATE_SECRET.
    #[arg(
        long = "secret",
        env = "HOOKGATE_SECRET",
        hide_env_values = true,
        value_delimiter = ','
    )]
    #[serde(default)]
    #[schema(write_only, required = true, min_items = 1)]
    pub secrets: Vec<String>,
    /// Workspace the connection's contacts and fires belong to (default `default`).
    #[arg(long)]
    pub workspace: Option<String>,
    /// Signed timestamps older or newer than this are refused (default: the provider's).
    #[arg(long)]
    pub tolerance_secs: Option<u64>,
    /// CIDR allowlist entries or `@<provider>` names of published ranges (repeatable).
    #[arg(long = "allow-ip")]
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// Shared-secret providers: bearer | basic | header:<Name> | query:<param>.
    #[arg(long)]
    pub auth: Option<String>,
    /// Supabase: where the contact email lives in the payload.
    #[arg(long)]
    pub email_path: Option<String>,
    /// Supabase: the row column holding the `auth.users` id (`id` on `profiles`, `user_id`),
    /// given as `supabase_user_id` so rows without an email resolve to the user's contact.
    #[arg(long)]
    pub user_id_column: Option<String>,
    /// Requests per second (default: the gateway's `rate_limit_per_sec`).
    #[arg(long)]
    pub rate_limit_per_sec: Option<u32>,
    /// Burst size (default: twice the connection's rate, else the gateway's).
    #[arg(long)]
    pub rate_limit_burst: Option<u32>,
    /// Whether the receive URL answers (default true; the CLI enables with `enable`/`disable`).
    #[arg(skip)]
    pub enabled: Option<bool>,
}

/// The provider names, as an OpenAPI string enum (from [`ProviderId::ALL`]).
pub struct ProviderName;

impl utoipa::PartialSchema for ProviderName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A provider name."))
            .enum_values(Some(ProviderId::ALL.iter().map(|p| p.as_str())))
            .into()
    }
}

impl utoipa::ToSchema for ProviderName {}

fn provider_from_str<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ProviderId, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("provider: {e}")))
}

impl fmt::Debug for ConnectionInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInput")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("workspace", &self.workspace)
            .field("tolerance_secs", &self.tolerance_secs)
            .field("allow_ips", &self.allow_ips)
            .field("auth", &self.auth)
            .field("email_path", &self.email_path)
            .field("user_id_column", &self.user_id_column)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// A validated connection definition (from the file, the CLI, the admin API or a stored row).
/// Its derived `Debug` is safe: each [`Secret`] redacts itself.
#[derive(Clone, PartialEq, Debug)]
pub struct ConnectionSpec {
    pub id: String,
    pub provider: ProviderId,
    pub workspace: String,
    pub secrets: Vec<Secret>,
    pub tolerance_secs: Option<u64>,
    /// As written (`@brevo` names stay names; they are expanded when the connection is loaded).
    pub allow_ips: Vec<String>,
    pub auth: Option<AuthMode>,
    pub email_path: Option<String>,
    /// Supabase: the row column that holds the `auth.users` id, given as `supabase_user_id`.
    pub user_id_column: Option<String>,
    pub rate_limit_per_sec: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub enabled: bool,
}

impl ConnectionInput {
    /// A connection with only the required fields set; every other field takes its default.
    pub fn new(id: impl Into<String>, provider: ProviderId, secrets: Vec<String>) -> Self {
        ConnectionInput {
            id: id.into(),
            provider,
            secrets,
            workspace: None,
            tolerance_secs: None,
            allow_ips: Vec::new(),
            auth: None,
            email_path: None,
            user_id_column: None,
            rate_limit_per_sec: None,
            rate_limit_burst: None,
            enabled: None,
        }
    }

    /// Validates every field; errors name the key.
    ///
    /// # Errors
    /// Names the key that is wrong and why, never a secret's value.
    pub fn into_spec(self) -> anyhow::Result<ConnectionSpec> {
        let ConnectionInput {
            id,
            provider,
            secrets,
            workspace,
            tolerance_secs,
            allow_ips,
            auth,
            email_path,
            user_id_column,
            rate_limit_per_sec,
            rate_limit_burst,
            enabled,
        } = self;
        if !valid_connection_id(&id) {
            bail!("id: {id:?} must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -");
        }
        let adapter = provider.adapter();
        let workspace = workspace.unwrap_or_else(|| "default".to_owned());
        if workspace.is_empty() || workspace.len() > 128 {
            bail!("workspace: must be 1 to 128 characters");
        }
        let auth = match (auth.as_deref(), adapter.auth_kind()) {
            (None, _) => None,
            (Some(text), AuthKind::SharedSecret) => Some(text.parse::<AuthMode>().context("auth")?),
            (Some(_), AuthKind::Signature) => {
                bail!("auth: {provider} signs its deliveries; `auth` applies only to supabase, revenuecat and brevo")
            }
        };
        match (tolerance_secs, adapter.default_tolerance_secs()) {
            (Some(_), None) => bail!(
                "tolerance_secs: {provider} signs no timestamp, so a tolerance does not apply"
            ),
            (Some(t), Some(_)) if !(1..=604_800).contains(&t) => {
                bail!("tolerance_secs: {t} is out of range (1 to 604800)")
            }
            _ => {}
        }
        if email_path.is_some() && provider != ProviderId::Supabase {
            bail!("email_path: applies only to supabase connections");
        }
        if let Some(path) = &email_path {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                bail!("email_path: {path:?} must be dot-separated keys like record.email");
            }
        }
        if user_id_column.is_some() && provider != ProviderId::Supabase {
            bail!("user_id_column: applies only to supabase connections");
        }
        if let Some(column) = &user_id_column {
            if column.is_empty() || column.len() > 63 || column.contains('.') {
                bail!("user_id_column: {column:?} must be one column name of the row, like id or user_id");
            }
        }
        if secrets.is_empty() {
            bail!("secrets: at least one secret is required (a connection without one would reject everything)");
        }
        let secrets: Vec<Secret> = secrets.into_iter().map(Secret::new).collect();
        for (i, s) in secrets.iter().enumerate() {
            adapter
                .check_secret(s, auth.as_ref())
                .with_context(|| format!("secrets[{i}]"))?;
        }
        for (i, entry) in allow_ips.iter().enumerate() {
            check_allow_entry(entry).with_context(|| format!("allow_ips[{i}]"))?;
        }
        if rate_limit_per_sec == Some(0) || rate_limit_burst == Some(0) {
            bail!("rate_limit_per_sec / rate_limit_burst: must be at least 1");
        }
        Ok(ConnectionSpec {
            id,
            provider,
            workspace,
            secrets,
            tolerance_secs,
            allow_ips,
            auth,
            email_path,
            user_id_column,
            rate_limit_per_sec,
            rate_limit_burst,
            enabled: enabled.unwrap_or(true),
        })
    }
}

/// Checks a connection id: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_connection_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses a CIDR, or a bare address as a single-host network.
///
/// # Errors
/// The text is neither.
pub fn parse_cidr(text: &str) -> anyhow::Result<IpNet> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<std::net::IpAddr>()
        .map(IpNet::from)
        .map_err(|_| anyhow::anyhow!("{text:?} is not a CIDR like 10.0.0.0/8 or an address"))
}

/// Checks an `allow_ips` entry: a CIDR, an address, or `@<name>` of a published range list.
///
/// # Errors
/// Names the entry and what is wrong with it.
pub fn check_allow_entry(entry: &str) -> anyhow::Result<()> {
    if let Some(name) = entry.strip_prefix('@') {
        if ip_ranges::published(name).is_none() {
            bail!(
                "{entry:?} names no published range list (known: {})",
                ip_ranges::names().join(", ")
            );
        }
        Ok(())
    } else {
        parse_cidr(entry).map(|_| ())
    }
}
