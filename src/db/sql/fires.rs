//! The `fires` table (trigger fires, exactly once per idempotency key) and the `triggers`
//! catalog (each trigger's payload schema).

pub(crate) const FIRE_COLUMNS: &str = "seq, idempotency_key, workspace, trigger_id, provider, ingest_id, email, payload, occurred_at, created_at";

/// The columns a fire is inserted with.
pub(crate) const FIRE_INSERT_COLUMNS: &str = "idempotency_key, workspace, trigger_id, provider, \
     ingest_id, email, payload, occurred_at, created_at";
/// A fire whose key is stored already is skipped; the inserted ones' sequence numbers and keys
/// come back.
pub(crate) const FIRE_INSERT_CONFLICT: &str =
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING seq, idempotency_key";

/// One fire as each backend's `insert_fires` writes it, borrowed from an event's fire
/// ([`crate::resolution::NewFire`]) or a contact lifecycle event (provider `hookgate`, no
/// ingest row), so both kinds go through the same statement.
pub(crate) struct FireInsert<'a> {
    pub key: &'a str,
    pub workspace: &'a str,
    pub trigger: &'a str,
    pub provider: &'a str,
    pub ingest_id: Option<&'a str>,
    pub email: &'a str,
    /// The payload as stored (JSON text).
    pub payload: String,
    pub occurred_at: Option<i64>,
}

impl<'a> FireInsert<'a> {
    pub(crate) fn event(fire: &'a crate::resolution::NewFire) -> Self {
        FireInsert {
            key: &fire.key,
            workspace: &fire.workspace,
            trigger: &fire.trigger,
            provider: &fire.provider,
            ingest_id: Some(&fire.ingest_id),
            email: &fire.email,
            // Serialized from the map in place (no copy of it); writing a map of string keys
            // and JSON values to a string cannot fail.
            payload: serde_json::to_string(&fire.payload).unwrap_or_else(|_| "{}".to_owned()),
            occurred_at: fire.occurred_at,
        }
    }

    pub(crate) fn lifecycle(event: &'a crate::lifecycle::ContactEvent, now_ms: i64) -> Self {
        FireInsert {
            key: &event.key,
            workspace: &event.workspace,
            trigger: event.event_type,
            provider: "hookgate",
            ingest_id: None,
            email: &event.email,
            payload: event.payload.to_string(),
            occurred_at: Some(now_ms),
        }
    }
}

