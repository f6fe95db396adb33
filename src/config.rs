//! The gateway's settings, from flags, `HOOKGATE_*` environment variables and the TOML file.
//! The subcommands and their own arguments live in [`crate::cli`].
//!
//! Precedence is flag > environment > file > default, per key. clap reads flags and environment
//! (each top-level setting is an `Option` so an unset one falls through to the file); the file is
//! parsed with `deny_unknown_fields`, so a misspelt key is an error that names it, and `${VAR}` in
//! the file is replaced by the environment variable's value so secrets can stay out of the file.
//! This module is the only place that reads the environment (clippy's `disallowed-methods`
//! enforces it).

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use clap::Args;
use hookgate_providers::Secret;
use ipnet::IpNet;
use serde::Deserialize;

use crate::connections::{parse_cidr, ConnectionInput, ConnectionSpec};
use crate::crypto::SecretKey;
use crate::db::Durability;

mod redact;

/// The default SQLite database, relative to the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hookgate.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 1000;
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_UNKNOWN_ID_LOG_PER_MINUTE: u32 = 10;

/// Where the settings come from, and the settings every subcommand that opens the store needs:
/// the `--config` file, the database and the key for secrets at rest. These are global flags of
/// the command line (the `cli` module flattens them into its parser).
#[derive(Clone, Default, Args)]
pub struct GlobalArgs {
    /// TOML configuration file (see README "Configuration").
    #[arg(long, env = "HOOKGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Database URL: `sqlite://path.db` (default `sqlite://hookgate.db`) or `postgres://...`.
    #[arg(long, env = "HOOKGATE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Key that encrypts connection secrets at rest: 32 bytes as 64 hex characters or base64
    /// (file key `secret_key`). Without it secrets are stored unencrypted.
    #[arg(
        long,
        env = "HOOKGATE_SECRET_KEY",
        global = true,
        hide_env_values = true
    )]
    pub secret_key: Option<KeyText>,

    /// Keys used before a rotation, comma-separated: rows written with them stay readable
    /// while new writes use `secret_key`, until `hookgate connections reencrypt` moves them
    /// (file key `secret_key_previous`).
    #[arg(
        long,
        env = "HOOKGATE_SECRET_KEY_PREVIOUS",
        global = true,
        hide_env_values = true
    )]
    pub secret_key_previous: Option<KeyText>,
}

/// Settings of the running gateway; each also reads `HOOKGATE_<NAME>` and the file key `<name>`.
#[derive(Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on (file key `listen`).
    #[arg(long, env = "HOOKGATE_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Bearer token for the admin API, with every scope (file key `admin_token`).
    #[arg(long, env = "HOOKGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Largest accepted request body in bytes; larger ones get 413 (file key `max_body_bytes`).
    #[arg(long, env = "HOOKGATE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Proxies (CIDRs) whose `X-Forwarded-For` is trusted, comma-separated (file key
    /// `trusted_proxies`).
    #[arg(long, env = "HOOKGATE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<IpNet>>,

    /// Default per-connection rate limit in requests per second (file key `rate_limit_per_sec`).
    #[arg(long, env = "HOOKGATE_RATE_LIMIT_PER_SEC")]
    pub rate_limit_per_sec: Option<u32>,

    /// Default per-connection burst size; defaults to twice the rate (file key
    /// `rate_limit_burst`).
    #[arg(long, env = "HOOKGATE_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,

    /// Seconds a client may take to send the request headers (file key `header_timeout_secs`).
    #[arg(long, env = "HOOKGATE_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,

    /// Seconds a client may take to send the body (file key `body_timeout_secs`).
    #[arg(long, env = "HOOKGATE_BODY_TIMEOUT_SECS")]
    pub body_timeout_secs: Option<u64>,

    /// SQLite durability: `full` (default; survives power loss) or `normal` (survives a process
    /// crash, not a power loss) (file key `durability`).
    #[arg(long, env = "HOOKGATE_DURABILITY")]
    pub durability: Option<Durability>,

    /// Most client connections open at once; past it the accept loop waits (file key
    /// `max_connections`).
    #[arg(long, env = "HOOKGATE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Requests to unknown connection ids written to the ingest log per client address and
    /// minute; the rest are only counted (file key `unknown_id_log_per_minute`).
    #[arg(long, env = "HOOKGATE_UNKNOWN_ID_LOG_PER_MINUTE")]
    pub unknown_id_log_per_minute: Option<u32>,

    /// Do not apply migrations at start.
    #[arg(long, env = "HOOKGATE_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Receive and store only; start no normalization workers (events stay `pending` until a
    /// gateway with workers runs).
    #[arg(long, env = "HOOKGATE_NO_WORKERS")]
    pub no_workers: bool,

    /// Answer each delivery as soon as it is stored and normalize it afterwards in the
    /// workers, instead of in the transaction that stores it (SQLite's default; PostgreSQL
    /// always defers) (file key `defer_processing`).
    #[arg(long, env = "HOOKGATE_DEFER_PROCESSING")]
    pub defer_processing: bool,
}

