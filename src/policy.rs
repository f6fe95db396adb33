//! Small security policies that several input paths share: how long a shared secret must be,
//! how far in the future a provider's event time may lie, which previous keys still read
//! encrypted rows, and the `[retention]` settings with their dedupe floor.
//!
//! They live here, not in the config parser or the provider adapters, so that every path that
//! takes new input (the config file, the CLI, the admin API) applies the same rule, while rows
//! already stored keep working. This module depends on no other module of the service but
//! `crypto`, so the config, the registry and the pipeline can all use it.

use anyhow::bail;
use hookgate_providers::{AuthKind, ProviderId, Secret};
use serde::Deserialize;

/// Fewest characters a new shared secret (Supabase, RevenueCat, Brevo) may have. These
/// providers sign nothing: the secret is all that tells a delivery from a forgery, and it is
/// compared in constant time but its length is not hidden, so a short one can be guessed.
pub const MIN_SHARED_SECRET_CHARS: usize = 16;

/// How far past the receive time a provider's event time may lie before it is clamped to it.
/// Provider clocks drift, so a little is allowed; more would let one delivery with a far-future
/// time pin contact fields against every later change ("newest wins").
pub const EVENT_TIME_SKEW_MS: i64 = 5 * 60 * 1000;

fn is_short(secret: &Secret) -> bool {
    secret.expose().chars().count() < MIN_SHARED_SECRET_CHARS
}

fn shared(provider: ProviderId) -> bool {
    provider.adapter().auth_kind() == AuthKind::SharedSecret
}

/// Refuses a new shared secret shorter than [`MIN_SHARED_SECRET_CHARS`] for a connection of an
/// unsigned provider. The message names the connection and the secret's position, not its value.
///
/// # Errors
/// Names the connection and which secret is too short.
pub fn check_new_secret(
    id: &str,
    provider: ProviderId,
    index: usize,
    secret: &Secret,
) -> anyhow::Result<()> {
    if shared(provider) && is_short(secret) {
        bail!(
            "connection {id:?}: secrets[{index}] is shorter than {MIN_SHARED_SECRET_CHARS} characters; {provider} does not sign its deliveries, so the shared secret is all that keeps forgeries out: use a long random one (for example `openssl rand -hex 24`)"
        );
    }
    Ok(())
}

/// [`check_new_secret`] for every secret of a connection being created or replaced.
///
/// # Errors
/// As [`check_new_secret`].
pub fn check_new_secrets(id: &str, provider: ProviderId, secrets: &[Secret]) -> anyhow::Result<()> {
    for (i, secret) in secrets.iter().enumerate() {
        check_new_secret(id, provider, i, secret)?;
    }
    Ok(())
}

/// How many of a stored connection's shared secrets are shorter than the minimum (they keep
/// working; the gateway warns about them at start).
pub fn short_secrets(provider: ProviderId, secrets: &[Secret]) -> usize {
    if shared(provider) {
        secrets.iter().filter(|s| is_short(s)).count()
    } else {
        0
    }
}

/// Adds the keys of `previous` (comma-separated key texts) to `current` for reading.
///
/// # Errors
/// A previous key that does not parse (named by position, never shown), or previous keys
/// without a current one.
pub fn with_previous_keys(
    current: Option<crate::crypto::SecretKey>,
    previous: Option<&str>,
) -> anyhow::Result<Option<crate::crypto::SecretKey>> {
    let Some(text) = previous.filter(|t| !t.trim().is_empty()) else {
        return Ok(current);
    };
    let Some(current) = current else {
        bail!("secret_key_previous (HOOKGATE_SECRET_KEY_PREVIOUS) is set without secret_key: set HOOKGATE_SECRET_KEY to the new key and keep the old one as the previous key");
    };
    let mut keys = Vec::new();
    for (i, part) in text.split(',').enumerate() {
        keys.push(crate::crypto::SecretKey::parse(part).map_err(|e| {
            anyhow::anyhow!(
                "secret_key_previous (HOOKGATE_SECRET_KEY_PREVIOUS) entry {}: {e}",
                i + 1
            )
        })?);
    }
    Ok(Some(current.with_previous(keys)))
}