macro_rules! fire_queries {
    ($db:ty) => {
        use std::collections::{BTreeMap, HashMap, HashSet};

        use sqlx::{Acquire as _, QueryBuilder};

        use super::{Conn, Pool, DIALECT};
        use crate::contacts::PayloadSchema;
        use crate::db::rows::{FireRow, TriggerRow};
        use crate::db::sql::chunks;
        use crate::db::sql::fires::{FireInsert, FIRE_COLUMNS};
        use crate::db::{FireFilter, Known, Learned};
        use crate::resolution::NewFire;

        /// Inserts one fire (at most once per idempotency key).
        /// Returns the fire's sequence number, new or existing.
        #[allow(clippy::too_many_arguments)]
        async fn fire(
            conn: &mut Conn,
            key: &str,
            workspace: &str,
            trigger_id: &str,
            provider: &str,
            ingest_id: Option<&str>,
            email: Option<&str>,
            payload: &serde_json::Map<String, serde_json::Value>,
            occurred_at: Option<i64>,
            now_ms: i64,
        ) -> Result<i64, sqlx::Error> {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO fires (idempotency_key, workspace, trigger_id, provider, ingest_id, email, payload, occurred_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (idempotency_key) DO NOTHING RETURNING seq",
            )
            .bind(key)
            .bind(workspace)
            .bind(trigger_id)
            .bind(provider)
            .bind(ingest_id)
            .bind(email)
            .bind(serde_json::Value::Object(payload.clone()).to_string())
            .bind(occurred_at)
            .bind(now_ms)
            .fetch_optional(&mut *conn)
            .await?;
            let Some(seq) = inserted else {
                // The fire exists; report it, add nothing.
                return sqlx::query_scalar("SELECT seq FROM fires WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await;
            };
            Ok(seq)
        }

        /// Inserts the batch's fires (at most once per idempotency key) and returns every key's
        /// sequence number, plus the keys this batch inserted (replays find theirs existing).
        pub(crate) async fn write_fires(
            conn: &mut Conn,
            fires: &[NewFire],
            now_ms: i64,
        ) -> Result<(HashMap<String, i64>, HashSet<String>), sqlx::Error> {
            let mut seen = HashSet::new();
            let unique: Vec<&NewFire> = fires.iter().filter(|f| seen.insert(f.key.as_str())).collect();
            let mut seqs = HashMap::new();
            let mut inserted = HashSet::new();
            let rows: Vec<FireInsert<'_>> = unique.iter().map(|f| FireInsert::event(f)).collect();
            for (seq, key) in super::insert_fires(conn, &rows, now_ms).await? {
                inserted.insert(key.clone());
                seqs.insert(key, seq);
            }
            let existing: Vec<&str> = unique.iter().map(|f| f.key.as_str()).filter(|k| !seqs.contains_key(*k)).collect();
            for chunk in chunks(&existing) {
                let mut q = QueryBuilder::<$db>::new("SELECT seq, idempotency_key FROM fires WHERE idempotency_key IN (");
                let mut list = q.separated(", ");
                for key in chunk {
                    list.push_bind((*key).to_owned());
                }
                q.push(")");
                let rows: Vec<(i64, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
                for (seq, key) in rows {
                    seqs.insert(key, seq);
                }
            }
            Ok((seqs, inserted))
        }

        /// Inserts contact lifecycle events (provider `hookgate`, no ingest row); the outbox
        /// trigger adds their deliveries in the same transaction.
        pub(crate) async fn write_contact_events(
            conn: &mut Conn,
            events: &[crate::lifecycle::ContactEvent],
            now_ms: i64,
        ) -> Result<(), sqlx::Error> {
            if events.is_empty() {
                return Ok(());
            }
            let rows: Vec<FireInsert<'_>> = events.iter().map(|e| FireInsert::lifecycle(e, now_ms)).collect();
            super::insert_fires(conn, &rows, now_ms).await?;
            Ok(())
        }

        /// Adds the payload keys of new fires to their triggers' schemas.
        pub(crate) async fn write_catalog(
            conn: &mut Conn,
            fires: &[NewFire],
            inserted: &HashSet<String>,
            now_ms: i64,
            known: &Known,
            learned: &mut Learned,
        ) -> Result<(), sqlx::Error> {
            let mut schemas: BTreeMap<(String, String), (String, PayloadSchema)> = BTreeMap::new();
            let mut done = HashSet::new();
            for f in fires {
                if !inserted.contains(&f.key) || !done.insert(f.key.as_str()) {
                    continue;
                }
                // Custom triggers' schemas are defined (`POST /v1/triggers`), never learned.
                if f.provider == crate::custom::SOURCE {
                    continue;
                }
                if known.trigger_covers(&f.workspace, &f.trigger, &f.payload) {
                    continue;
                }
                let id = (f.workspace.clone(), f.trigger.clone());
                if !schemas.contains_key(&id) {
                    let existing: Option<String> =
                        sqlx::query_scalar("SELECT payload_schema FROM triggers WHERE workspace = $1 AND id = $2")
                            .bind(&f.workspace)
                            .bind(&f.trigger)
                            .fetch_optional(&mut *conn)
                            .await?;
                    let schema: PayloadSchema =
                        existing.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
                    schemas.insert(id.clone(), (f.provider.clone(), schema));
                }
                if let Some((_, schema)) = schemas.get_mut(&id) {
                    schema.absorb(&f.payload);
                }
            }
            for ((workspace, trigger), (provider, schema)) in schemas {
                sqlx::query(
                    "INSERT INTO triggers (workspace, id, provider, payload_schema, first_seen_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (workspace, id) DO UPDATE SET \
                     payload_schema = excluded.payload_schema, last_seen_at = excluded.last_seen_at",
                )
                .bind(&workspace)
                .bind(&trigger)
                .bind(&provider)
                .bind(serde_json::to_string(&schema).unwrap_or_else(|_| "{\"fields\":[]}".into()))
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
                learned.triggers.push(((workspace, trigger), schema.fields.iter().map(|f| f.key.clone()).collect()));
            }
            Ok(())
        }

        /// Inserts a test fire (`POST /v1/webhooks/test`); it is not added to the catalog.
        pub(crate) async fn insert_test_fire(
            conn: &mut Conn,
            key: &str,
            workspace: &str,
            trigger_id: &str,
            email: Option<&str>,
            payload: &serde_json::Map<String, serde_json::Value>,
            now_ms: i64,
        ) -> Result<i64, sqlx::Error> {
            let mut tx = conn.begin().await?;
            if let Some(lock) = DIALECT.apply_lock {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            let seq = fire(&mut tx, key, workspace, trigger_id, "test", None, email, payload, Some(now_ms), now_ms).await?;
            tx.commit().await?;
            Ok(seq)
        }

        /// Fires oldest first after the cursor, with optional filters.
        pub(crate) async fn list_fires(pool: &Pool, f: &FireFilter) -> Result<Vec<FireRow>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new(format!("SELECT {FIRE_COLUMNS} FROM fires WHERE seq > "));
            q.push_bind(f.after_seq);
            if let Some(v) = &f.trigger_id {
                q.push(" AND trigger_id = ").push_bind(v.clone());
            }
            if let Some(v) = &f.workspace {
                q.push(" AND workspace = ").push_bind(v.clone());
            }
            if let Some(v) = f.created_after {
                q.push(" AND created_at > ").push_bind(v);
            }
            if let Some(v) = f.created_before {
                q.push(" AND created_at < ").push_bind(v);
            }
            if f.newest {
                q.push(" ORDER BY seq DESC LIMIT ").push_bind(f.limit);
                let mut fires: Vec<FireRow> = q.build_query_as().fetch_all(pool).await?;
                fires.reverse();
                return Ok(fires);
            }
            q.push(" ORDER BY seq ASC LIMIT ").push_bind(f.limit);
            q.build_query_as().fetch_all(pool).await
        }

        pub(crate) async fn latest_fire_seq(pool: &Pool) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM fires").fetch_one(pool).await.map(|s| s.unwrap_or(0))
        }

        pub(crate) async fn fires_for_ingest(pool: &Pool, ingest_id: &str) -> Result<Vec<i64>, sqlx::Error> {
            sqlx::query_scalar("SELECT seq FROM fires WHERE ingest_id = $1 ORDER BY seq").bind(ingest_id).fetch_all(pool).await
        }

        pub(crate) async fn list_triggers(pool: &Pool, workspace: Option<&str>) -> Result<Vec<TriggerRow>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new("SELECT workspace, id, provider, payload_schema FROM triggers");
            if let Some(w) = workspace {
                q.push(" WHERE workspace = ").push_bind(w.to_owned());
            }
            q.push(" ORDER BY workspace, id");
            q.build_query_as().fetch_all(pool).await
        }

        /// Trigger fires made from provider events (not the gateway's own contact and endpoint
        /// events, provider `hookgate`).
        pub(crate) async fn fire_count(pool: &Pool) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar("SELECT COUNT(*) FROM fires WHERE provider <> 'hookgate'").fetch_one(pool).await
        }
    };
}

pub(crate) use fire_queries;