/// The secret key's text as given on the command line or in the environment; parsed and
/// validated by [`Config::load`] so that no error message (clap's included) can echo it.
#[derive(Clone)]
pub struct KeyText(String);

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyText(<redacted>)")
    }
}

impl FromStr for KeyText {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(KeyText(s.to_owned()))
    }
}

/// The TOML file, exactly as written (the keys README "Configuration" documents).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub admin_token: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub trusted_proxies: Option<Vec<String>>,
    pub rate_limit_per_sec: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub header_timeout_secs: Option<u64>,
    pub body_timeout_secs: Option<u64>,
    pub durability: Option<Durability>,
    pub defer_processing: Option<bool>,
    pub secret_key: Option<String>,
    pub secret_key_previous: Option<String>,
    pub max_connections: Option<usize>,
    pub unknown_id_log_per_minute: Option<u32>,
    pub retention: Option<crate::policy::FileRetention>,
    #[serde(default, deserialize_with = "connection_list")]
    pub connections: Vec<ConnectionInput>,
    #[serde(default)]
    pub endpoints: Vec<crate::delivery::endpoint::EndpointInput>,
    pub delivery: Option<crate::delivery::endpoint::FileDelivery>,
    #[serde(default)]
    pub drains: Vec<crate::drains::DrainInput>,
}

/// Reads the `[[connections]]` tables, naming the one an error is in (`connections[2]: ...`).
fn connection_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ConnectionInput>, D::Error> {
    struct Tables;
    impl<'de> serde::de::Visitor<'de> for Tables {
        type Value = Vec<ConnectionInput>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of [[connections]] tables")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut list = Vec::new();
            loop {
                match seq.next_element::<ConnectionInput>() {
                    Ok(Some(input)) => list.push(input),
                    Ok(None) => return Ok(list),
                    Err(e) => {
                        return Err(serde::de::Error::custom(format!(
                            "connections[{}]: {e}",
                            list.len()
                        )))
                    }
                }
            }
        }
    }
    deserializer.deserialize_seq(Tables)
}

/// The effective settings of `hookgate serve`.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub admin_token: Option<Secret>,
    pub max_body_bytes: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub rate_limit_per_sec: u32,
    pub rate_limit_burst: u32,
    pub header_timeout_secs: u64,
    pub body_timeout_secs: u64,
    pub durability: Durability,
    /// Most client connections served at once.
    pub max_connections: usize,
    /// Unknown-id requests logged per client address and minute.
    pub unknown_id_log_per_minute: u32,
    /// `[retention]`.
    pub retention: crate::policy::Retention,
    pub migrate: bool,
    /// Whether this process runs normalization workers.
    pub workers: bool,
    /// Whether stored events are left to the workers even where the store could apply them
    /// in the transaction that stores them.
    pub defer_processing: bool,
    /// Encrypts connection secrets at rest when set (`HOOKGATE_SECRET_KEY`).
    pub secret_key: Option<SecretKey>,
    pub connections: Vec<ConnectionSpec>,
    /// Outbound delivery settings (`[delivery]`).
    pub delivery: crate::delivery::endpoint::DeliverySettings,
    /// Endpoints declared in the config file (`[[endpoints]]`), upserted at start.
    pub endpoints: Vec<crate::delivery::endpoint::EndpointSpec>,
    /// Drains declared in the config file (`[[drains]]`); the store's list is made to match.
    pub drains: Vec<crate::drains::DrainSpec>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_url(&self.database_url))
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field("header_timeout_secs", &self.header_timeout_secs)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("durability", &self.durability)
            .field("max_connections", &self.max_connections)
            .field("unknown_id_log_per_minute", &self.unknown_id_log_per_minute)
            .field("retention", &self.retention)
            .field("migrate", &self.migrate)
            .field("workers", &self.workers)
            .field("defer_processing", &self.defer_processing)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field("connections", &self.connections)
            .field("delivery", &self.delivery)
            .field("endpoints", &self.endpoints)
            .field("drains", &self.drains)
            .finish()
    }
}

