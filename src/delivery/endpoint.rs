//! Endpoint definitions (`[[endpoints]]`, the admin API and the CLI) and the `[delivery]`
//! settings, with validation that names the key at fault.

use std::fmt;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::destination::{check_url, DestinationError, Policy};
use super::{sign, transform};

pub const DEFAULT_TIMEOUT_SECS: u64 = 15;
pub const DEFAULT_RETRY_SCHEDULE_SECS: [u64; 6] = [1, 5, 30, 300, 3600, 21600];
pub const DEFAULT_GIVE_UP_AFTER_SECS: u64 = 86_400;
pub const DEFAULT_DISABLE_AFTER_SECS: u64 = 432_000;
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 4;
/// Upper bound of `max_in_flight`.
pub const MAX_IN_FLIGHT_LIMIT: u32 = 256;

/// The `[delivery]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDelivery {
    pub timeout_secs: Option<u64>,
    pub retry_schedule_secs: Option<Vec<u64>>,
    pub give_up_after_secs: Option<u64>,
    pub disable_after_secs: Option<u64>,
    pub allow_http: Option<bool>,
    pub allow_cidrs: Option<Vec<String>>,
}

/// The effective delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    pub timeout: Duration,
    pub retry_schedule_secs: Vec<u64>,
    pub give_up_after_secs: u64,
    pub disable_after_secs: u64,
    pub policy: Policy,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            retry_schedule_secs: DEFAULT_RETRY_SCHEDULE_SECS.to_vec(),
            give_up_after_secs: DEFAULT_GIVE_UP_AFTER_SECS,
            disable_after_secs: DEFAULT_DISABLE_AFTER_SECS,
            policy: Policy::default(),
        }
    }
}

impl DeliverySettings {
    /// Validates the `[delivery]` table.
    ///
    /// # Errors
    /// A message naming the key (`delivery.<key>`) and what to fix.
    pub fn from_file(file: Option<&FileDelivery>) -> anyhow::Result<Self> {
        let d = DeliverySettings::default();
        let Some(f) = file else { return Ok(d) };
        let timeout_secs = f.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
        if !(1..=300).contains(&timeout_secs) {
            bail!("delivery.timeout_secs: {timeout_secs} is out of range (1 to 300)");
        }
        let schedule = f
            .retry_schedule_secs
            .clone()
            .unwrap_or_else(|| DEFAULT_RETRY_SCHEDULE_SECS.to_vec());
        if schedule.is_empty() {
            bail!("delivery.retry_schedule_secs: give at least one step (seconds)");
        }
        if let Some(i) = schedule.iter().position(|s| *s == 0 || *s > 7 * 86_400) {
            bail!(
                "delivery.retry_schedule_secs[{i}]: {} is out of range (1 to 604800 seconds)",
                schedule[i]
            );
        }
        let give_up = f.give_up_after_secs.unwrap_or(DEFAULT_GIVE_UP_AFTER_SECS);
        if give_up == 0 {
            bail!("delivery.give_up_after_secs: must be at least 1");
        }
        let disable = f.disable_after_secs.unwrap_or(DEFAULT_DISABLE_AFTER_SECS);
        if disable == 0 {
            bail!("delivery.disable_after_secs: must be at least 1");
        }
        let mut allow_cidrs = Vec::new();
        for (i, text) in f.allow_cidrs.iter().flatten().enumerate() {
            allow_cidrs.push(
                crate::connections::parse_cidr(text)
                    .with_context(|| format!("delivery.allow_cidrs[{i}]"))?,
            );
        }
        Ok(DeliverySettings {
            timeout: Duration::from_secs(timeout_secs),
            retry_schedule_secs: schedule,
            give_up_after_secs: give_up,
            disable_after_secs: disable,
            policy: Policy {
                allow_http: f.allow_http.unwrap_or(false),
                allow_cidrs,
            },
        })
    }
}

/// One endpoint as written: a `[[endpoints]]` table or the admin API's JSON body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointInput {
    /// `[A-Za-z0-9_-]{1,64}`.
    pub id: String,
    /// `https://...` (`http://` only with `allow_http`); no userinfo.
    pub url: String,
    /// Events of this workspace only (default `default`).
    pub workspace: Option<String>,
    /// Globs of event types, `*` matching any characters (default `["*"]`).
    pub event_types: Option<Vec<String>>,
    /// Signing secrets `whsec_<base64>`; one is generated (and answered once) when absent.
    #[schema(write_only)]
    pub secrets: Option<Vec<String>>,
    /// A jq program that turns each body into the JSON to send (`null`: not sent).
    pub transform: Option<String>,
    /// Concurrent deliveries to this endpoint, per process (default 4).
    pub max_in_flight: Option<u32>,
    /// Over it deliveries wait; they never fail.
    pub rate_limit_per_sec: Option<u32>,
    /// One delivery in flight, in event order.
    pub ordered: Option<bool>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// A validated endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub id: String,
    pub url: String,
    pub workspace: String,
    pub event_types: Vec<String>,
    /// Empty: a secret is generated when the endpoint is first stored.
    pub secrets: Vec<String>,
    pub transform: Option<String>,
    pub max_in_flight: u32,
    pub rate_limit_per_sec: Option<u32>,
    pub ordered: bool,
    pub enabled: bool,
}

