//! Contacts and trigger payloads: the pure rules the pipeline applies inside its transaction.
//!
//! - Emails are trimmed and lower-cased; that is the contact key within a workspace.
//! - Every field remembers the provider time of the event that wrote it; an update older than
//!   that time leaves the field alone, so out-of-order deliveries cannot regress a contact.
//! - A fire's payload is `{"email", core fields, <provider>_* contact fields, event fields}`, and
//!   its schema lists each key with its JSON type; `email` is always a required string.

use std::collections::BTreeMap;

use hookgate_providers::{ContactUpdate, NormalizedEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The contact key: trimmed, lower-cased; `None` for anything that is not plausibly an email.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && email.len() <= 320
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    plausible.then_some(email)
}

/// A contact as stored, ready to merge into.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactState {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub subscribed: Option<bool>,
    pub custom_fields: Map<String, Value>,
    /// Field name (core or custom) → provider time in ms of the value it holds.
    pub field_times: BTreeMap<String, i64>,
}

impl ContactState {
    /// Applies `update`, made at provider time `at_ms`, field by field: a field is written only
    /// when no newer event wrote it. `subscribed` is timed by `update.subscribed_at_ms` when the
    /// provider says when the consent itself changed, so an unchanged consent re-sent by a later
    /// event is as old as the consent. Returns whether anything changed.
    pub fn merge(&mut self, update: &ContactUpdate, at_ms: i64) -> bool {
        let mut changed = false;
        let newer_or_same_at = |times: &mut BTreeMap<String, i64>, key: &str, at: i64| -> bool {
            match times.get(key) {
                Some(&t) if t > at => false,
                _ => {
                    times.insert(key.to_owned(), at);
                    true
                }
            }
        };
        let newer_or_same =
            |times: &mut BTreeMap<String, i64>, key: &str| newer_or_same_at(times, key, at_ms);
        if let Some(v) = &update.first_name {
            if newer_or_same(&mut self.field_times, "first_name")
                && self.first_name.as_ref() != Some(v)
            {
                self.first_name = Some(v.clone());
                changed = true;
            }
        }
        if let Some(v) = &update.last_name {
            if newer_or_same(&mut self.field_times, "last_name")
                && self.last_name.as_ref() != Some(v)
            {
                self.last_name = Some(v.clone());
                changed = true;
            }
        }
        if let Some(v) = update.subscribed {
            let at = update.subscribed_at_ms.unwrap_or(at_ms);
            if newer_or_same_at(&mut self.field_times, "subscribed", at)
                && self.subscribed != Some(v)
            {
                self.subscribed = Some(v);
                changed = true;
            }
        }
        for (key, value) in &update.fields {
            if value.is_null() || value.is_object() || value.is_array() {
                continue;
            }
            if newer_or_same(&mut self.field_times, key)
                && self.custom_fields.get(key) != Some(value)
            {
                self.custom_fields.insert(key.clone(), value.clone());
                changed = true;
            }
        }
        changed
    }
}

/// The JSON type name a field definition records.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        _ => "string",
    }
}

/// The payload of the fire for `event`, whose contact is `email`.
pub fn fire_payload(email: &str, event: &NormalizedEvent) -> Map<String, Value> {
    let mut payload = Map::new();
    payload.insert("email".into(), Value::String(email.to_owned()));
    let c = &event.contact;
    if let Some(v) = &c.first_name {
        payload.insert("first_name".into(), Value::String(v.clone()));
    }
    if let Some(v) = &c.last_name {
        payload.insert("last_name".into(), Value::String(v.clone()));
    }
    if let Some(v) = c.subscribed {
        payload.insert("subscribed".into(), Value::Bool(v));
    }
    for (k, v) in c.fields.iter().chain(event.event_fields.iter()) {
        if !(v.is_null() || v.is_object() || v.is_array()) {
            payload.insert(k.clone(), v.clone());
        }
    }
    payload
}

/// One field of a trigger's payload schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SchemaField {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub required: bool,
}

/// A trigger's payload schema: `{"fields": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PayloadSchema {
    pub fields: Vec<SchemaField>,
}

