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
        use crate::db::batch::{chunks, ContactSlot, Finish, LinkSlot, NewFire, Parked, Wanted, Work};
        use crate::db::{Applied, EventPlan, FireFilter, Plan};

        /// Claims up to `limit` events that are due: pending, or failed with a retry due, and not
        /// leased by a live worker (up to `limit` of each). Each claim counts as an attempt.
        ///
        /// The two kinds are separate index range scans on `(status, id)`, each already in id
        /// order: a single `status = 'pending' OR status = 'failed'` condition made PostgreSQL
        /// collect and sort every pending row at every claim, so the claim slowed down as the
        /// backlog grew, and the backlog grew faster (233 000 pending, 1 600 events/s).
        pub(crate) async fn claim_events(
            pool: &Pool,
            worker: &str,
            now_ms: i64,
            lease_ms: i64,
            limit: i64,
        ) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
            let sql = format!(
                "UPDATE ingest SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1 WHERE id IN (\
                 SELECT id FROM (SELECT id FROM ingest WHERE status = 'pending' \
                 AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY id LIMIT $4{skip}) AS due_pending \
                 UNION ALL \
                 SELECT id FROM (SELECT id FROM ingest WHERE status = 'failed' AND next_attempt_at <= $3 \
                 AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY id LIMIT $4{skip}) AS due_retries\
                 ) RETURNING id",
                skip = $skip_locked
            );
            let ids: Vec<String> = sqlx::query_scalar(&sql)
                .bind(worker)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut rows: Vec<ClaimedEvent> = Vec::with_capacity(ids.len());
            for chunk in chunks(&ids) {
                let mut q = QueryBuilder::<$db>::new(format!("SELECT {CLAIMED_COLUMNS} FROM ingest JOIN ingest_payloads USING (id) WHERE id IN ("));
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id.clone());
                }
                q.push(")");
                rows.extend(q.build_query_as::<ClaimedEvent>().fetch_all(pool).await?);
            }
            rows.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(rows)
        }

        const CLAIMED_COLUMNS: &str =
            "id, connection_id, provider, workspace, event_id, event_type, headers, body, received_at, attempts";

        /// Loads one stored event for a replay.
        pub(crate) async fn load_event(pool: &Pool, id: &str) -> Result<Option<ClaimedEvent>, sqlx::Error> {
            sqlx::query_as(&format!(
                "SELECT {CLAIMED_COLUMNS} FROM ingest JOIN ingest_payloads USING (id) WHERE id = $1 AND outcome IN ('accepted', 'ignored')"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await
        }

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

        /// The ids of `plans` whose claim is still held by the worker that planned them (a
        /// worker whose lease expired and was taken over must not also apply).
        async fn still_claimed(conn: &mut Conn, plans: &[EventPlan]) -> Result<std::collections::HashSet<String>, sqlx::Error> {
            let mut by_worker: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
            for plan in plans {
                if let Some(worker) = &plan.claimed_by {
                    by_worker.entry(worker.as_str()).or_default().push(plan.ingest_id.as_str());
                }
            }
            let mut owned = std::collections::HashSet::new();
            for (worker, ids) in by_worker {
                for chunk in chunks(&ids) {
                    let mut q = QueryBuilder::<$db>::new("SELECT id FROM ingest WHERE claimed_by = ");
                    q.push_bind(worker.to_owned()).push(" AND id IN (");
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind((*id).to_owned());
                    }
                    q.push(")");
                    let rows: Vec<String> = q.build_query_scalar().fetch_all(&mut *conn).await?;
                    owned.extend(rows);
                }
            }
            Ok(owned)
        }

        const CONTACT_COLUMNS: &str =
            "workspace, email, first_name, last_name, subscribed, custom_fields, field_times, created_at, updated_at";

        /// Reads the stored contacts and id links the batch's events name.
        async fn load_rows(conn: &mut Conn, wanted: &Wanted, work: &mut Work) -> Result<(), sqlx::Error> {
            for (workspace, emails) in &wanted.emails {
                let emails: Vec<&String> = emails.iter().collect();
                for chunk in chunks(&emails) {
                    let mut q = QueryBuilder::<$db>::new(format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace = "));
                    q.push_bind(workspace.clone()).push(" AND email IN (");
                    let mut list = q.separated(", ");
                    for email in chunk {
                        list.push_bind((*email).clone());
                    }
                    q.push(")");
                    let rows: Vec<ContactRow> = q.build_query_as().fetch_all(&mut *conn).await?;
                    for row in rows {
                        let state = row.state();
                        work.contacts.insert((row.workspace, row.email), ContactSlot { state, dirty: false });
                    }
                }
                for email in emails {
                    if !work.contacts.contains_key(&(workspace.clone(), email.clone())) {
                        work.absent.insert((workspace.clone(), email.clone()));
                    }
                }
            }
            for (workspace, ids) in &wanted.ids {
                let ids: Vec<&(String, String)> = ids.iter().collect();
                for chunk in chunks(&ids) {
                    let mut q = QueryBuilder::<$db>::new("SELECT key, value, email, seen_at FROM contact_ids WHERE workspace = ");
                    q.push_bind(workspace.clone()).push(" AND (key, value) IN (");
                    q.push_values(chunk, |mut row, (key, value)| {
                        row.push_bind(key.clone()).push_bind(value.clone());
                    });
                    q.push(")");
                    let rows: Vec<(String, String, String, i64)> = q.build_query_as().fetch_all(&mut *conn).await?;
                    for (key, value, email, seen_at) in rows {
                        work.links.insert((workspace.clone(), key, value), LinkSlot { email, seen_at, dirty: false });
                    }
                }
            }
            Ok(())
        }

        /// Reads one contact the batch did not read up front (an email found through an id link).
        async fn load_contact(conn: &mut Conn, workspace: &str, email: &str, work: &mut Work) -> Result<(), sqlx::Error> {
            let row: Option<ContactRow> = sqlx::query_as(&format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace = $1 AND email = $2"
            ))
            .bind(workspace)
            .bind(email)
            .fetch_optional(&mut *conn)
            .await?;
            let key = (workspace.to_owned(), email.to_owned());
            match row {
                Some(row) => {
                    work.contacts.insert(key, ContactSlot { state: row.state(), dirty: false });
                }
                None => {
                    work.absent.insert(key);
                }
            }
            Ok(())
        }

        /// Records field definitions this process has not seen yet.
        async fn define_fields(
            conn: &mut Conn,
            workspace: &str,
            provider: &str,
            event: &hookgate_providers::NormalizedEvent,
            now_ms: i64,
            known: &crate::pipeline::Known,
            learned: &mut crate::pipeline::Learned,
        ) -> Result<(), sqlx::Error> {
            for (key, value) in event.contact.fields.iter() {
                if known.has_field(workspace, key) || learned.fields.iter().any(|(w, k)| w == workspace && k == key) {
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
            Ok(())
        }

        /// Writes the contacts and links the batch changed, and parks the ids unresolved
        /// events wait for.
        async fn write_contacts(conn: &mut Conn, work: &Work, now_ms: i64) -> Result<(), sqlx::Error> {
            let mut contacts: Vec<(&(String, String), &ContactSlot)> = work.contacts.iter().filter(|(_, c)| c.dirty).collect();
            contacts.sort_by(|a, b| a.0.cmp(b.0));
            for chunk in chunks(&contacts) {
                let mut q = QueryBuilder::<$db>::new(format!("INSERT INTO contacts ({CONTACT_COLUMNS}) "));
                q.push_values(chunk, |mut row, ((workspace, email), slot)| {
                    let state = &slot.state;
                    row.push_bind(workspace.clone())
                        .push_bind(email.clone())
                        .push_bind(state.first_name.clone())
                        .push_bind(state.last_name.clone())
                        .push_bind(state.subscribed)
                        .push_bind(serde_json::Value::Object(state.custom_fields.clone()).to_string())
                        .push_bind(serde_json::to_string(&state.field_times).unwrap_or_else(|_| "{}".into()))
                        .push_bind(now_ms)
                        .push_bind(now_ms);
                });
                q.push(
                    " ON CONFLICT (workspace, email) DO UPDATE SET \
                     first_name = excluded.first_name, last_name = excluded.last_name, subscribed = excluded.subscribed, \
                     custom_fields = excluded.custom_fields, field_times = excluded.field_times, updated_at = excluded.updated_at",
                );
                q.build().execute(&mut *conn).await?;
            }
            let mut links: Vec<(&(String, String, String), &LinkSlot)> = work.links.iter().filter(|(_, l)| l.dirty).collect();
            links.sort_by(|a, b| a.0.cmp(b.0));
            for chunk in chunks(&links) {
                let mut q = QueryBuilder::<$db>::new("INSERT INTO contact_ids (workspace, key, value, email, seen_at) ");
                q.push_values(chunk, |mut row, ((workspace, key, value), link)| {
                    row.push_bind(workspace.clone())
                        .push_bind(key.clone())
                        .push_bind(value.clone())
                        .push_bind(link.email.clone())
                        .push_bind(link.seen_at);
                });
                q.push(" ON CONFLICT (workspace, key, value) DO UPDATE SET email = excluded.email, seen_at = excluded.seen_at");
                q.build().execute(&mut *conn).await?;
            }
            for chunk in chunks(&work.parked) {
                let mut q = QueryBuilder::<$db>::new("INSERT INTO unresolved_ids (ingest_id, workspace, key, value) ");
                q.push_values(chunk, |mut row, p| {
                    row.push_bind(p.ingest_id.clone())
                        .push_bind(p.workspace.clone())
                        .push_bind(p.key.clone())
                        .push_bind(p.value.clone());
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Inserts the batch's fires (at most once per idempotency key) and returns every key's
        /// sequence number, plus the keys this batch inserted (replays find theirs existing).
        async fn write_fires(
            conn: &mut Conn,
            work: &Work,
            now_ms: i64,
        ) -> Result<(std::collections::HashMap<String, i64>, std::collections::HashSet<String>), sqlx::Error> {
            let mut seen = std::collections::HashSet::new();
            let unique: Vec<&NewFire> = work.fires.iter().filter(|f| seen.insert(f.key.as_str())).collect();
            let mut seqs = std::collections::HashMap::new();
            let mut inserted = std::collections::HashSet::new();
            for chunk in chunks(&unique) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO fires (idempotency_key, workspace, trigger_id, provider, ingest_id, email, payload, occurred_at, created_at) ",
                );
                q.push_values(chunk, |mut row, f| {
                    row.push_bind(f.key.clone())
                        .push_bind(f.workspace.clone())
                        .push_bind(f.trigger.clone())
                        .push_bind(f.provider.clone())
                        .push_bind(f.ingest_id.clone())
                        .push_bind(f.email.clone())
                        .push_bind(serde_json::Value::Object(f.payload.clone()).to_string())
                        .push_bind(f.occurred_at)
                        .push_bind(now_ms);
                });
                q.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING seq, idempotency_key");
                let rows: Vec<(i64, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
                for (seq, key) in rows {
                    inserted.insert(key.clone());
                    seqs.insert(key, seq);
                }
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

        /// Adds the payload keys of new fires to their triggers' schemas.
        async fn write_catalog(
            conn: &mut Conn,
            work: &Work,
            inserted: &std::collections::HashSet<String>,
            now_ms: i64,
            known: &crate::pipeline::Known,
            learned: &mut crate::pipeline::Learned,
        ) -> Result<(), sqlx::Error> {
            let mut schemas: std::collections::BTreeMap<(String, String), (String, PayloadSchema)> = std::collections::BTreeMap::new();
            let mut done = std::collections::HashSet::new();
            for f in &work.fires {
                if !inserted.contains(&f.key) || !done.insert(f.key.as_str()) {
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

        /// Sets each event's new status and releases its claim.
        async fn write_finishes(conn: &mut Conn, work: &Work, now_ms: i64) -> Result<(), sqlx::Error> {
            for chunk in chunks(&work.finishes) {
                let mut q = QueryBuilder::<$db>::new("WITH v (id, status, reason, email, next_at) AS (");
                q.push_values(chunk, |mut row, f| {
                    row.push_bind(f.id.clone())
                        .push_bind(f.status)
                        .push_bind(f.reason.clone())
                        .push_bind(f.email.clone())
                        .push_bind(f.next_attempt_at);
                });
                q.push(
                    ") UPDATE ingest SET status = v.status, status_reason = v.reason, \
                     contact_email = COALESCE(v.email, ingest.contact_email), next_attempt_at = v.next_at, processed_at = ",
                );
                q.push_bind(now_ms);
                q.push(", claimed_by = NULL, claimed_until = NULL FROM v WHERE ingest.id = v.id");
                q.build().execute(&mut *conn).await?;
            }
            Ok(())
        }

        /// Puts back to `pending` the parked events whose ids the batch linked. Returns how
        /// many each plan re-queued.
        async fn requeue(conn: &mut Conn, work: &Work, plans: usize) -> Result<Vec<u64>, sqlx::Error> {
            let mut counts = vec![0_u64; plans];
            if work.revealed.is_empty() {
                return Ok(counts);
            }
            let mut by_workspace: std::collections::BTreeMap<&str, Vec<(&str, &str)>> = std::collections::BTreeMap::new();
            for ((workspace, key, value), _) in &work.revealed {
                by_workspace.entry(workspace.as_str()).or_default().push((key.as_str(), value.as_str()));
            }
            // (workspace, key, value) → parked event ids.
            let mut waiting: std::collections::BTreeMap<(String, String, String), Vec<String>> = std::collections::BTreeMap::new();
            for (workspace, ids) in by_workspace {
                for chunk in chunks(&ids) {
                    let mut q = QueryBuilder::<$db>::new("SELECT ingest_id, key, value FROM unresolved_ids WHERE workspace = ");
                    q.push_bind(workspace.to_owned()).push(" AND (key, value) IN (");
                    q.push_values(chunk, |mut row, (key, value)| {
                        row.push_bind((*key).to_owned()).push_bind((*value).to_owned());
                    });
                    q.push(")");
                    let rows: Vec<(String, String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
                    for (ingest_id, key, value) in rows {
                        waiting.entry((workspace.to_owned(), key, value)).or_default().push(ingest_id);
                    }
                }
            }
            if waiting.is_empty() {
                return Ok(counts);
            }
            let ids: Vec<&String> = waiting.values().flatten().collect();
            let mut requeued = std::collections::HashSet::new();
            for chunk in chunks(&ids) {
                let mut q = QueryBuilder::<$db>::new(
                    "UPDATE ingest SET status = 'pending', next_attempt_at = NULL, status_reason = NULL \
                     WHERE status = 'unresolved' AND id IN (",
                );
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind((*id).clone());
                }
                q.push(") RETURNING id");
                let rows: Vec<String> = q.build_query_scalar().fetch_all(&mut *conn).await?;
                requeued.extend(rows);
            }
            let mut credited = std::collections::HashSet::new();
            for (link, plan) in &work.revealed {
                let Some(ids) = waiting.get(link) else { continue };
                let now_pending: Vec<&String> = ids.iter().filter(|id| requeued.contains(*id)).collect();
                if now_pending.is_empty() || !credited.insert(link) {
                    continue;
                }
                counts[*plan] += now_pending.len() as u64;
                sqlx::query("DELETE FROM unresolved_ids WHERE workspace = $1 AND key = $2 AND value = $3")
                    .bind(&link.0)
                    .bind(&link.1)
                    .bind(&link.2)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(counts)
        }

        /// Applies processing results in one transaction: contacts, ids, fires, catalog and each
        /// event's new status commit together or not at all, so a crash anywhere leaves the
        /// events to be processed again, and the unique idempotency key keeps fires exactly-once.
        ///
        /// The rows the batch touches are read up front, the events are replayed over them in
        /// order ([`crate::db::batch`]), and the results are written with multi-row statements:
        /// about ten statements a batch instead of about seven an event.
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
            let owned = still_claimed(&mut tx, plans).await?;
            let live = |plan: &EventPlan| plan.claimed_by.is_none() || owned.contains(&plan.ingest_id);
            let mut wanted = Wanted::default();
            for plan in plans.iter().filter(|p| live(p)) {
                if let Plan::Normalized(events) = &plan.plan {
                    for event in events {
                        wanted.add(&plan.workspace, event);
                    }
                }
            }
            let mut work = Work::default();
            load_rows(&mut tx, &wanted, &mut work).await?;

            let mut results = Vec::with_capacity(plans.len());
            for (index, plan) in plans.iter().enumerate() {
                let applied = |status| Applied { ingest_id: plan.ingest_id.clone(), status, fires: Vec::new(), requeued: 0 };
                if !live(plan) {
                    results.push(applied("skipped"));
                    continue;
                }
                let finish = |status, reason, email, next_attempt_at| Finish {
                    id: plan.ingest_id.clone(),
                    status,
                    reason,
                    email,
                    next_attempt_at,
                };
                match &plan.plan {
                    Plan::Ignored(reason) => {
                        work.finishes.push(finish("ignored", Some(reason.clone()), None, None));
                        results.push(applied("ignored"));
                    }
                    Plan::Failed { reason, retry_at } => {
                        work.finishes.push(finish("failed", Some(reason.clone()), None, *retry_at));
                        results.push(applied("failed"));
                    }
                    Plan::Normalized(events) => {
                        if plan.retried {
                            sqlx::query("DELETE FROM unresolved_ids WHERE ingest_id = $1").bind(&plan.ingest_id).execute(&mut *tx).await?;
                        }
                        let mut waiting: Vec<(String, String)> = Vec::new();
                        let mut contact_email = None;
                        for event in events {
                            let direct = event.identity.email.as_deref().and_then(normalize_email);
                            let email = direct.or_else(|| work.resolve(&plan.workspace, &event.identity.ids));
                            let Some(email) = email else {
                                waiting.extend(event.identity.ids.iter().cloned());
                                continue;
                            };
                            if !work.has_contact(&plan.workspace, &email) {
                                load_contact(&mut tx, &plan.workspace, &email, &mut work).await?;
                            }
                            let at_ms = event.occurred_at_ms.unwrap_or(plan.received_at);
                            work.merge_contact(&plan.workspace, &email, event, at_ms);
                            define_fields(&mut tx, &plan.workspace, &plan.provider, event, now_ms, known, learned).await?;
                            work.link(&plan.workspace, &event.identity.ids, &email, at_ms, index);
                            work.fires.push(NewFire {
                                plan: index,
                                key: format!("{}:{}", plan.connection_id, event.event_id),
                                workspace: plan.workspace.clone(),
                                trigger: format!("{}.{}", plan.provider, event.event_type),
                                provider: plan.provider.clone(),
                                ingest_id: plan.ingest_id.clone(),
                                email: email.clone(),
                                payload: fire_payload(&email, event),
                                occurred_at: event.occurred_at_ms,
                            });
                            contact_email = Some(email);
                        }
                        if waiting.is_empty() {
                            work.finishes.push(finish("processed", None, contact_email, None));
                            results.push(applied("processed"));
                        } else {
                            let names: Vec<String> = waiting.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            let reason = format!("no email and no known contact for {}; waiting for an event that reveals it", names.join(", "));
                            for (key, value) in waiting {
                                work.parked.push(Parked { ingest_id: plan.ingest_id.clone(), workspace: plan.workspace.clone(), key, value });
                            }
                            work.finishes.push(finish("unresolved", Some(reason), contact_email, None));
                            results.push(applied("unresolved"));
                        }
                    }
                }
            }

            write_contacts(&mut tx, &work, now_ms).await?;
            let (seqs, inserted) = write_fires(&mut tx, &work, now_ms).await?;
            write_catalog(&mut tx, &work, &inserted, now_ms, known, learned).await?;
            // Statuses before re-queueing: an event parked by this batch and revealed later in
            // it must end `pending`, not `unresolved`.
            write_finishes(&mut tx, &work, now_ms).await?;
            let requeued = requeue(&mut tx, &work, plans.len()).await?;
            tx.commit().await?;

            for fire in &work.fires {
                if let (Some(seq), Some(result)) = (seqs.get(&fire.key), results.get_mut(fire.plan)) {
                    result.fires.push(*seq);
                }
            }
            for (result, count) in results.iter_mut().zip(requeued) {
                result.requeued = count;
            }
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
            let seq = fire(&mut tx, key, workspace, trigger_id, "test", None, email, payload, Some(now_ms), now_ms).await?;
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
