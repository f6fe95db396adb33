//! Connections at run time: the in-memory registry the receive path reads, loaded from the
//! database (the source of truth) at start, after every admin change, and every few seconds so
//! changes made by the CLI or by another process sharing the database show up.
//!
//! Each live connection carries its parsed allowlist and its own rate limiter (governor), so the
//! hot path takes one read lock and touches no database.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hookgate_providers::{ip_ranges, ProviderId, Secret};
use ipnet::IpNet;
use serde::Serialize;

mod spec;

pub use spec::{
    check_allow_entry, parse_cidr, valid_connection_id, ConnectionInput, ConnectionSpec,
    ProviderName,
};

use crate::crypto::{self, SecretKey};
use crate::db::rows::ConnectionRow;
use crate::db::{ConnectionWrite, Db};

/// `::ffff:a.b.c.d` as `a.b.c.d`; every other address as it is (a dual-stack listener reports
/// IPv4 peers so, and allowlists and trusted proxies are written as IPv4 networks).
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// A connection ready for the receive path.
pub struct Live {
    pub spec: ConnectionSpec,
    /// Empty means every address is allowed.
    pub allow: Vec<IpNet>,
    limiter: DefaultDirectRateLimiter,
    /// How many of the requests refused by `limiter` are written to the ingest log: as many
    /// per second as the connection may deliver. A flood at many times the limit would
    /// otherwise turn every refusal into a write competing with real deliveries.
    log_limiter: DefaultDirectRateLimiter,
}

impl Live {
    fn new(spec: ConnectionSpec, default_rate: (u32, u32)) -> Self {
        let mut allow = Vec::new();
        for entry in &spec.allow_ips {
            match entry.strip_prefix('@') {
                Some(name) => {
                    allow.extend_from_slice(ip_ranges::published(name).unwrap_or(&[]));
                }
                None => allow.extend(parse_cidr(entry).ok()),
            }
        }
        let rate = (
            spec.rate_limit_per_sec.unwrap_or(default_rate.0).max(1),
            spec.rate_limit_burst
                .or(spec.rate_limit_per_sec.map(|r| r.saturating_mul(2)))
                .unwrap_or(default_rate.1)
                .max(1),
        );
        let quota = Quota::per_second(NonZeroU32::MIN.saturating_add(rate.0 - 1))
            .allow_burst(NonZeroU32::MIN.saturating_add(rate.1 - 1));
        Live {
            spec,
            allow,
            limiter: RateLimiter::direct(quota),
            log_limiter: RateLimiter::direct(quota),
        }
    }

    /// Whether `addr` may deliver to this connection.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = unmapped(addr);
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&addr))
    }

    /// Takes one request from the rate limit; `Err(seconds)` says how long to wait.
    pub fn take(&self) -> Result<(), u64> {
        self.limiter.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Whether a request refused for the rate limit is still within the budget of refusals
    /// written to the ingest log (the rest are only counted).
    pub fn log_refusal(&self) -> bool {
        self.log_limiter.check().is_ok()
    }
}

/// What the admin API and CLI show of a connection: never its secrets.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    /// Every stored setting but the secrets (see [`ConnectionRow`]'s serialized form).
    #[serde(flatten)]
    pub row: ConnectionRow,
    /// `/integrations/<provider>/webhook/<id>`.
    pub receive_path: String,
    /// How many secrets are valid; `None` when they are encrypted and cannot be decrypted here.
    pub secrets_count: Option<usize>,
    /// Whether the secrets are stored encrypted (`HOOKGATE_SECRET_KEY`).
    pub secrets_encrypted: bool,
}

impl ConnectionView {
    /// The view of `row`; `key` decrypts encrypted secrets just to count them.
    pub fn new(row: &ConnectionRow, key: Option<&SecretKey>) -> Self {
        ConnectionView {
            receive_path: format!("/integrations/{}/webhook/{}", row.provider, row.id),
            secrets_count: crypto::decode_secrets(&row.id, &row.secrets, key)
                .ok()
                .map(|s| s.len()),
            secrets_encrypted: crypto::is_encrypted(&row.secrets),
            row: row.clone(),
        }
    }
}

