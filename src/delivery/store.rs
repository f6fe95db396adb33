//! Endpoints, deliveries and the attempt log in the database: one definition of every query,
//! instantiated for SQLite and PostgreSQL by [`delivery_queries!`]. Writes go to SQLite's one
//! writer connection; reads to its readers.

use serde::Serialize;

use crate::db::{dispatch, Db};

/// An endpoint row (secrets as stored: possibly encrypted).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub workspace: String,
    pub event_types: String,
    pub secrets: String,
    pub transform: Option<String>,
    pub max_in_flight: i64,
    pub rate_limit_per_sec: Option<i64>,
    pub ordered: bool,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<i64>,
    pub source: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EndpointRow {
    pub fn globs(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }
}

/// A delivery row as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub seq: i64,
    pub endpoint_id: String,
    pub fire_seq: i64,
    pub fire_created_at: i64,
    pub workspace: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub first_attempt_at: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which of an endpoint's due deliveries a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Only the oldest unfinished one, and only when it is due (an `ordered` endpoint).
    Ordered,
    /// Any due, oldest due first.
    Due,
    /// Only retries that are due (an endpoint whose circuit is open: new deliveries wait).
    Retries,
}

/// When an endpoint's oldest unfinished deliveries are due: new ones and retries apart.
#[derive(Debug)]
pub struct Due {
    pub endpoint: String,
    pub pending: Option<i64>,
    pub retrying: Option<i64>,
}

/// A claimed delivery, with what it takes to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub seq: i64,
    pub endpoint_id: String,
    pub fire_seq: i64,
    pub fire_created_at: i64,
    pub workspace: String,
    pub event_type: String,
    pub attempts: i64,
    pub first_attempt_at: Option<i64>,
    pub body: Option<Vec<u8>>,
    pub payload: String,
}

/// One line of the attempt log.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct AttemptRow {
    pub attempt: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub status_code: i64,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

/// What an endpoint write stores.
#[derive(Debug)]
pub struct EndpointWrite<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub workspace: &'a str,
    pub event_types: &'a [String],
    pub secrets: String,
    pub transform: Option<&'a str>,
    pub max_in_flight: i64,
    pub rate_limit_per_sec: Option<i64>,
    pub ordered: bool,
    pub enabled: bool,
    pub source: &'a str,
    pub now_ms: i64,
}

/// The end of one attempt.
#[derive(Debug, Clone)]
pub struct Finish {
    pub seq: i64,
    pub endpoint_id: String,
    pub worker: String,
    pub attempt: AttemptRow,
    /// retrying | succeeded | dead | skipped | paused
    pub status: &'static str,
    pub next_attempt_at: Option<i64>,
    /// The body sent, to store when none is stored yet.
    pub body: Option<Vec<u8>>,
    pub now_ms: i64,
}

/// Filters of the deliveries list and of bulk requeue.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint: Option<String>,
    pub status: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Newest first, strictly older than this row (the cursor).
    pub before_seq: Option<i64>,
    /// Oldest first, strictly newer than this row (`--follow`).
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// An event the gateway itself emits (`hookgate.endpoint.disabled`).
#[derive(Debug, Clone)]
pub struct OwnEvent {
    pub key: String,
    pub workspace: String,
    pub event_type: &'static str,
    pub payload: serde_json::Value,
}

/// Every delivery status.
pub const STATUSES: [&str; 6] = [
    "pending",
    "retrying",
    "succeeded",
    "dead",
    "skipped",
    "paused",
];

const ENDPOINT_COLUMNS: &str = "id, url, workspace, event_types, secrets, transform, max_in_flight, \
    rate_limit_per_sec, ordered, enabled, disabled_reason, failing_since, source, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "seq, endpoint_id, fire_seq, fire_created_at, workspace, event_type, status, \
    attempts, next_attempt_at, first_attempt_at, last_status_code, last_error, created_at, updated_at";

