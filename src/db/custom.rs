//! The facade's custom-event methods (see `db/sql/custom.rs`).

use super::rows::TriggerRow;
use super::{postgres, sqlite, Db, NewIngest};

/// What storing a custom fire did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireWrite {
    /// The fire was stored, pending for the pipeline.
    Stored,
    /// A fire with this key was stored before in this workspace: its ingest id and body.
    Existing { id: String, body: Vec<u8> },
}

impl Db {
    /// Defines or redefines a custom trigger: `Some(true)` new, `Some(false)` redefined, `None`
    /// when the id is another source's trigger.
    ///
    /// # Errors
    /// A database error.
    pub async fn define_trigger(
        &self,
        workspace: &str,
        id: &str,
        schema_json: &str,
        now_ms: i64,
    ) -> Result<Option<bool>, sqlx::Error> {
        match self {
            Db::Sqlite { writer, .. } => {
                sqlite::custom::define_trigger(writer, workspace, id, schema_json, now_ms).await
            }
            Db::Postgres(pool) => {
                postgres::custom::define_trigger(pool, workspace, id, schema_json, now_ms).await
            }
        }
    }

    /// One trigger of the catalog, of any source.
    ///
    /// # Errors
    /// A database error.
    pub async fn get_trigger(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Option<TriggerRow>, sqlx::Error> {
        match self {
            Db::Sqlite { readers, .. } => sqlite::custom::get_trigger(readers, workspace, id).await,
            Db::Postgres(pool) => postgres::custom::get_trigger(pool, workspace, id).await,
        }
    }

    /// The custom fire stored with `key` in the workspace whose ingest connection id is
    /// `connection_id`: its ingest id and body.
    ///
    /// # Errors
    /// A database error.
    pub async fn find_fire(
        &self,
        connection_id: &str,
        key: &str,
    ) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
        match self {
            Db::Sqlite { readers, .. } => {
                sqlite::custom::find_fire(readers, connection_id, key).await
            }
            Db::Postgres(pool) => postgres::custom::find_fire(pool, connection_id, key).await,
        }
    }

    /// Records the HTTP status a logged ingest row's request finally got.
    ///
    /// # Errors
    /// A database error.
    pub async fn set_http_status(&self, id: &str, status: i32) -> Result<(), sqlx::Error> {
        match self {
            Db::Sqlite { writer, .. } => sqlite::custom::set_http_status(writer, id, status).await,
            Db::Postgres(pool) => postgres::custom::set_http_status(pool, id, status).await,
        }
    }

    /// Stores a custom fire (an `accepted`, `pending` ingest row of the `custom` source) in a
    /// transaction of its own, or finds the one stored before with the same key.
    ///
    /// # Errors
    /// A database error: nothing is then stored.
    pub async fn store_fire(&self, row: &NewIngest) -> Result<FireWrite, sqlx::Error> {
        match self {
            Db::Sqlite { writer, .. } => {
                sqlite::custom::store_fire(&mut *writer.acquire().await?, row).await
            }
            Db::Postgres(pool) => {
                postgres::custom::store_fire(&mut *pool.acquire().await?, row).await
            }
        }
    }
}
