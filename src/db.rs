//! The storage facade: `Db` is SQLite or PostgreSQL, chosen from the URL at start.
//!
//! Callers see intent-named async methods; each is a two-arm `match` into `db::sqlite` or
//! `db::postgres`, whose shared queries are generated from one definition per table group in
//! `db::sql`.
//! Transactions never leave these methods.

mod cache;
mod custom;
mod postgres;
pub mod rows;
mod sql;
pub(crate) mod sqlite;

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::Deserialize;
use sqlx::{PgPool, SqlitePool};

use crate::resolution::{Applied, EventPlan};
pub use cache::{Known, Learned};
pub use custom::FireWrite;
use rows::{
    ApiKeyRow, ClaimedEvent, ConnectionRow, ContactRow, FireRow, IngestRow, IngestSummary,
    TriggerRow,
};
pub use sqlite::PAGE_SIZE as SQLITE_PAGE_SIZE;

/// Events a pipeline worker claims and applies at a time on SQLite: see [`Db::pipeline_batch`].
pub const SQLITE_BATCH: i64 = 128;
/// Events a pipeline worker claims and applies at a time on PostgreSQL. Applies take turns on
/// one advisory lock, so what a batch costs apart from its rows (the claim, the lock, the
/// statements' round trips, the commit) is paid once per batch: with 256 a minute of the load
/// benchmark left a backlog of 163 000–169 000 events that took 49–57 s to drain, with 4 096
/// one of 5 000–77 000 that drained in 0.5–11 s (README, Performance). Under light load a
/// batch is whatever is pending, so this is only the most it takes. Its statements with a row
/// per event take arrays (`db/postgres.rs`); the few that take a list are cut into chunks
/// (`sql::chunks`), far under the bind limit.
pub const POSTGRES_BATCH: i64 = 4096;
/// Group-commit writers on PostgreSQL: see [`Db::parallel_writers`].
pub const POSTGRES_WRITERS: usize = 4;
/// Pipeline workers a process runs on PostgreSQL: see [`Db::pipeline_workers`].
pub const POSTGRES_PIPELINE_WORKERS: usize = 2;

/// The write `/readyz` commits after a failed batch (portable: both backends run it as is).
const PROBE_WRITE: &str = "INSERT INTO store_probe (id, probed_at) VALUES (1, $1) \
                           ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at";

/// SQLite `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: a committed event survives a power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash, not a power loss.
    Normal,
}

impl Durability {
    /// The name used on the command line and in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(format!("expected `full` or `normal`, got {other:?}")),
        }
    }
}

/// The SQL that differs between the backends; each backend module declares one as `DIALECT`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// Appended to the claim's row selection: PostgreSQL claims with `FOR UPDATE SKIP LOCKED`,
    /// so concurrent workers in several processes never claim the same event; SQLite
    /// serializes writers anyway.
    pub claim_skip_locked: &'static str,
    /// Run first in every apply transaction: PostgreSQL takes a transaction-scoped advisory
    /// lock, so fire sequence numbers are assigned in commit order (a reader paging by `seq`
    /// can never skip a fire that commits later with a smaller number) and contact
    /// read-modify-writes never race. SQLite's one writer connection already does both.
    pub apply_lock: Option<&'static str>,
}

/// The store.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite {
        readers: SqlitePool,
        writer: SqlitePool,
    },
    Postgres(PgPool),
}

/// What kind of ingest row to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestKind {
    /// A verified event hookgate maps: stored `accepted`, processing `pending`.
    Accepted,
    /// A verified event of a type hookgate does not map: stored `ignored`.
    Ignored,
    /// A rejected request, logged for operators.
    Rejected,
}

/// One row for the ingest log, built by the receive handler.
#[derive(Debug, Clone)]
pub struct NewIngest {
    pub id: String,
    pub kind: IngestKind,
    pub received_at: i64,
    pub connection_id: String,
    pub provider: &'static str,
    pub workspace: Option<String>,
    pub http_status: i32,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub reason: Option<String>,
    pub client_addr: Option<String>,
    pub path: String,
    pub headers: String,
    pub body: Bytes,
    pub body_size: i64,
    pub body_truncated: bool,
    pub read_us: Option<i64>,
    pub verify_us: Option<i64>,
}

