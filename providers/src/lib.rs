//! Pure webhook adapters for hookgate.
//!
//! This crate owns everything that is specific to one provider: how it signs a delivery, where the
//! event id and type live, which event types hookgate maps, and how to sign a payload the way the
//! provider would (for `hookgate send` and tests).
//! It does no IO, reads no clock and knows nothing of HTTP servers or databases: the caller passes
//! the raw request, the connection's secrets and the current time in.
//!
//! Layout:
//! - [`ProviderId`] is the closed list of providers; [`ProviderId::adapter`] gives each one's
//!   [`Provider`] implementation (a unit struct in its own module).
//! - [`scheme`] holds the signature schemes several providers share.
//! - `normalize` holds the helpers every provider's [`Provider::normalize`] uses (JSON paths,
//!   scalar fields, snake_case keys, RFC 3339 timestamps), so adapters do not repeat them.
//! - [`Verified`] can only be built by a successful `verify` (or, explicitly, from bytes that were
//!   verified when they were received and stored since), so unverified bytes are never parsed.

pub mod ip_ranges;
mod normalize;
pub mod scheme;
pub mod time;

pub mod brevo;
pub mod clerk;
pub mod revenuecat;
pub mod shopify;
pub mod stripe;
pub mod stytch;
pub mod supabase;
pub mod workos;

/// Test scaffolding (example secrets, the signer, the conformance checks): this crate's own
/// tests, and with the `testkit` feature the gateway's tests, the fuzz targets and the benchmark.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

use std::fmt;
use std::str::FromStr;

use http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

/// One variant per provider; the lowercase name is the URL segment, the module name, the fixture
/// directory and the `provider` column value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    Stripe,
    Clerk,
    Shopify,
    Stytch,
    Supabase,
    Workos,
    Revenuecat,
    Brevo,
}

impl ProviderId {
    /// Every provider, in a stable order.
    pub const ALL: [ProviderId; 8] = [
        ProviderId::Stripe,
        ProviderId::Clerk,
        ProviderId::Shopify,
        ProviderId::Stytch,
        ProviderId::Supabase,
        ProviderId::Workos,
        ProviderId::Revenuecat,
        ProviderId::Brevo,
    ];

    /// The lowercase id used in URLs, config and the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderId::Stripe => "stripe",
            ProviderId::Clerk => "clerk",
            ProviderId::Shopify => "shopify",
            ProviderId::Stytch => "stytch",
            ProviderId::Supabase => "supabase",
            ProviderId::Workos => "workos",
            ProviderId::Revenuecat => "revenuecat",
            ProviderId::Brevo => "brevo",
        }
    }

    /// The adapter for this provider. Adding a variant makes the compiler ask for an arm here.
    pub fn adapter(self) -> &'static dyn Provider {
        match self {
            ProviderId::Stripe => &stripe::Stripe,
            ProviderId::Clerk => &clerk::Clerk,
            ProviderId::Shopify => &shopify::Shopify,
            ProviderId::Stytch => &stytch::Stytch,
            ProviderId::Supabase => &supabase::Supabase,
            ProviderId::Workos => &workos::Workos,
            ProviderId::Revenuecat => &revenuecat::Revenuecat,
            ProviderId::Brevo => &brevo::Brevo,
        }
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the provider ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?} (expected one of stripe, clerk, shopify, stytch, supabase, workos, revenuecat, brevo)")]
pub struct UnknownProvider(pub String);

impl FromStr for ProviderId {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderId::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownProvider(s.to_owned()))
    }
}

/// A connection secret. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's text. Call this only where the value is used as key material or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How a provider proves authenticity, which decides which connection settings apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    /// An HMAC signature over the body; `tolerance_secs` applies where a timestamp is signed.
    Signature,
    /// A static shared secret presented as the connection's `auth` mode says.
    SharedSecret,
}

/// Reads a body-HMAC provider's signature header: (its documented name, its value).
pub type HmacHeader = for<'h> fn(&'h HeaderMap) -> Result<(&'static str, &'h str), VerifyError>;

