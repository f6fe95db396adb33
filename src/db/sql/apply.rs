//! Applying a batch of processed events: one transaction that reads the snapshot the pure
//! [`crate::resolution`] replay needs, runs it, and writes its result through the table groups.

macro_rules! apply_queries {
    ($db:ty) => {
        use std::collections::BTreeSet;

        use sqlx::Acquire as _;

        use super::{contacts, fires, ingest, Conn, DIALECT};
        use crate::db::{Known, Learned};
        use crate::resolution::{credit_requeues, Applied, Batch, EventPlan, LinkKey, Snapshot};

        /// Applies processing results in one transaction: contacts, ids, fires, catalog and each
        /// event's new status commit together or not at all, so a crash anywhere leaves the
        /// events to be processed again, and the unique idempotency key keeps fires exactly-once.
        ///
        /// The rows the batch touches are read up front (the id links, then every contact they
        /// and the batch name or select), the events are replayed over them in order
        /// ([`crate::resolution::Batch::replay`]), and the results are written with multi-row
        /// statements: about ten statements a batch instead of about seven an event.
        pub(crate) async fn apply_plans(
            conn: &mut Conn,
            plans: &[EventPlan],
            known: &Known,
            learned: &mut Learned,
            now_ms: i64,
        ) -> Result<Vec<Applied>, sqlx::Error> {
            let mut tx = conn.begin().await?;
            let written = write_plans(&mut *tx, plans, known, learned, now_ms).await?;
            tx.commit().await?;
            Ok(written.results(learned))
        }

        /// What [`write_plans`] wrote, to be made into each plan's result once it committed.
        struct Written {
            replay: crate::resolution::Replay,
            seqs: std::collections::HashMap<String, i64>,
            requeued: Vec<u64>,
        }

        impl Written {
            /// Each plan's result; the field definitions written join `learned` (call this
            /// only after the commit).
            fn results(self, learned: &mut Learned) -> Vec<Applied> {
                let Written { replay, seqs, requeued } = self;
                learned.fields.extend(
                    replay
                        .fields
                        .iter()
                        .map(|f| (f.workspace.clone(), f.key.clone())),
                );
                let mut results = replay.results;
                for fire in &replay.fires {
                    if let (Some(seq), Some(result)) = (seqs.get(&fire.key), results.get_mut(fire.plan))
                    {
                        result.fires.push(*seq);
                    }
                }
                for (result, count) in results.iter_mut().zip(requeued) {
                    result.requeued = count;
                }
                results
            }
        }

        /// The statements of [`apply_plans`], inside the caller's transaction.
        async fn write_plans(
            tx: &mut Conn,
            plans: &[EventPlan],
            known: &Known,
            learned: &mut Learned,
            now_ms: i64,
        ) -> Result<Written, sqlx::Error> {
            if let Some(lock) = DIALECT.apply_lock {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            let owned = ingest::still_claimed(&mut *tx, plans).await?;
            let batch = Batch::new(plans, &owned);
            let links = contacts::read_links(&mut *tx, &batch.links_to_read()).await?;
            let mut stored =
                contacts::read_contacts(&mut *tx, &batch.contacts_to_read(&links)).await?;
            for (key, contact) in
                contacts::read_selected(&mut *tx, &batch.selections_to_read()).await?
            {
                stored.entry(key).or_insert(None).get_or_insert(contact);
            }
            let before = stored.clone();
            let replay = batch
                .replay(
                    Snapshot {
                        links,
                        contacts: stored,
                    },
                    |workspace, key| known.has_field(workspace, key),
                )
                .map_err(|gap| sqlx::Error::Protocol(gap.to_string()))?;

            contacts::clear_parked(&mut *tx, &replay.cleared).await?;
            contacts::define_fields(&mut *tx, &replay.fields, now_ms).await?;
            contacts::write_contacts(&mut *tx, &replay.contacts, now_ms).await?;
            contacts::write_links(&mut *tx, &replay.links).await?;
            contacts::park(&mut *tx, &replay.parked).await?;
            let (seqs, inserted) = fires::write_fires(&mut *tx, &replay.fires, now_ms).await?;
            // Contact lifecycle events commit with the contact change they describe.
            let token = ulid::Ulid::new().to_string();
            let lifecycle = crate::lifecycle::contact_events(&before, &replay.contacts, &token);
            fires::write_contact_events(&mut *tx, &lifecycle, now_ms).await?;
            fires::write_catalog(&mut *tx, &replay.fires, &inserted, now_ms, known, learned).await?;
            // Statuses before re-queueing: an event parked by this batch and revealed later in
            // it must end `pending`, not `unresolved`.
            ingest::write_finishes(&mut *tx, &replay.finishes, now_ms).await?;
            let requeued = requeue(&mut *tx, &replay.revealed, plans.len()).await?;
            Ok(Written { replay, seqs, requeued })
        }

        /// Writes an ingest batch ([`ingest::write_rows`]) and, in the same transaction, applies
        /// the events it stored: `plan` is called with the newly stored accepted rows and
        /// returns their plans (unclaimed: nobody else can see these rows before the commit).
        ///
        /// If the apply fails, the transaction is rolled back and the batch is written again
        /// alone: it still commits, its events stay `pending` with the attempt counted, and the
        /// pipeline's workers take them as they would any pending event. `learned` is then left
        /// empty. `None` in place of the results says so. (A savepoint around the apply would
        /// spare the second write, but SQLite then copies every page the apply touches into its
        /// statement journal, at every batch, to keep a rollback that almost never happens.)
        pub(crate) async fn write_and_apply<F>(
            conn: &mut Conn,
            rows: &[crate::db::NewIngest],
            plan: F,
            known: &Known,
            learned: &mut Learned,
            now_ms: i64,
        ) -> Result<(Vec<crate::db::WriteOutcome>, Option<Vec<Applied>>), sqlx::Error>
        where
            F: FnOnce(&[&crate::db::NewIngest]) -> Vec<EventPlan>,
        {
            let mut tx = conn.begin().await?;
            let outcomes = ingest::write_rows(&mut *tx, rows).await?;
            let stored = stored_events(rows, &outcomes);
            if stored.is_empty() {
                tx.commit().await?;
                return Ok((outcomes, None));
            }
            ingest::count_attempt(&mut *tx, &ids(&stored)).await?;
            let plans = plan(&stored);
            let error = match write_plans(&mut *tx, &plans, known, learned, now_ms).await {
                Ok(written) => {
                    tx.commit().await?;
                    return Ok((outcomes, Some(written.results(learned))));
                }
                Err(error) => error,
            };
            tracing::warn!(error = %error, events = plans.len(), "could not process events as they were stored; the pipeline will retry them");
            *learned = Learned::default();
            // A rollback that fails leaves the connection in doubt: the batch fails with it
            // (and the writer's release check replaces the connection).
            tx.rollback().await?;
            let mut tx = conn.begin().await?;
            let outcomes = ingest::write_rows(&mut *tx, rows).await?;
            ingest::count_attempt(&mut *tx, &ids(&stored_events(rows, &outcomes))).await?;
            tx.commit().await?;
            Ok((outcomes, None))
        }

        /// The accepted events a batch stored (not duplicates), given each row's outcome.
        fn stored_events<'r>(
            rows: &'r [crate::db::NewIngest],
            outcomes: &[crate::db::WriteOutcome],
        ) -> Vec<&'r crate::db::NewIngest> {
            rows.iter()
                .zip(outcomes)
                .filter(|(row, outcome)| {
                    row.kind == crate::db::IngestKind::Accepted
                        && **outcome == crate::db::WriteOutcome::Stored
                })
                .map(|(row, _)| row)
                .collect()
        }

        fn ids<'r>(rows: &[&'r crate::db::NewIngest]) -> Vec<&'r str> {
            rows.iter().map(|row| row.id.as_str()).collect()
        }

        /// Puts back to `pending` the parked events whose ids the batch linked. Returns how
        /// many each plan re-queued.
        async fn requeue(
            conn: &mut Conn,
            revealed: &[(LinkKey, usize)],
            plans: usize,
        ) -> Result<Vec<u64>, sqlx::Error> {
            if revealed.is_empty() {
                return Ok(vec![0; plans]);
            }
            let links: Vec<&LinkKey> = revealed
                .iter()
                .map(|(link, _)| link)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let waiting = contacts::parked_on(conn, &links).await?;
            if waiting.is_empty() {
                return Ok(vec![0; plans]);
            }
            let ids: Vec<&String> = waiting.values().flatten().collect();
            let requeued = ingest::requeue_unresolved(conn, &ids).await?;
            let (counts, done) = credit_requeues(revealed, &waiting, &requeued, plans);
            for link in done {
                contacts::unpark(conn, link).await?;
            }
            Ok(counts)
        }
    };
}

pub(crate) use apply_queries;