macro_rules! delivery_queries {
    ($db:ty, $skip_locked:literal) => {
        use sqlx::{Acquire as _, QueryBuilder};

        use super::{
            AttemptRow, ClaimedDelivery, DeliveryFilter, Due, Pick, DeliveryRow, EndpointRow, EndpointWrite,
            Finish, OwnEvent, DELIVERY_COLUMNS, ENDPOINT_COLUMNS,
        };

        type Pool = sqlx::Pool<$db>;
        type Conn = <$db as sqlx::Database>::Connection;

        pub(crate) async fn put_endpoint(pool: &Pool, e: &EndpointWrite<'_>, replace: bool) -> Result<bool, sqlx::Error> {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let conflict = if replace {
                "ON CONFLICT (id) DO UPDATE SET url = excluded.url, workspace = excluded.workspace, \
                 event_types = excluded.event_types, secrets = excluded.secrets, transform = excluded.transform, \
                 max_in_flight = excluded.max_in_flight, rate_limit_per_sec = excluded.rate_limit_per_sec, \
                 ordered = excluded.ordered, enabled = excluded.enabled, source = excluded.source, \
                 updated_at = excluded.updated_at"
            } else {
                "ON CONFLICT (id) DO NOTHING"
            };
            let done = sqlx::query(&format!(
                "INSERT INTO endpoints (id, url, workspace, event_types, secrets, transform, max_in_flight, \
                 rate_limit_per_sec, ordered, enabled, source, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) {conflict}"
            ))
            .bind(e.id)
            .bind(e.url)
            .bind(e.workspace)
            .bind(serde_json::to_string(e.event_types).unwrap_or_else(|_| "[\"*\"]".into()))
            .bind(&e.secrets)
            .bind(e.transform)
            .bind(e.max_in_flight)
            .bind(e.rate_limit_per_sec)
            .bind(e.ordered)
            .bind(e.enabled)
            .bind(e.source)
            .bind(e.now_ms)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM endpoint_event_types WHERE endpoint_id = $1").bind(e.id).execute(&mut *tx).await?;
            let mut globs: Vec<&String> = e.event_types.iter().collect();
            globs.sort();
            globs.dedup();
            let mut q = QueryBuilder::<$db>::new("INSERT INTO endpoint_event_types (endpoint_id, pattern) ");
            q.push_values(globs, |mut b, g| {
                b.push_bind(e.id.to_owned()).push_bind(g.clone());
            });
            q.build().execute(&mut *tx).await?;
            if !e.enabled {
                pause(&mut tx, e.id, e.now_ms).await?;
            }
            tx.commit().await?;
            Ok(true)
        }

        async fn pause(conn: &mut Conn, id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
            sqlx::query(
                "UPDATE deliveries SET status = 'paused', updated_at = $2 \
                 WHERE endpoint_id = $1 AND status IN ('pending', 'retrying')",
            )
            .bind(id)
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        pub(crate) async fn list_endpoints(pool: &Pool) -> Result<Vec<EndpointRow>, sqlx::Error> {
            sqlx::query_as(&format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints ORDER BY id")).fetch_all(pool).await
        }

        pub(crate) async fn get_endpoint(pool: &Pool, id: &str) -> Result<Option<EndpointRow>, sqlx::Error> {
            sqlx::query_as(&format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        }

        /// Enables or disables an endpoint. Disabling pauses its pending deliveries and, with
        /// `event`, emits that event in the same transaction; enabling puts paused deliveries
        /// back in line at once. Returns false when the endpoint does not exist.
        pub(crate) async fn set_endpoint_enabled(
            pool: &Pool,
            id: &str,
            enabled: bool,
            reason: Option<&str>,
            event: Option<&OwnEvent>,
            now_ms: i64,
        ) -> Result<bool, sqlx::Error> {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            // With an event to emit (the worker disabling an endpoint), only an endpoint that is
            // still enabled changes: several failing deliveries in flight emit one event.
            let only_if_enabled = if event.is_some() { " AND enabled" } else { "" };
            let done = sqlx::query(&format!(
                "UPDATE endpoints SET enabled = $1, disabled_reason = $2, updated_at = $3, \
                 failing_since = CASE WHEN $1 THEN NULL ELSE failing_since END WHERE id = $4{only_if_enabled}"
            ))
            .bind(enabled)
            .bind(reason)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            if enabled {
                sqlx::query(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, updated_at = $2 \
                     WHERE endpoint_id = $1 AND status = 'paused'",
                )
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            } else {
                pause(&mut tx, id, now_ms).await?;
            }
            if let Some(event) = event {
                insert_event(&mut tx, event, now_ms).await?;
            }
            tx.commit().await?;
            Ok(true)
        }

        /// Inserts an event of the gateway's own (the outbox trigger adds its deliveries).
        async fn insert_event(conn: &mut Conn, e: &OwnEvent, now_ms: i64) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO fires (idempotency_key, workspace, trigger_id, provider, ingest_id, email, payload, occurred_at, created_at) \
                 VALUES ($1, $2, $3, 'hookgate', NULL, NULL, $4, $5, $5) ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .bind(&e.key)
            .bind(&e.workspace)
            .bind(e.event_type)
            .bind(e.payload.to_string())
            .bind(now_ms)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        pub(crate) async fn set_endpoint_secrets(pool: &Pool, id: &str, secrets: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
            let done = sqlx::query("UPDATE endpoints SET secrets = $1, updated_at = $2 WHERE id = $3")
                .bind(secrets)
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        /// Deletes an endpoint. Its unfinished deliveries become `dead` (kept and listed,
        /// never silently dropped).
        pub(crate) async fn delete_endpoint(pool: &Pool, id: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let done = sqlx::query("DELETE FROM endpoints WHERE id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM endpoint_event_types WHERE endpoint_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query(
                "UPDATE deliveries SET status = 'dead', last_error = 'the endpoint was removed', updated_at = $2 \
                 WHERE endpoint_id = $1 AND status IN ('pending', 'retrying', 'paused')",
            )
            .bind(id)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        }

        /// Records a failed attempt for the endpoint's failure window; returns since when it
        /// has failed without a success in between.
        pub(crate) async fn note_failure(pool: &Pool, id: &str, now_ms: i64) -> Result<Option<i64>, sqlx::Error> {
            sqlx::query_scalar(
                "UPDATE endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1 RETURNING failing_since",
            )
            .bind(id)
            .bind(now_ms)
            .fetch_optional(pool)
            .await
            .map(Option::flatten)
        }

        /// Claims up to `limit` due deliveries of one endpoint for `worker` until `lease_until`,
        /// as `pick` says which. Returns their row numbers.
        pub(crate) async fn claim(
            conn: &mut Conn,
            endpoint_id: &str,
            worker: &str,
            now_ms: i64,
            lease_until: i64,
            limit: i64,
            pick: Pick,
        ) -> Result<Vec<i64>, sqlx::Error> {
            let pick = if pick == Pick::Ordered {
                "SELECT seq FROM (SELECT seq FROM deliveries WHERE endpoint_id = $3 \
                 AND status IN ('pending', 'retrying') ORDER BY fire_seq LIMIT $5) AS head"
                    .to_owned()
            } else {
                // One index range per status (`deliveries_due`), each read in its order and
                // cut at the limit, rather than a sort of every due row of the endpoint.
                let due = |status: &str| {
                    format!(
                        "SELECT seq, next_attempt_at FROM (SELECT seq, next_attempt_at FROM deliveries \
                         WHERE endpoint_id = $3 AND status = '{status}' AND next_attempt_at <= $4 \
                         AND (claimed_until IS NULL OR claimed_until < $4) \
                         ORDER BY next_attempt_at, seq LIMIT $5{skip}) AS due_{status}",
                        skip = $skip_locked
                    )
                };
                if pick == Pick::Retries {
                    format!("SELECT seq FROM {}", due("retrying"))
                } else {
                    format!(
                        "SELECT seq FROM ({} UNION ALL {}) AS due ORDER BY next_attempt_at, seq LIMIT $5",
                        due("retrying"),
                        due("pending")
                    )
                }
            };
            let sql = format!(
                "UPDATE deliveries SET claimed_by = $1, claimed_until = $2 WHERE seq IN ({pick}) \
                 AND status IN ('pending', 'retrying') AND next_attempt_at <= $4 \
                 AND (claimed_until IS NULL OR claimed_until < $4) RETURNING seq"
            );
            let seqs: Vec<i64> = sqlx::query_scalar(&sql)
                .bind(worker)
                .bind(lease_until)
                .bind(endpoint_id)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
            Ok(seqs)
        }

        /// What it takes to send the claimed deliveries `seqs` (a read: on SQLite it does not
        /// hold the writer connection).
        pub(crate) async fn claimed(pool: &Pool, seqs: &[i64]) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
            if seqs.is_empty() {
                return Ok(Vec::new());
            }
            let mut q = QueryBuilder::<$db>::new(
                "SELECT d.seq, d.endpoint_id, d.fire_seq, d.fire_created_at, d.workspace, d.event_type, d.attempts, \
                 d.first_attempt_at, d.body, f.payload FROM deliveries d JOIN fires f ON f.seq = d.fire_seq WHERE d.seq IN (",
            );
            let mut list = q.separated(", ");
            for seq in seqs {
                list.push_bind(*seq);
            }
            q.push(") ORDER BY d.seq");
            q.build_query_as().fetch_all(pool).await
        }

        /// Extends `worker`'s claim on a delivery; false when the claim is no longer its own.
        pub(crate) async fn renew(pool: &Pool, seq: i64, worker: &str, until: i64) -> Result<bool, sqlx::Error> {
            let done = sqlx::query("UPDATE deliveries SET claimed_until = $1 WHERE seq = $2 AND claimed_by = $3")
                .bind(until)
                .bind(seq)
                .bind(worker)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        /// Fixes the body a delivery sends on every attempt (written before the first send).
        pub(crate) async fn set_body(pool: &Pool, seq: i64, body: &[u8]) -> Result<(), sqlx::Error> {
            sqlx::query("UPDATE deliveries SET body = $1 WHERE seq = $2 AND body IS NULL")
                .bind(body)
                .bind(seq)
                .execute(pool)
                .await?;
            Ok(())
        }

        /// Records attempts and their deliveries' new states in one transaction (a group
        /// commit), each only if its `worker` still holds the claim; returns, per attempt,
        /// whether it was recorded. Endpoints with a success among them stop failing first
        /// (endpoint rows before delivery rows, each in key order, as every other transaction
        /// that touches both takes them, so two never wait on each other).
        pub(crate) async fn finish_batch(conn: &mut Conn, batch: &[Finish]) -> Result<Vec<bool>, sqlx::Error> {
            let mut tx = conn.begin().await?;
            let mut succeeded: Vec<&str> = batch
                .iter()
                .filter(|f| f.status == "succeeded")
                .map(|f| f.endpoint_id.as_str())
                .collect();
            succeeded.sort_unstable();
            succeeded.dedup();
            for id in succeeded {
                sqlx::query("UPDATE endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut order: Vec<&Finish> = batch.iter().collect();
            order.sort_by_key(|f| f.seq);
            // The attempt number each recorded delivery reached, by row.
            let mut reached: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
            for run in crate::db::runs(&order) {
                reached.extend(finish_rows(&mut tx, run).await?);
            }
            tx.commit().await?;
            Ok(batch.iter().map(|f| reached.contains_key(&f.seq)).collect())
        }

        /// Records attempts and their deliveries' new states with two statements: one update
        /// of every delivery whose claim its worker still holds (returning the attempt number it
        /// reached), then one insert of those attempts.
        async fn finish_rows(conn: &mut Conn, rows: &[&Finish]) -> Result<Vec<(i64, i64)>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(
                "WITH v (seq, status, next_at, started_at, code, error, now_ms, worker, body) AS (",
            );
            q.push_values(rows, |mut b, f| {
                b.push_bind(f.seq)
                    .push_bind(f.status)
                    .push_bind(f.next_attempt_at)
                    .push_bind(f.attempt.started_at)
                    .push_bind(f.attempt.status_code)
                    .push_bind(f.attempt.error.clone())
                    .push_bind(f.now_ms)
                    .push_bind(f.worker.clone())
                    .push_bind(f.body.clone());
            });
            q.push(
                ") UPDATE deliveries SET status = v.status, attempts = deliveries.attempts + 1, \
                 next_attempt_at = v.next_at, first_attempt_at = COALESCE(deliveries.first_attempt_at, v.started_at), \
                 last_status_code = v.code, last_error = v.error, claimed_by = NULL, claimed_until = NULL, \
                 updated_at = v.now_ms, body = COALESCE(deliveries.body, v.body) \
                 FROM v WHERE deliveries.seq = v.seq AND deliveries.claimed_by = v.worker \
                 RETURNING deliveries.seq, deliveries.attempts",
            );
            let reached: Vec<(i64, i64)> = q.build_query_as().fetch_all(&mut *conn).await?;
            if reached.is_empty() {
                return Ok(reached);
            }
            let numbers: std::collections::HashMap<i64, i64> = reached.iter().copied().collect();
            let recorded: Vec<(&Finish, i64)> = rows
                .iter()
                .filter_map(|f| numbers.get(&f.seq).map(|n| (*f, *n)))
                .collect();
            for run in crate::db::runs(&recorded) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO delivery_attempts (delivery_seq, attempt, started_at, duration_ms, status_code, error, response_body) ",
                );
                q.push_values(run, |mut b, (f, attempt)| {
                    b.push_bind(f.seq)
                        .push_bind(*attempt)
                        .push_bind(f.attempt.started_at)
                        .push_bind(f.attempt.duration_ms)
                        .push_bind(f.attempt.status_code)
                        .push_bind(f.attempt.error.clone())
                        .push_bind(f.attempt.response_body.clone());
                });
                q.push(" ON CONFLICT (delivery_seq, attempt) DO NOTHING");
                q.build().execute(&mut *conn).await?;
            }
            Ok(reached)
        }

        fn push_filter<'a>(q: &mut QueryBuilder<'a, $db>, f: &'a DeliveryFilter) {
            if let Some(v) = &f.endpoint {
                q.push(" AND endpoint_id = ").push_bind(v.as_str());
            }
            if let Some(v) = &f.status {
                q.push(" AND status = ").push_bind(v.as_str());
            }
            if let Some(v) = &f.event_type {
                q.push(" AND event_type = ").push_bind(v.as_str());
            }
            if let Some(v) = f.since {
                q.push(" AND fire_created_at >= ").push_bind(v);
            }
            if let Some(v) = f.until {
                q.push(" AND fire_created_at < ").push_bind(v);
            }
        }

        pub(crate) async fn list_deliveries(pool: &Pool, f: &DeliveryFilter) -> Result<Vec<DeliveryRow>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE 1 = 1"));
            push_filter(&mut q, f);
            if let Some(after) = f.after_seq {
                q.push(" AND seq > ").push_bind(after).push(" ORDER BY seq ASC");
            } else {
                if let Some(before) = f.before_seq {
                    q.push(" AND seq < ").push_bind(before);
                }
                q.push(" ORDER BY seq DESC");
            }
            q.push(" LIMIT ").push_bind(f.limit);
            q.build_query_as().fetch_all(pool).await
        }

        pub(crate) async fn get_delivery(pool: &Pool, seq: i64) -> Result<Option<DeliveryRow>, sqlx::Error> {
            sqlx::query_as(&format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE seq = $1"))
                .bind(seq)
                .fetch_optional(pool)
                .await
        }

        pub(crate) async fn attempts(pool: &Pool, seq: i64) -> Result<Vec<AttemptRow>, sqlx::Error> {
            sqlx::query_as(
                "SELECT attempt, started_at, duration_ms, status_code, error, response_body \
                 FROM delivery_attempts WHERE delivery_seq = $1 ORDER BY attempt",
            )
            .bind(seq)
            .fetch_all(pool)
            .await
        }

        /// Puts one delivery back in line now, whatever its status (a fresh give-up window).
        pub(crate) async fn resend(pool: &Pool, seq: i64, now_ms: i64) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, first_attempt_at = NULL, updated_at = $2 \
                 WHERE seq = $1",
            )
            .bind(seq)
            .bind(now_ms)
            .execute(pool)
            .await?;
            Ok(done.rows_affected() > 0)
        }

        /// Puts every delivery matching `f` back in line with a fresh schedule.
        pub(crate) async fn requeue(pool: &Pool, f: &DeliveryFilter, now_ms: i64) -> Result<u64, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new("UPDATE deliveries SET status = 'pending', next_attempt_at = ");
            q.push_bind(now_ms).push(", first_attempt_at = NULL, updated_at = ").push_bind(now_ms);
            q.push(" WHERE 1 = 1");
            push_filter(&mut q, f);
            Ok(q.build().execute(pool).await?.rows_affected())
        }

        /// The events of `workspace` in a time range (for an endpoint replay).
        pub(crate) async fn events_in_range(
            pool: &Pool,
            workspace: &str,
            since: Option<i64>,
            until: Option<i64>,
            event_type: Option<&str>,
        ) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new("SELECT seq, created_at, trigger_id FROM fires WHERE workspace = ");
            q.push_bind(workspace);
            if let Some(v) = since {
                q.push(" AND created_at >= ").push_bind(v);
            }
            if let Some(v) = until {
                q.push(" AND created_at < ").push_bind(v);
            }
            if let Some(v) = event_type {
                q.push(" AND trigger_id = ").push_bind(v);
            }
            q.push(" ORDER BY seq");
            q.build_query_as().fetch_all(pool).await
        }

        /// Queues deliveries of `events` (seq, created_at, type) to an endpoint: new rows for
        /// events it never had, existing ones put back in line (same body, same message id).
        pub(crate) async fn queue_events(
            pool: &Pool,
            endpoint_id: &str,
            workspace: &str,
            events: &[(i64, i64, String)],
            now_ms: i64,
        ) -> Result<u64, sqlx::Error> {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let mut n = 0;
            for chunk in events.chunks(300) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO deliveries (endpoint_id, fire_seq, fire_created_at, workspace, event_type, status, \
                     next_attempt_at, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, (seq, created_at, event_type)| {
                    b.push_bind(endpoint_id.to_owned())
                        .push_bind(*seq)
                        .push_bind(*created_at)
                        .push_bind(workspace.to_owned())
                        .push_bind(event_type.clone())
                        .push_bind("pending")
                        .push_bind(now_ms)
                        .push_bind(now_ms)
                        .push_bind(now_ms);
                });
                q.push(
                    " ON CONFLICT (endpoint_id, fire_seq) DO UPDATE SET status = 'pending', \
                     next_attempt_at = excluded.next_attempt_at, first_attempt_at = NULL, updated_at = excluded.updated_at",
                );
                n += q.build().execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(n)
        }

        /// The earliest due time of each endpoint's unfinished deliveries (a read, so the worker
        /// takes the writer only for endpoints that have something due).
        /// Two index lookups per endpoint (`deliveries_due`), whatever the backlog.
        pub(crate) async fn next_due(pool: &Pool) -> Result<Vec<Due>, sqlx::Error> {
            let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT e.id, \
                 (SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending'), \
                 (SELECT MIN(d.next_attempt_at) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'retrying') \
                 FROM endpoints e",
            )
            .fetch_all(pool)
            .await?;
            Ok(rows
                .into_iter()
                .filter(|(_, pending, retrying)| pending.is_some() || retrying.is_some())
                .map(|(endpoint, pending, retrying)| Due { endpoint, pending, retrying })
                .collect())
        }

        /// Unfinished deliveries per endpoint (pending or retrying). Counted in `deliveries_due`
        /// alone, one range per endpoint and status, never reading a row of the table: a slow
        /// endpoint's backlog of tens of thousands costs a few milliseconds to count.
        pub(crate) async fn backlog(pool: &Pool) -> Result<Vec<(String, i64)>, sqlx::Error> {
            sqlx::query_as(
                "SELECT e.id, \
                 (SELECT COUNT(*) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') + \
                 (SELECT COUNT(*) FROM deliveries d WHERE d.endpoint_id = e.id AND d.status = 'retrying') \
                 FROM endpoints e",
            )
            .fetch_all(pool)
            .await
        }

        /// Drops every claim (SQLite: one gateway process per database, so at start every
        /// claim is a leftover of a process that is gone).
        #[allow(dead_code, reason = "PostgreSQL leaves claims to expire")]
        pub(crate) async fn release_all_claims(pool: &Pool) -> Result<u64, sqlx::Error> {
            let done = sqlx::query("UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL WHERE claimed_by IS NOT NULL")
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }

        /// Paused deliveries past their give-up window become `dead`.
        pub(crate) async fn give_up_paused(pool: &Pool, give_up_ms: i64, now_ms: i64) -> Result<u64, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE deliveries SET status = 'dead', last_error = 'gave up while the endpoint was disabled', updated_at = $1 \
                 WHERE status = 'paused' AND COALESCE(first_attempt_at, created_at) < $2",
            )
            .bind(now_ms)
            .bind(now_ms - give_up_ms)
            .execute(pool)
            .await?;
            Ok(done.rows_affected())
        }
    };
}

