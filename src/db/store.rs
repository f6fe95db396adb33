//! The queries both backends share, written once and instantiated per backend by
//! [`store_queries!`]: the SQL is portable (`$n` placeholders, `ON CONFLICT`, `RETURNING`), and a
//! macro keeps the two instantiations from drifting apart without a generic `Database` parameter.

/// Column list of `ingest` in insert order.
pub(crate) const INGEST_COLUMNS: &str =
    "id, received_at, connection_id, provider, workspace, outcome, status, \
    http_status, event_id, event_type, duplicate_of, reason, client_addr, path, body_size, \
    body_truncated, read_us, verify_us";

pub(crate) const SUMMARY_COLUMNS: &str = "id, received_at, connection_id, provider, workspace, outcome, status, \
    http_status, event_id, event_type, duplicate_of, reason, client_addr, body_size, read_us, verify_us, attempts, \
    status_reason, contact_email, processed_at";

pub(crate) const CONNECTION_COLUMNS: &str =
    "id, provider, workspace, secrets, tolerance_secs, allow_ips, auth, \
    email_path, user_id_column, rate_limit_per_sec, rate_limit_burst, enabled, source, created_at, updated_at";

/// Generates the shared query functions for one backend (`$db` is the sqlx database type).
macro_rules! store_queries {
    ($db:ty) => {
        use sqlx::{Acquire as _, QueryBuilder};

        use crate::db::rows::{ConnectionRow, IngestRow, IngestSummary};
        use crate::db::store::{CONNECTION_COLUMNS, INGEST_COLUMNS, SUMMARY_COLUMNS};
        use crate::db::{ConnectionWrite, IngestFilter, NewIngest, WriteOutcome};

        type Pool = sqlx::Pool<$db>;
        type Conn = <$db as sqlx::Database>::Connection;

        /// Appends `rows` as one multi-row `VALUES` list, each with the given outcome and status.
        fn push_rows<'r>(
            q: &mut QueryBuilder<'r, $db>,
            rows: &[(&'r NewIngest, &'static str, Option<&'static str>, Option<&'r str>)],
        ) {
            q.push_values(rows.iter(), |mut b, (row, outcome, status, duplicate_of)| {
                b.push_bind(row.id.as_str())
                    .push_bind(row.received_at)
                    .push_bind(row.connection_id.as_str())
                    .push_bind(row.provider)
                    .push_bind(row.workspace.as_deref())
                    .push_bind(*outcome)
                    .push_bind(*status)
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
            });
        }

        /// Writes a batch in one transaction (one commit, one fsync) with as few statements as
        /// possible: one multi-row insert of the events (deduplicated by the unique index, which
        /// also covers two copies inside one batch), one lookup of the first ids of any
        /// duplicates, and one multi-row insert of the duplicate and rejected log rows.
        pub(crate) async fn write_batch(
            conn: &mut Conn,
            rows: &[NewIngest],
        ) -> Result<Vec<WriteOutcome>, sqlx::Error> {
            use std::collections::{HashMap, HashSet};
            use crate::db::IngestKind;
            let mut tx = conn.begin().await?;
            let mut events: Vec<_> = rows
                .iter()
                .filter_map(|row| match row.kind {
                    IngestKind::Accepted => Some((row, "accepted", Some("pending"), None)),
                    IngestKind::Ignored => Some((row, "ignored", Some("ignored"), None)),
                    IngestKind::Rejected => None,
                })
                .collect();
            // In key order, so that concurrent batches (PostgreSQL runs several writers) that
            // insert the same keys wait on each other in one order, never in a cycle.
            events.sort_by(|a, b| (a.0.connection_id.as_str(), a.0.event_id.as_deref()).cmp(&(b.0.connection_id.as_str(), b.0.event_id.as_deref())));
            let mut stored: HashSet<String> = HashSet::new();
            if !events.is_empty() {
                let mut q = QueryBuilder::<$db>::new(format!("INSERT INTO ingest ({INGEST_COLUMNS}) "));
                push_rows(&mut q, &events);
                q.push(" ON CONFLICT (connection_id, event_id) WHERE outcome IN ('accepted', 'ignored') DO NOTHING RETURNING id");
                let ids: Vec<String> = q.build_query_scalar().persistent(false).fetch_all(&mut *tx).await?;
                stored.extend(ids);
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
                        logged.push((row, "rejected", None, None));
                        outcomes.push(WriteOutcome::Logged);
                    }
                    _ if stored.contains(&row.id) => outcomes.push(WriteOutcome::Stored),
                    _ => {
                        let key = (row.connection_id.clone(), row.event_id.clone().unwrap_or_default());
                        let Some(first) = first_ids.get(&key) else {
                            return Err(sqlx::Error::RowNotFound);
                        };
                        logged.push((row, "duplicate", None, Some(first.as_str())));
                        outcomes.push(WriteOutcome::Duplicate { first_id: first.clone() });
                    }
                }
            }
            if !logged.is_empty() {
                let mut q = QueryBuilder::<$db>::new(format!("INSERT INTO ingest ({INGEST_COLUMNS}) "));
                push_rows(&mut q, &logged);
                q.build().persistent(false).execute(&mut *tx).await?;
            }
            // Every row, stored or logged, has its headers and body in `ingest_payloads`.
            let mut q = QueryBuilder::<$db>::new("INSERT INTO ingest_payloads (id, headers, body) ");
            q.push_values(rows.iter(), |mut b, row| {
                b.push_bind(row.id.as_str()).push_bind(row.headers.as_str()).push_bind(row.body.as_ref());
            });
            q.build().persistent(false).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(outcomes)
        }

        pub(crate) async fn ping(pool: &Pool) -> Result<(), sqlx::Error> {
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool).await.map(|_| ())
        }

        pub(crate) async fn list_connections(pool: &Pool) -> Result<Vec<ConnectionRow>, sqlx::Error> {
            sqlx::query_as(&format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY id"))
                .fetch_all(pool)
                .await
        }

        pub(crate) async fn get_connection(pool: &Pool, id: &str) -> Result<Option<ConnectionRow>, sqlx::Error> {
            sqlx::query_as(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
        }

        /// Inserts a connection; with `replace` an existing one is overwritten. Returns whether a
        /// row was written (false: it existed and `replace` was off).
        pub(crate) async fn put_connection(pool: &Pool, c: &ConnectionWrite<'_>, replace: bool) -> Result<bool, sqlx::Error> {
            let conflict = if replace {
                "ON CONFLICT (id) DO UPDATE SET provider = excluded.provider, workspace = excluded.workspace, \
                 secrets = excluded.secrets, tolerance_secs = excluded.tolerance_secs, allow_ips = excluded.allow_ips, \
                 auth = excluded.auth, email_path = excluded.email_path, user_id_column = excluded.user_id_column, rate_limit_per_sec = excluded.rate_limit_per_sec, \
                 rate_limit_burst = excluded.rate_limit_burst, enabled = excluded.enabled, source = excluded.source, \
                 updated_at = excluded.updated_at"
            } else {
                "ON CONFLICT (id) DO NOTHING"
            };
            let sql = format!(
                "INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) {conflict}"
            );
            let done = sqlx::query(&sql)
                .bind(c.id)
                .bind(c.provider)
                .bind(c.workspace)
                .bind(&c.secrets)
                .bind(c.tolerance_secs)
                .bind(&c.allow_ips)
                .bind(c.auth.as_deref())
                .bind(c.email_path)
                .bind(c.user_id_column)
                .bind(c.rate_limit_per_sec)
                .bind(c.rate_limit_burst)
                .bind(c.enabled)
                .bind(c.source)
                .bind(c.now_ms)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn set_enabled(pool: &Pool, id: &str, enabled: bool, now_ms: i64) -> Result<bool, sqlx::Error> {
            let done = sqlx::query("UPDATE connections SET enabled = $1, updated_at = $2 WHERE id = $3")
                .bind(enabled)
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn set_secrets(pool: &Pool, id: &str, secrets: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
            let done = sqlx::query("UPDATE connections SET secrets = $1, updated_at = $2 WHERE id = $3")
                .bind(secrets)
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }

        pub(crate) async fn delete_connection(pool: &Pool, id: &str) -> Result<bool, sqlx::Error> {
            let done = sqlx::query("DELETE FROM connections WHERE id = $1").bind(id).execute(pool).await?;
            Ok(done.rows_affected() > 0)
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

        pub(crate) async fn fire_count(pool: &Pool) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar("SELECT COUNT(*) FROM fires").fetch_one(pool).await
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
    };
}

pub(crate) use store_queries;
