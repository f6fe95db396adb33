//! Identity resolution and status decisions for a batch of processed events: pure code over a
//! snapshot of the rows the batch touches. No database here; the store reads the snapshot, calls
//! [`Batch::replay`], and writes what it returns, all in one transaction.
//!
//! The store reads in two steps, each a few multi-row statements:
//! 1. the id links ([`Batch::links_to_read`]): every `<provider>_*_id` the batch's events carry;
//! 2. the contacts ([`Batch::contacts_to_read`]): every email the events carry, and every email
//!    those stored links point to.
//!
//! [`Batch::replay`] then takes the events in order, exactly as one statement at a time would:
//! - an event's contact is its own email, else the first of its ids with a link
//!   ([`resolve_email`]), as the links stand at that point of the batch;
//! - the contact is merged field by field, newest provider time wins ([`ContactState::merge`]);
//! - the event's ids are linked to that email; a link moves only to an event at least as recent
//!   ([`link_ids`]), and a new or moved link reveals an identity that parked events may wait for;
//! - an event with no email and no known id is parked `unresolved` on its ids.
//!
//! Rules about which id resolves first, or how a contact merges, belong in [`resolve_email`],
//! [`link_ids`] and [`ContactState::merge`]; the store never needs to change for them.
//!
//! The replay is only valid because nothing else writes these rows meanwhile: SQLite has one
//! writer, and on PostgreSQL every apply transaction holds the same advisory lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use hookgate_providers::NormalizedEvent;

use crate::contacts::{fire_payload, json_type, normalize_email, ContactState};

/// What processing decided for one claimed event.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Normalized: apply each event (contact upsert, ids, fire).
    Normalized(Vec<NormalizedEvent>),
    /// Not mapped (or carries no contact identity at all).
    Ignored(String),
    /// Normalization failed; retried at `retry_at` unless attempts are used up (`None`).
    Failed {
        reason: String,
        retry_at: Option<i64>,
    },
}

/// A plan for one stored event.
#[derive(Debug, Clone)]
pub struct EventPlan {
    pub ingest_id: String,
    pub workspace: String,
    pub connection_id: String,
    pub provider: String,
    pub received_at: i64,
    /// Whether the event may have been parked before (so its parked ids need clearing).
    pub retried: bool,
    /// The worker that claimed the event; `None` for replays (which need no claim).
    pub claimed_by: Option<String>,
    pub plan: Plan,
}

/// A stored event's processing status (the `ingest.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for a pipeline worker.
    Pending,
    /// Applied: contact merged, ids linked, fires written.
    Processed,
    /// No email and no known id yet: parked until an event reveals the identity.
    Unresolved,
    /// Normalization failed; retried with backoff until attempts are used up.
    Failed,
    /// Not mapped, or no contact identity at all.
    Ignored,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Processed,
        Status::Unresolved,
        Status::Failed,
        Status::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processed => "processed",
            Status::Unresolved => "unresolved",
            Status::Failed => "failed",
            Status::Ignored => "ignored",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What applying one plan did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event's new status was written.
    Finished(Status),
    /// Not applied: the worker's lease was lost to another worker.
    Skipped,
}

impl Outcome {
    /// The name used in metrics labels and API answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Finished(status) => status.as_str(),
            Outcome::Skipped => "skipped",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What applying a plan did, as the store reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub ingest_id: String,
    pub outcome: Outcome,
    /// Sequence numbers of the event's fires (existing ones for a replay).
    pub fires: Vec<i64>,
    /// Unresolved events put back to `pending` because this one revealed their identity.
    pub requeued: u64,
}

/// A contact's key: (workspace, email).
pub type ContactKey = (String, String);
/// An id link's key: (workspace, id name, id value).
pub type LinkKey = (String, String, String);

/// An identity link (`<provider>_*_id` value → email) and the provider time it was last set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub email: String,
    pub seen_at: i64,
}

