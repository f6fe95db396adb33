//! Drains: stream what the gateway records (ingest rows, delivery attempts, processing
//! outcomes) to an observability sink, alongside delivery.
//!
//! - this module: the `[[drains]]` settings, validated (`DrainInput::build`), and the shared
//!   in-memory view of each drain's state (`Status`) that `GET /admin/drains` shows;
//! - [`record`]: a drained record and its two wire formats (OTLP/HTTP JSON logs, and the signed
//!   JSON array of the `http` kind);
//! - [`store`]: the `drains` and `drain_outbox` tables;
//! - [`worker`]: one task per drain that reads its feed, batches, sends and retries.
//!
//! The feed is written by database triggers (migration `drains`) in the same transaction as what
//! it records, one narrow row per record per drain that wants its kind; the drain deletes its rows
//! once its sink answered 2xx. So a record is never skipped (a row committed late is read
//! later) and is sent twice only when the gateway stops between the sink's 2xx and that delete.

pub mod record;
pub mod store;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use anyhow::bail;
use serde::Deserialize;

use crate::delivery::sign;

/// The record kinds a drain can follow.
pub const RECORD_KINDS: [&str; 3] = ["ingest", "delivery", "processing"];

/// Headers a drain may not set: the gateway sets them itself.
const RESERVED_HEADERS: [&str; 7] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// One `[[drains]]` table as written.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainInput {
    pub id: String,
    pub kind: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub records: Option<Vec<String>>,
    /// `http` only: the `whsec_...` secret the batches are signed with.
    pub secret: Option<String>,
}

impl fmt::Debug for DrainInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainInput")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("headers", &redacted_headers(&self.headers))
            .field("records", &self.records)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The sink's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OTLP/HTTP with JSON encoding: `POST <url>/v1/logs`.
    OtlpHttp,
    /// A signed JSON array of records: `POST <url>` with Standard Webhooks headers.
    Http,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OtlpHttp => "otlp_http",
            Kind::Http => "http",
        }
    }
}

/// A validated drain. Header values and the secret are secrets: `Debug` redacts them.
#[derive(Clone, PartialEq, Eq)]
pub struct DrainSpec {
    pub id: String,
    pub kind: Kind,
    /// As written (the base URL for `otlp_http`).
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub ingest: bool,
    pub delivery: bool,
    pub processing: bool,
    pub secret: Option<String>,
}

impl fmt::Debug for DrainSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("DrainSpec")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("headers", &format_args!("{names:?} (values redacted)"))
            .field("records", &self.records())
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn redacted_headers(headers: &BTreeMap<String, String>) -> BTreeMap<&str, &'static str> {
    headers.keys().map(|k| (k.as_str(), "<redacted>")).collect()
}

impl DrainSpec {
    /// The record kinds this drain follows, in the order of [`RECORD_KINDS`].
    pub fn records(&self) -> Vec<&'static str> {
        let on = [self.ingest, self.delivery, self.processing];
        RECORD_KINDS
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Where batches are posted.
    pub fn target(&self) -> String {
        match self.kind {
            Kind::OtlpHttp => format!("{}/v1/logs", self.url.trim_end_matches('/')),
            Kind::Http => self.url.clone(),
        }
    }
}