impl fmt::Debug for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointSpec")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("workspace", &self.workspace)
            .field("event_types", &self.event_types)
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("transform", &self.transform)
            .field("max_in_flight", &self.max_in_flight)
            .field("ordered", &self.ordered)
            .field("enabled", &self.enabled)
            .finish()
    }
}

/// An invalid endpoint: the key at fault and what is wrong (never a secret's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointError {
    pub key: String,
    pub message: String,
    /// The destination address is refused (`destination_not_allowed`).
    pub destination: bool,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for EndpointError {}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> EndpointError {
    EndpointError {
        key: key.into(),
        message: message.into(),
        destination: false,
    }
}

/// Whether a glob is acceptable: `*` is the only wildcard; other characters are those event
/// types use (letters, digits, `.`, `_`, `-`, `/`, `:`, `$`).
pub fn check_glob(glob: &str) -> Result<(), String> {
    if glob.is_empty() || glob.len() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    if let Some(c) = glob
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-/:$*".contains(*c)))
    {
        return Err(format!(
            "{glob:?} contains {c:?}; use letters, digits, `.`, `_`, `-`, `/`, `:` and `*` (any characters)"
        ));
    }
    Ok(())
}

/// Whether `text` matches `glob` (`*` matches any run of characters, including none).
pub fn glob_match(glob: &str, text: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

impl EndpointSpec {
    /// Validates `input` against the destination policy.
    ///
    /// # Errors
    /// The first invalid key, named.
    pub fn build(input: &EndpointInput, policy: &Policy) -> Result<EndpointSpec, EndpointError> {
        if !crate::connections::valid_connection_id(&input.id) {
            return Err(invalid(
                "id",
                format!("{:?} must be 1 to 64 of A-Z a-z 0-9 _ -", input.id),
            ));
        }
        let url = check_url(&input.url, policy).map_err(|e| EndpointError {
            key: "url".into(),
            destination: e.is_address(),
            message: match &e {
                DestinationError::NotUrl(_) => format!("{:?} {e}", input.url),
                _ => e.to_string(),
            },
        })?;
        let workspace = input.workspace.clone().unwrap_or_else(|| "default".into());
        if workspace.is_empty() || workspace.len() > 128 {
            return Err(invalid("workspace", "must be 1 to 128 characters"));
        }
        let event_types = input
            .event_types
            .clone()
            .unwrap_or_else(|| vec!["*".into()]);
        if event_types.is_empty() {
            return Err(invalid(
                "event_types",
                "give at least one glob (\"*\" for every event)",
            ));
        }
        for (i, glob) in event_types.iter().enumerate() {
            check_glob(glob).map_err(|m| invalid(format!("event_types[{i}]"), m))?;
        }
        let secrets = input.secrets.clone().unwrap_or_default();
        for (i, secret) in secrets.iter().enumerate() {
            sign::check_secret(secret)
                .map_err(|e| invalid(format!("secrets[{i}]"), e.to_string()))?;
        }
        if let Some(program) = &input.transform {
            transform::check(program).map_err(|e| invalid("transform", e.to_string()))?;
        }
        let max_in_flight = input.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if !(1..=MAX_IN_FLIGHT_LIMIT).contains(&max_in_flight) {
            return Err(invalid(
                "max_in_flight",
                format!("{max_in_flight} is out of range (1 to {MAX_IN_FLIGHT_LIMIT})"),
            ));
        }
        if input.rate_limit_per_sec == Some(0) {
            return Err(invalid(
                "rate_limit_per_sec",
                "must be at least 1 (or left out)",
            ));
        }
        Ok(EndpointSpec {
            id: input.id.clone(),
            url: url.to_string(),
            workspace,
            event_types,
            secrets,
            transform: input.transform.clone(),
            max_in_flight,
            rate_limit_per_sec: input.rate_limit_per_sec,
            ordered: input.ordered.unwrap_or(false),
            enabled: input.enabled.unwrap_or(true),
        })
    }
}

/// Validates the `[[endpoints]]` tables of a config file.
///
/// # Errors
/// `endpoints[<i>].<key>: <what is wrong>`, or an id declared twice.
pub fn from_file(list: &[EndpointInput], policy: &Policy) -> anyhow::Result<Vec<EndpointSpec>> {
    let mut ids = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, input) in list.iter().enumerate() {
        let spec = EndpointSpec::build(input, policy)
            .map_err(|e| anyhow::anyhow!("endpoints[{i}].{e}"))?;
        if !ids.insert(spec.id.clone()) {
            bail!("endpoints[{i}].id: {:?} is declared twice", spec.id);
        }
        out.push(spec);
    }
    Ok(out)
}