/// The stored rows the batch touches, read before the replay.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every stored link among [`Batch::links_to_read`] (missing ones do not exist).
    pub links: HashMap<LinkKey, Link>,
    /// Every key of [`Batch::contacts_to_read`]: `Some` the stored contact, `None` not stored.
    pub contacts: HashMap<ContactKey, Option<ContactState>>,
}

/// The replay needed a contact the snapshot did not read: a bug in the reads, never data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the batch snapshot lacks the contact of workspace {0:?} it resolved to")]
pub struct SnapshotGap(pub String);

/// A field definition a contact field makes (first seen type wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDefinition {
    pub workspace: String,
    pub key: String,
    pub kind: &'static str,
    pub provider: String,
}

/// A fire the batch produces; its sequence number is known after the insert.
#[derive(Debug, Clone)]
pub struct NewFire {
    /// Index of the plan that produced it.
    pub plan: usize,
    pub key: String,
    pub workspace: String,
    pub trigger: String,
    pub provider: String,
    pub ingest_id: String,
    pub email: String,
    pub payload: serde_json::Map<String, serde_json::Value>,
    pub occurred_at: Option<i64>,
}

/// The status an event ends the batch in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub id: String,
    pub status: Status,
    pub reason: Option<String>,
    pub email: Option<String>,
    pub next_attempt_at: Option<i64>,
}

/// An id a parked (`unresolved`) event waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub ingest_id: String,
    pub workspace: String,
    pub key: String,
    pub value: String,
}

/// Everything the store writes for a batch, in the order it must write it.
#[derive(Debug, Default)]
pub struct Replay {
    /// One per plan, in plan order (fires and re-queue counts are filled in by the store).
    pub results: Vec<Applied>,
    /// Events whose parked ids are dropped first (they may be parked again below).
    pub cleared: Vec<String>,
    /// Field definitions the batch's contact fields make that are not known yet.
    pub fields: Vec<FieldDefinition>,
    /// Contacts new or changed by the batch, in key order.
    pub contacts: Vec<(ContactKey, ContactState)>,
    /// Links new or moved by the batch, in key order.
    pub links: Vec<(LinkKey, Link)>,
    pub parked: Vec<Parked>,
    pub fires: Vec<NewFire>,
    pub finishes: Vec<Finish>,
    /// Links the batch created or re-pointed, with the plan that did it, in order: the ids
    /// parked events may be waiting for.
    pub revealed: Vec<(LinkKey, usize)>,
}

/// A batch of plans and which of them this worker still holds the claim of.
pub struct Batch<'a> {
    plans: &'a [EventPlan],
    owned: &'a HashSet<String>,
}

impl<'a> Batch<'a> {
    /// `owned`: the ingest ids whose claim is still held by the worker that planned them.
    pub fn new(plans: &'a [EventPlan], owned: &'a HashSet<String>) -> Self {
        Batch { plans, owned }
    }

    /// Whether the plan is applied: a replay (no claim), or a claim still held.
    fn live(&self, plan: &EventPlan) -> bool {
        plan.claimed_by.is_none() || self.owned.contains(&plan.ingest_id)
    }

