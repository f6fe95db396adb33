//! The `ingest` and `ingest_payloads` tables: the group-committed ingest log, the processing
//! claims on it, and each stored event's processing status.

/// Column list of `ingest` in insert order.
pub(crate) const INGEST_COLUMNS: &str =
    "id, received_at, connection_id, provider, workspace, outcome, status, \
    http_status, event_id, event_type, duplicate_of, reason, client_addr, path, body_size, \
    body_truncated, read_us, verify_us";

pub(crate) const SUMMARY_COLUMNS: &str = "id, received_at, connection_id, provider, workspace, outcome, status, \
    http_status, event_id, event_type, duplicate_of, reason, client_addr, body_size, read_us, verify_us, attempts, \
    status_reason, contact_email, processed_at";

/// One row of a batch insert into `ingest`: the row, its outcome, its processing status, and
/// the id of the first delivery of the event it duplicates. Each backend inserts a batch of
/// them with `insert_ingest` (SQLite a multi-row `VALUES` list, PostgreSQL one `UNNEST` of
/// array parameters).
pub(crate) type IngestInsert<'r> = (
    &'r crate::db::NewIngest,
    crate::db::Outcome,
    Option<crate::resolution::Status>,
    Option<&'r str>,
);

/// Ends the insert of stored events: a second copy of a stored (connection, event id) is not
/// inserted (the unique index also covers two copies inside one batch); the ids inserted come back.
pub(crate) const STORED_CONFLICT: &str =
    " ON CONFLICT (connection_id, event_id) WHERE outcome IN ('accepted', 'ignored') DO NOTHING RETURNING id";

pub(crate) const CLAIMED_COLUMNS: &str =
    "id, connection_id, provider, workspace, event_id, event_type, headers, body, received_at, attempts";

/// The status update's tail after the `v` rows, up to the bind of the processing time.
pub(crate) const FINISH_UPDATE: &str = " UPDATE ingest SET status = v.status, \
     status_reason = v.reason, contact_email = COALESCE(v.email, ingest.contact_email), \
     next_attempt_at = v.next_at, processed_at = ";
/// What follows the processing time: releases the claim of each row in `v`.
pub(crate) const FINISH_WHERE: &str =
    ", claimed_by = NULL, claimed_until = NULL FROM v WHERE ingest.id = v.id";

