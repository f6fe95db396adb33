//! The SQL both backends share, written once per table group and instantiated per backend by
//! [`backend_queries!`]: the SQL is portable (`$n` placeholders, `ON CONFLICT`, `RETURNING`),
//! and macros keep the two instantiations from drifting apart without a generic `Database`
//! parameter. The few places the backends differ are the named fields of
//! [`crate::db::Dialect`], which each backend module declares as `DIALECT`.
//!
//! Each group is instantiated as a submodule of the backend module (`sqlite::ingest`,
//! `postgres::fires`, ...) and re-exported from it; the macros hold SQL reads and writes only.
//! What a batch of processed events does to contacts, links and statuses is decided by the pure
//! [`crate::resolution`] code, which [`apply`] calls between its reads and its writes.

pub(crate) mod apply;
pub(crate) mod connections;
pub(crate) mod contacts;
pub(crate) mod fires;
pub(crate) mod ingest;
pub(crate) mod keys;

/// Splits `items` into statement-sized chunks.
pub(crate) fn chunks<T>(items: &[T]) -> std::slice::Chunks<'_, T> {
    /// Rows per multi-row statement: at most 9 binds a row keeps every statement far under
    /// SQLite's 32 766 and PostgreSQL's 65 535 bind limits.
    const ROWS_PER_STATEMENT: usize = 300;
    items.chunks(ROWS_PER_STATEMENT)
}

/// Generates every table group's queries for one backend (`$db` is the sqlx database type).
/// The invoking module must declare `const DIALECT: crate::db::Dialect`.
macro_rules! backend_queries {
    ($db:ty) => {
        pub(crate) type Pool = sqlx::Pool<$db>;
        pub(crate) type Conn = <$db as sqlx::Database>::Connection;

        pub(crate) mod ingest {
            crate::db::sql::ingest::ingest_queries!($db);
        }
        pub(crate) mod connections {
            crate::db::sql::connections::connection_queries!($db);
        }
        pub(crate) mod contacts {
            crate::db::sql::contacts::contact_queries!($db);
        }
        pub(crate) mod fires {
            crate::db::sql::fires::fire_queries!($db);
        }
        pub(crate) mod keys {
            crate::db::sql::keys::key_queries!($db);
        }
        pub(crate) mod apply {
            crate::db::sql::apply::apply_queries!($db);
        }

        pub(crate) use self::apply::*;
        pub(crate) use self::connections::*;
        pub(crate) use self::contacts::get_contact;
        pub(crate) use self::fires::{
            fire_count, fires_for_ingest, insert_test_fire, latest_fire_seq, list_fires,
            list_triggers,
        };
        pub(crate) use self::ingest::{
            claim_events, count_stored, get_ingest, list_ingest, load_event, pending_count, ping,
            status_counts, stored_event_ids, write_batch,
        };
        pub(crate) use self::keys::*;
    };
}

pub(crate) use backend_queries;