    /// The normalized events of the live plans, with their plan.
    fn events(&self) -> impl Iterator<Item = (&'a EventPlan, &'a NormalizedEvent)> + '_ {
        self.plans
            .iter()
            .filter(|p| self.live(p))
            .filter_map(|p| match &p.plan {
                Plan::Normalized(events) => Some(events.iter().map(move |e| (p, e))),
                _ => None,
            })
            .flatten()
    }

    /// Step 1 of the reads: every id the batch's events carry, by workspace.
    pub fn links_to_read(&self) -> BTreeMap<String, BTreeSet<(String, String)>> {
        let mut wanted: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for (plan, event) in self.events() {
            if !event.identity.ids.is_empty() {
                wanted
                    .entry(plan.workspace.clone())
                    .or_default()
                    .extend(event.identity.ids.iter().cloned());
            }
        }
        wanted
    }

    /// Step 2 of the reads: every email the events carry and every email the stored `links`
    /// point to, by workspace.
    pub fn contacts_to_read(
        &self,
        links: &HashMap<LinkKey, Link>,
    ) -> BTreeMap<String, BTreeSet<String>> {
        let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (plan, event) in self.events() {
            if let Some(email) = event.identity.email.as_deref().and_then(normalize_email) {
                wanted
                    .entry(plan.workspace.clone())
                    .or_default()
                    .insert(email);
            }
        }
        for ((workspace, _, _), link) in links {
            wanted
                .entry(workspace.clone())
                .or_default()
                .insert(link.email.clone());
        }
        wanted
    }

    /// Replays the batch over `snapshot`. `field_known(workspace, key)` says whether a field
    /// definition is already stored.
    ///
    /// # Errors
    /// The snapshot lacks a contact the replay resolved to (the reads did not follow
    /// [`Batch::contacts_to_read`]).
    pub fn replay(
        &self,
        snapshot: Snapshot,
        field_known: impl Fn(&str, &str) -> bool,
    ) -> Result<Replay, SnapshotGap> {
        let mut state = State::new(snapshot);
        let mut out = Replay::default();
        let mut fields_seen: HashSet<(String, String)> = HashSet::new();
        for (index, plan) in self.plans.iter().enumerate() {
            let applied = |outcome| Applied {
                ingest_id: plan.ingest_id.clone(),
                outcome,
                fires: Vec::new(),
                requeued: 0,
            };
            if !self.live(plan) {
                out.results.push(applied(Outcome::Skipped));
                continue;
            }
            let finish = |status, reason, email, next_attempt_at| Finish {
                id: plan.ingest_id.clone(),
                status,
                reason,
                email,
                next_attempt_at,
            };
            let (finished, status) = match &plan.plan {
                Plan::Ignored(reason) => (
                    finish(Status::Ignored, Some(reason.clone()), None, None),
                    Status::Ignored,
                ),
                Plan::Failed { reason, retry_at } => (
                    finish(Status::Failed, Some(reason.clone()), None, *retry_at),
                    Status::Failed,
                ),
                Plan::Normalized(events) => {
                    if plan.retried {
                        out.cleared.push(plan.ingest_id.clone());
                    }
                    let mut waiting: Vec<(String, String)> = Vec::new();
                    let mut contact_email = None;
                    for event in events {
                        let Some(email) = resolve_email(&state.links, &plan.workspace, event)
                        else {
                            waiting.extend(event.identity.ids.iter().cloned());
                            continue;
                        };
                        let at_ms = event.occurred_at_ms.unwrap_or(plan.received_at);
                        state.merge_contact(&plan.workspace, &email, event, at_ms)?;
                        for (key, value) in &event.contact.fields {
                            let id = (plan.workspace.clone(), key.clone());
                            if field_known(&plan.workspace, key) || !fields_seen.insert(id) {
                                continue;
                            }
                            out.fields.push(FieldDefinition {
                                workspace: plan.workspace.clone(),
                                key: key.clone(),
                                kind: json_type(value),
                                provider: plan.provider.clone(),
                            });
                        }
                        let revealed = link_ids(
                            &mut state.links,
                            &plan.workspace,
                            &event.identity.ids,
                            &email,
                            at_ms,
                        );
                        out.revealed
                            .extend(revealed.into_iter().map(|link| (link, index)));
                        out.fires.push(NewFire {
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
                        (
                            finish(Status::Processed, None, contact_email, None),
                            Status::Processed,
                        )
                    } else {
                        let names: Vec<String> =
                            waiting.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        let reason = format!(
                            "no email and no known contact for {}; waiting for an event that reveals it",
                            names.join(", ")
                        );
                        for (key, value) in waiting {
                            out.parked.push(Parked {
                                ingest_id: plan.ingest_id.clone(),
                                workspace: plan.workspace.clone(),
                                key,
                                value,
                            });
                        }
                        (
                            finish(Status::Unresolved, Some(reason), contact_email, None),
                            Status::Unresolved,
                        )
                    }
                }
            };
            out.finishes.push(finished);
            out.results.push(applied(Outcome::Finished(status)));
        }
        state.into_writes(&mut out);
        Ok(out)
    }
}

/// The contact an event belongs to: its own email, else the email its first linked id points
/// to (ids are listed most specific first), as the links stand at this point of the batch.
pub fn resolve_email(
    links: &HashMap<LinkKey, LinkSlot>,
    workspace: &str,
    event: &NormalizedEvent,
) -> Option<String> {
    let direct = event.identity.email.as_deref().and_then(normalize_email);
    direct.or_else(|| {
        event.identity.ids.iter().find_map(|(key, value)| {
            links
                .get(&(workspace.to_owned(), key.clone(), value.clone()))
                .map(|l| l.link.email.clone())
        })
    })
}

/// Links `ids` to `email`, as `INSERT … ON CONFLICT DO UPDATE … WHERE seen_at <= new AND email
/// <> new` would: a link moves only to an event at least as recent. Returns the links that are
/// new or moved: only those reveal an identity.
pub fn link_ids(
    links: &mut HashMap<LinkKey, LinkSlot>,
    workspace: &str,
    ids: &[(String, String)],
    email: &str,
    at_ms: i64,
) -> Vec<LinkKey> {
    let mut revealed = Vec::new();
    for (key, value) in ids {
        let k = (workspace.to_owned(), key.clone(), value.clone());
        let moved = match links.get_mut(&k) {
            None => {
                links.insert(
                    k.clone(),
                    LinkSlot {
                        link: Link {
                            email: email.to_owned(),
                            seen_at: at_ms,
                        },
                        dirty: true,
                    },
                );
                true
            }
            Some(slot) if slot.link.seen_at <= at_ms && slot.link.email != email => {
                slot.link = Link {
                    email: email.to_owned(),
                    seen_at: at_ms,
                };
                slot.dirty = true;
                true
            }
            Some(_) => false,
        };
        if moved {
            revealed.push(k);
        }
    }
    revealed
}

/// Which events each plan put back to `pending`, and which links no longer have parked events.
///
/// `waiting`: the parked events found for the revealed links; `requeued`: those of them the
/// store actually moved from `unresolved` to `pending`. Each link is credited to the first plan
/// that revealed it.
pub fn credit_requeues<'l>(
    revealed: &'l [(LinkKey, usize)],
    waiting: &BTreeMap<LinkKey, Vec<String>>,
    requeued: &HashSet<String>,
    plans: usize,
) -> (Vec<u64>, Vec<&'l LinkKey>) {
    let mut counts = vec![0_u64; plans];
    let mut credited: HashSet<&LinkKey> = HashSet::new();
    let mut done = Vec::new();
    for (link, plan) in revealed {
        let Some(ids) = waiting.get(link) else {
            continue;
        };
        let now_pending = ids.iter().filter(|id| requeued.contains(*id)).count();
        if now_pending == 0 || !credited.insert(link) {
            continue;
        }
        if let Some(count) = counts.get_mut(*plan) {
            *count += now_pending as u64;
        }
        done.push(link);
    }
    (counts, done)
}

