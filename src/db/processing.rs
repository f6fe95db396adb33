//! The queries of the normalization pipeline and the events API, written once and instantiated
//! per backend by [`processing_queries!`]. Two fragments differ by backend:
//! - `$skip_locked`: PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so concurrent workers in
//!   several processes never claim the same event; SQLite serializes writers anyway.
//! - `$serialize`: PostgreSQL takes a transaction-scoped advisory lock before applying, so fire
//!   sequence numbers are assigned in commit order (a reader paging by `seq` can never skip a
//!   fire that commits later with a smaller number) and contact read-modify-writes never race.

macro_rules! processing_queries {
    ($db:ty, $skip_locked:literal, $serialize:literal) => {
        use crate::contacts::{fire_payload, json_type, normalize_email, PayloadSchema};
        use crate::db::rows::{ApiKeyRow, ClaimedEvent, ContactRow, FireRow, TriggerRow};
        use crate::db::{Applied, EventPlan, FireFilter, Plan};

        /// Claims up to `limit` events that are due: pending, or failed with a retry due, and not
        /// leased by a live worker. Each claim counts as an attempt.
        pub(crate) async fn claim_events(
            pool: &Pool,
            worker: &str,
            now_ms: i64,
            lease_ms: i64,
            limit: i64,
        ) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
            let sql = format!(
                "UPDATE ingest SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1 \
                 WHERE id IN (SELECT id FROM ingest WHERE (status = 'pending' OR (status = 'failed' AND next_attempt_at <= $3)) \
                 AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY id LIMIT $4{}) \
                 RETURNING id, connection_id, provider, workspace, event_id, event_type, headers, body, received_at, attempts",
                $skip_locked
            );
            let mut rows: Vec<ClaimedEvent> = sqlx::query_as(&sql)
                .bind(worker)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(rows)
        }

        /// Loads one stored event for a replay.
        pub(crate) async fn load_event(pool: &Pool, id: &str) -> Result<Option<ClaimedEvent>, sqlx::Error> {
            sqlx::query_as(
                "SELECT id, connection_id, provider, workspace, event_id, event_type, headers, body, received_at, attempts \
                 FROM ingest WHERE id = $1 AND outcome IN ('accepted', 'ignored')",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        }

        async fn finish(
            conn: &mut Conn,
            id: &str,
            status: &str,
            reason: Option<&str>,
            email: Option<&str>,
            next_attempt_at: Option<i64>,
            now_ms: i64,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "UPDATE ingest SET status = $1, status_reason = $2, contact_email = COALESCE($3, contact_email), \
                 next_attempt_at = $4, processed_at = $5, claimed_by = NULL, claimed_until = NULL WHERE id = $6",
            )
            .bind(status)
            .bind(reason)
            .bind(email)
            .bind(next_attempt_at)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        }

        /// Looks the contact up by the event's provider ids, most specific first.
        async fn resolve(conn: &mut Conn, workspace: &str, ids: &[(String, String)]) -> Result<Option<String>, sqlx::Error> {
            for (key, value) in ids {
                let email: Option<String> = sqlx::query_scalar(
                    "SELECT email FROM contact_ids WHERE workspace = $1 AND key = $2 AND value = $3",
                )
                .bind(workspace)
                .bind(key)
                .bind(value)
                .fetch_optional(&mut *conn)
                .await?;
                if email.is_some() {
                    return Ok(email);
                }
            }
            Ok(None)
        }

        /// Merges the event into its contact, links its ids, and re-queues events that were
        /// waiting for one of those ids. Returns how many events were re-queued.
        #[allow(clippy::too_many_arguments)]
        async fn upsert_contact(
            conn: &mut Conn,
            workspace: &str,
            email: &str,
            provider: &str,
            event: &hookgate_providers::NormalizedEvent,
            at_ms: i64,
            now_ms: i64,
            known: &crate::pipeline::Known,
            learned: &mut crate::pipeline::Learned,
        ) -> Result<u64, sqlx::Error> {
            let existing: Option<ContactRow> = sqlx::query_as(
                "SELECT workspace, email, first_name, last_name, subscribed, custom_fields, field_times, created_at, updated_at \
                 FROM contacts WHERE workspace = $1 AND email = $2",
            )
            .bind(workspace)
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?;
            let mut state = existing.as_ref().map(ContactRow::state).unwrap_or_default();
            let is_new = existing.is_none();
            let changed = state.merge(&event.contact, at_ms);
            if is_new || changed {
                sqlx::query(
                    "INSERT INTO contacts (workspace, email, first_name, last_name, subscribed, custom_fields, field_times, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (workspace, email) DO UPDATE SET \
                     first_name = excluded.first_name, last_name = excluded.last_name, subscribed = excluded.subscribed, \
                     custom_fields = excluded.custom_fields, field_times = excluded.field_times, updated_at = excluded.updated_at",
                )
                .bind(workspace)
                .bind(email)
                .bind(state.first_name.as_deref())
                .bind(state.last_name.as_deref())
                .bind(state.subscribed)
                .bind(serde_json::Value::Object(state.custom_fields.clone()).to_string())
                .bind(serde_json::to_string(&state.field_times).unwrap_or_else(|_| "{}".into()))
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
            }
            for (key, value) in event.contact.fields.iter() {
                if known.has_field(workspace, key) {
                    continue;
                }
                learned.fields.push((workspace.to_owned(), key.clone()));
                sqlx::query(
                    "INSERT INTO field_definitions (workspace, key, type, provider, first_seen_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (workspace, key) DO NOTHING",
                )
                .bind(workspace)
                .bind(key)
                .bind(json_type(value))
                .bind(provider)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
            }
            let mut requeued = 0;
            for (key, value) in &event.identity.ids {
                // Link the id to this contact; only a new or changed link can reveal the identity
                // a parked event waits for, so only then look for parked events.
                let linked = sqlx::query(
                    "INSERT INTO contact_ids (workspace, key, value, email, seen_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (workspace, key, value) DO UPDATE SET email = excluded.email, seen_at = excluded.seen_at \
                     WHERE contact_ids.seen_at <= excluded.seen_at AND contact_ids.email <> excluded.email",
                )
                .bind(workspace)
                .bind(key)
                .bind(value)
                .bind(email)
                .bind(at_ms)
                .execute(&mut *conn)
                .await?;
                if linked.rows_affected() == 0 {
                    continue;
                }
                let done = sqlx::query(
                    "UPDATE ingest SET status = 'pending', next_attempt_at = NULL, status_reason = NULL \
                     WHERE status = 'unresolved' AND id IN \
                     (SELECT ingest_id FROM unresolved_ids WHERE workspace = $1 AND key = $2 AND value = $3)",
                )
                .bind(workspace)
                .bind(key)
                .bind(value)
                .execute(&mut *conn)
                .await?;
                requeued += done.rows_affected();
                if done.rows_affected() > 0 {
                    sqlx::query("DELETE FROM unresolved_ids WHERE workspace = $1 AND key = $2 AND value = $3")
                        .bind(workspace)
                        .bind(key)
                        .bind(value)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            Ok(requeued)
        }

        /// Inserts the fire (at most once per idempotency key) and updates the trigger catalog.
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
            catalog: Option<(&crate::pipeline::Known, &mut crate::pipeline::Learned)>,
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
                // A replay or a second worker: the fire exists; report it, add nothing.
                return sqlx::query_scalar("SELECT seq FROM fires WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_one(&mut *conn)
                    .await;
            };
            if let Some((known, learned)) = catalog {
                if known.trigger_covers(workspace, trigger_id, payload) {
                    return Ok(seq);
                }
                let existing: Option<String> =
                    sqlx::query_scalar("SELECT payload_schema FROM triggers WHERE workspace = $1 AND id = $2")
                        .bind(workspace)
                        .bind(trigger_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                let mut schema: PayloadSchema =
                    existing.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
                schema.absorb(payload);
                learned.triggers.push((
                    (workspace.to_owned(), trigger_id.to_owned()),
                    schema.fields.iter().map(|f| f.key.clone()).collect(),
                ));
                sqlx::query(
                    "INSERT INTO triggers (workspace, id, provider, payload_schema, first_seen_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (workspace, id) DO UPDATE SET \
                     payload_schema = excluded.payload_schema, last_seen_at = excluded.last_seen_at",
                )
                .bind(workspace)
                .bind(trigger_id)
                .bind(provider)
                .bind(serde_json::to_string(&schema).unwrap_or_else(|_| "{\"fields\":[]}".into()))
                .bind(now_ms)
                .execute(&mut *conn)
                .await?;
            }
            Ok(seq)
        }

        /// Applies processing results in one transaction: contacts, ids, fires, catalog and each
        /// event's new status commit together or not at all, so a crash anywhere leaves the
        /// events to be processed again, and the unique idempotency key keeps fires exactly-once.
        pub(crate) async fn apply_plans(
            conn: &mut Conn,
            plans: &[EventPlan],
            known: &crate::pipeline::Known,
            learned: &mut crate::pipeline::Learned,
            now_ms: i64,
        ) -> Result<Vec<Applied>, sqlx::Error> {
            let mut tx = conn.begin().await?;
            if !$serialize.is_empty() {
                sqlx::query($serialize).execute(&mut *tx).await?;
            }
            let mut results = Vec::with_capacity(plans.len());
            for plan in plans {
                // A worker whose lease expired and was taken over must not also apply.
                if let Some(worker) = &plan.claimed_by {
                    let still_ours: Option<String> = sqlx::query_scalar("SELECT id FROM ingest WHERE id = $1 AND claimed_by = $2")
                        .bind(&plan.ingest_id)
                        .bind(worker)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if still_ours.is_none() {
                        results.push(Applied { ingest_id: plan.ingest_id.clone(), status: "skipped", fires: Vec::new(), requeued: 0 });
                        continue;
                    }
                }
                let applied = match &plan.plan {
                    Plan::Ignored(reason) => {
                        finish(&mut tx, &plan.ingest_id, "ignored", Some(reason), None, None, now_ms).await?;
                        Applied { ingest_id: plan.ingest_id.clone(), status: "ignored", fires: Vec::new(), requeued: 0 }
                    }
                    Plan::Failed { reason, retry_at } => {
                        finish(&mut tx, &plan.ingest_id, "failed", Some(reason), None, *retry_at, now_ms).await?;
                        Applied { ingest_id: plan.ingest_id.clone(), status: "failed", fires: Vec::new(), requeued: 0 }
                    }
                    Plan::Normalized(events) => {
                        let mut fires = Vec::new();
                        let mut requeued = 0;
                        let mut waiting: Vec<(String, String)> = Vec::new();
                        let mut contact_email = None;
                        for event in events {
                            let direct = event.identity.email.as_deref().and_then(normalize_email);
                            let email = match direct {
                                Some(email) => Some(email),
                                None => resolve(&mut tx, &plan.workspace, &event.identity.ids).await?,
                            };
                            let Some(email) = email else {
                                waiting.extend(event.identity.ids.iter().cloned());
                                continue;
                            };
                            let at_ms = event.occurred_at_ms.unwrap_or(plan.received_at);
                            requeued += upsert_contact(
                                &mut tx, &plan.workspace, &email, &plan.provider, event, at_ms, now_ms, known, learned,
                            )
                            .await?;
                            let key = format!("{}:{}", plan.connection_id, event.event_id);
                            let trigger = format!("{}.{}", plan.provider, event.event_type);
                            let payload = fire_payload(&email, event);
                            let seq = fire(
                                &mut tx, &key, &plan.workspace, &trigger, &plan.provider, Some(&plan.ingest_id),
                                Some(&email), &payload, event.occurred_at_ms, now_ms, Some((known, &mut *learned)),
                            )
                            .await?;
                            fires.push(seq);
                            contact_email = Some(email);
                        }
                        let status = if waiting.is_empty() {
                            if plan.retried {
                                sqlx::query("DELETE FROM unresolved_ids WHERE ingest_id = $1").bind(&plan.ingest_id).execute(&mut *tx).await?;
                            }
                            finish(&mut tx, &plan.ingest_id, "processed", None, contact_email.as_deref(), None, now_ms).await?;
                            "processed"
                        } else {
                            for (key, value) in &waiting {
                                sqlx::query(
                                    "INSERT INTO unresolved_ids (ingest_id, workspace, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                                )
                                .bind(&plan.ingest_id)
                                .bind(&plan.workspace)
                                .bind(key)
                                .bind(value)
                                .execute(&mut *tx)
                                .await?;
                            }
                            let names: Vec<String> = waiting.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            let reason = format!("no email and no known contact for {}; waiting for an event that reveals it", names.join(", "));
                            finish(&mut tx, &plan.ingest_id, "unresolved", Some(&reason), contact_email.as_deref(), None, now_ms).await?;
                            "unresolved"
                        };
                        Applied { ingest_id: plan.ingest_id.clone(), status, fires, requeued }
                    }
                };
                results.push(applied);
            }
            tx.commit().await?;
            Ok(results)
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
            if !$serialize.is_empty() {
                sqlx::query($serialize).execute(&mut *tx).await?;
            }
            let seq = fire(&mut tx, key, workspace, trigger_id, "test", None, email, payload, Some(now_ms), now_ms, None).await?;
            tx.commit().await?;
            Ok(seq)
        }

        const FIRE_COLUMNS: &str = "seq, idempotency_key, workspace, trigger_id, provider, ingest_id, email, payload, occurred_at, created_at";

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
            q.push(" ORDER BY seq ASC LIMIT ").push_bind(f.limit);
            q.build_query_as().fetch_all(pool).await
        }

        pub(crate) async fn latest_fire_seq(pool: &Pool) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(seq) FROM fires").fetch_one(pool).await.map(|s| s.unwrap_or(0))
        }

        pub(crate) async fn fires_for_ingest(pool: &Pool, ingest_id: &str) -> Result<Vec<i64>, sqlx::Error> {
            sqlx::query_scalar("SELECT seq FROM fires WHERE ingest_id = $1 ORDER BY seq").bind(ingest_id).fetch_all(pool).await
        }

        pub(crate) async fn get_contact(pool: &Pool, workspace: &str, email: &str) -> Result<Option<ContactRow>, sqlx::Error> {
            sqlx::query_as(
                "SELECT workspace, email, first_name, last_name, subscribed, custom_fields, field_times, created_at, updated_at \
                 FROM contacts WHERE workspace = $1 AND email = $2",
            )
            .bind(workspace)
            .bind(email)
            .fetch_optional(pool)
            .await
        }

        pub(crate) async fn list_triggers(pool: &Pool, workspace: Option<&str>) -> Result<Vec<TriggerRow>, sqlx::Error> {
            let mut q = QueryBuilder::<$db>::new("SELECT workspace, id, provider, payload_schema FROM triggers");
            if let Some(w) = workspace {
                q.push(" WHERE workspace = ").push_bind(w.to_owned());
            }
            q.push(" ORDER BY workspace, id");
            q.build_query_as().fetch_all(pool).await
        }

        /// Counts of stored events by processing status.
        pub(crate) async fn status_counts(pool: &Pool) -> Result<Vec<(String, i64)>, sqlx::Error> {
            sqlx::query_as("SELECT status, COUNT(*) FROM ingest WHERE status IS NOT NULL GROUP BY status ORDER BY status")
                .fetch_all(pool)
                .await
        }

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

pub(crate) use processing_queries;
