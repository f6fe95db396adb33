//! Custom triggers (rows of the `triggers` catalog with provider `custom`, defined rather than
//! learned) and custom fires (ingest rows of the `custom` source): finding the fire stored with
//! a key, and, for a process without the group-commit writer (the CLI), storing one in a
//! transaction of its own that also says what the first request with its key asked for.

macro_rules! custom_queries {
    ($db:ty) => {
        use sqlx::Acquire as _;

        use super::{Conn, Pool};
        use crate::db::rows::TriggerRow;
        use crate::db::sql::ingest::INGEST_COLUMNS;
        use crate::db::{FireWrite, NewIngest};

        /// Defines or redefines a custom trigger. Returns `Some(true)` when it is new,
        /// `Some(false)` when it was redefined, `None` when the id belongs to a trigger of
        /// another source (which a definition never overwrites).
        pub(crate) async fn define_trigger(
            pool: &Pool,
            workspace: &str,
            id: &str,
            schema_json: &str,
            now_ms: i64,
        ) -> Result<Option<bool>, sqlx::Error> {
            let first_seen: Option<i64> = sqlx::query_scalar(
                "INSERT INTO triggers (workspace, id, provider, payload_schema, first_seen_at, last_seen_at) \
                 VALUES ($1, $2, 'custom', $3, $4, $4) ON CONFLICT (workspace, id) DO UPDATE SET \
                 payload_schema = excluded.payload_schema, last_seen_at = excluded.last_seen_at \
                 WHERE triggers.provider = 'custom' RETURNING first_seen_at",
            )
            .bind(workspace)
            .bind(id)
            .bind(schema_json)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?;
            Ok(first_seen.map(|t| t == now_ms))
        }

        /// One trigger of the catalog.
        pub(crate) async fn get_trigger(
            pool: &Pool,
            workspace: &str,
            id: &str,
        ) -> Result<Option<TriggerRow>, sqlx::Error> {
            sqlx::query_as("SELECT workspace, id, provider, payload_schema FROM triggers WHERE workspace = $1 AND id = $2")
                .bind(workspace)
                .bind(id)
                .fetch_optional(pool)
                .await
        }

        /// Stores a custom fire as a pending ingest row (with its payload row) unless its key
        /// is stored already; then returns the first row's id and body instead. One
        /// transaction: concurrent fires with one key wait on the unique index for the first
        /// to commit, and then find it.
        pub(crate) async fn store_fire(conn: &mut Conn, row: &NewIngest) -> Result<FireWrite, sqlx::Error> {
            let mut tx = conn.begin().await?;
            let stored: Option<String> = sqlx::query_scalar(&format!(
                "INSERT INTO ingest ({INGEST_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, 'accepted', 'pending', $6, $7, $8, NULL, NULL, $9, $10, $11, FALSE, NULL, NULL) \
                 ON CONFLICT (connection_id, event_id) WHERE outcome IN ('accepted', 'ignored') DO NOTHING RETURNING id"
            ))
            .bind(row.id.as_str())
            .bind(row.received_at)
            .bind(row.connection_id.as_str())
            .bind(row.provider)
            .bind(row.workspace.as_deref())
            .bind(row.http_status)
            .bind(row.event_id.as_deref())
            .bind(row.event_type.as_deref())
            .bind(row.client_addr.as_deref())
            .bind(row.path.as_str())
            .bind(row.body_size)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = if stored.is_some() {
                sqlx::query("INSERT INTO ingest_payloads (id, headers, body) VALUES ($1, $2, $3)")
                    .bind(row.id.as_str())
                    .bind(row.headers.as_str())
                    .bind(row.body.as_ref())
                    .execute(&mut *tx)
                    .await?;
                FireWrite::Stored
            } else {
                let (id, body): (String, Vec<u8>) = sqlx::query_as(
                    "SELECT id, body FROM ingest JOIN ingest_payloads USING (id) \
                     WHERE connection_id = $1 AND event_id = $2 AND outcome IN ('accepted', 'ignored')",
                )
                .bind(row.connection_id.as_str())
                .bind(row.event_id.as_deref())
                .fetch_one(&mut *tx)
                .await?;
                FireWrite::Existing { id, body }
            };
            tx.commit().await?;
            Ok(outcome)
        }

        /// The stored fire with this key in this workspace (its ingest connection id): its
        /// ingest id and body.
        pub(crate) async fn find_fire(pool: &Pool, connection_id: &str, key: &str) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
            sqlx::query_as(
                "SELECT id, body FROM ingest JOIN ingest_payloads USING (id) \
                 WHERE connection_id = $1 AND event_id = $2 AND outcome IN ('accepted', 'ignored')",
            )
            .bind(connection_id)
            .bind(key)
            .fetch_optional(pool)
            .await
        }

        /// Records the HTTP status a logged request finally got.
        pub(crate) async fn set_http_status(pool: &Pool, id: &str, status: i32) -> Result<(), sqlx::Error> {
            sqlx::query("UPDATE ingest SET http_status = $1 WHERE id = $2")
                .bind(status)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        }
    };
}

pub(crate) use custom_queries;
