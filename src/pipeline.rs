//! The normalization pipeline: turns stored events into contact upserts and trigger fires after
//! the provider has been answered.
//!
//! Each worker loops: claim due events (pending, or failed with a retry due) under a lease →
//! normalize each with its provider's pure adapter → apply the whole batch in one transaction
//! (contacts, identity links, fires, catalog, statuses). The pipeline is at-least-once inside
//! and exactly-once in effect:
//! - a crash before the commit leaves the events claimed; the lease expires and another worker
//!   (or the restarted process) takes them again;
//! - fires are unique by idempotency key `<connection_id>:<event_id>`, and contact merges are
//!   idempotent, so processing an event twice changes nothing the second time;
//! - a worker that lost its lease skips its batch instead of applying it.
//!
//! Events without an email are resolved through known `<provider>_*_id` links; those that cannot
//! be resolved yet are parked `unresolved` and put back to `pending` by the event that reveals
//! the identity.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use hookgate_providers::{NormalizeContext, NormalizeError, ProviderId, Verified};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::Notify;

use crate::connections::Registry;
use crate::db::rows::ClaimedEvent;
use crate::db::{Db, Known};
use crate::metrics::Metrics;
use crate::resolution::{Applied, EventPlan, Outcome, Plan, Status};

/// How long a claim holds before another worker may take the event over.
pub const LEASE_MS: i64 = 15_000;
/// Attempts after which a failing event stays `failed` until an operator replays it.
pub const MAX_ATTEMPTS: i32 = 8;
/// Without a wake-up, workers look for due events this often (retries, other processes' work).
const POLL: Duration = Duration::from_millis(500);
/// After a batch smaller than [`crate::db::Db::pipeline_batch`], a worker waits this long before claiming again, so that
/// under load it applies few large transactions rather than many small ones: every transaction
/// is a commit (an fsync on SQLite) taken from the ingest writer's single connection.
const GATHER: Duration = Duration::from_millis(200);

/// Wake-ups between the writer, the pipeline and event streams.
#[derive(Debug, Default)]
pub struct Signals {
    /// New pending events were committed.
    pub pending: Notify,
    /// New fires were committed.
    pub fires: Notify,
    /// The gateway is shutting down.
    pub stopping: AtomicBool,
}

