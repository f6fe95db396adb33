//! The `api_keys` table.

macro_rules! key_queries {
    ($db:ty) => {
        use super::Pool;
        use crate::db::rows::ApiKeyRow;

        pub(crate) async fn insert_api_key(pool: &Pool, id: &str, hash: &str, name: &str, scopes: &str, now_ms: i64) -> Result<(), sqlx::Error> {
            sqlx::query("INSERT INTO api_keys (id, key_hash, name, scopes, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(hash)
                .bind(name)
                .bind(scopes)
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|_| ())
        }

        pub(crate) async fn get_api_key(pool: &Pool, id: &str) -> Result<Option<ApiKeyRow>, sqlx::Error> {
            sqlx::query_as("SELECT id, key_hash, name, scopes, created_at, revoked_at FROM api_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        }

        pub(crate) async fn list_api_keys(pool: &Pool) -> Result<Vec<ApiKeyRow>, sqlx::Error> {
            sqlx::query_as("SELECT id, key_hash, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at")
                .fetch_all(pool)
                .await
        }

        pub(crate) async fn revoke_api_key(pool: &Pool, id: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
            let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(done.rows_affected() > 0)
        }
    };
}

pub(crate) use key_queries;
