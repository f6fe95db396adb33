//! The `drains` and `drain_outbox` tables: one definition of every query, instantiated for
//! SQLite and PostgreSQL by [`drain_queries!`]. Writes go to SQLite's one writer connection;
//! reads to its readers.

use super::record::OutboxRow;
use super::DrainSpec;
use crate::db::{dispatch, Db};

/// A drain's persisted progress.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DrainRow {
    pub id: String,
    /// The highest feed position sent (2xx).
    pub position: i64,
    /// Records sent (2xx), all time.
    pub sent: i64,
    pub last_success_at: Option<i64>,
}

const READ_BATCH: &str = "SELECT o.seq, o.kind, o.at, o.status AS o_status, o.reason AS o_reason, \
    o.ingest_id, i.connection_id, i.provider, i.workspace, i.outcome, i.http_status, i.event_id, \
    i.event_type, i.reason AS i_reason, i.duplicate_of, \
    o.delivery_seq, o.attempt, a.status_code, a.duration_ms, a.error, \
    d.endpoint_id, d.event_type AS d_event_type, d.workspace AS d_workspace, d.fire_seq, d.fire_created_at \
    FROM drain_outbox o \
    LEFT JOIN ingest i ON i.id = o.ingest_id \
    LEFT JOIN delivery_attempts a ON a.delivery_seq = o.delivery_seq AND a.attempt = o.attempt \
    LEFT JOIN deliveries d ON d.seq = o.delivery_seq \
    WHERE o.drain_id = $1 ORDER BY o.seq LIMIT $2";

macro_rules! drain_queries {
    ($db:ty) => {
        use sqlx::{Acquire as _, QueryBuilder};

        use super::{DrainRow, DrainSpec, OutboxRow, READ_BATCH};

        type Pool = sqlx::Pool<$db>;

        /// Makes the `drains` table what the config declares: upserts each drain, removes the
        /// others with their feeds (so the triggers stop writing rows nobody reads).
        pub(crate) async fn sync(pool: &Pool, specs: &[DrainSpec], now_ms: i64) -> Result<(), sqlx::Error> {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let existing: Vec<String> = sqlx::query_scalar("SELECT id FROM drains").fetch_all(&mut *tx).await?;
            for id in existing.iter().filter(|id| !specs.iter().any(|s| &s.id == *id)) {
                sqlx::query("DELETE FROM drain_outbox WHERE drain_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM drains WHERE id = $1").bind(id).execute(&mut *tx).await?;
            }
            for s in specs {
                sqlx::query(
                    "INSERT INTO drains (id, kind, url, rec_ingest, rec_delivery, rec_processing, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
                     url = excluded.url, rec_ingest = excluded.rec_ingest, rec_delivery = excluded.rec_delivery, \
                     rec_processing = excluded.rec_processing, updated_at = excluded.updated_at",
                )
                .bind(&s.id)
                .bind(s.kind.as_str())
                .bind(&s.url)
                .bind(s.ingest)
                .bind(s.delivery)
                .bind(s.processing)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }

        /// Takes (or keeps) the lease of drain `id` for `worker` until `until`.
        pub(crate) async fn claim(pool: &Pool, id: &str, worker: &str, now_ms: i64, until: i64) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE drains SET claimed_by = $2, claimed_until = $4 WHERE id = $1 \
                 AND (claimed_by IS NULL OR claimed_by = $2 OR claimed_until IS NULL OR claimed_until < $3)",
            )
            .bind(id)
            .bind(worker)
            .bind(now_ms)
            .bind(until)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// Drops every drain lease (SQLite: one gateway per database, so at start every lease
        /// belongs to a process that is gone).
        #[allow(dead_code, reason = "PostgreSQL leaves leases to expire")]
        pub(crate) async fn release_all(pool: &Pool) -> Result<u64, sqlx::Error> {
            let done = sqlx::query("UPDATE drains SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by IS NOT NULL")
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }

        /// The oldest `limit` unsent records of drain `id`, in feed order.
        pub(crate) async fn read_batch(pool: &Pool, id: &str, limit: i64) -> Result<Vec<OutboxRow>, sqlx::Error> {
            sqlx::query_as(READ_BATCH).bind(id).bind(limit).fetch_all(pool).await
        }

        /// After a 2xx: forgets the sent records and saves the drain's progress, in one
        /// transaction, only while this worker holds the lease.
        pub(crate) async fn ack(
            pool: &Pool,
            id: &str,
            worker: &str,
            seqs: &[i64],
            now_ms: i64,
        ) -> Result<bool, sqlx::Error> {
            let Some(max) = seqs.iter().max() else { return Ok(true) };
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let updated = sqlx::query(
                "UPDATE drains SET position = CASE WHEN position > $3 THEN position ELSE $3 END, sent = sent + $4, \
                 last_success_at = $5 WHERE id = $1 AND claimed_by = $2",
            )
            .bind(id)
            .bind(worker)
            .bind(*max)
            .bind(i64::try_from(seqs.len()).unwrap_or(i64::MAX))
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() != 1 {
                return Ok(false);
            }
            for chunk in seqs.chunks(500) {
                let mut q = QueryBuilder::<$db>::new("DELETE FROM drain_outbox WHERE drain_id = ");
                q.push_bind(id.to_owned()).push(" AND seq IN (");
                let mut list = q.separated(", ");
                for s in chunk {
                    list.push_bind(*s);
                }
                q.push(")");
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        }

        /// Unsent records of drain `id`, counted up to `cap`.
        pub(crate) async fn queued(pool: &Pool, id: &str, cap: i64) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM drain_outbox WHERE drain_id = $1 LIMIT $2) AS q",
            )
            .bind(id)
            .bind(cap)
            .fetch_one(pool)
            .await
        }

        pub(crate) async fn list(pool: &Pool) -> Result<Vec<DrainRow>, sqlx::Error> {
            sqlx::query_as("SELECT id, position, sent, last_success_at FROM drains ORDER BY id")
                .fetch_all(pool)
                .await
        }
    };
}

mod sqlite {
    drain_queries!(sqlx::Sqlite);
}

mod postgres {
    drain_queries!(sqlx::Postgres);
}

type R<T> = Result<T, sqlx::Error>;

/// Stores the config's drains and removes the rest (see the module's `sync`). On SQLite it also
/// drops every lease: a SQLite database has one gateway, and leases found at start are a
/// stopped process's.
pub async fn sync(db: &Db, specs: &[DrainSpec], now_ms: i64) -> R<()> {
    dispatch!(write db, sync(specs, now_ms))?;
    if let Db::Sqlite { writer, .. } = db {
        sqlite::release_all(writer).await?;
    }
    Ok(())
}
pub async fn claim(db: &Db, id: &str, worker: &str, now_ms: i64, until: i64) -> R<bool> {
    dispatch!(write db, claim(id, worker, now_ms, until))
}
pub async fn read_batch(db: &Db, id: &str, limit: i64) -> R<Vec<OutboxRow>> {
    dispatch!(read db, read_batch(id, limit))
}
pub async fn ack(db: &Db, id: &str, worker: &str, seqs: &[i64], now_ms: i64) -> R<bool> {
    dispatch!(write db, ack(id, worker, seqs, now_ms))
}
pub async fn queued(db: &Db, id: &str, cap: i64) -> R<i64> {
    dispatch!(read db, queued(id, cap))
}
pub async fn list(db: &Db) -> R<Vec<DrainRow>> {
    dispatch!(read db, list())
}
