//! Contact lifecycle events: what a batch's contact writes mean to subscribers.
//!
//! Pure: given the contacts as stored before a batch and as the batch writes them, it returns
//! the events to insert in the same transaction: `contact.created` (a new contact),
//! `contact.updated` (with the names of the changed fields) and `contact.suppressed`
//! (`subscribed` became false).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::contacts::ContactState;
use crate::resolution::ContactKey;

/// One event to insert into `fires` (provider `hookgate`, no ingest row).
#[derive(Debug, Clone, PartialEq)]
pub struct ContactEvent {
    pub key: String,
    pub workspace: String,
    pub event_type: &'static str,
    pub email: String,
    pub payload: Value,
}

/// The contact as events show it.
fn view(workspace: &str, email: &str, c: &ContactState) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("email".into(), json!(email));
    m.insert("workspace".into(), json!(workspace));
    m.insert("first_name".into(), json!(c.first_name));
    m.insert("last_name".into(), json!(c.last_name));
    m.insert("subscribed".into(), json!(c.subscribed));
    m.insert(
        "custom_fields".into(),
        Value::Object(c.custom_fields.clone()),
    );
    m
}

/// The names of the fields whose values differ (core fields, then custom fields in key order).
pub fn changed_fields(old: &ContactState, new: &ContactState) -> Vec<String> {
    let mut changed = Vec::new();
    if old.first_name != new.first_name {
        changed.push("first_name".to_owned());
    }
    if old.last_name != new.last_name {
        changed.push("last_name".to_owned());
    }
    if old.subscribed != new.subscribed {
        changed.push("subscribed".to_owned());
    }
    let mut keys: Vec<&String> = old
        .custom_fields
        .keys()
        .chain(new.custom_fields.keys())
        .collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if old.custom_fields.get(key) != new.custom_fields.get(key) {
            changed.push(key.clone());
        }
    }
    changed
}

/// The events for a batch. `token` makes the idempotency keys unique to this batch.
pub fn contact_events(
    before: &HashMap<ContactKey, Option<ContactState>>,
    after: &[(ContactKey, ContactState)],
    token: &str,
) -> Vec<ContactEvent> {
    let mut events = Vec::new();
    for ((workspace, email), new) in after {
        let old = before
            .get(&(workspace.clone(), email.clone()))
            .and_then(Option::as_ref);
        let mut push = |event_type: &'static str, payload: Map<String, Value>| {
            events.push(ContactEvent {
                key: format!("{event_type}:{workspace}:{email}:{token}"),
                workspace: workspace.clone(),
                event_type,
                email: email.clone(),
                payload: Value::Object(payload),
            });
        };
        match old {
            None => push("contact.created", view(workspace, email, new)),
            Some(old) => {
                let changed = changed_fields(old, new);
                if !changed.is_empty() {
                    let mut payload = view(workspace, email, new);
                    payload.insert("changed".into(), json!(changed));
                    push("contact.updated", payload);
                }
            }
        }
        let was_suppressed = old.is_some_and(|o| o.subscribed == Some(false));
        if new.subscribed == Some(false) && !was_suppressed {
            push("contact.suppressed", view(workspace, email, new));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(first: &str, subscribed: Option<bool>) -> ContactState {
        ContactState {
            first_name: Some(first.into()),
            subscribed,
            ..ContactState::default()
        }
    }

    #[test]
    fn created_updated_suppressed() {
        let key = |e: &str| ("acme".to_owned(), e.to_owned());
        let mut before = HashMap::new();
        before.insert(key("new@example.com"), None);
        before.insert(key("same@example.com"), Some(contact("Ann", Some(true))));
        before.insert(key("renamed@example.com"), Some(contact("Bob", Some(true))));
        before.insert(key("off@example.com"), Some(contact("Cy", Some(true))));
        let mut with_field = contact("Bob", Some(true));
        with_field.last_name = Some("Stone".into());
        with_field
            .custom_fields
            .insert("stripe_customer_id".into(), json!("cus_1"));
        let after = vec![
            (key("new@example.com"), contact("Dee", None)),
            (key("same@example.com"), contact("Ann", Some(true))),
            (key("renamed@example.com"), with_field),
            (key("off@example.com"), contact("Cy", Some(false))),
        ];
        let events = contact_events(&before, &after, "t1");
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.event_type, e.email.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("contact.created", "new@example.com"),
                ("contact.updated", "renamed@example.com"),
                ("contact.updated", "off@example.com"),
                ("contact.suppressed", "off@example.com"),
            ]
        );
        assert_eq!(
            events[1].payload["changed"],
            json!(["last_name", "stripe_customer_id"])
        );
        assert_eq!(events[2].payload["changed"], json!(["subscribed"]));
        assert_eq!(events[3].payload["subscribed"], json!(false));
        assert_eq!(events[0].key, "contact.created:acme:new@example.com:t1");
        // Already suppressed: no second suppression.
        let before = HashMap::from([(key("off@example.com"), Some(contact("Cy", Some(false))))]);
        let after = vec![(key("off@example.com"), contact("Cyd", Some(false)))];
        let kinds: Vec<&str> = contact_events(&before, &after, "t2")
            .iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(kinds, vec!["contact.updated"]);
    }
}