impl Config {
    /// Defaults for tests and embedding: SQLite at `database_url`, no connections.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url: database_url.into(),
            admin_token: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            trusted_proxies: Vec::new(),
            rate_limit_per_sec: DEFAULT_RATE_LIMIT_PER_SEC,
            rate_limit_burst: DEFAULT_RATE_LIMIT_PER_SEC * 2,
            header_timeout_secs: DEFAULT_HEADER_TIMEOUT_SECS,
            body_timeout_secs: DEFAULT_BODY_TIMEOUT_SECS,
            durability: Durability::Full,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            unknown_id_log_per_minute: DEFAULT_UNKNOWN_ID_LOG_PER_MINUTE,
            retention: crate::policy::Retention::default(),
            migrate: true,
            workers: true,
            defer_processing: false,
            secret_key: None,
            connections: Vec::new(),
            delivery: crate::delivery::endpoint::DeliverySettings::default(),
            endpoints: Vec::new(),
            drains: Vec::new(),
        }
    }

    /// Layers file, environment and flags into the effective configuration, validating all of it.
    ///
    /// # Errors
    /// A message naming the key or variable to fix.
    pub fn load(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &global.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        Self::from_file(file, global, args)
    }

    /// The second half of [`Config::load`]: layers the flags and environment over a parsed file
    /// and validates the result. It reads no file and opens no database, so it can run on any
    /// input (the `config_file` fuzz target does).
    ///
    /// # Errors
    /// A message naming the key or variable to fix.
    pub fn from_file(
        file: FileConfig,
        global: &GlobalArgs,
        args: &ServeArgs,
    ) -> anyhow::Result<Self> {
        let database_url = global
            .database_url
            .clone()
            .or(file.database_url.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        check_database_url(&database_url)?;
        let from_cli = global.secret_key.as_ref().map(|k| k.0.as_str());
        let secret_key = match from_cli.or(file.secret_key.as_deref()) {
            Some(text) => Some(
                SecretKey::parse(text)
                    .map_err(|e| anyhow::anyhow!("secret_key (HOOKGATE_SECRET_KEY): {e}"))?,
            ),
            None => None,
        };
        let secret_key = crate::policy::with_previous_keys(
            secret_key,
            global
                .secret_key_previous
                .as_ref()
                .map(|k| k.0.as_str())
                .or(file.secret_key_previous.as_deref()),
        )?;
        let listen = match (args.listen, &file.listen) {
            (Some(addr), _) => addr,
            (None, Some(text)) => text.parse().with_context(|| {
                format!("listen: {text:?} is not an address like 127.0.0.1:8080")
            })?,
            (None, None) => DEFAULT_LISTEN.parse().context("default listen address")?,
        };
        let trusted_proxies = match (&args.trusted_proxies, &file.trusted_proxies) {
            (Some(list), _) => list.clone(),
            (None, Some(list)) => list
                .iter()
                .enumerate()
                .map(|(i, t)| parse_cidr(t).with_context(|| format!("trusted_proxies[{i}]")))
                .collect::<anyhow::Result<_>>()?,
            (None, None) => Vec::new(),
        };
        let max_body_bytes = args
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes == 0 || max_body_bytes > 64 * 1024 * 1024 {
            bail!("max_body_bytes: {max_body_bytes} is out of range (1 to 67108864)");
        }
        let rate_limit_per_sec = args
            .rate_limit_per_sec
            .or(file.rate_limit_per_sec)
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_SEC);
        if rate_limit_per_sec == 0 {
            bail!("rate_limit_per_sec: must be at least 1");
        }
        let rate_limit_burst = args
            .rate_limit_burst
            .or(file.rate_limit_burst)
            .unwrap_or(rate_limit_per_sec.saturating_mul(2));
        if rate_limit_burst == 0 {
            bail!("rate_limit_burst: must be at least 1");
        }
        let header_timeout_secs = positive(
            "header_timeout_secs",
            args.header_timeout_secs.or(file.header_timeout_secs),
            DEFAULT_HEADER_TIMEOUT_SECS,
        )?;
        let body_timeout_secs = positive(
            "body_timeout_secs",
            args.body_timeout_secs.or(file.body_timeout_secs),
            DEFAULT_BODY_TIMEOUT_SECS,
        )?;
        let admin_token = args
            .admin_token
            .clone()
            .or(file.admin_token.clone())
            .filter(|t| !t.is_empty());
        if let Some(token) = &admin_token {
            if token.len() < 16 {
                bail!("admin_token: use at least 16 characters (it has every admin scope)");
            }
        }
        let max_connections = args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if !(1..=1_000_000).contains(&max_connections) {
            bail!("max_connections: {max_connections} is out of range (1 to 1000000)");
        }
        let mut ids = BTreeSet::new();
        let mut connections = Vec::new();
        for (i, c) in file.connections.iter().enumerate() {
            let spec = c
                .clone()
                .into_spec()
                .with_context(|| format!("connections[{i}] (id {:?})", c.id))?;
            crate::policy::check_new_secrets(&spec.id, spec.provider, &spec.secrets)
                .with_context(|| format!("connections[{i}]"))?;
            if !ids.insert(spec.id.clone()) {
                bail!("connections[{i}].id: {:?} is declared twice", spec.id);
            }
            connections.push(spec);
        }
        let delivery =
            crate::delivery::endpoint::DeliverySettings::from_file(file.delivery.as_ref())?;
        let endpoints = crate::delivery::endpoint::from_file(&file.endpoints, &delivery.policy)?;
        let drains = crate::drains::from_file(&file.drains)?;
        Ok(Config {
            listen,
            database_url,
            admin_token: admin_token.map(Secret::new),
            max_body_bytes,
            trusted_proxies,
            rate_limit_per_sec,
            rate_limit_burst,
            header_timeout_secs,
            body_timeout_secs,
            durability: args.durability.or(file.durability).unwrap_or_default(),
            max_connections,
            unknown_id_log_per_minute: positive(
                "unknown_id_log_per_minute",
                args.unknown_id_log_per_minute
                    .or(file.unknown_id_log_per_minute)
                    .map(u64::from),
                u64::from(DEFAULT_UNKNOWN_ID_LOG_PER_MINUTE),
            )?
            .try_into()
            .unwrap_or(u32::MAX),
            retention: crate::policy::Retention::from_file(file.retention.as_ref())?,
            migrate: !args.no_migrate,
            workers: !args.no_workers,
            defer_processing: args.defer_processing || file.defer_processing.unwrap_or(false),
            secret_key,
            connections,
            delivery,
            endpoints,
            drains,
        })
    }
}

