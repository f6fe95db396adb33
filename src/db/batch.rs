//! The in-memory half of applying a batch of processed events.
//!
//! Applying events one statement at a time costs about seven round trips an event (ownership,
//! contact read, contact write, id links, fire, status); on PostgreSQL that round-trip time, and
//! on SQLite the time the single writer connection is held, bounded the pipeline to about a
//! thousand events a second. Instead, [`crate::db::processing`] reads every row a batch touches in
//! a few statements, this module replays the events over those rows in order, exactly as the
//! one-at-a-time statements would have, and the results are written back with a few multi-row
//! statements. The replay is only valid because nothing else writes these rows meanwhile: SQLite
//! has one writer, and on PostgreSQL every apply transaction holds the same advisory lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use hookgate_providers::NormalizedEvent;

use crate::contacts::ContactState;

/// A contact as the batch leaves it.
#[derive(Debug)]
pub(crate) struct ContactSlot {
    pub state: ContactState,
    /// Whether it must be written (new, or changed by the batch).
    pub dirty: bool,
}

/// An identity link (`<provider>_*_id` value → email) as the batch leaves it.
#[derive(Debug)]
pub(crate) struct LinkSlot {
    pub email: String,
    pub seen_at: i64,
    pub dirty: bool,
}

/// A fire the batch produces; its sequence number is known after the insert.
#[derive(Debug)]
pub(crate) struct NewFire {
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
#[derive(Debug)]
pub(crate) struct Finish {
    pub id: String,
    pub status: &'static str,
    pub reason: Option<String>,
    pub email: Option<String>,
    pub next_attempt_at: Option<i64>,
}

/// An id a parked (`unresolved`) event waits for.
#[derive(Debug)]
pub(crate) struct Parked {
    pub ingest_id: String,
    pub workspace: String,
    pub key: String,
    pub value: String,
}

/// Everything a batch reads and writes, keyed as the tables are.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// (workspace, email) → contact; contacts not in the store are absent until created.
    pub contacts: HashMap<(String, String), ContactSlot>,
    /// (workspace, email) pairs known to have no stored contact.
    pub absent: BTreeSet<(String, String)>,
    /// (workspace, key, value) → link.
    pub links: HashMap<(String, String, String), LinkSlot>,
    /// Links the batch created or re-pointed, with the plan that did it, in order.
    pub revealed: Vec<((String, String, String), usize)>,
    pub fires: Vec<NewFire>,
    pub finishes: Vec<Finish>,
    pub parked: Vec<Parked>,
}

/// The emails and ids of the batch's events, by workspace: the rows to read up front.
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    pub emails: BTreeMap<String, BTreeSet<String>>,
    pub ids: BTreeMap<String, BTreeSet<(String, String)>>,
}

impl Wanted {
    pub fn add(&mut self, workspace: &str, event: &NormalizedEvent) {
        if let Some(email) = event
            .identity
            .email
            .as_deref()
            .and_then(crate::contacts::normalize_email)
        {
            self.emails
                .entry(workspace.to_owned())
                .or_default()
                .insert(email);
        }
        if !event.identity.ids.is_empty() {
            let ids = self.ids.entry(workspace.to_owned()).or_default();
            for (key, value) in &event.identity.ids {
                ids.insert((key.clone(), value.clone()));
            }
        }
    }
}

impl Work {
    /// The email the event's provider ids point to, most specific first (as the stored links
    /// stand at this point of the batch).
    pub fn resolve(&self, workspace: &str, ids: &[(String, String)]) -> Option<String> {
        ids.iter().find_map(|(key, value)| {
            self.links
                .get(&(workspace.to_owned(), key.clone(), value.clone()))
                .map(|l| l.email.clone())
        })
    }

    /// Whether the contact's stored row (or its absence) is known to the batch.
    pub fn has_contact(&self, workspace: &str, email: &str) -> bool {
        let key = (workspace.to_owned(), email.to_owned());
        self.contacts.contains_key(&key) || self.absent.contains(&key)
    }

    /// Merges `event` into the contact (created if absent).
    pub fn merge_contact(
        &mut self,
        workspace: &str,
        email: &str,
        event: &NormalizedEvent,
        at_ms: i64,
    ) {
        let key = (workspace.to_owned(), email.to_owned());
        let is_new = self.absent.remove(&key);
        let slot = self.contacts.entry(key).or_insert_with(|| ContactSlot {
            state: ContactState::default(),
            dirty: true,
        });
        let changed = slot.state.merge(&event.contact, at_ms);
        slot.dirty |= is_new || changed;
    }

