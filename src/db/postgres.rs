//! The PostgreSQL backend: one pool; the group-commit writer takes its own connection from it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

use crate::db::rows::ClaimedEvent;
use crate::db::sql::fires::{FireInsert, FIRE_INSERT_COLUMNS, FIRE_INSERT_CONFLICT};
use crate::db::sql::ingest::{
    IngestInsert, CLAIMED_COLUMNS, FINISH_UPDATE, FINISH_WHERE, INGEST_COLUMNS, STORED_CONFLICT,
};
use crate::db::NewIngest;
use crate::resolution::{Finish, Status};

/// Several workers and processes share the server: claims skip rows another claim has locked,
/// and applies take turns on one advisory lock (7_349_001 is an arbitrary constant naming
/// "hookgate fire order" among advisory locks).
const DIALECT: crate::db::Dialect = crate::db::Dialect {
    claim_skip_locked: " FOR UPDATE SKIP LOCKED",
    apply_lock: Some("SELECT pg_advisory_xact_lock(7349001)"),
};

crate::db::sql::backend_queries!(sqlx::Postgres);

/// One column of `rows` as an array parameter (the statements below bind one array a column).
fn column<'a, R, T>(rows: &'a [R], f: impl Fn(&'a R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// Inserts `rows` into `ingest` with one `INSERT ... SELECT FROM UNNEST(...)` of one array
/// parameter a column, whatever the batch size: the server parses and plans one short
/// statement instead of a `VALUES` list of 18 parameters a row, a statement of its own for
/// every batch size. `UNNEST` keeps the arrays' order, so rows go in in key order (see
/// `write_batch`). With `stored_events` a row whose event is stored already is skipped, and
/// the ids inserted are returned.
///
/// # Errors
/// The statement fails.
pub(crate) async fn insert_ingest(
    conn: &mut PgConnection,
    rows: &[IngestInsert<'_>],
    stored_events: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO ingest ({INGEST_COLUMNS}) SELECT * FROM UNNEST($1::text[], $2::bigint[], \
         $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[], \
         $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], \
         $16::boolean[], $17::bigint[], $18::bigint[]){}",
        if stored_events { STORED_CONFLICT } else { "" }
    );
    let q = sqlx::query_scalar::<_, String>(&sql)
        .bind(column(rows, |r| r.0.id.as_str()))
        .bind(column(rows, |r| r.0.received_at))
        .bind(column(rows, |r| r.0.connection_id.as_str()))
        .bind(column(rows, |r| r.0.provider))
        .bind(column(rows, |r| r.0.workspace.as_deref()))
        .bind(column(rows, |r| r.1.as_str()))
        .bind(column(rows, |r| r.2.map(Status::as_str)))
        .bind(column(rows, |r| r.0.http_status))
        .bind(column(rows, |r| r.0.event_id.as_deref()))
        .bind(column(rows, |r| r.0.event_type.as_deref()))
        .bind(column(rows, |r| r.3))
        .bind(column(rows, |r| r.0.reason.as_deref()))
        .bind(column(rows, |r| r.0.client_addr.as_deref()))
        .bind(column(rows, |r| r.0.path.as_str()))
        .bind(column(rows, |r| r.0.body_size))
        .bind(column(rows, |r| r.0.body_truncated))
        .bind(column(rows, |r| r.0.read_us))
        .bind(column(rows, |r| r.0.verify_us));
    q.fetch_all(conn).await
}

/// Inserts every row's headers and body into `ingest_payloads` with one `UNNEST` statement.
///
/// # Errors
/// The statement fails.
pub(crate) async fn insert_payloads(
    conn: &mut PgConnection,
    rows: &[NewIngest],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ingest_payloads (id, headers, body) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[])",
    )
    .bind(column(rows, |r| r.id.as_str()))
    .bind(column(rows, |r| r.headers.as_str()))
    .bind(column(rows, |r| r.body.as_ref()))
    .execute(conn)
    .await
    .map(|_| ())
}

/// Reads the claimed events `ids` with their payloads in one statement (`= ANY` of one array
/// parameter, planned once whatever the batch size).
///
/// # Errors
/// The statement fails.
pub(crate) async fn load_claimed(
    pool: &PgPool,
    ids: &[String],
) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CLAIMED_COLUMNS} FROM ingest JOIN ingest_payloads USING (id) WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// Sets each event's new status and releases its claim with one `UPDATE ... FROM UNNEST(...)`
/// (a `VALUES` list of five parameters a row cost the server more to parse and plan than to
/// run).
///
/// # Errors
/// The statement fails.
pub(crate) async fn update_finishes(
    conn: &mut PgConnection,
    finishes: &[Finish],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "WITH v (id, status, reason, email, next_at) AS (SELECT * FROM UNNEST($1::text[], \
         $2::text[], $3::text[], $4::text[], $5::bigint[])){FINISH_UPDATE}$6{FINISH_WHERE}"
    );
    sqlx::query(&sql)
        .bind(column(finishes, |f| f.id.as_str()))
        .bind(column(finishes, |f| f.status.as_str()))
        .bind(column(finishes, |f| f.reason.as_deref()))
        .bind(column(finishes, |f| f.email.as_deref()))
        .bind(column(finishes, |f| f.next_attempt_at))
        .bind(now_ms)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Inserts `fires` (each key once) with one `INSERT ... SELECT FROM UNNEST(...)`, in the
/// arrays' order, so sequence numbers follow it; returns the sequence number and key of each
/// fire inserted (a key stored already is skipped).
///
/// # Errors
/// The statement fails.
pub(crate) async fn insert_fires(
    conn: &mut PgConnection,
    fires: &[FireInsert<'_>],
    now_ms: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let sql = format!(
        "INSERT INTO fires ({FIRE_INSERT_COLUMNS}) SELECT k, w, t, p, i, e, pl, o, $9 \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::text[], $8::bigint[]) AS u (k, w, t, p, i, e, pl, o){FIRE_INSERT_CONFLICT}"
    );
    sqlx::query_as(&sql)
        .bind(column(fires, |f| f.key))
        .bind(column(fires, |f| f.workspace))
        .bind(column(fires, |f| f.trigger))
        .bind(column(fires, |f| f.provider))
        .bind(column(fires, |f| f.ingest_id))
        .bind(column(fires, |f| f.email))
        .bind(column(fires, |f| f.payload.as_str()))
        .bind(column(fires, |f| f.occurred_at))
        .bind(now_ms)
        .fetch_all(conn)
        .await
}

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