fn positive(key: &str, value: Option<u64>, default: u64) -> anyhow::Result<u64> {
    match value {
        Some(0) => bail!("{key}: must be at least 1"),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

/// Reads and parses the TOML file, expanding `${VAR}`.
///
/// # Errors
/// The file cannot be read, a variable is unset, or a key is unknown or mistyped.
pub fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_file_config(&text).with_context(|| format!("config file {}", path.display()))
}

/// Parses the text of a config file, expanding `${VAR}` first.
///
/// # Errors
/// A variable is unset, a `${` is unterminated, or a key is unknown or mistyped.
pub fn parse_file_config(text: &str) -> anyhow::Result<FileConfig> {
    let mut substituted = Vec::new();
    let expanded = expand_env_tracked(text, &mut substituted)?;
    toml::from_str(&expanded).map_err(|e| {
        // toml's message quotes the offending line and value, which after expansion can be a
        // secret taken from the environment: show the `${NAME}` that was written instead.
        let mut message = e.to_string();
        for (name, value) in &substituted {
            if !value.is_empty() {
                message = message.replace(value.as_str(), &format!("${{{name}}}"));
            }
        }
        anyhow::anyhow!("{message}")
    })
}

/// Replaces `${NAME}` with the environment variable `NAME`; `$${` is a literal `${`.
/// Comments are copied as written: a `${NAME}` there is not a use of `NAME`.
#[cfg(test)]
fn expand_env(text: &str) -> anyhow::Result<String> {
    expand_env_tracked(text, &mut Vec::new())
}

/// Where in the TOML text the scanner is: the expansion of a value depends on it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lexical {
    /// Outside strings and comments (a bare value such as a number may be a `${NAME}`).
    Bare,
    /// Inside `"..."` or `"""..."""`: the value is escaped as a basic string's body.
    Basic {
        multi: bool,
    },
    /// Inside `'...'` or `'''...'''`: nothing can be escaped.
    Literal {
        multi: bool,
    },
    Comment,
}