/// Rebuilds the stored header pairs into a header map.
pub fn stored_headers(json: &str) -> HeaderMap {
    let pairs: Vec<(String, String)> = serde_json::from_str(json).unwrap_or_default();
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// Backoff before retry `attempt` (1-based): 2, 4, 8 … seconds, at most an hour.
pub fn backoff_ms(attempt: i32) -> i64 {
    let exp = u32::try_from(attempt.clamp(1, 12)).unwrap_or(12);
    (1_000_i64 << exp).min(3_600_000)
}

/// Replaces NUL in the text a normalized event puts into plain text columns (names, ids, types,
/// field keys) with U+FFFD. PostgreSQL text cannot hold NUL, and one such value fails the whole
/// apply transaction, and with it every event claimed alongside, again at every retry: the
/// pipeline would stall. Payload text is often typed by the provider's end users (a name at
/// sign-up), so this is hostile input, not a provider bug. JSON columns escape NUL themselves.
fn storable(mut event: hookgate_providers::NormalizedEvent) -> hookgate_providers::NormalizedEvent {
    fn clean(text: &mut String) {
        if text.contains('\0') {
            *text = text.replace('\0', "\u{FFFD}");
        }
    }
    fn clean_keys(map: &mut std::collections::BTreeMap<String, serde_json::Value>) {
        if map.keys().any(|k| k.contains('\0')) {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                .collect();
        }
    }
    clean(&mut event.event_type);
    for text in [
        &mut event.identity.email,
        &mut event.contact.first_name,
        &mut event.contact.last_name,
    ]
    .into_iter()
    .flatten()
    {
        clean(text);
    }
    for (key, value) in &mut event.identity.ids {
        clean(key);
        clean(value);
    }
    clean_keys(&mut event.contact.fields);
    clean_keys(&mut event.event_fields);
    event
}

/// Clamps the provider's event time to the receive time plus [`crate::policy::EVENT_TIME_SKEW_MS`].
/// "Newest wins" orders contact updates by this time, and for some providers it comes from a
/// header or field the sender controls: a far-future time would otherwise make one delivery
/// outrank every later one for good.
fn clamped(
    mut event: hookgate_providers::NormalizedEvent,
    received_at_ms: i64,
) -> hookgate_providers::NormalizedEvent {
    event.occurred_at_ms = crate::policy::clamp_event_time(event.occurred_at_ms, received_at_ms);
    event
}

/// Decides what to do with one stored event (pure apart from reading its bytes).
pub fn plan_event(
    event: &ClaimedEvent,
    context: &NormalizeContext<'_>,
    claimed_by: Option<String>,
    now_ms: i64,
) -> EventPlan {
    let plan = match event.provider.parse::<ProviderId>() {
        // A custom fire was checked against its trigger's schema when it was accepted.
        Err(_) if event.provider == crate::custom::SOURCE => {
            let key = event.event_id.as_deref().unwrap_or_default();
            match crate::custom::normalize(&event.body, key) {
                Ok(normalized) => Plan::Normalized(vec![storable(normalized)]),
                Err(reason) => Plan::Failed {
                    reason,
                    retry_at: None,
                },
            }
        }
        Err(e) => Plan::Failed {
            reason: e.to_string(),
            retry_at: None,
        },
        Ok(provider) => {
            let headers = stored_headers(&event.headers);
            // These bytes were verified when they arrived and have been stored since.
            let verified = Verified::skip_verification(provider, &headers, &event.body);
            match provider.adapter().normalize(&verified, context) {
                Ok(events)
                    if events.iter().all(|e| {
                        e.identity.email.is_none()
                            && e.identity.ids.is_empty()
                            && e.every_contact_with.is_none()
                    }) =>
                {
                    Plan::Ignored(
                        "the event carries no contact identity (no email and no provider id)"
                            .into(),
                    )
                }
                Ok(events) => Plan::Normalized(
                    events
                        .into_iter()
                        .map(|e| clamped(storable(e), event.received_at))
                        .collect(),
                ),
                Err(NormalizeError::Unsupported(t)) => {
                    Plan::Ignored(format!("event type {t:?} is not mapped"))
                }
                Err(error) => Plan::Failed {
                    reason: error.to_string().replace('\0', "\u{FFFD}"),
                    retry_at: (event.attempts < MAX_ATTEMPTS)
                        .then(|| now_ms + backoff_ms(event.attempts)),
                },
            }
        }
    };
    EventPlan {
        ingest_id: event.id.clone(),
        workspace: event.workspace.clone().unwrap_or_else(|| "default".into()),
        connection_id: event.connection_id.clone(),
        provider: event.provider.clone(),
        received_at: event.received_at,
        // Only an event that went back to pending after being parked can have parked ids left.
        retried: event.attempts > 1 || claimed_by.is_none(),
        claimed_by,
        plan,
    }
}

/// What the pipeline works with: explicit handles, not the whole gateway state.
pub struct Pipeline {
    /// Where events are claimed and results applied.
    pub store: Db,
    /// The live connections (a connection's settings, such as Supabase's `email_path`, shape
    /// how its events normalize).
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub signals: Arc<Signals>,
    /// What this process knows is already stored (skips no-op writes).
    pub known: Known,
}

impl Pipeline {
    /// Plans an event with its connection's settings (Supabase `email_path` and
    /// `user_id_column`).
    pub fn plan(&self, event: &ClaimedEvent, claimed_by: Option<String>, now_ms: i64) -> EventPlan {
        let live = self.registry.get(&event.connection_id);
        let spec = live.as_ref().map(|l| &l.spec);
        let context = NormalizeContext {
            email_path: spec.and_then(|s| s.email_path.as_deref()),
            user_id_column: spec.and_then(|s| s.user_id_column.as_deref()),
        };
        plan_event(event, &context, claimed_by, now_ms)
    }

    /// Writes an ingest batch and normalizes the events it stores in the same transaction
    /// (see [`Db::write_and_apply`]). Returns each row's outcome and whether events it stored
    /// are left `pending` for the workers (the apply failed and was rolled back alone).
    ///
    /// # Errors
    /// The batch did not commit.
    pub async fn write_and_apply(
        &self,
        rows: &[crate::db::NewIngest],
    ) -> Result<(Vec<crate::db::WriteOutcome>, bool), sqlx::Error> {
        let now = crate::now_ms();
        let plan = |stored: &[&crate::db::NewIngest]| {
            stored
                .iter()
                .map(|row| {
                    let mut plan = self.plan(&ClaimedEvent::first_attempt(row), None, now);
                    // Stored in this very transaction: it was never parked.
                    plan.retried = false;
                    plan
                })
                .collect()
        };
        let (outcomes, applied) = self
            .store
            .write_and_apply(rows, plan, &self.known, now)
            .await?;
        let left_pending = match &applied {
            Some(applied) => {
                self.record(applied);
                false
            }
            None => outcomes.contains(&crate::db::WriteOutcome::Stored),
        };
        Ok((outcomes, left_pending))
    }

    /// Counts what a batch's apply did and wakes whoever waits for it: event streams and the
    /// delivery worker for new fires, the pipeline's workers for re-queued events.
    fn record(&self, applied: &[Applied]) {
        let mut fired = false;
        for a in applied {
            self.metrics
                .processed
                .get_or_create(&crate::metrics::StatusLabels {
                    status: a.outcome.as_str(),
                })
                .inc();
            fired |= !a.fires.is_empty();
            if a.requeued > 0 {
                self.signals.pending.notify_one();
            }
            if a.outcome == Outcome::Finished(Status::Failed) {
                tracing::warn!(ingest_id = %a.ingest_id, "event failed to normalize; see its status_reason");
            }
        }
        if fired {
            self.signals.fires.notify_waiters();
        }
    }

    /// Plans and applies one stored event now, without a claim (an operator's replay), and
    /// wakes whoever waits for what it produced.
    ///
    /// # Errors
    /// A database error.
    pub async fn replay(&self, event: &ClaimedEvent) -> Result<Option<Applied>, sqlx::Error> {
        let now = crate::now_ms();
        let plan = self.plan(event, None, now);
        let applied = self
            .store
            .apply_plans(std::slice::from_ref(&plan), &self.known, now)
            .await?
            .into_iter()
            .next();
        if let Some(applied) = &applied {
            if !applied.fires.is_empty() {
                self.signals.fires.notify_waiters();
            }
            if applied.requeued > 0 {
                self.signals.pending.notify_one();
            }
        }
        Ok(applied)
    }
}

/// Runs one worker until the gateway stops. It holds the pipeline weakly so it never keeps a
/// stopped gateway alive.
pub async fn run(pipeline: Weak<Pipeline>, worker: String) {
    loop {
        let Some(inner) = pipeline.upgrade() else {
            break;
        };
        let signals = Arc::clone(&inner.signals);
        if signals.stopping.load(Ordering::Relaxed) {
            break;
        }
        let now = crate::now_ms();
        let batch = inner.store.pipeline_batch();
        let claimed = match inner
            .store
            .claim_events(&worker, now, LEASE_MS, batch)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(error = %error, "could not claim events; retrying");
                drop(inner);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if claimed.is_empty() {
            drop(inner);
            tokio::select! {
                () = signals.pending.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
            continue;
        }
        let full = claimed.len() as i64 >= batch;
        let plans: Vec<EventPlan> = claimed
            .iter()
            .map(|e| inner.plan(e, Some(worker.clone()), now))
            .collect();
        match inner
            .store
            .apply_plans(&plans, &inner.known, crate::now_ms())
            .await
        {
            Ok(applied) => {
                inner.record(&applied);
                if !full {
                    drop(inner);
                    tokio::time::sleep(GATHER).await;
                }
            }
            Err(error) => {
                tracing::error!(error = %error, events = plans.len(), "could not apply processed events; they will be retried");
                drop(inner);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1), 2_000);
        assert_eq!(backoff_ms(2), 4_000);
        assert_eq!(backoff_ms(100), 3_600_000);
    }

    #[test]
    fn stored_headers_round_trip() {
        let h = stored_headers(r#"[["svix-id","msg_1"],["x-a","1"],["x-a","2"],["bad name","x"]]"#);
        assert_eq!(h.get("svix-id").map(|v| v.as_bytes()), Some(&b"msg_1"[..]));
        assert_eq!(h.get_all("x-a").iter().count(), 2);
        assert_eq!(h.len(), 3);
    }
}