macro_rules! ingest_queries {
    ($db:ty) => {
        use std::collections::{BTreeMap, HashMap, HashSet};

        use sqlx::{Acquire as _, QueryBuilder};

        use super::{Conn, Pool, DIALECT};
        use crate::db::rows::{ClaimedEvent, IngestRow, IngestSummary};
        use crate::db::sql::chunks;
        use crate::db::sql::ingest::{IngestInsert, CLAIMED_COLUMNS, SUMMARY_COLUMNS};
        use crate::db::{IngestFilter, IngestKind, NewIngest, Outcome, WriteOutcome};
        use crate::resolution::{EventPlan, Finish, Status};

        /// Writes a batch in one transaction (one commit, one fsync) with as few statements as
        /// possible: one multi-row insert of the events (deduplicated by the unique index, which
        /// also covers two copies inside one batch), one lookup of the first ids of any
        /// duplicates, and one multi-row insert of the duplicate and rejected log rows.
        pub(crate) async fn write_batch(
            conn: &mut Conn,
            rows: &[NewIngest],
        ) -> Result<Vec<WriteOutcome>, sqlx::Error> {
            let mut tx = conn.begin().await?;
            let outcomes = write_rows(&mut tx, rows).await?;
            tx.commit().await?;
            Ok(outcomes)
        }

        /// The statements of [`write_batch`], inside the caller's transaction.
        pub(crate) async fn write_rows(
            tx: &mut Conn,
            rows: &[NewIngest],
        ) -> Result<Vec<WriteOutcome>, sqlx::Error> {
            let mut events: Vec<IngestInsert<'_>> = rows
                .iter()
                .filter_map(|row| match row.kind {
                    IngestKind::Accepted => Some((row, Outcome::Accepted, Some(Status::Pending), None)),
                    IngestKind::Ignored => Some((row, Outcome::Ignored, Some(Status::Ignored), None)),
                    IngestKind::Rejected => None,
                })
                .collect();
            // In key order, so that concurrent batches (PostgreSQL runs several writers) that
            // insert the same keys wait on each other in one order, never in a cycle.
            events.sort_by(|a, b| (a.0.connection_id.as_str(), a.0.event_id.as_deref()).cmp(&(b.0.connection_id.as_str(), b.0.event_id.as_deref())));
            let mut stored: HashSet<String> = HashSet::new();
            if !events.is_empty() {
                stored.extend(super::insert_ingest(&mut *tx, &events, true).await?);
            }
            // Deliveries whose event was stored before (or earlier in this batch).
            let duplicates: Vec<&NewIngest> = events.iter().map(|e| e.0).filter(|r| !stored.contains(&r.id)).collect();
            let mut first_ids: HashMap<(String, String), String> = HashMap::new();
            if !duplicates.is_empty() {
                let mut q = QueryBuilder::<$db>::new(
                    "SELECT connection_id, event_id, id FROM ingest WHERE outcome IN ('accepted', 'ignored') AND (",
                );
                for (i, d) in duplicates.iter().enumerate() {
                    if i > 0 {
                        q.push(" OR ");
                    }
                    q.push("(connection_id = ").push_bind(d.connection_id.as_str());
                    q.push(" AND event_id = ").push_bind(d.event_id.as_deref()).push(")");
                }
                q.push(")");
                let found: Vec<(String, String, String)> = q.build_query_as().persistent(false).fetch_all(&mut *tx).await?;
                first_ids.extend(found.into_iter().map(|(c, e, id)| ((c, e), id)));
            }
            let mut outcomes = Vec::with_capacity(rows.len());
            let mut logged = Vec::new();
            for row in rows {
                match row.kind {
                    IngestKind::Rejected => {
                        logged.push((row, Outcome::Rejected, None, None));
                        outcomes.push(WriteOutcome::Logged);
                    }
                    _ if stored.contains(&row.id) => outcomes.push(WriteOutcome::Stored),
                    _ => {
                        let key = (row.connection_id.clone(), row.event_id.clone().unwrap_or_default());
                        let Some(first) = first_ids.get(&key) else {
                            return Err(sqlx::Error::RowNotFound);
                        };
                        logged.push((row, Outcome::Duplicate, None, Some(first.as_str())));
                        outcomes.push(WriteOutcome::Duplicate { first_id: first.clone() });
                    }
                }
            }
            if !logged.is_empty() {
                super::insert_ingest(&mut *tx, &logged, false).await?;
            }
            // Every row, stored or logged, has its headers and body in `ingest_payloads`.
            super::insert_payloads(&mut *tx, rows).await?;
            Ok(outcomes)
        }

        /// Counts one processing attempt for each of `ids` (events normalized in the
        /// transaction that stored them, without a claim).
        pub(crate) async fn count_attempt(conn: &mut Conn, ids: &[&str]) -> Result<(), sqlx::Error> {
            for chunk in chunks(ids) {
                let mut q = QueryBuilder::<$db>::new("UPDATE ingest SET attempts = attempts + 1 WHERE id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind((*id).to_owned());
                }
                q.push(")");
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        pub(crate) async fn ping(pool: &Pool) -> Result<(), sqlx::Error> {
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await.map(|_| ())
        }

        /// Newest first (or, with `ascending_after`, oldest first after an id: `logs --follow`).
        pub(crate) async fn list_ingest(pool: &Pool, f: &IngestFilter) -> Result<Vec<IngestSummary>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(format!("SELECT {SUMMARY_COLUMNS} FROM ingest WHERE 1 = 1"));
            if let Some(v) = &f.connection {
                q.push(" AND connection_id = ").push_bind(v.clone());
            }
            if let Some(v) = &f.provider {
                q.push(" AND provider = ").push_bind(v.clone());
            }
            if let Some(v) = &f.outcome {
                q.push(" AND outcome = ").push_bind(v.clone());
            }
            if let Some(v) = &f.event_type {
                q.push(" AND event_type = ").push_bind(v.clone());
            }
            if let Some(v) = &f.status {
                q.push(" AND status = ").push_bind(v.clone());
            }
            if let Some(after) = &f.after_id {
                q.push(" AND id > ").push_bind(after.clone());
                q.push(" ORDER BY id ASC");
            } else {
                if let Some(before) = &f.before_id {
                    q.push(" AND id < ").push_bind(before.clone());
                }
                q.push(" ORDER BY id DESC");
            }
            q.push(" LIMIT ").push_bind(i64::from(f.limit));
            q.build_query_as().fetch_all(pool).await
        }

        pub(crate) async fn get_ingest(pool: &Pool, id: &str) -> Result<Option<IngestRow>, sqlx::Error> {
            sqlx::query_as(&format!(
                "SELECT {SUMMARY_COLUMNS}, path, headers, body, body_truncated FROM ingest JOIN ingest_payloads USING (id) WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await
        }

        /// Every stored event id of a connection (the benchmark's zero-loss check).
        pub(crate) async fn stored_event_ids(pool: &Pool, connection_id: &str) -> Result<Vec<String>, sqlx::Error> {
            sqlx::query_scalar(
                "SELECT event_id FROM ingest WHERE connection_id = $1 AND outcome IN ('accepted', 'ignored')",
            )
            .bind(connection_id)
            .fetch_all(pool)
            .await
        }

        pub(crate) async fn pending_count(pool: &Pool) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar("SELECT COUNT(*) FROM ingest WHERE status = 'pending'").fetch_one(pool).await
        }

        pub(crate) async fn count_stored(pool: &Pool, connection_id: &str, event_id: &str) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM ingest WHERE connection_id = $1 AND event_id = $2 AND outcome IN ('accepted', 'ignored')",
            )
            .bind(connection_id)
            .bind(event_id)
            .fetch_one(pool)
            .await
        }

        /// Counts of stored events by processing status.
        pub(crate) async fn status_counts(pool: &Pool) -> Result<Vec<(String, i64)>, sqlx::Error> {
            sqlx::query_as("SELECT status, COUNT(*) FROM ingest WHERE status IS NOT NULL GROUP BY status ORDER BY status")
                .fetch_all(pool)
                .await
        }

        /// Claims up to `limit` events that are due: pending, or failed with a retry due, and not
        /// leased by a live worker (up to `limit` of each). Each claim counts as an attempt.
        ///
        /// The two kinds are separate index range scans on `(status, id)`, each already in id
        /// order: a single `status = 'pending' OR status = 'failed'` condition made PostgreSQL
        /// collect and sort every pending row at every claim, so the claim slowed down as the
        /// backlog grew, and the backlog grew faster (233 000 pending, 1 600 events/s).
        pub(crate) async fn claim_events(
            pool: &Pool,
            worker: &str,
            now_ms: i64,
            lease_ms: i64,
            limit: i64,
        ) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
            let sql = format!(
                "UPDATE ingest SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1 WHERE id IN (\
                 SELECT id FROM (SELECT id FROM ingest WHERE status = 'pending' \
                 AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY id LIMIT $4{skip}) AS due_pending \
                 UNION ALL \
                 SELECT id FROM (SELECT id FROM ingest WHERE status = 'failed' AND next_attempt_at <= $3 \
                 AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY id LIMIT $4{skip}) AS due_retries\
                 ) RETURNING id",
                skip = DIALECT.claim_skip_locked
            );
            let ids: Vec<String> = sqlx::query_scalar(&sql)
                .bind(worker)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut rows = super::load_claimed(pool, &ids).await?;
            rows.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(rows)
        }

        /// Loads one stored event for a replay.
        pub(crate) async fn load_event(pool: &Pool, id: &str) -> Result<Option<ClaimedEvent>, sqlx::Error> {
            sqlx::query_as(&format!(
                "SELECT {CLAIMED_COLUMNS} FROM ingest JOIN ingest_payloads USING (id) WHERE id = $1 AND outcome IN ('accepted', 'ignored')"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await
        }

        /// The ids of `plans` whose claim is still held by the worker that planned them (a
        /// worker whose lease expired and was taken over must not also apply).
        pub(crate) async fn still_claimed(conn: &mut Conn, plans: &[EventPlan]) -> Result<HashSet<String>, sqlx::Error> {
            let mut by_worker: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for plan in plans {
                if let Some(worker) = &plan.claimed_by {
                    by_worker.entry(worker.as_str()).or_default().push(plan.ingest_id.as_str());
                }
            }
            let mut owned = HashSet::new();
            for (worker, ids) in by_worker {
                for chunk in chunks(&ids) {
                    let mut q = QueryBuilder::<$db>::new("SELECT id FROM ingest WHERE claimed_by = ");
                    q.push_bind(worker.to_owned()).push(" AND id IN (");
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind((*id).to_owned());
                    }
                    q.push(")");
                    let rows: Vec<String> = q.build_query_scalar().fetch_all(&mut *conn).await?;
                    owned.extend(rows);
                }
            }
            Ok(owned)
        }

        /// Sets each event's new status and releases its claim.
        pub(crate) async fn write_finishes(conn: &mut Conn, finishes: &[Finish], now_ms: i64) -> Result<(), sqlx::Error> {
            super::update_finishes(conn, finishes, now_ms).await
        }

        /// Puts the `unresolved` events among `ids` back to `pending`; returns those it moved.
        pub(crate) async fn requeue_unresolved(conn: &mut Conn, ids: &[&String]) -> Result<HashSet<String>, sqlx::Error> {
            let mut requeued = HashSet::new();
            for chunk in chunks(ids) {
                let mut q = QueryBuilder::<$db>::new(
                    "UPDATE ingest SET status = 'pending', next_attempt_at = NULL, status_reason = NULL \
                     WHERE status = 'unresolved' AND id IN (",
                );
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind((*id).clone());
                }
                q.push(") RETURNING id");
                let rows: Vec<String> = q.build_query_scalar().fetch_all(&mut *conn).await?;
                requeued.extend(rows);
            }
            Ok(requeued)
        }
    };
}

pub(crate) use ingest_queries;