/// As [`expand_env`], recording each `(name, value)` substituted (the value as inserted).
#[expect(
    clippy::disallowed_methods,
    reason = "config.rs is where the environment is read"
)]
fn expand_env_tracked(
    text: &str,
    substituted: &mut Vec<(String, String)>,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut state = Lexical::Bare;
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        let starts = |s: &str| rest.starts_with(s);
        // How many bytes to copy as they are, and the state after them.
        let (copy, next) = match state {
            Lexical::Comment if ch == '\n' => (1, Lexical::Bare),
            Lexical::Comment => (ch.len_utf8(), state),
            Lexical::Bare if ch == '#' => (1, Lexical::Comment),
            Lexical::Bare if starts("\"\"\"") => (3, Lexical::Basic { multi: true }),
            Lexical::Bare if ch == '"' => (1, Lexical::Basic { multi: false }),
            Lexical::Bare if starts("\'\'\'") => (3, Lexical::Literal { multi: true }),
            Lexical::Bare if ch == '\'' => (1, Lexical::Literal { multi: false }),
            Lexical::Basic { .. } if ch == '\\' => {
                // An escape: the backslash and the character it escapes.
                (
                    1 + rest[1..].chars().next().map_or(0, char::len_utf8),
                    state,
                )
            }
            Lexical::Basic { multi: true } if starts("\"\"\"") => (3, Lexical::Bare),
            Lexical::Basic { multi: false } if ch == '"' => (1, Lexical::Bare),
            Lexical::Literal { multi: true } if starts("\'\'\'") => (3, Lexical::Bare),
            Lexical::Literal { multi: false } if ch == '\'' => (1, Lexical::Bare),
            _ if state != Lexical::Comment && starts("$${") => {
                out.push_str("${");
                rest = &rest[3..];
                continue;
            }
            _ if state != Lexical::Comment && starts("${") => {
                let after = &rest[2..];
                let end = after
                    .find('}')
                    .ok_or_else(|| anyhow::anyhow!("unterminated `${{` in the file"))?;
                let name = &after[..end];
                let value = std::env::var(name).map_err(|_| {
                    anyhow::anyhow!("environment variable {name} (used as ${{{name}}}) is not set")
                })?;
                let inserted = match state {
                    Lexical::Basic { .. } => {
                        let mut escaped = String::with_capacity(value.len());
                        for c in value.chars() {
                            match c {
                                '"' => escaped.push_str("\\\""),
                                '\\' => escaped.push_str("\\\\"),
                                c => escaped.push(c),
                            }
                        }
                        escaped
                    }
                    Lexical::Literal { .. } if value.contains('\'') => anyhow::bail!(
                        "environment variable {name} holds a ' and is used inside a '...' string: quote ${{{name}}} with \"...\" instead"
                    ),
                    _ => value.clone(),
                };
                out.push_str(&inserted);
                if inserted != value {
                    substituted.push((name.to_owned(), inserted));
                }
                substituted.push((name.to_owned(), value));
                rest = &after[end + 1..];
                continue;
            }
            _ => (ch.len_utf8(), state),
        };
        out.push_str(&rest[..copy.min(rest.len())]);
        rest = &rest[copy.min(rest.len())..];
        state = next;
    }
    Ok(out)
}

fn check_database_url(url: &str) -> anyhow::Result<()> {
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(())
    } else {
        bail!(
            "database_url: {:?} must start with sqlite:// or postgres://",
            redact_url(url)
        )
    }
}