/// Rebuilds a validated spec from a stored row, decrypting its secrets with `key`.
///
/// # Errors
/// The secrets cannot be decrypted (no key or the wrong one), or the row no longer passes
/// validation (for example edited by hand). Messages name the connection, never a secret.
pub fn spec_from_row(
    row: &ConnectionRow,
    key: Option<&SecretKey>,
) -> anyhow::Result<ConnectionSpec> {
    let provider: ProviderId = row.provider.parse()?;
    let secrets = crypto::decode_secrets(&row.id, &row.secrets, key)
        .map_err(|e| anyhow::anyhow!("connection {:?}: {e}", row.id))?;
    ConnectionInput {
        workspace: Some(row.workspace.clone()),
        tolerance_secs: row.tolerance_secs.and_then(|t| u64::try_from(t).ok()),
        allow_ips: serde_json::from_str(&row.allow_ips)?,
        auth: row.auth.clone(),
        email_path: row.email_path.clone(),
        user_id_column: row.user_id_column.clone(),
        rate_limit_per_sec: row.rate_limit_per_sec.and_then(|r| u32::try_from(r).ok()),
        rate_limit_burst: row.rate_limit_burst.and_then(|r| u32::try_from(r).ok()),
        enabled: Some(row.enabled),
        ..ConnectionInput::new(row.id.clone(), provider, secrets)
    }
    .into_spec()
}

/// Writes a connection to the database, its secrets encrypted when `key` is set.
///
/// # Errors
/// A database error.
pub async fn save(
    db: &Db,
    spec: &ConnectionSpec,
    key: Option<&SecretKey>,
    source: &str,
    replace: bool,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let secrets: Vec<&str> = spec.secrets.iter().map(Secret::expose).collect();
    let write = ConnectionWrite {
        id: &spec.id,
        provider: spec.provider.as_str(),
        workspace: &spec.workspace,
        secrets: crypto::encode_secrets(&spec.id, &secrets, key),
        tolerance_secs: spec.tolerance_secs.and_then(|t| i64::try_from(t).ok()),
        allow_ips: serde_json::to_string(&spec.allow_ips).unwrap_or_else(|_| "[]".into()),
        auth: spec.auth.as_ref().map(ToString::to_string),
        email_path: spec.email_path.as_deref(),
        user_id_column: spec.user_id_column.as_deref(),
        rate_limit_per_sec: spec.rate_limit_per_sec.map(i64::from),
        rate_limit_burst: spec.rate_limit_burst.map(i64::from),
        enabled: spec.enabled,
        source,
        now_ms,
    };
    db.put_connection(&write, replace).await
}

/// Adds `new` in front of the stored secrets; keeps only the previous one unless `drop_old`.
///
/// # Errors
/// `Ok(None)` when the connection does not exist; errors from the database.
pub async fn rotate(
    db: &Db,
    key: Option<&SecretKey>,
    id: &str,
    new: &str,
    drop_old: bool,
    now_ms: i64,
) -> anyhow::Result<Option<usize>> {
    let Some(row) = db.get_connection(id).await? else {
        return Ok(None);
    };
    let mut spec = spec_from_row(&row, key)?;
    let secret = Secret::new(new);
    spec.provider
        .adapter()
        .check_secret(&secret, spec.auth.as_ref())
        .map_err(|e| anyhow::anyhow!("secret: {e}"))?;
    crate::policy::check_new_secret(&spec.id, spec.provider, 0, &secret)?;
    let mut secrets = vec![new.to_owned()];
    if !drop_old {
        secrets.extend(
            spec.secrets
                .drain(..)
                .map(|s| s.expose().to_owned())
                .filter(|s| s != new)
                .take(1),
        );
    }
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    db.set_secrets(id, &crypto::encode_secrets(id, &refs, key), now_ms)
        .await?;
    Ok(Some(secrets.len()))
}