mod sqlite {
    delivery_queries!(sqlx::Sqlite, "");
}

mod postgres {
    delivery_queries!(sqlx::Postgres, " FOR UPDATE SKIP LOCKED");
}

type R<T> = Result<T, sqlx::Error>;

pub async fn put_endpoint(db: &Db, e: &EndpointWrite<'_>, replace: bool) -> R<bool> {
    let done = dispatch!(write db, put_endpoint(e, replace));
    super::endpoints_changed();
    done
}
pub async fn list_endpoints(db: &Db) -> R<Vec<EndpointRow>> {
    dispatch!(read db, list_endpoints())
}
pub async fn get_endpoint(db: &Db, id: &str) -> R<Option<EndpointRow>> {
    dispatch!(read db, get_endpoint(id))
}
pub async fn set_endpoint_enabled(
    db: &Db,
    id: &str,
    enabled: bool,
    reason: Option<&str>,
    event: Option<&OwnEvent>,
    now_ms: i64,
) -> R<bool> {
    let done = dispatch!(write db, set_endpoint_enabled(id, enabled, reason, event, now_ms));
    super::endpoints_changed();
    done
}
pub async fn set_endpoint_secrets(db: &Db, id: &str, secrets: &str, now_ms: i64) -> R<bool> {
    let done = dispatch!(write db, set_endpoint_secrets(id, secrets, now_ms));
    super::endpoints_changed();
    done
}
pub async fn delete_endpoint(db: &Db, id: &str, now_ms: i64) -> R<bool> {
    let done = dispatch!(write db, delete_endpoint(id, now_ms));
    super::endpoints_changed();
    done
}
pub async fn note_failure(db: &Db, id: &str, now_ms: i64) -> R<Option<i64>> {
    dispatch!(write db, note_failure(id, now_ms))
}
#[allow(clippy::too_many_arguments)]
pub async fn claim(
    db: &Db,
    endpoint_id: &str,
    worker: &str,
    now_ms: i64,
    lease_until: i64,
    limit: i64,
    pick: Pick,
) -> R<Vec<ClaimedDelivery>> {
    // A claim need not survive a power loss: on SQLite every claim found at start is released
    // anyway (the process that held it is gone), so it commits without waiting for the disk,
    // and the next durable commit's sync carries it along.
    let seqs =
        dispatch!(unsynced db, claim(endpoint_id, worker, now_ms, lease_until, limit, pick))?;
    dispatch!(read db, claimed(&seqs))
}
pub async fn renew(db: &Db, seq: i64, worker: &str, until: i64) -> R<bool> {
    dispatch!(write db, renew(seq, worker, until))
}
pub async fn set_body(db: &Db, seq: i64, body: &[u8]) -> R<()> {
    dispatch!(write db, set_body(seq, body))
}
pub async fn finish_batch(db: &Db, batch: &[Finish]) -> R<Vec<bool>> {
    // On SQLite attempt results commit without waiting for the disk: the next commit that
    // does (the ingest writer's next batch, or the WAL sync that starts every checkpoint, at
    // most 250 ms later) makes them durable, in order. What a power loss could take is the
    // last few results, whose deliveries are then still claimed, released at start and sent
    // again: at least once, as after a crash between a send and its record. The writer's one
    // fsync a batch is then spent on what a provider waits for.
    dispatch!(unsynced db, finish_batch(batch))
}
pub async fn list_deliveries(db: &Db, f: &DeliveryFilter) -> R<Vec<DeliveryRow>> {
    dispatch!(read db, list_deliveries(f))
}
pub async fn get_delivery(db: &Db, seq: i64) -> R<Option<DeliveryRow>> {
    dispatch!(read db, get_delivery(seq))
}
pub async fn attempts(db: &Db, seq: i64) -> R<Vec<AttemptRow>> {
    dispatch!(read db, attempts(seq))
}
pub async fn resend(db: &Db, seq: i64, now_ms: i64) -> R<bool> {
    dispatch!(write db, resend(seq, now_ms))
}
pub async fn requeue(db: &Db, f: &DeliveryFilter, now_ms: i64) -> R<u64> {
    dispatch!(write db, requeue(f, now_ms))
}
pub async fn events_in_range(
    db: &Db,
    workspace: &str,
    since: Option<i64>,
    until: Option<i64>,
    event_type: Option<&str>,
) -> R<Vec<(i64, i64, String)>> {
    dispatch!(read db, events_in_range(workspace, since, until, event_type))
}
pub async fn queue_events(
    db: &Db,
    endpoint_id: &str,
    workspace: &str,
    events: &[(i64, i64, String)],
    now_ms: i64,
) -> R<u64> {
    dispatch!(write db, queue_events(endpoint_id, workspace, events, now_ms))
}
pub async fn next_due(db: &Db) -> R<Vec<Due>> {
    dispatch!(read db, next_due())
}
pub async fn backlog(db: &Db) -> R<Vec<(String, i64)>> {
    dispatch!(read db, backlog())
}
pub async fn give_up_paused(db: &Db, give_up_ms: i64, now_ms: i64) -> R<u64> {
    dispatch!(write db, give_up_paused(give_up_ms, now_ms))
}

/// Releases claims left by an earlier run. On SQLite (one gateway process per database) every
/// claim at start is such a leftover, so an interrupted delivery is sent again at once; on
/// PostgreSQL other live processes hold claims, so leftovers wait for their lease to expire.
pub async fn release_stale_claims(db: &Db) -> R<u64> {
    match db {
        Db::Sqlite { writer, .. } => sqlite::release_all_claims(writer).await,
        Db::Postgres(_) => Ok(0),
    }
}