/// The URL with any password replaced, for logs, errors and `print-config`: the password of
/// the user-info part (everything up to the last `@`, so a password holding `@` is hidden
/// whole) and the value of any `password` or `sslpassword` query parameter.
pub fn redact_url(url: &str) -> String {
    redact::url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    fn load(text: &str) -> anyhow::Result<Config> {
        let file = write(text);
        let global = GlobalArgs {
            config: Some(file.path().to_path_buf()),
            ..GlobalArgs::default()
        };
        Config::load(&global, &ServeArgs::default())
    }

    #[test]
    fn spec_example_loads() {
        let config = load(
            r#"
listen = "127.0.0.1:9090"
database_url = "sqlite://x.db"
admin_token = "change-me-change-me"
max_body_bytes = 2097152
[[connections]]
id = "stripe-live"
provider = "stripe"
workspace = "acme"
secrets = ["whsec_abc"]
tolerance_secs = 300
[[connections]]
id = "brevo-1"
provider = "brevo"
secrets = ["s3cret-s3cret-s3cret"]
allow_ips = ["@brevo", "10.0.0.0/8"]
auth = "header:X-Webhook-Secret"
[[connections]]
id = "supa"
provider = "supabase"
secrets = ["supabase-token-0123"]
auth = "query:token"
email_path = "record.email"
user_id_column = "id"
"#,
        )
        .expect("loads");
        assert_eq!(config.listen.port(), 9090);
        assert_eq!(config.connections.len(), 3);
        assert_eq!(config.connections[0].workspace, "acme");
        assert_eq!(config.connections[1].workspace, "default");
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(config.connections[2].user_id_column.as_deref(), Some("id"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("lisen = \"x\"", "lisen"),
            ("max_body_bytes = \"big\"", "max_body_bytes"),
            ("listen = \"nowhere\"", "listen"),
            ("[[connections]]\nid = \"a\"\nprovider = \"paypal\"\nsecrets = [\"x\"]", "paypal"),
            ("[[connections]]\nid = \"a/b\"\nprovider = \"stripe\"\nsecrets = [\"x\"]", "id"),
            ("[[connections]]\nid = \"a\"\nprovider = \"stripe\"\nsecrets = []", "secrets"),
            ("[[connections]]\nid = \"a\"\nprovider = \"clerk\"\nsecrets = [\"whsec_!!\"]", "secrets[0]"),
            ("[[connections]]\nid = \"a\"\nprovider = \"stripe\"\nsecrets = [\"x\"]\nauth = \"bearer\"", "auth"),
            ("[[connections]]\nid = \"a\"\nprovider = \"brevo\"\nsecrets = [\"x\"]\nauth = \"token\"", "auth"),
            ("[[connections]]\nid = \"a\"\nprovider = \"brevo\"\nsecrets = [\"x\"]\nallow_ips = [\"@nope\"]", "allow_ips[0]"),
            ("[[connections]]\nid = \"a\"\nprovider = \"brevo\"\nsecrets = [\"x\"]\nallow_ips = [\"1.2.3.4/99\"]", "allow_ips[0]"),
            ("[[connections]]\nid = \"a\"\nprovider = \"shopify\"\nsecrets = [\"x\"]\ntolerance_secs = 5", "tolerance_secs"),
            ("[[connections]]\nid = \"a\"\nprovider = \"stripe\"\nsecrets = [\"x\"]\nuser_id_column = \"id\"", "user_id_column: applies only to supabase"),
            ("[[connections]]\nid = \"a\"\nprovider = \"supabase\"\nsecrets = [\"x\"]\nuser_id_column = \"record.id\"", "user_id_column: \"record.id\" must be one column name"),
            ("[[connections]]\nid = \"a\"\nprovider = \"supabase\"\nsecrets = [\"x\"]\nuser_id_column = \"\"", "user_id_column"),
            ("[[connections]]\nid = \"a\"\nprovider = \"stripe\"\nsecrets = [\"x\"]\nsecret = \"y\"", "secret"),
            ("[[connections]]\nid = \"a\"\nprovider = \"stripe\"\nsecrets = [\"x\"]\n[[connections]]\nid = \"a\"\nprovider = \"stripe\"\nsecrets = [\"x\"]", "twice"),
            ("admin_token = \"short\"", "admin_token"),
            ("[[connections]]\nid = \"rc\"\nprovider = \"revenuecat\"\nsecrets = [\"short\"]", "connection \"rc\": secrets[0] is shorter than 16"),
            ("database_url = \"mysql://x\"", "database_url"),
            ("secrets = [\"${HOOKGATE_SURELY_UNSET_VAR}\"]", "HOOKGATE_SURELY_UNSET_VAR"),
            ("secret_key = \"too-short\"", "HOOKGATE_SECRET_KEY"),
            ("secret_key = \"00112233\"", "secret_key"),
            ("[[drains]]\nid = \"d\"\nkind = \"otlp\"\nurl = \"http://x\"", "drains[0].kind"),
            ("[[drains]]\nid = \"d\"\nkind = \"otlp_http\"\nurl = \"http://x\"\nendpoint = \"y\"", "endpoint"),
            ("[[drains]]\nid = \"d\"\nkind = \"http\"\nurl = \"http://x\"", "drains[0].secret"),
        ];
        for (text, needle) in cases {
            let err = load(text).expect_err(text);
            let message = format!("{err:#}");
            assert!(message.contains(needle), "{text:?}: {message}");
        }
    }

    #[test]
    fn flags_override_file() {
        let file = write("listen = \"127.0.0.1:9090\"\nmax_body_bytes = 10");
        let global = GlobalArgs {
            config: Some(file.path().to_path_buf()),
            ..GlobalArgs::default()
        };
        let args = ServeArgs {
            listen: Some("127.0.0.1:7070".parse().expect("addr")),
            ..ServeArgs::default()
        };
        let config = Config::load(&global, &args).expect("loads");
        assert_eq!(config.listen.port(), 7070);
        assert_eq!(config.max_body_bytes, 10);
    }

    #[test]
    fn parse_errors_do_not_show_expanded_values() {
        // A name no other test uses, so setting it cannot race with them.
        std::env::set_var("HOOKGATE_TEST_LEAKY_SECRET", "leaky-secret-value-123");
        let err = load(
            "[[connections]]\nid = \"a\"\nprovider = \"stripe\"\nsecrets = \"${HOOKGATE_TEST_LEAKY_SECRET}\"",
        )
        .expect_err("a string where a list belongs");
        let message = format!("{err:#}");
        assert!(!message.contains("leaky-secret-value-123"), "{message}");
        assert!(
            message.contains("${HOOKGATE_TEST_LEAKY_SECRET}"),
            "{message}"
        );
    }

    #[test]
    fn env_expansion_escapes_and_literal() {
        assert_eq!(expand_env("a $${X} b").expect("ok"), "a ${X} b");
        assert!(expand_env("${").is_err());
    }

    #[test]
    fn env_expansion_skips_comments_and_fits_the_string_kind() {
        // A name no other test uses, so setting it cannot race with them.
        std::env::set_var("HOOKGATE_TEST_EXPANDED", r#"a"b\c"#);
        // Comments are not uses: an unset name there is fine, and left as written.
        let text =
            "# set ${HOOKGATE_SURELY_UNSET_VAR} first\nx = 1 # or ${HOOKGATE_SURELY_UNSET_VAR}\n";
        assert_eq!(expand_env(text).expect("comments are copied"), text);
        // A `#` inside a string is not a comment.
        assert_eq!(
            expand_env("x = \"#${HOOKGATE_TEST_EXPANDED}\"").expect("ok"),
            r##"x = "#a\"b\\c""##
        );
        // Escaped quotes do not end a basic string; multi-line strings expand too.
        assert_eq!(
            expand_env("x = \"\\\"#${HOOKGATE_TEST_EXPANDED}\"").expect("ok"),
            r##"x = "\"#a\"b\\c""##
        );
        assert_eq!(
            expand_env("x = \"\"\"\n#${HOOKGATE_TEST_EXPANDED}\"\"\"").expect("ok"),
            "x = \"\"\"\n#a\\\"b\\\\c\"\"\""
        );
        // A literal string takes the value as it is, unless it holds a quote it cannot hold.
        std::env::set_var("HOOKGATE_TEST_EXPANDED_PLAIN", r"C:\dir");
        assert_eq!(
            expand_env("x = '${HOOKGATE_TEST_EXPANDED_PLAIN}' # ${NOPE}").expect("ok"),
            r"x = 'C:\dir' # ${NOPE}"
        );
        std::env::set_var("HOOKGATE_TEST_EXPANDED_QUOTE", "it's");
        let err = expand_env("x = '${HOOKGATE_TEST_EXPANDED_QUOTE}'").expect_err("refused");
        assert!(
            err.to_string().contains("HOOKGATE_TEST_EXPANDED_QUOTE"),
            "{err}"
        );
        assert!(!err.to_string().contains("it's"), "{err}");
        // Bare values (numbers) still expand.
        std::env::set_var("HOOKGATE_TEST_EXPANDED_NUMBER", "4096");
        let parsed =
            parse_file_config("max_body_bytes = ${HOOKGATE_TEST_EXPANDED_NUMBER} # ${NOPE}")
                .expect("parses");
        assert_eq!(parsed.max_body_bytes, Some(4096));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h/db"),
            "postgres://u:<redacted>@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