/// The least `ingest_days` may be: providers retry for up to three days (Stripe) and an
/// operator may need a week to notice and replay a failure.
pub const DEDUPE_FLOOR_DAYS: u32 = 7;
pub const DEFAULT_INGEST_DAYS: u32 = 30;
pub const DEFAULT_DELIVERIES_DAYS: u32 = 30;

/// `[retention]` as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    pub ingest_days: Option<u32>,
    pub deliveries_days: Option<u32>,
}

/// The effective retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub ingest_days: u32,
    /// Succeeded and skipped outbound deliveries and their attempts (no step yet: see the
    /// module documentation).
    pub deliveries_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            ingest_days: DEFAULT_INGEST_DAYS,
            deliveries_days: DEFAULT_DELIVERIES_DAYS,
        }
    }
}

impl Retention {
    /// Validates the file's `[retention]` table.
    ///
    /// # Errors
    /// Names the key: `ingest_days` below `DEDUPE_FLOOR_DAYS`, or a zero.
    pub fn from_file(file: Option<&FileRetention>) -> anyhow::Result<Self> {
        let file = file.cloned().unwrap_or_default();
        let ingest_days = file.ingest_days.unwrap_or(DEFAULT_INGEST_DAYS);
        if ingest_days < DEDUPE_FLOOR_DAYS {
            bail!(
                "retention.ingest_days: {ingest_days} is below {DEDUPE_FLOOR_DAYS}: events must be kept at least as long as providers retry deliveries (dedupe keys and payloads for replay)"
            );
        }
        let deliveries_days = file.deliveries_days.unwrap_or(DEFAULT_DELIVERIES_DAYS);
        if deliveries_days == 0 {
            bail!("retention.deliveries_days: must be at least 1");
        }
        Ok(Retention {
            ingest_days,
            deliveries_days,
        })
    }
}

/// Clamps an event time to at most `received_at_ms` plus [`EVENT_TIME_SKEW_MS`].
pub fn clamp_event_time(occurred_at_ms: Option<i64>, received_at_ms: i64) -> Option<i64> {
    occurred_at_ms.map(|at| at.min(received_at_ms.saturating_add(EVENT_TIME_SKEW_MS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_shared_secrets_are_refused_naming_the_connection() {
        for provider in [
            ProviderId::Supabase,
            ProviderId::Revenuecat,
            ProviderId::Brevo,
        ] {
            let short = [Secret::new("fifteen-chars-x")];
            let message = format!(
                "{:#}",
                check_new_secrets("conn-a", provider, &short).expect_err("short")
            );
            assert!(message.contains("\"conn-a\""), "{message}");
            assert!(message.contains("secrets[0]"), "{message}");
            assert!(!message.contains("fifteen-chars-x"), "{message}");
            assert_eq!(short_secrets(provider, &short), 1);
            let long = [Secret::new("sixteen-chars-xy")];
            check_new_secrets("conn-a", provider, &long).expect("16 characters pass");
            assert_eq!(short_secrets(provider, &long), 0);
        }
        // Signing secrets are checked by their provider, not here.
        let stripe = [Secret::new("whsec_x")];
        check_new_secrets("conn-a", ProviderId::Stripe, &stripe).expect("not a shared secret");
        assert_eq!(short_secrets(ProviderId::Stripe, &stripe), 0);
    }

    #[test]
    fn event_times_are_clamped_to_the_receive_time_plus_skew() {
        let received = 1_800_000_000_000;
        assert_eq!(clamp_event_time(None, received), None);
        assert_eq!(
            clamp_event_time(Some(received - 5), received),
            Some(received - 5)
        );
        assert_eq!(
            clamp_event_time(Some(received + 1_000), received),
            Some(received + 1_000)
        );
        assert_eq!(
            clamp_event_time(Some(i64::MAX), received),
            Some(received + EVENT_TIME_SKEW_MS)
        );
    }
}