/// What the ingest log says happened to a delivery (the `ingest.outcome` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Outcome {
    /// A verified event hookgate maps, stored for processing.
    Accepted,
    /// A verified event whose id was stored before.
    Duplicate,
    /// A verified event of a type hookgate does not map, stored.
    Ignored,
    /// A refused request.
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::Ignored,
        Outcome::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
        }
    }
}

/// What happened to one row of a committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A new event was stored.
    Stored,
    /// The event id was stored before; the delivery was logged as a duplicate of `first_id`.
    Duplicate { first_id: String },
    /// A rejected request was logged.
    Logged,
}

/// The longest run [`runs`] makes.
pub const MAX_RUN: usize = 256;

/// Splits `rows` into runs whose lengths are powers of two (at most [`MAX_RUN`]), longest
/// first. A multi-row statement built for each run is then one of nine texts whatever the
/// batch size, so the connection's statement cache keeps it prepared, where a text of the
/// batch's exact size would be parsed and planned again at nearly every batch.
pub fn runs<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let longest = 1usize << (usize::BITS - 1 - rest.len().leading_zeros());
        let (run, tail) = rest.split_at(longest.min(MAX_RUN));
        rest = tail;
        Some(run)
    })
}

/// A connection as written to the database (secrets as a JSON array).
#[derive(Debug)]
pub struct ConnectionWrite<'a> {
    pub id: &'a str,
    pub provider: &'a str,
    pub workspace: &'a str,
    pub secrets: String,
    pub tolerance_secs: Option<i64>,
    pub allow_ips: String,
    pub auth: Option<String>,
    pub email_path: Option<&'a str>,
    pub user_id_column: Option<&'a str>,
    pub rate_limit_per_sec: Option<i64>,
    pub rate_limit_burst: Option<i64>,
    pub enabled: bool,
    pub source: &'a str,
    pub now_ms: i64,
}

/// Filters of `GET /admin/ingest` and `hookgate logs`.
#[derive(Debug, Clone, Default)]
pub struct IngestFilter {
    pub connection: Option<String>,
    pub provider: Option<String>,
    pub outcome: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<String>,
    /// Newest first, strictly older than this id (the cursor).
    pub before_id: Option<String>,
    /// Oldest first, strictly newer than this id (`logs --follow`).
    pub after_id: Option<String>,
    pub limit: u32,
}

/// Filters of `GET /v1/events`.
#[derive(Debug, Clone, Default)]
pub struct FireFilter {
    pub after_seq: i64,
    pub trigger_id: Option<String>,
    pub workspace: Option<String>,
    pub created_after: Option<i64>,
    pub created_before: Option<i64>,
    pub limit: i64,
    /// The newest `limit` matching fires (still returned oldest first) instead of the oldest
    /// after `after_seq` (`hookgate events`).
    pub newest: bool,
}

/// Calls the backend function `$f` (of the caller's `sqlite` and `postgres` modules) with the
/// reader pool (`read`) or the writer pool (`write`). The delivery and drain stores use it too.
macro_rules! dispatch {
    (read $self:expr, $f:ident($($arg:expr),*)) => {
        match $self {
            $crate::db::Db::Sqlite { readers, .. } => sqlite::$f(readers $(, $arg)*).await,
            $crate::db::Db::Postgres(pool) => postgres::$f(pool $(, $arg)*).await,
        }
    };
    (write $self:expr, $f:ident($($arg:expr),*)) => {
        match $self {
            $crate::db::Db::Sqlite { writer, .. } => sqlite::$f(writer $(, $arg)*).await,
            $crate::db::Db::Postgres(pool) => postgres::$f(pool $(, $arg)*).await,
        }
    };
    // A write that need not survive a power loss, given a connection: on SQLite it commits
    // without waiting for the disk (see `db::sqlite::relax_sync`); on PostgreSQL as any write.
    (unsynced $self:expr, $f:ident($($arg:expr),*)) => {
        match $self {
            $crate::db::Db::Sqlite { writer, .. } => {
                let mut conn = writer.acquire().await?;
                let relaxed = $crate::db::sqlite::relax_sync(&mut conn).await?;
                let done = sqlite::$f(&mut conn $(, $arg)*).await;
                $crate::db::sqlite::restore_sync(conn, relaxed).await?;
                done
            }
            $crate::db::Db::Postgres(pool) => {
                postgres::$f(&mut *pool.acquire().await? $(, $arg)*).await
            }
        }
    };
}
pub(crate) use dispatch;