impl DrainInput {
    /// Validates one drain.
    ///
    /// # Errors
    /// `<key>: <what is wrong>`, never quoting a header value or the secret.
    pub fn build(&self) -> anyhow::Result<DrainSpec> {
        if !crate::connections::valid_connection_id(&self.id) {
            bail!("id: {:?} must be 1 to 64 of A-Z a-z 0-9 _ -", self.id);
        }
        let kind = match self.kind.as_str() {
            "otlp_http" => Kind::OtlpHttp,
            "http" => Kind::Http,
            other => bail!("kind: {other:?} is not one of \"otlp_http\", \"http\""),
        };
        let url = url::Url::parse(&self.url)
            .map_err(|e| anyhow::anyhow!("url: {:?} is not a URL ({e})", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("url: use http:// or https://");
        }
        if !url.username().is_empty() || url.password().is_some() {
            bail!("url: no credentials in the URL; put them in `headers`");
        }
        if url.host_str().is_none() {
            bail!("url: {:?} has no host", self.url);
        }
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            let key = format!("headers.{name:?}");
            let parsed = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("{key}: not a valid header name"))?;
            if RESERVED_HEADERS.contains(&parsed.as_str()) {
                bail!("{key}: set by the gateway itself");
            }
            if http::HeaderValue::from_str(value).is_err() {
                bail!("{key}: the value is not a valid header value (visible ASCII only)");
            }
            headers.push((name.clone(), value.clone()));
        }
        let records = self
            .records
            .clone()
            .unwrap_or_else(|| RECORD_KINDS.iter().map(|k| (*k).to_owned()).collect());
        if records.is_empty() {
            bail!("records: give at least one of \"ingest\", \"delivery\", \"processing\"");
        }
        for (i, r) in records.iter().enumerate() {
            if !RECORD_KINDS.contains(&r.as_str()) {
                bail!("records[{i}]: {r:?} is not one of \"ingest\", \"delivery\", \"processing\"");
            }
        }
        let has = |k: &str| records.iter().any(|r| r == k);
        let secret = match (kind, &self.secret) {
            (Kind::Http, Some(s)) => {
                sign::check_secret(s).map_err(|e| anyhow::anyhow!("secret: {e}"))?;
                Some(s.clone())
            }
            (Kind::Http, None) => {
                bail!("secret: required for kind = \"http\" (`whsec_` + base64 of 24 to 64 bytes)")
            }
            (Kind::OtlpHttp, Some(_)) => bail!("secret: applies only to kind = \"http\""),
            (Kind::OtlpHttp, None) => None,
        };
        Ok(DrainSpec {
            id: self.id.clone(),
            kind,
            url: self.url.clone(),
            headers,
            ingest: has("ingest"),
            delivery: has("delivery"),
            processing: has("processing"),
            secret,
        })
    }
}

/// Validates the `[[drains]]` tables of a config file.
///
/// # Errors
/// `drains[<i>].<key>: <what is wrong>`, or an id declared twice.
pub fn from_file(list: &[DrainInput]) -> anyhow::Result<Vec<DrainSpec>> {
    let mut ids = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, input) in list.iter().enumerate() {
        let spec = input
            .build()
            .map_err(|e| anyhow::anyhow!("drains[{i}].{e:#}"))?;
        if !ids.insert(spec.id.clone()) {
            bail!("drains[{i}].id: {:?} is declared twice", spec.id);
        }
        out.push(spec);
    }
    Ok(out)
}

/// What a drain is doing, as `GET /admin/drains` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Sending, or waiting for records.
    Running,
    /// The last batch failed with a retryable answer (429, 502, 503, 504, no answer); retrying
    /// with backoff.
    Retrying,
    /// The sink refused the last batch (any other answer); tried again every
    /// [`worker::PAUSE_RETRY`] or at once on `POST /admin/drains/<id>/resume`.
    Paused,
    /// Another process holds this drain's lease (PostgreSQL, several gateways).
    Standby,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Retrying => "retrying",
            State::Paused => "paused",
            State::Standby => "standby",
        }
    }
}

/// One drain's live state in this process.
#[derive(Debug, Clone)]
pub struct Status {
    pub state: State,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    /// Epoch ms of the oldest record not yet sent, when known.
    pub oldest_unsent_at: Option<i64>,
    /// Records waiting (counted up to [`worker::LAG_COUNT_CAP`]).
    pub queued: Option<i64>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            state: State::Running,
            last_error: None,
            last_error_at: None,
            oldest_unsent_at: None,
            queued: None,
        }
    }
}

/// The drains of this process and their live state.
#[derive(Debug, Default)]
pub struct Drains {
    pub specs: Vec<DrainSpec>,
    status: Mutex<HashMap<String, Status>>,
    resume: HashMap<String, tokio::sync::Notify>,
}