/// How a provider proves authenticity. An adapter picks its scheme in [`Provider::signing`] and
/// the trait's default methods (secret checks, tolerance, `verify`, `sign`) follow it; adapters
/// override only what is particular to them (Shopify signs with its own set of headers).
#[derive(Clone, Copy)]
pub enum Signing {
    /// Svix / Standard Webhooks, ±300 s (Clerk, Stytch).
    StandardWebhooks,
    /// `t=<timestamp>,v1=<hex>` with this variant and the SDK's default tolerance in seconds
    /// (Stripe, WorkOS).
    Timestamped(&'static scheme::timestamped_hmac::Scheme, u64),
    /// A base64 HMAC of the body in the header the function finds (Shopify).
    BodyHmac(HmacHeader),
    /// A static secret presented as the connection's `auth` mode says, `bearer` by default
    /// (Supabase, RevenueCat, Brevo).
    SharedSecret,
}

/// Where an unsigned provider presents its shared secret (`auth` in the connection config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic base64(<user>:<password>)`; the secret is `user:password`.
    Basic,
    /// `<Name>: <secret>` (for example `header:Authorization` when a provider sends the secret
    /// verbatim, as RevenueCat does, or `header:X-Webhook-Secret`).
    Header(HeaderName),
    /// `?<param>=<secret>` in the request URL.
    Query(String),
}

/// The `auth` value was not one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid auth mode {0:?}: expected bearer, basic, header:<Name> or query:<param>")]
pub struct InvalidAuthMode(pub String);

impl FromStr for AuthMode {
    type Err = InvalidAuthMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidAuthMode(s.to_owned());
        match s {
            "bearer" => Ok(AuthMode::Bearer),
            "basic" => Ok(AuthMode::Basic),
            _ => {
                if let Some(name) = s.strip_prefix("header:") {
                    HeaderName::from_bytes(name.as_bytes())
                        .map(AuthMode::Header)
                        .map_err(|_| bad())
                } else if let Some(param) = s.strip_prefix("query:") {
                    let valid = !param.is_empty()
                        && param
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b));
                    if valid {
                        Ok(AuthMode::Query(param.to_owned()))
                    } else {
                        Err(bad())
                    }
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::Bearer => f.write_str("bearer"),
            AuthMode::Basic => f.write_str("basic"),
            AuthMode::Header(name) => write!(f, "header:{name}"),
            AuthMode::Query(param) => write!(f, "query:{param}"),
        }
    }
}

/// The raw request as it arrived: nothing here has been parsed or trusted yet.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    /// The exact body bytes; signatures are computed over these.
    pub body: &'a [u8],
    /// The raw query string (without `?`), for `query:<param>` shared secrets.
    pub query: Option<&'a str>,
}

/// Per-connection verification settings and the current time.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions<'a> {
    /// The current time in Unix milliseconds (passed in so tests are deterministic).
    pub now_ms: i64,
    /// The timestamp window; `None` uses the provider's SDK default.
    pub tolerance_secs: Option<u64>,
    /// For shared-secret providers: where the secret is presented (`None` = the provider default).
    pub auth: Option<&'a AuthMode>,
}

/// A request whose authenticity was proven. Only `verify` (or [`Verified::skip_verification`]) builds it.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    provider: ProviderId,
    headers: &'a HeaderMap,
    body: &'a [u8],
}

impl<'a> Verified<'a> {
    /// Called by this crate's schemes once a signature or shared secret matched.
    pub(crate) fn new(provider: ProviderId, request: &Request<'a>) -> Self {
        Verified {
            provider,
            headers: request.headers,
            body: request.body,
        }
    }

    /// Skips verification: wraps bytes as verified without checking anything. Only for what the
    /// gateway stored after verifying it at receive time (the normalization pipeline and
    /// replays), and for tests and fuzzing. Never call it on bytes that were not verified when
    /// they arrived.
    pub fn skip_verification(provider: ProviderId, headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        Verified {
            provider,
            headers,
            body,
        }
    }

    pub fn provider(&self) -> ProviderId {
        self.provider
    }

    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// What the gateway needs to store and deduplicate a verified event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventMeta {
    /// The provider's event or delivery id, or a documented synthetic key (never empty).
    pub event_id: String,
    /// The provider's own event type name (the trigger id is `<provider>.<event_type>`).
    pub event_type: String,
    /// Whether hookgate maps this event type; unmapped events are stored as `ignored`.
    pub mapped: bool,
}

/// Per-connection settings normalization needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct NormalizeContext<'a> {
    /// Supabase: dot path of the contact email in the payload (default `record.email`, and
    /// `old_record.email` for DELETE).
    pub email_path: Option<&'a str>,
}