macro_rules! reencrypt_rows {
    ($pool:expr, $column:expr, $key:expr) => {{
        let column: &crate::crypto::EncryptedColumn = $column;
        let rows: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT {id}, {col} FROM {table} ORDER BY {id}",
            id = column.id_column,
            col = column.column,
            table = column.table
        ))
        .fetch_all($pool)
        .await?;
        let update = format!(
            "UPDATE {table} SET {col} = $1 WHERE {id} = $2 AND {col} = $3",
            id = column.id_column,
            col = column.column,
            table = column.table
        );
        let mut done = 0;
        for (id, stored) in &rows {
            let plaintext = column.decode_value(id, stored, Some($key)).map_err(|e| {
                anyhow::anyhow!("{} {id:?}: {e}", column.table.trim_end_matches('s'))
            })?;
            // Compare-and-set: a row changed meanwhile (a rotation) keeps its newer value.
            sqlx::query(&update)
                .bind(column.encode_value(id, &plaintext, Some($key)))
                .bind(id)
                .bind(stored)
                .execute($pool)
                .await?;
            done += 1;
        }
        done
    }};
}

/// Rewrites every value of `column` encrypted with `key` (see
/// [`crate::connections::reencrypt`]); returns how many rows were rewritten.
///
/// # Errors
/// A value that `key` and its previous keys cannot open, named by its row; a database error.
pub async fn reencrypt_column(
    db: &Db,
    column: &crate::crypto::EncryptedColumn,
    key: &crate::crypto::SecretKey,
) -> anyhow::Result<usize> {
    Ok(match db {
        Db::Sqlite { writer, .. } => reencrypt_rows!(writer, column, key),
        Db::Postgres(pool) => reencrypt_rows!(pool, column, key),
    })
}

impl Db {
    /// Opens the database named by `url` (`sqlite:` or `postgres://`).
    ///
    /// # Errors
    /// The database cannot be opened or reached.
    pub async fn connect(url: &str, durability: Durability) -> Result<Db, sqlx::Error> {
        if url.starts_with("sqlite:") {
            let (readers, writer) = sqlite::open(url, durability).await?;
            Ok(Db::Sqlite { readers, writer })
        } else {
            Ok(Db::Postgres(postgres::open(url).await?))
        }
    }

