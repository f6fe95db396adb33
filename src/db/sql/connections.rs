//! The `connections` table.

pub(crate) const CONNECTION_COLUMNS: &str =
    "id, provider, workspace, secrets, tolerance_secs, allow_ips, auth, \
    email_path, rate_limit_per_sec, rate_limit_burst, enabled, source, created_at, updated_at";

macro_rules! connection_queries {
    ($db:ty) => {
        use super::Pool;
        use crate::db::rows::ConnectionRow;
        use crate::db::sql::connections::CONNECTION_COLUMNS;
        use crate::db::ConnectionWrite;

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
    };
}

pub(crate) use connection_queries;