    /// Links the event's ids to `email`, as `INSERT … ON CONFLICT DO UPDATE … WHERE seen_at <=
    /// new AND email <> new` would: a link moves only to an event at least as recent, and only
    /// a new or moved link counts as revealing an identity.
    pub fn link(
        &mut self,
        workspace: &str,
        ids: &[(String, String)],
        email: &str,
        at_ms: i64,
        plan: usize,
    ) {
        for (key, value) in ids {
            let k = (workspace.to_owned(), key.clone(), value.clone());
            let moved = match self.links.get_mut(&k) {
                None => {
                    self.links.insert(
                        k.clone(),
                        LinkSlot {
                            email: email.to_owned(),
                            seen_at: at_ms,
                            dirty: true,
                        },
                    );
                    true
                }
                Some(link) if link.seen_at <= at_ms && link.email != email => {
                    link.email = email.to_owned();
                    link.seen_at = at_ms;
                    link.dirty = true;
                    true
                }
                Some(_) => false,
            };
            if moved {
                self.revealed.push((k, plan));
            }
        }
    }
}

/// Splits `items` into statement-sized chunks.
pub(crate) fn chunks<T>(items: &[T]) -> std::slice::Chunks<'_, T> {
    /// Rows per multi-row statement: at most 9 binds a row keeps every statement far under
    /// SQLite's 32 766 and PostgreSQL's 65 535 bind limits.
    const ROWS_PER_STATEMENT: usize = 300;
    items.chunks(ROWS_PER_STATEMENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookgate_providers::{ContactUpdate, Identity};

    fn event(email: Option<&str>, ids: &[(&str, &str)], first: Option<&str>) -> NormalizedEvent {
        NormalizedEvent {
            event_id: "evt".into(),
            event_type: "t".into(),
            occurred_at_ms: None,
            identity: Identity {
                email: email.map(str::to_owned),
                ids: ids
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                ..Identity::default()
            },
            contact: ContactUpdate {
                first_name: first.map(str::to_owned),
                ..ContactUpdate::default()
            },
            event_fields: BTreeMap::new(),
            ..NormalizedEvent::default()
        }
    }

    #[test]
    fn links_move_only_forward_in_time_and_report_what_they_reveal() {
        let mut work = Work::default();
        work.link("w", &[("k".into(), "1".into())], "a@x.io", 100, 0);
        // Same email: no change, nothing revealed.
        work.link("w", &[("k".into(), "1".into())], "a@x.io", 200, 1);
        // Older event to another email: ignored.
        work.link("w", &[("k".into(), "1".into())], "b@x.io", 50, 2);
        // Newer event to another email: moves.
        work.link("w", &[("k".into(), "1".into())], "c@x.io", 300, 3);
        let plans: Vec<usize> = work.revealed.iter().map(|(_, p)| *p).collect();
        assert_eq!(plans, vec![0, 3]);
        assert_eq!(
            work.resolve("w", &[("k".into(), "1".into())]).as_deref(),
            Some("c@x.io")
        );
        assert_eq!(work.resolve("other", &[("k".into(), "1".into())]), None);
    }

    #[test]
    fn a_contact_is_written_when_new_or_changed_only() {
        let mut work = Work::default();
        work.contacts.insert(
            ("w".into(), "old@x.io".into()),
            ContactSlot {
                state: ContactState {
                    first_name: Some("Ada".into()),
                    ..ContactState::default()
                },
                dirty: false,
            },
        );
        work.absent.insert(("w".into(), "new@x.io".into()));
        // An event that changes nothing leaves the stored contact unwritten.
        work.merge_contact("w", "old@x.io", &event(Some("old@x.io"), &[], None), 1);
        assert!(!work.contacts[&("w".into(), "old@x.io".into())].dirty);
        // A new contact is written even when the event carries no field.
        work.merge_contact("w", "new@x.io", &event(Some("new@x.io"), &[], None), 1);
        assert!(work.contacts[&("w".into(), "new@x.io".into())].dirty);
        assert!(!work.absent.contains(&("w".into(), "new@x.io".into())));
        // A change marks the stored contact for writing.
        work.merge_contact(
            "w",
            "old@x.io",
            &event(Some("old@x.io"), &[], Some("Bo")),
            2,
        );
        let old = &work.contacts[&("w".into(), "old@x.io".into())];
        assert!(old.dirty);
        assert_eq!(old.state.first_name.as_deref(), Some("Bo"));
    }

    #[test]
    fn wanted_collects_normalized_emails_and_ids_by_workspace() {
        let mut wanted = Wanted::default();
        wanted.add("w", &event(Some(" Ada@X.io "), &[("k", "1")], Some("A")));
        wanted.add("v", &event(None, &[("k", "2")], None));
        assert_eq!(
            wanted
                .emails
                .get("w")
                .map(|s| s.iter().cloned().collect::<Vec<_>>()),
            Some(vec!["ada@x.io".to_owned()])
        );
        assert!(!wanted.emails.contains_key("v"));
        assert_eq!(wanted.ids.get("v").map(BTreeSet::len), Some(1));
    }
}