/// Rewrites every encrypted column ([`crypto::ENCRYPTED_COLUMNS`]) with `key`: plaintext rows
/// become encrypted, rows written with one of its previous keys move to it, the rest get a
/// fresh nonce. Returns how many rows were rewritten.
///
/// # Errors
/// A row that cannot be decrypted with `key` or its previous keys (rows before it stay
/// rewritten), or a database error.
pub async fn reencrypt(db: &Db, key: &SecretKey, _now_ms: i64) -> anyhow::Result<usize> {
    let mut total = 0;
    for column in crypto::ENCRYPTED_COLUMNS {
        total += crate::db::reencrypt_column(db, column, key).await?;
    }
    Ok(total)
}

/// Checks that every stored connection's secrets can be read with `key`, so a gateway never
/// starts with connections it would silently skip.
///
/// # Errors
/// The first connection whose secrets cannot be read, named, with what to do.
pub async fn check_readable(db: &Db, key: Option<&SecretKey>) -> anyhow::Result<()> {
    for row in db.list_connections().await? {
        crypto::decode_secrets(&row.id, &row.secrets, key)
            .map_err(|e| anyhow::anyhow!("connection {:?}: {e}", row.id))?;
    }
    Ok(())
}

/// The registry the receive path reads.
pub struct Registry {
    default_rate: (u32, u32),
    key: Option<SecretKey>,
    live: RwLock<HashMap<String, Arc<Live>>>,
}

impl Registry {
    pub fn new(default_rate: (u32, u32), key: Option<SecretKey>) -> Self {
        Registry {
            default_rate,
            key,
            live: RwLock::new(HashMap::new()),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Live>> {
        self.live.read().ok().and_then(|map| map.get(id).cloned())
    }

    pub fn len(&self) -> usize {
        self.live.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Logs a warning for each loaded connection with a shared secret shorter than
    /// [`crate::policy::MIN_SHARED_SECRET_CHARS`]: stored before the minimum existed, it keeps
    /// working, but a new one could not be saved.
    pub fn warn_short_secrets(&self) {
        let Ok(map) = self.live.read() else { return };
        let mut ids: Vec<&String> = map.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let spec = &map[id].spec;
            let short = crate::policy::short_secrets(spec.provider, &spec.secrets);
            if short > 0 {
                tracing::warn!(
                    connection = %id,
                    short,
                    minimum = crate::policy::MIN_SHARED_SECRET_CHARS,
                    "connection has a shared secret shorter than the minimum; it keeps working, but rotate it to a longer one"
                );
            }
        }
    }

    /// Reloads every connection from the database. Unchanged connections keep their rate
    /// limiter's state; rows that fail validation are skipped with an error log.
    ///
    /// # Errors
    /// A database error (the previous registry stays in force).
    pub async fn reload(&self, db: &Db) -> Result<(), sqlx::Error> {
        let rows = db.list_connections().await?;
        let current: HashMap<String, Arc<Live>> =
            self.live.read().map(|m| m.clone()).unwrap_or_default();
        let mut next = HashMap::with_capacity(rows.len());
        for row in &rows {
            let spec = match spec_from_row(row, self.key.as_ref()) {
                Ok(spec) => spec,
                Err(error) => {
                    tracing::error!(connection = %row.id, error = %format!("{error:#}"), "stored connection is invalid; skipping it");
                    continue;
                }
            };
            let live = match current.get(&row.id) {
                Some(old) if old.spec == spec => Arc::clone(old),
                _ => Arc::new(Live::new(spec, self.default_rate)),
            };
            next.insert(row.id.clone(), live);
        }
        if let Ok(mut map) = self.live.write() {
            *map = next;
        }
        Ok(())
    }
}
