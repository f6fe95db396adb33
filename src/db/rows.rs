//! Row types read from the database; the same structs decode on SQLite and PostgreSQL.

use serde::Serialize;

/// A stored connection, secrets included: this type never leaves the process (see
/// [`crate::connections::ConnectionView`] for what the APIs show).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConnectionRow {
    pub id: String,
    pub provider: String,
    pub workspace: String,
    pub secrets: String,
    pub tolerance_secs: Option<i64>,
    pub allow_ips: String,
    pub auth: Option<String>,
    pub email_path: Option<String>,
    pub rate_limit_per_sec: Option<i64>,
    pub rate_limit_burst: Option<i64>,
    pub enabled: bool,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An ingest log entry without its headers and body (lists).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct IngestSummary {
    pub id: String,
    pub received_at: i64,
    pub connection_id: String,
    pub provider: String,
    pub workspace: Option<String>,
    pub outcome: String,
    pub status: Option<String>,
    pub http_status: i32,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub duplicate_of: Option<String>,
    pub reason: Option<String>,
    pub client_addr: Option<String>,
    pub body_size: i64,
    pub read_us: Option<i64>,
    pub verify_us: Option<i64>,
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