    /// Connects to PostgreSQL with `search_path` set to `schema` (test isolation).
    ///
    /// # Errors
    /// The server cannot be reached.
    pub async fn connect_postgres_schema(url: &str, schema: &str) -> Result<Db, sqlx::Error> {
        Ok(Db::Postgres(postgres::open_in_schema(url, schema).await?))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Applies the embedded migrations for this backend.
    ///
    /// # Errors
    /// A migration fails or the recorded history differs from the embedded files.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Db::Sqlite { writer, .. } => sqlx::migrate!("migrations/sqlite").run(writer).await,
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        }
    }

    /// Writes a batch of ingest rows in one transaction.
    ///
    /// # Errors
    /// Any database error: the whole batch is then not committed.
    pub async fn write_batch(&self, rows: &[NewIngest]) -> Result<Vec<WriteOutcome>, sqlx::Error> {
        match self {
            Db::Sqlite { writer, .. } => {
                sqlite::write_batch(&mut *writer.acquire().await?, rows).await
            }
            Db::Postgres(pool) => postgres::write_batch(&mut *pool.acquire().await?, rows).await,
        }
    }

    /// Whether the ingest writer applies the events it stores in the same transaction
    /// ([`Db::write_and_apply`]). On SQLite, which has one writer, that saves the pipeline's
    /// claim, payload read and status rewrite of every event and a commit of its own; on
    /// PostgreSQL the parallel writers would serialize on the apply lock, so its pipeline
    /// workers apply instead.
    pub fn applies_inline(&self) -> bool {
        matches!(self, Db::Sqlite { .. })
    }

    /// Writes a batch like [`Db::write_batch`] and applies the plans `plan` makes for the events
    /// it stored, in the same transaction; `None` results when the apply failed and was rolled
    /// back on its own (the events are then left `pending` for the pipeline).
    ///
    /// # Errors
    /// Any database error of the write: the whole batch is then not committed.
    pub async fn write_and_apply<F>(
        &self,
        rows: &[NewIngest],
        plan: F,
        known: &Known,
        now_ms: i64,
    ) -> Result<(Vec<WriteOutcome>, Option<Vec<Applied>>), sqlx::Error>
    where
        F: FnOnce(&[&NewIngest]) -> Vec<EventPlan>,
    {
        let mut learned = Learned::default();
        let written = match self {
            Db::Sqlite { writer, .. } => {
                let mut conn = writer.acquire().await?;
                sqlite::write_and_apply(&mut conn, rows, plan, known, &mut learned, now_ms).await
            }
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                postgres::write_and_apply(&mut conn, rows, plan, known, &mut learned, now_ms).await
            }
        }?;
        // Only what committed is learned.
        known.learn(learned);
        Ok(written)
    }

    /// Whether the store answers a query.
    ///
    /// # Errors
    /// The store cannot be reached.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        dispatch!(read self, ping())
    }

    /// Whether a write can commit now (`/readyz` after a failed batch): commits a one-row write.
    ///
    /// # Errors
    /// The store cannot take a write.
    pub async fn probe_write(&self) -> Result<(), sqlx::Error> {
        dispatch!(write self, probe_write())
    }

    pub async fn list_connections(&self) -> Result<Vec<ConnectionRow>, sqlx::Error> {
        dispatch!(read self, list_connections())
    }

    pub async fn get_connection(&self, id: &str) -> Result<Option<ConnectionRow>, sqlx::Error> {
        dispatch!(read self, get_connection(id))
    }

    /// Inserts (or with `replace`, upserts) a connection; false when it existed and `replace` was
    /// off.
    pub async fn put_connection(
        &self,
        c: &ConnectionWrite<'_>,
        replace: bool,
    ) -> Result<bool, sqlx::Error> {
        dispatch!(write self, put_connection(c, replace))
    }

    pub async fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        dispatch!(write self, set_enabled(id, enabled, now_ms))
    }

    pub async fn set_secrets(
        &self,
        id: &str,
        secrets_json: &str,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        dispatch!(write self, set_secrets(id, secrets_json, now_ms))
    }

    pub async fn delete_connection(&self, id: &str) -> Result<bool, sqlx::Error> {
        dispatch!(write self, delete_connection(id))
    }

    pub async fn list_ingest(
        &self,
        filter: &IngestFilter,
    ) -> Result<Vec<IngestSummary>, sqlx::Error> {
        dispatch!(read self, list_ingest(filter))
    }

    pub async fn get_ingest(&self, id: &str) -> Result<Option<IngestRow>, sqlx::Error> {
        dispatch!(read self, get_ingest(id))
    }

    /// Every stored event id of a connection.
    pub async fn stored_event_ids(&self, connection_id: &str) -> Result<Vec<String>, sqlx::Error> {
        dispatch!(read self, stored_event_ids(connection_id))
    }

    /// Stored events still waiting for the pipeline.
    pub async fn pending_count(&self) -> Result<i64, sqlx::Error> {
        dispatch!(read self, pending_count())
    }

    pub async fn fire_count(&self) -> Result<i64, sqlx::Error> {
        dispatch!(read self, fire_count())
    }

    /// How many stored (accepted or ignored) events carry this id on this connection: 0 or 1.
    pub async fn count_stored(
        &self,
        connection_id: &str,
        event_id: &str,
    ) -> Result<i64, sqlx::Error> {
        dispatch!(read self, count_stored(connection_id, event_id))
    }

    /// Claims due events for `worker` with a lease of `lease_ms`.
    pub async fn claim_events(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
        dispatch!(write self, claim_events(worker, now_ms, lease_ms, limit))
    }

    /// A stored (accepted or ignored) event, for a replay.
    pub async fn load_event(&self, id: &str) -> Result<Option<ClaimedEvent>, sqlx::Error> {
        dispatch!(read self, load_event(id))
    }

    /// Applies processing results in one transaction.
    ///
    /// # Errors
    /// Any database error: nothing of the batch is then committed.
    pub async fn apply_plans(
        &self,
        plans: &[EventPlan],
        known: &Known,
        now_ms: i64,
    ) -> Result<Vec<Applied>, sqlx::Error> {
        let mut learned = Learned::default();
        let applied = match self {
            Db::Sqlite { writer, .. } => {
                let mut conn = writer.acquire().await?;
                sqlite::apply_plans(&mut conn, plans, known, &mut learned, now_ms).await
            }
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                postgres::apply_plans(&mut conn, plans, known, &mut learned, now_ms).await
            }
        }?;
        // Only what committed is learned.
        known.learn(learned);
        Ok(applied)
    }

    pub async fn insert_test_fire(
        &self,
        key: &str,
        workspace: &str,
        trigger_id: &str,
        email: Option<&str>,
        payload: &serde_json::Map<String, serde_json::Value>,
        now_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        match self {
            Db::Sqlite { writer, .. } => {
                sqlite::insert_test_fire(
                    &mut *writer.acquire().await?,
                    key,
                    workspace,
                    trigger_id,
                    email,
                    payload,
                    now_ms,
                )
                .await
            }
            Db::Postgres(pool) => {
                postgres::insert_test_fire(
                    &mut *pool.acquire().await?,
                    key,
                    workspace,
                    trigger_id,
                    email,
                    payload,
                    now_ms,
                )
                .await
            }
        }
    }

    pub async fn list_fires(&self, filter: &FireFilter) -> Result<Vec<FireRow>, sqlx::Error> {
        dispatch!(read self, list_fires(filter))
    }

    pub async fn latest_fire_seq(&self) -> Result<i64, sqlx::Error> {
        dispatch!(read self, latest_fire_seq())
    }

    pub async fn fires_for_ingest(&self, ingest_id: &str) -> Result<Vec<i64>, sqlx::Error> {
        dispatch!(read self, fires_for_ingest(ingest_id))
    }

    pub async fn get_contact(
        &self,
        workspace: &str,
        email: &str,
    ) -> Result<Option<ContactRow>, sqlx::Error> {
        dispatch!(read self, get_contact(workspace, email))
    }

    pub async fn list_triggers(
        &self,
        workspace: Option<&str>,
    ) -> Result<Vec<TriggerRow>, sqlx::Error> {
        dispatch!(read self, list_triggers(workspace))
    }

    /// Stored events by processing status.
    pub async fn status_counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        dispatch!(read self, status_counts())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_api_key(
        &self,
        id: &str,
        hash: &str,
        name: &str,
        scopes: &str,
        now_ms: i64,
        workspace: Option<&str>,
        expires_at: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        dispatch!(write self, insert_api_key(id, hash, name, scopes, now_ms, workspace, expires_at))
    }

    pub async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        dispatch!(read self, get_api_key(id))
    }

    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
        dispatch!(read self, list_api_keys())
    }

    pub async fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
        dispatch!(write self, revoke_api_key(id, now_ms))
    }

    /// SQLite: a passive WAL checkpoint, caught up on the writer connection once the WAL is
    /// large (see `db::sqlite::checkpoint`); a no-op on PostgreSQL.
    /// Returns (frames in the WAL, frames checkpointed).
    pub async fn checkpoint(&self) -> Result<(i64, i64), sqlx::Error> {
        match self {
            Db::Sqlite { readers, writer } => sqlite::checkpoint(readers, writer).await,
            Db::Postgres(_) => Ok((0, 0)),
        }
    }

    /// How many group-commit writers run at once. SQLite has one writer connection; a
    /// PostgreSQL server overlaps the commits of several, which keeps the receive path from
    /// waiting on one round trip and WAL flush at a time.
    pub fn parallel_writers(&self) -> usize {
        match self {
            Db::Sqlite { .. } => 1,
            Db::Postgres(_) => POSTGRES_WRITERS,
        }
    }

    /// How many pipeline workers a process runs. On SQLite every apply goes through the one
    /// writer connection, so a second worker would only queue behind the first. On PostgreSQL
    /// one worker normalizes (CPU in this process) while another's batch is being claimed or
    /// applied (round trips and the server's work); applies still take turns on the advisory
    /// lock, so fire order stays exact.
    pub fn pipeline_workers(&self) -> usize {
        match self {
            Db::Sqlite { .. } => 1,
            Db::Postgres(_) => POSTGRES_PIPELINE_WORKERS,
        }
    }

    /// Events a pipeline worker claims and applies at a time. On SQLite the apply transaction
    /// holds the one writer connection, so every delivery waiting to be stored waits for it too:
    /// smaller batches keep that wait short, at the cost of more commits.
    pub fn pipeline_batch(&self) -> i64 {
        match self {
            Db::Sqlite { .. } => SQLITE_BATCH,
            Db::Postgres(_) => POSTGRES_BATCH,
        }
    }

    /// Refreshes the query planner's statistics (after a bulk load, as the benchmark's seeding;
    /// PostgreSQL's autovacuum does this by itself in normal running).
    pub async fn analyze(&self) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite { writer, .. } => sqlx::query("ANALYZE").execute(writer).await.map(|_| ()),
            Db::Postgres(pool) => sqlx::query("ANALYZE").execute(pool).await.map(|_| ()),
        }
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match self {
            Db::Sqlite { readers, writer } => {
                writer.close().await;
                // Leave a tidy database: everything checkpointed, the WAL truncated.
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(readers)
                    .await;
                readers.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    /// Runs cover every row once, in order, each a power of two no longer than the limit and
    /// none longer than the one before.
    #[test]
    fn runs_are_powers_of_two_covering_every_row() {
        for n in [0usize, 1, 2, 3, 31, 32, 33, 255, 256, 257, 511, 512, 1000] {
            let rows: Vec<usize> = (0..n).collect();
            let runs: Vec<&[usize]> = super::runs(&rows).collect();
            let flat: Vec<usize> = runs.iter().flat_map(|r| r.iter().copied()).collect();
            assert_eq!(flat, rows, "n = {n}");
            assert!(runs
                .iter()
                .all(|r| r.len().is_power_of_two() && r.len() <= super::MAX_RUN));
            assert!(runs.windows(2).all(|w| w[0].len() >= w[1].len()), "n = {n}");
        }
        assert_eq!(
            super::runs(&[0u8; 45]).map(<[u8]>::len).collect::<Vec<_>>(),
            [32, 8, 4, 1]
        );
    }

    /// A store this creates gets [`super::SQLITE_PAGE_SIZE`]; one created before with SQLite's
    /// default page size opens as it is, keeps it, and takes writes.
    #[tokio::test(flavor = "current_thread")]
    async fn new_sqlite_stores_get_the_page_size_and_old_ones_keep_theirs() {
        use sqlx::Connection as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let page_size = |db: &super::Db| {
            let super::Db::Sqlite { readers, .. } = db else {
                unreachable!("a SQLite store")
            };
            let readers = readers.clone();
            async move {
                sqlx::query_scalar::<_, i64>("PRAGMA page_size")
                    .fetch_one(&readers)
                    .await
                    .expect("page size")
            }
        };
        let fresh = format!("sqlite://{}", dir.path().join("new.db").display());
        let db = super::Db::connect(&fresh, super::Durability::Full)
            .await
            .expect("open");
        db.migrate().await.expect("migrate");
        assert_eq!(page_size(&db).await, i64::from(super::SQLITE_PAGE_SIZE));
        db.close().await;

        // A database as an earlier version made it: 4 KiB pages, already in WAL mode.
        let old = dir.path().join("old.db");
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", old.display()))
                .await
                .expect("create");
        for statement in [
            "PRAGMA page_size = 4096",
            "PRAGMA journal_mode = WAL",
            "CREATE TABLE made_before (x INTEGER)",
        ] {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect(statement);
        }
        conn.close().await.expect("close");
        let db = super::Db::connect(
            &format!("sqlite://{}", old.display()),
            super::Durability::Full,
        )
        .await
        .expect("open the old store");
        db.migrate().await.expect("migrate the old store");
        assert_eq!(page_size(&db).await, 4096);
        db.probe_write().await.expect("the old store takes writes");
        db.close().await;
    }

    /// The two migration directories must list the same versions and names.
    #[test]
    fn migrations_are_in_lockstep() {
        let list = |dir: &str| {
            let mut names: Vec<String> =
                std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                    .expect("migrations dir")
                    .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect();
            names.sort();
            names
        };
        let sqlite = list("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, list("postgres"));
    }
}
