//! The SQLite backend: a WAL database with one dedicated writer connection (SQLite has one writer
//! at a time, so the group-commit writer owns it) and a small pool of readers.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::config::Durability;

crate::db::store::store_queries!(sqlx::Sqlite);
crate::db::processing::processing_queries!(sqlx::Sqlite, "", "");

/// Opens (creating if missing) the database at `url`.
///
/// # Errors
/// The file cannot be opened or created.
pub async fn open(
    url: &str,
    durability: Durability,
) -> Result<(SqlitePool, SqlitePool), sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    // One writer connection: every write goes through it, so SQLite never sees two writers of
    // ours contend for the lock (other processes, like the CLI, wait on the busy timeout).
    // Checkpoints never run on the writer's commit path (they set the tail latency and cost a
    // third of the throughput when they do); `checkpoint` runs them from a reader connection.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(
            options
                .clone()
                .pragma("wal_autocheckpoint", "0")
                .pragma("journal_size_limit", "67108864"),
        )
        .await?;
    let readers = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok((readers, writer))
}

/// Takes and releases the write lock: proves a write could commit now. A write statement
/// that matches no row still takes SQLite's write lock; the transaction guard rolls back even if
/// the caller stops waiting.
///
/// # Errors
/// The lock cannot be taken (busy past the timeout, read-only, I/O error).
pub async fn probe_write(writer: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = writer.begin().await?;
    sqlx::query("DELETE FROM connections WHERE id IS NULL")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await
}

/// Copies the WAL into the database without blocking the writer (`PASSIVE`). When it gets
/// everything, the next write starts the WAL from its beginning again, so the file is reused
/// instead of growing (reused blocks also sync faster than appended ones).
///
/// # Errors
/// The database cannot be read.
pub async fn checkpoint(readers: &SqlitePool) -> Result<(i64, i64), sqlx::Error> {
    let (_busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(readers)
        .await?;
    Ok((log, done))
}