/// A contact as the batch leaves it.
#[derive(Debug)]
struct ContactSlot {
    state: ContactState,
    /// Whether a row exists in the store.
    stored: bool,
    /// Whether it must be written (new, or changed by the batch).
    dirty: bool,
}

/// A link as the batch leaves it.
#[derive(Debug)]
pub struct LinkSlot {
    pub link: Link,
    /// Whether it must be written (new, or moved by the batch).
    pub dirty: bool,
}

/// The snapshot as the replay changes it.
struct State {
    contacts: HashMap<ContactKey, ContactSlot>,
    links: HashMap<LinkKey, LinkSlot>,
}

impl State {
    fn new(snapshot: Snapshot) -> Self {
        State {
            contacts: snapshot
                .contacts
                .into_iter()
                .map(|(key, stored)| {
                    let slot = ContactSlot {
                        stored: stored.is_some(),
                        state: stored.unwrap_or_default(),
                        dirty: false,
                    };
                    (key, slot)
                })
                .collect(),
            links: snapshot
                .links
                .into_iter()
                .map(|(key, link)| (key, LinkSlot { link, dirty: false }))
                .collect(),
        }
    }

    /// Merges `event` into the contact (created if not stored): a new contact is written even
    /// when the event carries no field, a stored one only when it changed.
    fn merge_contact(
        &mut self,
        workspace: &str,
        email: &str,
        event: &NormalizedEvent,
        at_ms: i64,
    ) -> Result<(), SnapshotGap> {
        let slot = self
            .contacts
            .get_mut(&(workspace.to_owned(), email.to_owned()))
            .ok_or_else(|| SnapshotGap(workspace.to_owned()))?;
        let changed = slot.state.merge(&event.contact, at_ms);
        slot.dirty |= !slot.stored || changed;
        Ok(())
    }

