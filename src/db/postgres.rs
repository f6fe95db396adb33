//! The PostgreSQL backend: one pool; the group-commit writer takes its own connection from it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Several workers and processes share the server: claims skip rows another claim has locked,
/// and applies take turns on one advisory lock (7_349_001 is an arbitrary constant naming
/// "hookgate fire order" among advisory locks).
const DIALECT: crate::db::Dialect = crate::db::Dialect {
    claim_skip_locked: " FOR UPDATE SKIP LOCKED",
    apply_lock: Some("SELECT pg_advisory_xact_lock(7349001)"),
};

crate::db::sql::backend_queries!(sqlx::Postgres);

/// Connects a pool to `url`.
///
/// # Errors
/// The server cannot be reached or refuses the login.
pub async fn open(url: &str) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?;
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// Connects with a `search_path`, so tests can isolate themselves in a schema.
///
/// # Errors
/// As [`open`].
pub async fn open_in_schema(url: &str, schema: &str) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
    PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// Commits a write: proves the server is reachable and takes writes (a server that answers can
/// still refuse them: a read-only standby after a failover, a full disk).
///
/// # Errors
/// The server cannot be reached or the write cannot commit.
pub async fn probe_write(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(super::PROBE_WRITE)
        .bind(crate::now_ms())
        .execute(pool)
        .await
        .map(|_| ())
}