/// How an event identifies its contact.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Identity {
    /// The contact's email as the payload gives it (the pipeline trims and lower-cases it).
    pub email: Option<String>,
    /// `(<provider>_*_id field, value)` pairs that identify the contact when there is no email
    /// (or that a later email-less event will be resolved by), most specific first.
    pub ids: Vec<(String, String)>,
}

/// What an event changes on its contact.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ContactUpdate {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `Some(false)` for unsubscribes, hard bounces, spam complaints; `Some(true)` for opt-ins.
    pub subscribed: Option<bool>,
    /// Custom fields, each key `<provider>_<snake_case_name>`, values JSON scalars (string,
    /// number, boolean). Provider ids are strings of their exact digits.
    pub fields: std::collections::BTreeMap<String, serde_json::Value>,
}

/// One normalized event: what the pipeline turns into a contact upsert and a trigger fire.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NormalizedEvent {
    /// The dedupe key of this event: the ingest event id, or for an element of a Brevo batch,
    /// that element's own key (`sha256:<hex>` of its canonical JSON).
    pub event_id: String,
    /// The provider's own type name; the trigger id is `<provider>.<event_type>`.
    pub event_type: String,
    /// When the provider says the event happened (Unix ms), used so that an older event never
    /// overwrites a value written by a newer one. `None` when the payload carries no time.
    pub occurred_at_ms: Option<i64>,
    pub identity: Identity,
    pub contact: ContactUpdate,
    /// Extra fields for the trigger fire's payload only (not stored on the contact), e.g. an
    /// invoice amount. Keys `<provider>_*`, JSON scalars.
    pub event_fields: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Why a verified event could not be normalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// hookgate does not map this event type (the event is `ignored`).
    #[error("event type {0:?} is not mapped")]
    Unsupported(String),
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A field the mapping needs is missing or has the wrong type.
    #[error("unexpected payload: {0}")]
    UnexpectedShape(String),
}

/// `normalize` starts from `identify`, so its errors carry over: a body `identify` rejects cannot
/// be normalized either.
impl From<IdentifyError> for NormalizeError {
    fn from(error: IdentifyError) -> Self {
        match error {
            IdentifyError::InvalidJson(message) => NormalizeError::InvalidJson(message),
            IdentifyError::UnexpectedShape(message) => {
                NormalizeError::UnexpectedShape(message.to_owned())
            }
            IdentifyError::MissingHeader(name) => {
                NormalizeError::UnexpectedShape(format!("missing header {name}"))
            }
        }
    }
}

/// Why a request is not authentic. Every variant has a stable code for the 401 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The connection has no usable secret: hookgate fails closed.
    #[error("the connection has no usable secret configured")]
    NoSecret,
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {0} is not in the provider's format")]
    InvalidHeader(&'static str),
    #[error("no signature in the request matches any of the connection's secrets")]
    SignatureMismatch,
    #[error("the signed timestamp is older than the tolerance of {tolerance_secs} s")]
    TimestampTooOld { tolerance_secs: u64 },
    #[error(
        "the signed timestamp is further in the future than the tolerance of {tolerance_secs} s"
    )]
    TimestampTooNew { tolerance_secs: u64 },
    #[error("the shared secret is missing ({0})")]
    MissingCredentials(&'static str),
    #[error("the shared secret does not match")]
    CredentialsMismatch,
}

impl VerifyError {
    /// The stable code for `{"error": ...}` bodies, metrics and the ingest log.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::NoSecret => "no_secret_configured",
            VerifyError::MissingHeader(_) => "missing_signature_header",
            VerifyError::InvalidHeader(_) => "invalid_signature_header",
            VerifyError::SignatureMismatch => "signature_mismatch",
            VerifyError::TimestampTooOld { .. } => "timestamp_too_old",
            VerifyError::TimestampTooNew { .. } => "timestamp_too_new",
            VerifyError::MissingCredentials(_) => "missing_credentials",
            VerifyError::CredentialsMismatch => "credentials_mismatch",
        }
    }
}