    fn into_writes(self, out: &mut Replay) {
        let mut contacts: Vec<(ContactKey, ContactState)> = self
            .contacts
            .into_iter()
            .filter(|(_, c)| c.dirty)
            .map(|(k, c)| (k, c.state))
            .collect();
        contacts.sort_by(|a, b| a.0.cmp(&b.0));
        let mut links: Vec<(LinkKey, Link)> = self
            .links
            .into_iter()
            .filter(|(_, l)| l.dirty)
            .map(|(k, l)| (k, l.link))
            .collect();
        links.sort_by(|a, b| a.0.cmp(&b.0));
        out.contacts = contacts;
        out.links = links;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookgate_providers::{ContactUpdate, Identity};

    fn event(id: &str, email: Option<&str>, ids: &[(&str, &str)], at: i64) -> NormalizedEvent {
        NormalizedEvent {
            event_id: id.into(),
            event_type: "t".into(),
            occurred_at_ms: Some(at),
            identity: Identity {
                email: email.map(str::to_owned),
                ids: ids
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            contact: ContactUpdate::default(),
            event_fields: BTreeMap::new(),
        }
    }

    fn plan(id: &str, events: Vec<NormalizedEvent>) -> EventPlan {
        EventPlan {
            ingest_id: id.into(),
            workspace: "w".into(),
            connection_id: "c".into(),
            provider: "p".into(),
            received_at: 0,
            retried: false,
            claimed_by: Some("worker".into()),
            plan: Plan::Normalized(events),
        }
    }

    fn owned(plans: &[EventPlan]) -> HashSet<String> {
        plans.iter().map(|p| p.ingest_id.clone()).collect()
    }

    fn key(k: &str, v: &str) -> LinkKey {
        ("w".into(), k.into(), v.into())
    }

    fn statuses(replay: &Replay) -> Vec<&'static str> {
        replay.results.iter().map(|r| r.outcome.as_str()).collect()
    }

    /// Reads a snapshot the way the store does, from an in-memory "store".
    fn read(
        batch: &Batch<'_>,
        links: &[(LinkKey, &str, i64)],
        contacts: &[(&str, ContactState)],
    ) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for (workspace, ids) in batch.links_to_read() {
            for (k, v) in ids {
                let key = (workspace.clone(), k, v);
                if let Some((_, email, seen_at)) = links.iter().find(|(l, _, _)| *l == key) {
                    snapshot.links.insert(
                        key,
                        Link {
                            email: (*email).to_owned(),
                            seen_at: *seen_at,
                        },
                    );
                }
            }
        }
        for (workspace, emails) in batch.contacts_to_read(&snapshot.links) {
            for email in emails {
                let stored = contacts
                    .iter()
                    .find(|(e, _)| *e == email)
                    .map(|(_, c)| c.clone());
                snapshot.contacts.insert((workspace.clone(), email), stored);
            }
        }
        snapshot
    }

