//! The SQLite backend: a WAL database with one dedicated writer connection (SQLite has one writer
//! at a time, so the group-commit writer owns it) and a small pool of readers.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor as _, QueryBuilder, SqliteConnection, SqlitePool};

use crate::db::rows::ClaimedEvent;
use crate::db::sql::chunks;
use crate::db::sql::fires::{FireInsert, FIRE_INSERT_COLUMNS, FIRE_INSERT_CONFLICT};
use crate::db::sql::ingest::{
    IngestInsert, CLAIMED_COLUMNS, FINISH_UPDATE, FINISH_WHERE, INGEST_COLUMNS, STORED_CONFLICT,
};
use crate::db::{Durability, NewIngest};
use crate::resolution::{Finish, Status};

/// SQLite has one writer connection: claims need no row locks and applies no extra lock.
const DIALECT: crate::db::Dialect = crate::db::Dialect {
    claim_skip_locked: "",
    apply_lock: None,
};

crate::db::sql::backend_queries!(sqlx::Sqlite);

/// Inserts `rows` into `ingest` with a multi-row `VALUES` statement per run of
/// [`crate::db::runs`]. With `stored_events` a row whose event is stored already is skipped,
/// and the ids inserted are returned.
///
/// # Errors
/// A statement fails.
pub(crate) async fn insert_ingest(
    conn: &mut SqliteConnection,
    rows: &[IngestInsert<'_>],
    stored_events: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let mut stored = Vec::new();
    for run in crate::db::runs(rows) {
        stored.extend(insert_ingest_run(conn, run, stored_events).await?);
    }
    Ok(stored)
}

async fn insert_ingest_run(
    conn: &mut SqliteConnection,
    rows: &[IngestInsert<'_>],
    stored_events: bool,
) -> Result<Vec<String>, sqlx::Error> {
    let mut q =
        QueryBuilder::<sqlx::Sqlite>::new(format!("INSERT INTO ingest ({INGEST_COLUMNS}) "));
    q.push_values(
        rows.iter(),
        |mut b, (row, outcome, status, duplicate_of)| {
            b.push_bind(row.id.as_str())
                .push_bind(row.received_at)
                .push_bind(row.connection_id.as_str())
                .push_bind(row.provider)
                .push_bind(row.workspace.as_deref())
                .push_bind(outcome.as_str())
                .push_bind(status.map(Status::as_str))
                .push_bind(row.http_status)
                .push_bind(row.event_id.as_deref())
                .push_bind(row.event_type.as_deref())
                .push_bind(*duplicate_of)
                .push_bind(row.reason.as_deref())
                .push_bind(row.client_addr.as_deref())
                .push_bind(row.path.as_str())
                .push_bind(row.body_size)
                .push_bind(row.body_truncated)
                .push_bind(row.read_us)
                .push_bind(row.verify_us);
        },
    );
    if !stored_events {
        q.build().execute(conn).await?;
        return Ok(Vec::new());
    }
    q.push(STORED_CONFLICT);
    q.build_query_scalar().fetch_all(conn).await
}

/// Inserts every row's headers and body into `ingest_payloads`, one statement per run of
/// [`crate::db::runs`].
///
/// # Errors
/// A statement fails.
pub(crate) async fn insert_payloads(
    conn: &mut SqliteConnection,
    rows: &[NewIngest],
) -> Result<(), sqlx::Error> {
    for run in crate::db::runs(rows) {
        let mut q =
            QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO ingest_payloads (id, headers, body) ");
        q.push_values(run.iter(), |mut b, row| {
            b.push_bind(row.id.as_str())
                .push_bind(row.headers.as_str())
                .push_bind(row.body.as_ref());
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Reads the claimed events `ids` with their payloads, one `IN` list per chunk.
///
/// # Errors
/// A statement fails.
pub(crate) async fn load_claimed(
    pool: &SqlitePool,
    ids: &[String],
) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in chunks(ids) {
        let mut q = QueryBuilder::<sqlx::Sqlite>::new(format!(
            "SELECT {CLAIMED_COLUMNS} FROM ingest JOIN ingest_payloads USING (id) WHERE id IN ("
        ));
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(id.as_str());
        }
        q.push(")");
        rows.extend(q.build_query_as::<ClaimedEvent>().fetch_all(pool).await?);
    }
    Ok(rows)
}

/// Sets each event's new status and releases its claim, one `VALUES` list per chunk.
///
/// # Errors
/// A statement fails.
pub(crate) async fn update_finishes(
    conn: &mut SqliteConnection,
    finishes: &[Finish],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for chunk in chunks(finishes) {
        let mut q =
            QueryBuilder::<sqlx::Sqlite>::new("WITH v (id, status, reason, email, next_at) AS (");
        q.push_values(chunk, |mut row, f| {
            row.push_bind(f.id.as_str())
                .push_bind(f.status.as_str())
                .push_bind(f.reason.as_deref())
                .push_bind(f.email.as_deref())
                .push_bind(f.next_attempt_at);
        });
        q.push(")").push(FINISH_UPDATE);
        q.push_bind(now_ms);
        q.push(FINISH_WHERE);
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts `fires` (each key once), one `VALUES` list per chunk; returns the sequence number
/// and key of each fire inserted (a key stored already is skipped).
///
/// # Errors
/// A statement fails.
pub(crate) async fn insert_fires(
    conn: &mut SqliteConnection,
    fires: &[FireInsert<'_>],
    now_ms: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let mut inserted = Vec::with_capacity(fires.len());
    for chunk in chunks(fires) {
        let mut q = QueryBuilder::<sqlx::Sqlite>::new(format!(
            "INSERT INTO fires ({FIRE_INSERT_COLUMNS}) "
        ));
        q.push_values(chunk, |mut row, f| {
            row.push_bind(f.key)
                .push_bind(f.workspace)
                .push_bind(f.trigger)
                .push_bind(f.provider)
                .push_bind(f.ingest_id)
                .push_bind(f.email)
                .push_bind(f.payload.as_str())
                .push_bind(f.occurred_at)
                .push_bind(now_ms);
        });
        q.push(FIRE_INSERT_CONFLICT);
        inserted.extend(
            q.build_query_as::<(i64, String)>()
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(inserted)
}

/// The page size of a database this creates (an existing one keeps its own). Half SQLite's
/// default: most of what a batch writes is one entry each in two indexes with random keys (the
/// dedupe index on the provider's event id, the fires' idempotency keys), and each such entry
/// dirties a whole page that the commit appends to the WAL and the checkpoint copies back, so
/// smaller pages write less for the same entries.
pub const PAGE_SIZE: u32 = 2048;

/// Opens (creating if missing) the database at `url`.
///
/// # Errors
/// The file cannot be opened or created.
pub async fn open(
    url: &str,
    durability: Durability,
) -> Result<(SqlitePool, SqlitePool), sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?;
    if !url.contains(":memory:") && !url.contains("mode=memory") {
        create_private(options.get_filename()).map_err(sqlx::Error::Io)?;
    }
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(Duration::from_secs(5))
        .page_size(PAGE_SIZE)
        .foreign_keys(true);
    // One writer connection: every write goes through it, so SQLite never sees two writers of
    // ours contend for the lock (other processes, like the CLI, wait on the busy timeout).
    // Checkpoints never run on the writer's commit path (they set the tail latency and cost a
    // third of the throughput when they do); `checkpoint` runs them from a reader connection,
    // and on this one only between two transactions, to catch up once the WAL is large.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| Box::pin(refuse_read_only(conn)))
        .after_release(|conn, _| Box::pin(no_transaction_left_open(conn)))
        .connect_with(
            options
                .clone()
                .pragma("wal_autocheckpoint", "0")
                // Statement journals (multi-row upserts) in memory rather than temporary files,
                // and a 16 MiB page cache so the indexes the writer walks stay in memory
                // instead of being read back from the file at every batch.
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-16384")
                .pragma("journal_size_limit", "67108864")
                // Room for every multi-row statement the writer runs (see `db::runs`) beside
                // the fixed ones, so none is evicted and parsed again at the next batch.
                .statement_cache_capacity(512),
        )
        .await?;
    let readers = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok((readers, writer))
}

/// Creates `path` empty with mode 0600 (owner read and write only) if it does not exist yet, so
/// the database, which holds payloads with personal data, is not readable by other local users
/// whatever the umask. SQLite gives its `-wal` and `-shm` files the database file's mode. An
/// existing file keeps the mode it has (an operator may have chosen it).
///
/// # Errors
/// The file cannot be created.
pub fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Keeps the writer connection only if sqlx counts no transaction open on it.
///
/// sqlx counts transactions itself and never learns that SQLite rolled one back on its own. A
/// COMMIT that fails with an I/O error (disk full, files made read-only) is rolled back by
/// SQLite, but sqlx still counts it open (its `ROLLBACK` then fails too), so the next `begin()`
/// would become a SAVEPOINT, and after one more failure a `ROLLBACK TO` leaves that savepoint
/// open: from then on every "commit" only releases a nested savepoint inside a transaction that
/// never commits, succeeds without writing anything, and the gateway would answer 2xx for
/// events that are never stored. So a connection released with a transaction still counted
/// open is closed, and the pool opens a fresh one.
///
/// The count is read without a statement (this runs at every release of the writer, several
/// hundred times a second under load). Only when it is not zero does the check wait, with a
/// ping, for a rollback that a dropped transaction may have left queued on the connection's
/// thread, and read it again. Our code opens transactions only through sqlx (nothing else runs a
/// bare `BEGIN` on the writer but [`refuse_read_only`], which ends its own), so a count of zero
/// means SQLite has none open either.
async fn no_transaction_left_open(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::{Connection as _, TransactionManager as _};
    let depth = sqlx::sqlite::SqliteTransactionManager::get_transaction_depth;
    if depth(conn) == 0 {
        return Ok(true);
    }
    conn.ping().await?;
    if depth(conn) == 0 {
        return Ok(true);
    }
    tracing::warn!("closing the SQLite writer connection: a failed commit left a transaction open");
    Ok(false)
}

/// Refuses a writer connection SQLite opened read-only. SQLite falls back to read-only without
/// an error when the file cannot be opened for writing (made read-only or immutable), and such a
/// connection would keep failing every write after the file is writable again. A schema change
/// in a transaction that is rolled back needs a writable database and writes nothing.
async fn refuse_read_only(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    conn.execute("BEGIN").await?;
    let check = conn
        .execute("CREATE TABLE hookgate_write_check (x INTEGER)")
        .await;
    conn.execute("ROLLBACK").await?;
    match check {
        Err(sqlx::Error::Database(e)) if is_busy(e.as_ref()) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

/// SQLITE_BUSY or SQLITE_LOCKED (any extended code): another process holds the lock, which says
/// nothing about whether this connection can write.
fn is_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// Commits a write: proves a write can commit now. It must really reach the disk: a write that
/// matches no row, or one rolled back, only takes the lock and writes nothing, so it passes even
/// when the database files have become unwritable.
///
/// # Errors
/// The write cannot commit (busy past the timeout, read-only, I/O error).
pub async fn probe_write(writer: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query(super::PROBE_WRITE)
        .bind(crate::now_ms())
        .execute(writer)
        .await
        .map(|_| ())
}

/// Lets the next commits on `conn` skip the wait for the disk (`synchronous=NORMAL`), for
/// writes that need not survive a power loss (a delivery claim: every claim found at start is
/// released). In WAL mode they still reach the log in order, and the next commit that syncs
/// syncs them too, so they can never outlive a later durable commit's loss, nor the reverse.
/// Returns whether it changed the setting, for [`restore_sync`].
///
/// # Errors
/// The setting cannot be read or changed.
pub(crate) async fn relax_sync(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *conn)
        .await?;
    if level < 2 {
        return Ok(false);
    }
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    Ok(true)
}

/// Puts back what [`relax_sync`] changed. A connection that cannot be put back is closed
/// rather than returned to the pool, so no later commit is made with less durability than
/// configured.
///
/// # Errors
/// The setting cannot be changed back.
pub(crate) async fn restore_sync(
    mut conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    relaxed: bool,
) -> Result<(), sqlx::Error> {
    if relaxed {
        if let Err(error) = conn.execute("PRAGMA synchronous = FULL").await {
            conn.close_on_drop();
            return Err(error);
        }
    }
    Ok(())
}

/// WAL frames past which [`checkpoint`] also catches up on the writer connection: 16 MiB with
/// the [`PAGE_SIZE`] of a database this created (32 MiB in one created with 4 KiB pages).
pub const WAL_RESTART_FRAMES: i64 = 8192;

/// Copies the WAL into the database without blocking the writer (`PASSIVE`). When it gets
/// everything, the next write starts the WAL from its beginning again, so the file is reused
/// instead of growing (reused blocks also sync far faster than appended ones).
///
/// Under sustained load a checkpoint from a reader never gets everything: the writer commits
/// new frames while it copies, so the WAL would never restart and grows without bound (by
/// about 100 MB a second at full load, every write appending new blocks). So once the WAL holds
/// more than [`WAL_RESTART_FRAMES`], a second passive checkpoint runs on the writer
/// connection, between two of its transactions: it copies only what was committed since the
/// first one (the first did the bulk of the work off the writer), and the writer's next
/// transaction then restarts the WAL from its beginning.
///
/// # Errors
/// The database cannot be read.
pub async fn checkpoint(
    readers: &SqlitePool,
    writer: &SqlitePool,
) -> Result<(i64, i64), sqlx::Error> {
    const PASSIVE: &str = "PRAGMA wal_checkpoint(PASSIVE)";
    let (_busy, log, done): (i64, i64, i64) = sqlx::query_as(PASSIVE).fetch_one(readers).await?;
    if log < WAL_RESTART_FRAMES {
        return Ok((log, done));
    }
    let (_busy, log, done): (i64, i64, i64) = sqlx::query_as(PASSIVE).fetch_one(writer).await?;
    Ok((log, done))
}