impl PayloadSchema {
    /// Adds the keys of `payload` not yet in the schema; `email` is always a required string
    /// and comes first. Returns whether the schema changed.
    pub fn absorb(&mut self, payload: &Map<String, Value>) -> bool {
        let mut changed = false;
        if !self.fields.iter().any(|f| f.key == "email") {
            self.fields.insert(
                0,
                SchemaField {
                    key: "email".into(),
                    kind: "string".into(),
                    required: true,
                },
            );
            changed = true;
        }
        for (key, value) in payload {
            if !self.fields.iter().any(|f| &f.key == key) {
                self.fields.push(SchemaField {
                    key: key.clone(),
                    kind: json_type(value).into(),
                    required: false,
                });
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            normalize_email("  Jenny.Rosen@Example.COM "),
            Some("jenny.rosen@example.com".into())
        );
        for bad in [
            "",
            "   ",
            "no-at-sign",
            "@example.com",
            "a@",
            "a@b@c",
            "a b@example.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad:?}");
        }
    }

    fn update(first: &str, plan: &str) -> ContactUpdate {
        let mut fields = BTreeMap::new();
        fields.insert("stripe_price_id".to_owned(), json!(plan));
        ContactUpdate {
            first_name: Some(first.into()),
            fields,
            ..ContactUpdate::default()
        }
    }

    #[test]
    fn older_events_never_overwrite_newer_values() {
        let mut c = ContactState::default();
        assert!(c.merge(&update("New", "price_new"), 2_000));
        // Delivered late: an older event.
        assert!(!c.merge(&update("Old", "price_old"), 1_000));
        assert_eq!(c.first_name.as_deref(), Some("New"));
        assert_eq!(c.custom_fields["stripe_price_id"], "price_new");
        // A field the newer event did not touch is still written by the older one.
        let mut extra = ContactUpdate::default();
        extra.fields.insert("stripe_livemode".into(), json!(false));
        assert!(c.merge(&extra, 1_000));
        assert_eq!(c.custom_fields["stripe_livemode"], false);
        // Replaying the same event changes nothing.
        assert!(!c.merge(&update("New", "price_new"), 2_000));
        assert_eq!(c.field_times["first_name"], 2_000);
    }

    #[test]
    fn subscribed_is_ordered_by_its_own_time_when_given() {
        let consent = |subscribed: bool, at: Option<i64>| ContactUpdate {
            subscribed: Some(subscribed),
            subscribed_at_ms: at,
            ..ContactUpdate::default()
        };
        let mut c = ContactState::default();
        // Consent given at 1 000 (delivered at 1 000).
        assert!(c.merge(&consent(true, Some(1_000)), 1_000));
        // Another provider suppresses at 2 000.
        assert!(c.merge(&consent(false, None), 2_000));
        // A later event (3 000) re-sends the consent of 1 000 unchanged: it stays suppressed,
        // and other fields of that event are still written at 3 000.
        let mut resent = consent(true, Some(1_000));
        resent.first_name = Some("Bob".into());
        assert!(c.merge(&resent, 3_000));
        assert_eq!(c.subscribed, Some(false));
        assert_eq!(c.field_times["subscribed"], 2_000);
        assert_eq!(c.field_times["first_name"], 3_000);
        // A consent that changed after the suppression wins, with its own time.
        assert!(c.merge(&consent(true, Some(2_500)), 2_600));
        assert_eq!(c.subscribed, Some(true));
        assert_eq!(c.field_times["subscribed"], 2_500);
    }

    #[test]
    fn schemas_put_a_required_email_first() {
        let mut s = PayloadSchema::default();
        let mut p = Map::new();
        p.insert("email".into(), json!("a@example.com"));
        p.insert("stripe_amount_paid".into(), json!(100));
        p.insert("stripe_livemode".into(), json!(false));
        assert!(s.absorb(&p));
        assert!(!s.absorb(&p));
        assert_eq!(
            s.fields[0],
            SchemaField {
                key: "email".into(),
                kind: "string".into(),
                required: true
            }
        );
        assert!(s
            .fields
            .iter()
            .any(|f| f.key == "stripe_amount_paid" && f.kind == "number" && !f.required));
        assert!(s
            .fields
            .iter()
            .any(|f| f.key == "stripe_livemode" && f.kind == "boolean"));
    }
}