    #[test]
    fn an_id_seen_earlier_in_the_batch_resolves_a_later_event() {
        let plans = vec![
            plan(
                "1",
                vec![event("a", Some("Ada@X.io"), &[("p_id", "7")], 10)],
            ),
            plan("2", vec![event("b", None, &[("p_id", "7")], 20)]),
        ];
        let owned = owned(&plans);
        let batch = Batch::new(&plans, &owned);
        let replay = batch
            .replay(read(&batch, &[], &[]), |_, _| false)
            .expect("replays");
        assert_eq!(statuses(&replay), ["processed", "processed"]);
        assert_eq!(replay.fires.len(), 2);
        assert!(replay.fires.iter().all(|f| f.email == "ada@x.io"));
        assert_eq!(replay.finishes[1].email.as_deref(), Some("ada@x.io"));
        assert_eq!(replay.revealed, vec![(key("p_id", "7"), 0)]);
        assert_eq!(replay.contacts.len(), 1, "the new contact is written once");
        assert_eq!(replay.links.len(), 1);
    }

    #[test]
    fn a_stored_link_resolves_to_the_stored_contact_read_up_front() {
        let plans = vec![plan("1", vec![event("a", None, &[("p_id", "7")], 10)])];
        let owned = owned(&plans);
        let batch = Batch::new(&plans, &owned);
        let stored = ContactState {
            first_name: Some("Ada".into()),
            ..ContactState::default()
        };
        let snapshot = read(
            &batch,
            &[(key("p_id", "7"), "ada@x.io", 5)],
            &[("ada@x.io", stored)],
        );
        assert!(snapshot
            .contacts
            .contains_key(&("w".into(), "ada@x.io".into())));
        let replay = batch.replay(snapshot, |_, _| false).expect("replays");
        assert_eq!(statuses(&replay), ["processed"]);
        // Nothing changed: no contact and no link to write, nothing revealed.
        assert!(replay.contacts.is_empty());
        assert!(replay.links.is_empty());
        assert!(replay.revealed.is_empty());
    }

    #[test]
    fn an_unknown_id_parks_the_event_and_names_the_id() {
        let mut p = plan("1", vec![event("a", None, &[("p_id", "9")], 10)]);
        p.retried = true;
        let plans = vec![p];
        let owned = owned(&plans);
        let batch = Batch::new(&plans, &owned);
        let replay = batch
            .replay(read(&batch, &[], &[]), |_, _| false)
            .expect("replays");
        assert_eq!(statuses(&replay), ["unresolved"]);
        assert_eq!(replay.cleared, vec!["1".to_owned()]);
        assert_eq!(replay.parked.len(), 1);
        assert_eq!(replay.parked[0].value, "9");
        let reason = replay.finishes[0].reason.as_deref().unwrap_or_default();
        assert!(reason.contains("p_id=9"), "{reason}");
        assert!(replay.fires.is_empty());
    }

    #[test]
    fn links_move_only_forward_in_time_and_report_what_they_reveal() {
        let mut links = HashMap::new();
        let ids = [("k".to_owned(), "1".to_owned())];
        assert_eq!(
            link_ids(&mut links, "w", &ids, "a@x.io", 100),
            vec![key("k", "1")]
        );
        // Same email: no change, nothing revealed.
        assert!(link_ids(&mut links, "w", &ids, "a@x.io", 200).is_empty());
        // Older event to another email: ignored.
        assert!(link_ids(&mut links, "w", &ids, "b@x.io", 50).is_empty());
        // Newer event to another email: moves.
        assert_eq!(link_ids(&mut links, "w", &ids, "c@x.io", 300).len(), 1);
        let later = event("x", None, &[("k", "1")], 400);
        assert_eq!(
            resolve_email(&links, "w", &later).as_deref(),
            Some("c@x.io")
        );
        assert_eq!(resolve_email(&links, "other", &later), None);
    }