/// Why a verified body is not what the provider sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyError {
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the body is not the JSON shape the provider sends: {0}")]
    UnexpectedShape(&'static str),
    #[error("missing header {0}")]
    MissingHeader(&'static str),
}

impl IdentifyError {
    /// The stable code for `{"error": ...}` bodies and the ingest log.
    pub fn code(&self) -> &'static str {
        match self {
            IdentifyError::InvalidJson(_) => "invalid_json",
            IdentifyError::UnexpectedShape(_) => "unexpected_payload",
            IdentifyError::MissingHeader(_) => "missing_header",
        }
    }
}

/// A secret that cannot work for a provider (checked when a connection is saved).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the secret is empty")]
    Empty,
    #[error(
        "the secret must be `whsec_` followed by base64 (as the provider's dashboard shows it)"
    )]
    NotBase64,
    #[error("a basic-auth secret must be `user:password`")]
    NotUserPassword,
    #[error("the secret has characters that cannot be sent in an HTTP header")]
    NotHeaderSafe,
}

/// What `sign` needs beyond the body and secret.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// Unix milliseconds to put in the signature's timestamp.
    pub now_ms: i64,
    /// The delivery id to send (Svix `svix-id`, Shopify `X-Shopify-Event-Id`); derived from the
    /// body when `None`, so sending the same payload twice is a retry.
    pub delivery_id: Option<String>,
    /// The event type for providers that carry it in a header (Shopify's topic).
    pub event_type: Option<String>,
    /// For shared-secret providers: how to present the secret.
    pub auth: Option<AuthMode>,
}

/// Why a payload could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("{0}")]
    MissingOption(&'static str),
}

/// Headers to add to a request, and for `query:<param>` auth a query string to append.
#[derive(Clone, Debug, Default)]
pub struct Signed {
    pub headers: Vec<(HeaderName, String)>,
    pub query: Option<String>,
}

/// One provider's adapter. Implementations are unit structs; all methods are pure.
pub trait Provider: Send + Sync {
    fn id(&self) -> ProviderId;

    /// The scheme this provider signs (or authenticates) with.
    fn signing(&self) -> Signing;

    fn auth_kind(&self) -> AuthKind {
        match self.signing() {
            Signing::SharedSecret => AuthKind::SharedSecret,
            _ => AuthKind::Signature,
        }
    }

    /// The timestamp window the provider's official SDK uses, if it signs a timestamp.
    fn default_tolerance_secs(&self) -> Option<u64> {
        match self.signing() {
            Signing::StandardWebhooks => Some(scheme::standard_webhooks::DEFAULT_TOLERANCE_SECS),
            Signing::Timestamped(_, tolerance) => Some(tolerance),
            Signing::BodyHmac(_) | Signing::SharedSecret => None,
        }
    }

    /// Checks that a secret can work for this provider (called when a connection is saved).
    ///
    /// # Errors
    /// Returns what is wrong with the secret, never the secret itself.
    fn check_secret(&self, secret: &Secret, auth: Option<&AuthMode>) -> Result<(), SecretError> {
        match self.signing() {
            Signing::StandardWebhooks => {
                scheme::standard_webhooks::decode_secret(secret).map(|_| ())
            }
            Signing::SharedSecret => {
                scheme::shared_secret::check_secret(secret, auth.unwrap_or(&AuthMode::Bearer))
            }
            Signing::Timestamped(..) | Signing::BodyHmac(_) if secret.expose().is_empty() => {
                Err(SecretError::Empty)
            }
            Signing::Timestamped(..) | Signing::BodyHmac(_) => Ok(()),
        }
    }