/// One stored signing secret; `expires_at` is set on the previous secret by a rotation.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct StoredSecret {
    pub secret: String,
    pub expires_at: Option<i64>,
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("secret", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

/// The stored form of an endpoint's secrets (encrypted with the secret key when one is set).
pub fn seal_secrets(
    endpoint_id: &str,
    secrets: &[StoredSecret],
    key: Option<&crate::crypto::SecretKey>,
) -> String {
    let json = serde_json::to_string(secrets).unwrap_or_else(|_| "[]".into());
    crate::crypto::seal_text("endpoints.secrets", endpoint_id, &json, key)
}

/// Reads an endpoint's stored secrets.
///
/// # Errors
/// The value is encrypted and the key is missing or wrong, or it is damaged.
pub fn open_secrets(
    endpoint_id: &str,
    stored: &str,
    key: Option<&crate::crypto::SecretKey>,
) -> Result<Vec<StoredSecret>, crate::crypto::SecretsError> {
    let json = crate::crypto::open_text("endpoints.secrets", endpoint_id, stored, key)?;
    serde_json::from_str(&json).map_err(|_| crate::crypto::SecretsError::NotJson)
}

/// The secrets that sign at `now_ms`.
pub fn active_secrets(secrets: &[StoredSecret], now_ms: i64) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now_ms))
        .map(|s| s.secret.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(url: &str) -> EndpointInput {
        EndpointInput {
            id: "crm-sync".into(),
            url: url.into(),
            ..EndpointInput::default()
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything.at.all"));
        assert!(glob_match("stripe.*", "stripe.invoice.paid"));
        assert!(!glob_match("stripe.*", "clerk.user.created"));
        assert!(glob_match("*.created", "clerk.user.created"));
        assert!(glob_match("contact.suppressed", "contact.suppressed"));
        assert!(!glob_match("contact.suppressed", "contact.suppressedx"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-c-y-b"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match(
            "revenuecat.INITIAL_*",
            "revenuecat.INITIAL_PURCHASE"
        ));
        assert!(!glob_match(
            "revenuecat.initial_*",
            "revenuecat.INITIAL_PURCHASE"
        ));
        assert!(check_glob("shopify.customers/*").is_ok());
        assert!(check_glob("stripe.?").is_err());
        assert!(check_glob("a%b").is_err());
        assert!(check_glob("").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let policy = Policy::default();
        let ok = EndpointSpec::build(&input("https://hooks.example.com/in"), &policy).expect("ok");
        assert_eq!(ok.event_types, vec!["*"]);
        assert_eq!(ok.workspace, "default");
        assert_eq!(ok.max_in_flight, DEFAULT_MAX_IN_FLIGHT);

        let err =
            EndpointSpec::build(&input("http://hooks.example.com/in"), &policy).expect_err("http");
        assert_eq!(err.key, "url");
        assert!(err.message.contains("https"), "{err}");
        assert!(!err.destination);

        let err = EndpointSpec::build(&input("https://10.0.0.1/in"), &policy).expect_err("private");
        assert_eq!(err.key, "url");
        assert!(err.destination, "{err}");

        let mut bad = input("https://hooks.example.com/in");
        bad.event_types = Some(vec!["stripe.*".into(), "bad glob".into()]);
        assert_eq!(
            EndpointSpec::build(&bad, &policy).expect_err("glob").key,
            "event_types[1]"
        );

        let mut bad = input("https://hooks.example.com/in");
        bad.secrets = Some(vec!["hunter2-plain".into()]);
        let err = EndpointSpec::build(&bad, &policy).expect_err("secret");
        assert_eq!(err.key, "secrets[0]");
        assert!(!err.to_string().contains("hunter2"), "{err}");

        let mut bad = input("https://hooks.example.com/in");
        bad.transform = Some("{email: .data.email".into());
        let err = EndpointSpec::build(&bad, &policy).expect_err("transform");
        assert_eq!(err.key, "transform");
        assert!(err.message.contains("does not compile"), "{err}");

        let mut bad = input("https://hooks.example.com/in");
        bad.id = "no spaces".into();
        assert_eq!(
            EndpointSpec::build(&bad, &policy).expect_err("id").key,
            "id"
        );
    }

    #[test]
    fn delivery_settings() {
        assert_eq!(
            DeliverySettings::from_file(None).expect("defaults"),
            DeliverySettings::default()
        );
        let f = FileDelivery {
            retry_schedule_secs: Some(vec![1, 0]),
            ..FileDelivery::default()
        };
        let err = DeliverySettings::from_file(Some(&f))
            .expect_err("zero step")
            .to_string();
        assert!(err.starts_with("delivery.retry_schedule_secs[1]"), "{err}");
        let f = FileDelivery {
            allow_cidrs: Some(vec!["10.0.0.0/8".into(), "nope".into()]),
            ..FileDelivery::default()
        };
        let err = format!(
            "{:#}",
            DeliverySettings::from_file(Some(&f)).expect_err("cidr")
        );
        assert!(err.starts_with("delivery.allow_cidrs[1]"), "{err}");
    }
}