    #[test]
    fn lost_claims_are_skipped_and_read_nothing() {
        let plans = vec![
            plan("1", vec![event("a", Some("a@x.io"), &[("p_id", "1")], 10)]),
            plan("2", vec![event("b", Some("b@x.io"), &[], 10)]),
        ];
        let owned: HashSet<String> = ["2".to_owned()].into();
        let batch = Batch::new(&plans, &owned);
        assert!(batch.links_to_read().is_empty());
        let replay = batch
            .replay(read(&batch, &[], &[]), |_, _| false)
            .expect("replays");
        assert_eq!(statuses(&replay), ["skipped", "processed"]);
        assert_eq!(replay.finishes.len(), 1);
    }

    #[test]
    fn ignored_and_failed_plans_finish_with_their_reason() {
        let mut ignored = plan("1", Vec::new());
        ignored.plan = Plan::Ignored("not mapped".into());
        let mut failed = plan("2", Vec::new());
        failed.plan = Plan::Failed {
            reason: "bad".into(),
            retry_at: Some(99),
        };
        let plans = vec![ignored, failed];
        let owned = owned(&plans);
        let batch = Batch::new(&plans, &owned);
        let replay = batch
            .replay(Snapshot::default(), |_, _| false)
            .expect("replays");
        assert_eq!(statuses(&replay), ["ignored", "failed"]);
        assert_eq!(replay.finishes[1].next_attempt_at, Some(99));
        assert_eq!(replay.finishes[0].reason.as_deref(), Some("not mapped"));
    }

    #[test]
    fn field_definitions_are_made_once_and_only_when_unknown() {
        let mut e = event("a", Some("a@x.io"), &[], 10);
        e.contact
            .fields
            .insert("p_plan".into(), serde_json::json!("pro"));
        e.contact
            .fields
            .insert("p_seats".into(), serde_json::json!(3));
        let plans = vec![plan("1", vec![e.clone()]), plan("2", vec![e])];
        let owned = owned(&plans);
        let batch = Batch::new(&plans, &owned);
        let replay = batch
            .replay(read(&batch, &[], &[]), |_, key| key == "p_plan")
            .expect("replays");
        assert_eq!(replay.fields.len(), 1);
        assert_eq!(replay.fields[0].key, "p_seats");
        assert_eq!(replay.fields[0].kind, "number");
    }

    #[test]
    fn a_snapshot_without_the_resolved_contact_is_an_error_not_a_new_contact() {
        let plans = vec![plan("1", vec![event("a", Some("a@x.io"), &[], 10)])];
        let owned = owned(&plans);
        let batch = Batch::new(&plans, &owned);
        assert!(batch.replay(Snapshot::default(), |_, _| false).is_err());
    }

    #[test]
    fn requeues_are_credited_to_the_first_plan_that_revealed_the_link() {
        let revealed = vec![(key("k", "1"), 0), (key("k", "1"), 1), (key("k", "2"), 1)];
        let waiting: BTreeMap<LinkKey, Vec<String>> = [
            (key("k", "1"), vec!["p1".to_owned(), "p2".to_owned()]),
            (key("k", "2"), vec!["p3".to_owned()]),
        ]
        .into();
        // p3 was not unresolved any more (already requeued elsewhere).
        let requeued: HashSet<String> = ["p1".to_owned(), "p2".to_owned()].into();
        let (counts, done) = credit_requeues(&revealed, &waiting, &requeued, 2);
        assert_eq!(counts, vec![2, 0]);
        assert_eq!(done, vec![&key("k", "1")]);
    }
}
