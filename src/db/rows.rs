//! Row types read from the database; the same structs decode on SQLite and PostgreSQL.

use serde::Serialize;

/// A stored connection. Its serialized form is what the APIs show of it (flattened into
/// [`crate::connections::ConnectionView`]), so a new column appears there without more code:
/// `secrets` is never serialized, and `Debug` leaves it out too.
#[derive(Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConnectionRow {
    /// The last segment of the receive URL.
    pub id: String,
    pub provider: String,
    pub workspace: String,
    #[serde(skip)]
    pub secrets: String,
    pub tolerance_secs: Option<i64>,
    /// A JSON array of strings, shown as that array.
    #[serde(serialize_with = "json_array_text")]
    #[schema(value_type = Vec<String>)]
    pub allow_ips: String,
    pub auth: Option<String>,
    pub email_path: Option<String>,
    pub user_id_column: Option<String>,
    pub rate_limit_per_sec: Option<i64>,
    pub rate_limit_burst: Option<i64>,
    pub enabled: bool,
    /// Where it was last written: `config`, `api` or `cli`.
    pub source: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

impl std::fmt::Debug for ConnectionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRow")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("workspace", &self.workspace)
            .field("secrets", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Serializes a column holding a JSON array of strings as that array (empty if it is not one).
fn json_array_text<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    let items: Vec<String> = serde_json::from_str(text).unwrap_or_default();
    serializer.collect_seq(items)
}

/// An ingest log entry without its headers and body (lists).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct IngestSummary {
    /// A ULID; newer records sort after older ones.
    pub id: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub connection_id: String,
    pub provider: String,
    pub workspace: Option<String>,
    /// `accepted`, `duplicate`, `ignored` or `rejected`.
    pub outcome: String,
    /// Processing: `pending`, `processed`, `unresolved`, `failed` or `ignored`; null when not
    /// stored as an event.
    pub status: Option<String>,
    /// The status the request was answered with.
    pub http_status: i32,
    /// The provider's event id (the dedupe key).
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    /// For a duplicate: the first record's id.
    pub duplicate_of: Option<String>,
    /// For a rejection: the error code it was answered with.
    pub reason: Option<String>,
    pub client_addr: Option<String>,
    /// Bytes received.
    pub body_size: i64,
    /// Microseconds spent reading the body.
    pub read_us: Option<i64>,
    /// Microseconds spent verifying it.
    pub verify_us: Option<i64>,
    /// Processing attempts (claims) so far.
    pub attempts: i32,
    /// Why the event is `unresolved`, `failed` or `ignored`.
    pub status_reason: Option<String>,
    /// The contact the event was applied to.
    pub contact_email: Option<String>,
    pub processed_at: Option<i64>,
}

/// A whole ingest log entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IngestRow {
    #[sqlx(flatten)]
    pub summary: IngestSummary,
    pub path: String,
    pub headers: String,
    pub body: Vec<u8>,
    pub body_truncated: bool,
}

/// A stored event claimed for processing (or loaded for a replay).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedEvent {
    pub id: String,
    pub connection_id: String,
    pub provider: String,
    pub workspace: Option<String>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub headers: String,
    pub body: Vec<u8>,
    pub received_at: i64,
    pub attempts: i32,
}

impl ClaimedEvent {
    /// The event a just-stored row holds, on its first processing attempt.
    pub fn first_attempt(row: &crate::db::NewIngest) -> Self {
        ClaimedEvent {
            id: row.id.clone(),
            connection_id: row.connection_id.clone(),
            provider: row.provider.to_owned(),
            workspace: row.workspace.clone(),
            event_id: row.event_id.clone(),
            event_type: row.event_type.clone(),
            headers: row.headers.clone(),
            body: row.body.to_vec(),
            received_at: row.received_at,
            attempts: 1,
        }
    }
}

/// A contact row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub workspace: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub subscribed: Option<bool>,
    pub custom_fields: String,
    pub field_times: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ContactRow {
    /// The mergeable state (unparseable JSON columns read as empty).
    pub fn state(&self) -> crate::contacts::ContactState {
        crate::contacts::ContactState {
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            subscribed: self.subscribed,
            custom_fields: serde_json::from_str(&self.custom_fields).unwrap_or_default(),
            field_times: serde_json::from_str(&self.field_times).unwrap_or_default(),
        }
    }
}

/// A trigger fire.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FireRow {
    pub seq: i64,
    pub idempotency_key: String,
    pub workspace: String,
    pub trigger_id: String,
    pub provider: String,
    pub ingest_id: Option<String>,
    pub email: Option<String>,
    pub payload: String,
    pub occurred_at: Option<i64>,
    pub created_at: i64,
}

/// A trigger in the catalog.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TriggerRow {
    pub workspace: String,
    pub id: String,
    pub provider: String,
    pub payload_schema: String,
}

/// An API key (its hash only).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub key_hash: String,
    pub name: String,
    pub scopes: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// The one workspace the key may use; `None` for every workspace.
    pub workspace: Option<String>,
    pub expires_at: Option<i64>,
}
