//! The queries both backends share, written once and instantiated per backend by
//! [`store_queries!`]: the SQL is portable (`$n` placeholders, `ON CONFLICT`, `RETURNING`), and a
//! macro keeps the two instantiations from drifting apart without a generic `Database` parameter.

/// Column list of `ingest` in insert order.
pub(crate) const INGEST_COLUMNS: &str = "id, received_at, connection_id, provider, workspace, outcome, status, \
    http_status, event_id, event_type, duplicate_of, reason, client_addr, path, headers, body, body_size, \
    body_truncated, read_us, verify_us";

pub(crate) const SUMMARY_COLUMNS: &str = "id, received_at, connection_id, provider, workspace, outcome, status, \
    http_status, event_id, event_type, duplicate_of, reason, client_addr, body_size, read_us, verify_us, attempts, \
    status_reason, contact_email, processed_at";

pub(crate) const CONNECTION_COLUMNS: &str =
    "id, provider, workspace, secrets, tolerance_secs, allow_ips, auth, \
    email_path, rate_limit_per_sec, rate_limit_burst, enabled, source, created_at, updated_at";

/// Generates the shared query functions for one backend (`$db` is the sqlx database type).
macro_rules! store_queries {
    ($db:ty) => {
        use sqlx::{Acquire as _, QueryBuilder};

        use crate::db::rows::{ConnectionRow, IngestRow, IngestSummary};
        use crate::db::store::{CONNECTION_COLUMNS, INGEST_COLUMNS, SUMMARY_COLUMNS};
        use crate::db::{ConnectionWrite, IngestFilter, NewIngest, WriteOutcome};

        type Pool = sqlx::Pool<$db>;
        type Conn = <$db as sqlx::Database>::Connection;

        fn insert_sql(dedupe: bool) -> String {
            let placeholders: Vec<String> = (1..=20).map(|i| format!("${i}")).collect();
            let mut sql = format!("INSERT INTO ingest ({INGEST_COLUMNS}) VALUES ({})", placeholders.join(", "));
            if dedupe {
                sql.push_str(
                    " ON CONFLICT (connection_id, event_id) WHERE outcome IN ('accepted', 'ignored') DO NOTHING RETURNING id",
                );
            }
            sql
        }

        async fn insert_row(
            conn: &mut Conn,
            sql: &str,
            row: &NewIngest,
            outcome: &str,
            status: Option<&str>,
            duplicate_of: Option<&str>,
        ) -> Result<Option<String>, sqlx::Error> {
            sqlx::query_scalar::<_, String>(sql)
                .bind(&row.id)
                .bind(row.received_at)
                .bind(&row.connection_id)
                .bind(row.provider)
                .bind(row.workspace.as_deref())
                .bind(outcome)
                .bind(status)
                .bind(row.http_status)
                .bind(row.event_id.as_deref())
                .bind(row.event_type.as_deref())
                .bind(duplicate_of)
                .bind(row.reason.as_deref())
                .bind(row.client_addr.as_deref())
                .bind(&row.path)
                .bind(&row.headers)
                .bind(row.body.as_ref())
                .bind(row.body_size)
                .bind(row.body_truncated)
                .bind(row.read_us)
                .bind(row.verify_us)
                .fetch_optional(&mut *conn)
                .await
        }

        /// Writes a batch in one transaction (one commit, one fsync) and reports each row's
        /// outcome. Deduplication is the unique index, so it holds inside a batch (later rows see
        /// earlier ones) and across batches and processes.
        pub(crate) async fn write_batch(
            conn: &mut Conn,
            rows: &[NewIngest],
        ) -> Result<Vec<WriteOutcome>, sqlx::Error> {
            let dedupe_sql = insert_sql(true);
            let plain_sql = insert_sql(false);
            let mut tx = conn.begin().await?;
            let mut outcomes = Vec::with_capacity(rows.len());
            for row in rows {
                let outcome = match row.kind {
                    crate::db::IngestKind::Rejected => {
                        insert_row(&mut tx, &plain_sql, row, "rejected", None, None).await?;
                        WriteOutcome::Logged
                    }
                    crate::db::IngestKind::Accepted | crate::db::IngestKind::Ignored => {
                        let (outcome, status) = if matches!(row.kind, crate::db::IngestKind::Accepted) {
                            ("accepted", "pending")
                        } else {
                            ("ignored", "ignored")
                        };
                        match insert_row(&mut tx, &dedupe_sql, row, outcome, Some(status), None).await? {
                            Some(_) => WriteOutcome::Stored,
                            None => {
                                let first: String = sqlx::query_scalar(
                                    "SELECT id FROM ingest WHERE connection_id = $1 AND event_id = $2 \
                                     AND outcome IN ('accepted', 'ignored')",
                                )
                                .bind(&row.connection_id)
                                .bind(row.event_id.as_deref())
                                .fetch_one(&mut *tx)
                                .await?;
                                insert_row(&mut tx, &plain_sql, row, "duplicate", None, Some(&first)).await?;
                                WriteOutcome::Duplicate { first_id: first }
                            }
                        }
                    }
                };
                outcomes.push(outcome);
            }
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
                 auth = excluded.auth, email_path = excluded.email_path, rate_limit_per_sec = excluded.rate_limit_per_sec, \
                 rate_limit_burst = excluded.rate_limit_burst, enabled = excluded.enabled, source = excluded.source, \
                 updated_at = excluded.updated_at"
            } else {
                "ON CONFLICT (id) DO NOTHING"
            };
            let sql = format!(
                "INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) {conflict}"
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
                "SELECT {SUMMARY_COLUMNS}, path, headers, body, body_truncated FROM ingest WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await
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