    /// Proves the request authentic against any of `secrets` (several = rotation).
    ///
    /// # Errors
    /// The precise reason, with a stable [`VerifyError::code`].
    fn verify<'a>(
        &self,
        request: &Request<'a>,
        secrets: &[Secret],
        options: &VerifyOptions<'_>,
    ) -> Result<Verified<'a>, VerifyError> {
        match self.signing() {
            Signing::StandardWebhooks => {
                let tolerance = options
                    .tolerance_secs
                    .unwrap_or(scheme::standard_webhooks::DEFAULT_TOLERANCE_SECS);
                scheme::standard_webhooks::verify(request, secrets, options.now_ms, tolerance)?;
            }
            Signing::Timestamped(variant, default) => {
                variant.verify(
                    request,
                    secrets,
                    options.now_ms,
                    options.tolerance_secs.unwrap_or(default),
                )?;
            }
            Signing::BodyHmac(header) => {
                if secrets.iter().all(|s| s.expose().is_empty()) {
                    return Err(VerifyError::NoSecret);
                }
                let (name, value) = header(request.headers)?;
                scheme::hmac_body::verify(request.body, value, name, secrets)?;
            }
            Signing::SharedSecret => {
                scheme::shared_secret::verify(
                    request,
                    secrets,
                    options.auth.unwrap_or(&AuthMode::Bearer),
                )?;
            }
        }
        Ok(Verified::new(self.id(), request))
    }

    /// Extracts the dedupe key and event type of a verified request.
    ///
    /// # Errors
    /// When the body is not the JSON the provider sends (answered 400, stored as rejected).
    fn identify(&self, event: &Verified<'_>) -> Result<EventMeta, IdentifyError> {
        let body: serde_json::Value = serde_json::from_slice(event.body())
            .map_err(|e| IdentifyError::InvalidJson(e.to_string()))?;
        self.identify_parsed(event, &body)
    }

    /// `identify` on a body already parsed, so `normalize` parses each body once.
    ///
    /// # Errors
    /// As [`Provider::identify`].
    fn identify_parsed(
        &self,
        event: &Verified<'_>,
        body: &serde_json::Value,
    ) -> Result<EventMeta, IdentifyError>;

    /// Turns a verified event into normalized events (one, or one per element of a batch).
    ///
    /// # Errors
    /// `Unsupported` for event types hookgate does not map; shape errors otherwise.
    fn normalize(
        &self,
        event: &Verified<'_>,
        context: &NormalizeContext<'_>,
    ) -> Result<Vec<NormalizedEvent>, NormalizeError>;

    /// Signs `body` exactly as the provider would, for `hookgate send` and tests.
    ///
    /// # Errors
    /// When the secret cannot be used or a needed option is missing.
    fn sign(
        &self,
        body: &[u8],
        secret: &Secret,
        options: &SignOptions,
    ) -> Result<Signed, SignError> {
        self.check_secret(secret, options.auth.as_ref())?;
        match self.signing() {
            Signing::StandardWebhooks => {
                let id = options
                    .delivery_id
                    .clone()
                    .unwrap_or_else(|| scheme::standard_webhooks::default_msg_id(body));
                Ok(scheme::standard_webhooks::sign(
                    body,
                    secret,
                    &id,
                    options.now_ms,
                )?)
            }
            Signing::Timestamped(variant, _) => Ok(variant.sign(body, secret, options.now_ms)),
            Signing::BodyHmac(_) => Err(SignError::MissingOption(
                "a body-HMAC provider signs with headers of its own; its adapter implements sign",
            )),
            Signing::SharedSecret => Ok(scheme::shared_secret::sign(
                secret,
                options.auth.as_ref().unwrap_or(&AuthMode::Bearer),
            )),
        }
    }
}

/// Lower-case SHA-256 hex of `bytes`: the synthetic event id for providers that send none.
pub fn body_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The parsed body as a JSON object.
pub(crate) fn as_object(
    body: &serde_json::Value,
) -> Result<&serde_json::Map<String, serde_json::Value>, IdentifyError> {
    body.as_object().ok_or(IdentifyError::UnexpectedShape(
        "the body is not a JSON object",
    ))
}

/// A non-empty string field of a JSON object.
pub(crate) fn str_field<'v>(
    map: &'v serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'v str> {
    map.get(key)
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
}

/// A header's value as text, if present and visible ASCII.
pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_round_trip() {
        for p in ProviderId::ALL {
            assert_eq!(p.as_str().parse::<ProviderId>(), Ok(p));
            assert_eq!(p.adapter().id(), p);
            let json = serde_json::to_string(&p).expect("serialize");
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert!("Stripe".parse::<ProviderId>().is_err());
        assert!("paypal".parse::<ProviderId>().is_err());
    }

    #[test]
    fn auth_modes_parse_and_print() {
        for text in ["bearer", "basic", "header:x-webhook-secret", "query:token"] {
            let mode: AuthMode = text.parse().expect("valid mode");
            assert_eq!(mode.to_string(), text);
        }
        for bad in [
            "",
            "Bearer",
            "header:",
            "header:bad name",
            "query:",
            "query:a&b",
            "token",
        ] {
            assert!(bad.parse::<AuthMode>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("whsec_super_secret_value");
        assert!(!format!("{s:?}").contains("super_secret"));
    }
}