impl Drains {
    pub fn new(specs: Vec<DrainSpec>) -> Self {
        let resume = specs
            .iter()
            .map(|s| (s.id.clone(), tokio::sync::Notify::new()))
            .collect();
        Drains {
            specs,
            status: Mutex::new(HashMap::new()),
            resume,
        }
    }

    /// The live state of drain `id` (default before its task first reports).
    pub fn status(&self, id: &str) -> Status {
        self.status
            .lock()
            .map(|m| m.get(id).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut Status)) {
        if let Ok(mut map) = self.status.lock() {
            f(map.entry(id.to_owned()).or_default());
        }
    }

    /// Wakes a drain's task so that a paused or retrying drain tries again at once. Returns
    /// false for an unknown drain.
    pub fn resume(&self, id: &str) -> bool {
        match self.resume.get(id) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }

    pub(crate) fn resumed(&self, id: &str) -> Option<&tokio::sync::Notify> {
        self.resume.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &str) -> anyhow::Result<Vec<DrainSpec>> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            drains: Vec<DrainInput>,
        }
        let file: File = toml::from_str(text)?;
        from_file(&file.drains)
    }

    #[test]
    fn both_kinds_load_with_defaults() {
        let specs = input(
            r#"
[[drains]]
id = "otel"
kind = "otlp_http"
url = "http://127.0.0.1:4318/"
headers = {"Authorization" = "Bearer very-secret-token"}
[[drains]]
id = "siem"
kind = "http"
url = "https://logs.example.com/in"
records = ["delivery"]
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#,
        )
        .expect("loads");
        assert_eq!(specs[0].records(), RECORD_KINDS.to_vec());
        assert_eq!(specs[0].target(), "http://127.0.0.1:4318/v1/logs");
        assert_eq!(specs[1].records(), vec!["delivery"]);
        assert_eq!(specs[1].target(), "https://logs.example.com/in");
        let debug = format!("{specs:?}");
        assert!(!debug.contains("very-secret-token"), "{debug}");
        assert!(!debug.contains("MfKQ9r8"), "{debug}");
        assert!(debug.contains("Authorization"), "{debug}");
    }

    #[test]
    fn errors_name_the_key_and_hide_values() {
        let base = "[[drains]]\nid = \"d\"\nkind = \"otlp_http\"\nurl = \"http://x:4318\"\n";
        let cases = [
            (format!("{base}colour = \"red\""), "colour"),
            (base.replace("otlp_http", "kafka"), "kind"),
            (base.replace("http://x:4318", "ftp://x"), "url"),
            (base.replace("http://x:4318", "http://u:pw@x"), "url"),
            (base.replace("id = \"d\"", "id = \"a/b\""), "id"),
            (format!("{base}records = [\"fires\"]"), "records[0]"),
            (format!("{base}records = []"), "records"),
            (
                format!("{base}headers = {{\"Bad Name\" = \"v\"}}"),
                "headers.\"Bad Name\"",
            ),
            (
                format!("{base}headers = {{\"X-Token\" = \"line\\nbreak-secret\"}}"),
                "headers.\"X-Token\"",
            ),
            (
                format!("{base}headers = {{\"Content-Type\" = \"text/plain\"}}"),
                "headers.\"Content-Type\"",
            ),
            (format!("{base}secret = \"whsec_x\""), "secret"),
            (base.replace("otlp_http", "http"), "secret: required"),
            (
                base.replace("otlp_http", "http") + "secret = \"nope-secret-text\"",
                "secret",
            ),
            (format!("{base}{base}"), "declared twice"),
        ];
        for (text, needle) in cases {
            let err = input(&text).expect_err(&text);
            let message = format!("{err:#}");
            assert!(message.contains(needle), "{text:?}: {message}");
            assert!(!message.contains("break-secret"), "{message}");
            assert!(!message.contains("nope-secret-text"), "{message}");
        }
    }
}
