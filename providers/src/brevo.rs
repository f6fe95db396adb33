//! Brevo (<https://developers.brevo.com/docs/transactional-webhooks>).
//!
//! - Authenticity: **unsigned**. Brevo offers a bearer token (`auth: {type: bearer}`), basic auth
//!   in the notify URL, custom headers, and published source ranges: configure a shared secret with
//!   `auth` (default `bearer`) and, ideally, `allow_ips = ["@brevo"]`.
//! - Event id: **none** (the body's `id` is the webhook's own id, the same for every event). The
//!   synthetic dedupe key is `sha256:<hex of the raw body>`; a retry carries the same body.
//! - Event type: the body's `event` (`delivered`, `hard_bounce`, `unsubscribed`, …). A batched
//!   webhook posts a JSON array of events; its ingest type is `batch` and the pipeline treats each
//!   element as its own event.
//! - Retries: only timeouts and HTTP 429 are retried ("4xx except 429 and any 5xx … discard the
//!   webhook"), so hookgate answers 429, never 503, when it cannot store a Brevo delivery.
//! - Quirks: older docs spell `hard_bounced`/`soft_bounced`; both spellings are mapped.
//!
//! Normalizing:
//! - Mapped events: `delivered`, `opened`, `unique_opened`, `click` (transactional) and
//!   `clicked` (marketing), `soft_bounce(d)`, `hard_bounce(d)`, `spam`, `complaint`,
//!   `unsubscribed` (transactional) and `unsubscribe` (marketing), `blocked`,
//!   `contact_updated`, `list_addition`, `contact_deleted`. A batch gives one normalized event
//!   per mapped element (unmapped elements are skipped), each with its own id `sha256:<hex>` of
//!   the element's canonical JSON (keys sorted, compact) and its own `event` as type; a single
//!   event keeps the ingest id. A mapped element without an email fails the whole delivery, so a
//!   malformed batch is never half applied.
//! - Email: the top-level `email` of email events (Brevo sends no contact id). Contact events
//!   as Brevo really sends them have no top-level `email`: `content` is an array of
//!   `{email, attributes, list: {addition, deletion}}` entries (or `{email, emailBlacklist}` for
//!   a blocklisting), and each entry is its own normalized event; with several entries each id
//!   is `<delivery id>:<index>`. `contact_deleted` carries `email` as a string or an array, one
//!   event per address. `occurred_at_ms`: `ts_epoch` (ms), else `ts_event` or `ts` (seconds).
//! - `subscribed = false` on `hard_bounce(d)`, `spam`, `complaint`, `unsubscribed`,
//!   `unsubscribe`, and a contact entry with `emailBlacklist: true`. Names from the entry's
//!   `attributes.FIRSTNAME` / `attributes.LASTNAME` (Brevo's standard attributes); every other
//!   scalar attribute becomes `brevo_<snake_case name>` on the contact.
//! - Contact fields: `brevo_last_event`, `brevo_unsubscribed`, `brevo_hard_bounced`,
//!   `brevo_blocked`, `brevo_deleted` (`true` on contact_deleted, `false` on contact_updated and
//!   list_addition), `brevo_email_blacklisted`, `brevo_last_message_id`,
//!   `brevo_last_campaign_id`, `brevo_list_ids` (list_addition: the lists joined), the
//!   attributes.
//! - Fire-only fields: `brevo_subject`, `brevo_link`, `brevo_reason`, `brevo_template_id`,
//!   `brevo_tags`, `brevo_campaign_name`, `brevo_list_ids` (unsubscribe(d), contact_deleted: the
//!   lists left), `brevo_lists_added` / `brevo_lists_removed` (contact_updated),
//!   `brevo_x_mailin_custom`, `brevo_api_key_name`.

use serde_json::Value;

use crate::normalize::{
    canonical_id, id_text, joined, lookup, mapped_meta, parse, secs_to_ms, shape, snake_case, text,
};
use crate::Signing;
use crate::{
    as_object, str_field, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, Provider, ProviderId, Verified,
};

/// Event names hookgate maps.
pub const MAPPED: &[&str] = &[
    "delivered",
    "opened",
    "unique_opened",
    "click",
    "clicked",
    "soft_bounce",
    "soft_bounced",
    "hard_bounce",
    "hard_bounced",
    "spam",
    "complaint",
    "unsubscribed",
    "unsubscribe",
    "blocked",
    "contact_updated",
    "list_addition",
    "contact_deleted",
];

/// The ingest event type of a batched (JSON array) delivery.
pub const BATCH_TYPE: &str = "batch";

pub struct Brevo;

impl Provider for Brevo {
    fn id(&self) -> ProviderId {
        ProviderId::Brevo
    }

    fn signing(&self) -> Signing {
        Signing::SharedSecret
    }

    fn identify_parsed(
        &self,
        event: &Verified<'_>,
        body: &serde_json::Value,
    ) -> Result<EventMeta, IdentifyError> {
        let event_id = format!("sha256:{}", crate::body_digest(event.body()));
        if let serde_json::Value::Array(items) = body {
            if items.is_empty() {
                return Err(IdentifyError::UnexpectedShape("an empty batch"));
            }
            let mut mapped = false;
            for item in items {
                let name = item.as_object().and_then(|o| str_field(o, "event")).ok_or(
                    IdentifyError::UnexpectedShape("a batch element has no `event`"),
                )?;
                mapped |= MAPPED.contains(&name);
            }
            return Ok(EventMeta {
                event_id,
                event_type: BATCH_TYPE.to_owned(),
                mapped,
            });
        }
        let body = as_object(body)?;
        let name = str_field(body, "event").ok_or(IdentifyError::UnexpectedShape("no `event`"))?;
        Ok(EventMeta {
            event_id,
            event_type: name.to_owned(),
            mapped: MAPPED.contains(&name),
        })
    }

    fn normalize(
        &self,
        event: &Verified<'_>,
        _context: &NormalizeContext<'_>,
    ) -> Result<Vec<NormalizedEvent>, NormalizeError> {
        let body = parse(event)?;
        let meta = mapped_meta(self, event, &body)?;
        match body {
            Value::Array(items) => {
                let mut events = Vec::new();
                for item in &items {
                    if text(item, "event").is_some_and(|name| MAPPED.contains(&name)) {
                        // The batch's body hash covers all elements; each element needs its
                        // own key so a later batch repeating it is still a duplicate.
                        events.extend(element(canonical_id(item), item)?);
                    }
                }
                if events.is_empty() {
                    return Err(NormalizeError::Unsupported(meta.event_type));
                }
                Ok(events)
            }
            body => element(meta.event_id, &body),
        }
    }
}

/// One Brevo event (a whole body, or one element of a batch): one normalized event, or one per
/// contact for contact events that name several.
fn element(event_id: String, e: &Value) -> Result<Vec<NormalizedEvent>, NormalizeError> {
    let name = text(e, "event").ok_or_else(|| shape("no `event`"))?;
    // Contact events as Brevo sends them: the contacts are the entries of `content`.
    if let Some(entries) = e.get("content").and_then(Value::as_array) {
        if text(e, "email").is_none() {
            if entries.is_empty() {
                return Err(shape("a Brevo contact event with an empty `content`"));
            }
            let several = entries.len() > 1;
            return entries
                .iter()
                .enumerate()
                .map(|(index, entry)| {
                    let id = if several {
                        format!("{event_id}:{index}")
                    } else {
                        event_id.clone()
                    };
                    contact_entry(id, name, e, entry)
                })
                .collect();
        }
    }
    // `contact_deleted` can name several addresses.
    if let Some(emails) = e.get("email").and_then(Value::as_array) {
        let emails: Vec<&str> = emails
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .collect();
        if emails.is_empty() {
            return Err(shape("a Brevo event whose `email` list is empty"));
        }
        let several = emails.len() > 1;
        return Ok(emails
            .iter()
            .enumerate()
            .map(|(index, email)| {
                let id = if several {
                    format!("{event_id}:{index}")
                } else {
                    event_id.clone()
                };
                email_event(id, name, email, e)
            })
            .collect());
    }
    let email = text(e, "email").ok_or_else(|| shape("a Brevo event without `email`"))?;
    Ok(vec![email_event(event_id, name, email, e)])
}

/// When the event happened: `ts_epoch` (ms), else `ts_event` or `ts` (seconds).
fn occurred_at(e: &Value) -> Option<i64> {
    e.get("ts_epoch")
        .and_then(Value::as_i64)
        .or_else(|| e.get("ts_event").and_then(secs_to_ms))
        .or_else(|| e.get("ts").and_then(secs_to_ms))
}

/// One entry of a contact event's `content`: `{email, attributes, list}` or
/// `{email, emailBlacklist}`.
fn contact_entry(
    event_id: String,
    name: &str,
    e: &Value,
    entry: &Value,
) -> Result<NormalizedEvent, NormalizeError> {
    let email =
        text(entry, "email").ok_or_else(|| shape("a Brevo contact entry without `email`"))?;
    let mut out = NormalizedEvent::new(event_id, name);
    out.set_email(Some(email));
    out.occurred_at_ms = occurred_at(e);
    if let Some(attributes) = entry.get("attributes").and_then(Value::as_object) {
        let attribute = |key: &str| attributes.get(key).and_then(Value::as_str);
        out.set_name(attribute("FIRSTNAME"), attribute("LASTNAME"));
        for (key, value) in attributes {
            if matches!(key.as_str(), "FIRSTNAME" | "LASTNAME") {
                continue;
            }
            let snake = snake_case(key);
            if !snake.is_empty() {
                out.field(&format!("brevo_{snake}"), Some(value));
            }
        }
    }
    if let Some(blocklisted) = entry.get("emailBlacklist").and_then(Value::as_bool) {
        out.set_field("brevo_email_blacklisted", blocklisted);
        if blocklisted {
            out.contact.subscribed = Some(false);
        }
    }
    if let Some(added) = lookup(entry, "list.addition").and_then(joined) {
        out.set_event_field("brevo_lists_added", added);
    }
    if let Some(removed) = lookup(entry, "list.deletion").and_then(joined) {
        out.set_event_field("brevo_lists_removed", removed);
    }
    // Written after the attributes, so an attribute cannot stand in for them.
    out.set_field("brevo_last_event", name);
    match name {
        "contact_deleted" => out.set_field("brevo_deleted", true),
        "contact_updated" | "list_addition" => out.set_field("brevo_deleted", false),
        _ => {}
    }
    out.event_field("brevo_api_key_name", e.get("api_key_name"));
    // An attribute named like a fire-only field (`API_KEY_NAME`) must not make one key both.
    let fire_only: Vec<String> = out.event_fields.keys().cloned().collect();
    for key in fire_only {
        out.contact.fields.remove(&key);
    }
    Ok(out)
}

/// An email event (or a contact event with a top-level `email`).
fn email_event(event_id: String, name: &str, email: &str, e: &Value) -> NormalizedEvent {
    let mut out = NormalizedEvent::new(event_id, name);
    out.set_email(Some(email));
    out.occurred_at_ms = occurred_at(e);

    out.set_field("brevo_last_event", name);
    out.field("brevo_last_message_id", e.get("message-id"));
    // Ids are text everywhere in hookgate, whatever JSON type the provider used.
    if let Some(campaign) = e.get("camp_id").and_then(id_text) {
        out.set_field("brevo_last_campaign_id", campaign);
    }
    let lists = e.get("list_id").and_then(joined);
    match name {
        "hard_bounce" | "hard_bounced" => {
            out.contact.subscribed = Some(false);
            out.set_field("brevo_hard_bounced", true);
        }
        "spam" | "complaint" => out.contact.subscribed = Some(false),
        "unsubscribed" | "unsubscribe" => {
            out.contact.subscribed = Some(false);
            out.set_field("brevo_unsubscribed", true);
        }
        "blocked" => out.set_field("brevo_blocked", true),
        "contact_deleted" => out.set_field("brevo_deleted", true),
        "contact_updated" | "list_addition" => out.set_field("brevo_deleted", false),
        _ => {}
    }
    if let Some(lists) = lists {
        // Lists joined belong to the contact; lists left (unsubscribe, delete) only to the fire.
        if name == "list_addition" {
            out.set_field("brevo_list_ids", lists);
        } else {
            out.set_event_field("brevo_list_ids", lists);
        }
    }

    out.event_field("brevo_subject", e.get("subject"));
    out.event_field("brevo_link", e.get("link").or_else(|| e.get("URL")));
    out.event_field("brevo_reason", e.get("reason"));
    if let Some(template) = e.get("template_id").and_then(id_text) {
        out.set_event_field("brevo_template_id", template);
    }
    out.event_field("brevo_campaign_name", e.get("campaign name"));
    // `tags` is the list; transactional events repeat it as a JSON-encoded string in `tag`,
    // while marketing events use `tag` for a plain tag.
    let tags = e.get("tags").and_then(joined).or_else(|| {
        text(e, "tag")
            .filter(|t| !t.trim_start().starts_with('['))
            .map(str::to_owned)
    });
    if let Some(tags) = tags {
        out.set_event_field("brevo_tags", tags);
    }
    out.event_field("brevo_x_mailin_custom", e.get("X-Mailin-custom"));
    out.event_field("brevo_api_key_name", e.get("api_key_name"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;
    use serde_json::json;

    #[test]
    fn conformance() {
        let body =
            br#"{"event":"hard_bounce","email":"a@example.com","id":814119,"ts_event":1700000000}"#;
        testkit::shared_secret_conformance(&Brevo, body);
    }

    fn run(body: &[u8]) -> Result<Vec<NormalizedEvent>, NormalizeError> {
        testkit::normalize(ProviderId::Brevo, &[], body, &NormalizeContext::default())
    }

    #[test]
    fn a_batch_gives_one_event_per_element_with_its_own_id() {
        let body = testkit::fixture(ProviderId::Brevo, "batched.json");
        let events = run(&body).expect("normalizes");
        assert_eq!(events.len(), 3);
        let items: Vec<Value> = serde_json::from_slice(&body).expect("json");
        for (event, item) in events.iter().zip(&items) {
            let bytes = serde_json::to_vec(item).expect("serialize");
            assert_eq!(
                event.event_id,
                format!("sha256:{}", crate::body_digest(&bytes))
            );
            assert_eq!(
                event.identity.email.as_deref(),
                Some("noah.schmidt@example.com")
            );
        }
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["delivered", "opened", "click"]);
        let mut ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3, "distinct ids");
        assert_eq!(events[0].occurred_at_ms, Some(1_763_115_164_231));
        assert!(events[2].event_fields["brevo_link"]
            .as_str()
            .is_some_and(|l| l.starts_with("https://app.example.com/billing")));
    }

    #[test]
    fn batches_skip_unmapped_elements() {
        let body = br#"[{"event":"proxy_open","email":"a@example.com"},{"event":"unsubscribed","email":"a@example.com","ts_event":1}]"#;
        let events = run(body).expect("normalizes");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].contact.subscribed, Some(false));
        assert_eq!(events[0].occurred_at_ms, Some(1000));
        assert_eq!(
            run(br#"[{"event":"proxy_open","email":"a@example.com"}]"#),
            Err(NormalizeError::Unsupported(BATCH_TYPE.into()))
        );
    }

    #[test]
    fn single_events_keep_the_ingest_id_and_set_subscribed() {
        for (name, subscribed) in [
            ("hard_bounce.json", Some(false)),
            ("spam.json", Some(false)),
            ("complaint.json", Some(false)),
            ("unsubscribed.json", Some(false)),
            ("soft_bounce.json", None),
            ("blocked.json", None),
            ("delivered.json", None),
        ] {
            let body = testkit::fixture(ProviderId::Brevo, name);
            let events = run(&body).expect("normalizes");
            assert_eq!(events.len(), 1);
            assert_eq!(
                events[0].event_id,
                format!("sha256:{}", crate::body_digest(&body))
            );
            assert_eq!(events[0].contact.subscribed, subscribed, "{name}");
        }
        let updated =
            run(&testkit::fixture(ProviderId::Brevo, "contact_updated.json")).expect("normalizes");
        assert_eq!(updated[0].contact.first_name.as_deref(), Some("Noah"));
        assert_eq!(updated[0].occurred_at_ms, Some(1_760_978_405_000));
        assert!(matches!(
            run(br#"{"event":"delivered"}"#),
            Err(NormalizeError::UnexpectedShape(_))
        ));
    }

    #[test]
    fn contact_events_as_brevo_sends_them() {
        let updated =
            run(&testkit::fixture(ProviderId::Brevo, "contact_updated.json")).expect("normalizes");
        assert_eq!(updated.len(), 1);
        let e = &updated[0];
        assert_eq!(
            e.identity.email.as_deref(),
            Some("noah.schmidt@example.com")
        );
        assert_eq!(e.contact.first_name.as_deref(), Some("Noah"));
        assert_eq!(e.contact.last_name.as_deref(), Some("Schmidt"));
        assert_eq!(e.contact.fields["brevo_sms"], json!("+4915123456789"));
        assert_eq!(
            e.contact.fields["brevo_company"],
            json!("Schmidt & Partner GmbH")
        );
        assert_eq!(e.contact.fields["brevo_deleted"], json!(false));
        assert_eq!(e.event_fields["brevo_lists_added"], json!("7"));
        assert_eq!(e.contact.subscribed, None);

        let blocked = run(&testkit::fixture(
            ProviderId::Brevo,
            "contact_updated--blocklisted.json",
        ))
        .expect("normalizes");
        assert_eq!(blocked[0].contact.subscribed, Some(false));
        assert_eq!(
            blocked[0].contact.fields["brevo_email_blacklisted"],
            json!(true)
        );

        // Several entries: one event each, with ids derived from the delivery's.
        let body = br#"{"id":1,"event":"contact_updated","ts":10,"content":[{"email":"a@example.com","attributes":{"FIRSTNAME":"A","LASTNAME_2":"x"}},{"email":"b@example.com","emailBlacklist":false}]}"#;
        let events = run(body).expect("normalizes");
        let digest = format!("sha256:{}", crate::body_digest(body));
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, [format!("{digest}:0"), format!("{digest}:1")]);
        assert_eq!(events[1].identity.email.as_deref(), Some("b@example.com"));
        assert_eq!(
            events[1].contact.subscribed, None,
            "unblocking is not an opt-in"
        );
        assert_eq!(events[0].contact.fields["brevo_lastname_2"], json!("x"));
        // Attributes never stand in for the fields hookgate writes itself.
        let clash = br#"{"event":"contact_updated","api_key_name":"sync","content":[{"email":"a@example.com","attributes":{"API_KEY_NAME":"x","LAST_EVENT":"y","DELETED":true}}]}"#;
        let e = &run(clash).expect("normalizes")[0];
        assert_eq!(e.event_fields["brevo_api_key_name"], json!("sync"));
        assert!(!e.contact.fields.contains_key("brevo_api_key_name"));
        assert_eq!(
            e.contact.fields["brevo_last_event"],
            json!("contact_updated")
        );
        assert_eq!(e.contact.fields["brevo_deleted"], json!(false));
        assert_eq!(events[0].occurred_at_ms, Some(10_000));
        for bad in [
            &br#"{"event":"contact_updated","content":[]}"#[..],
            br#"{"event":"contact_updated","content":[{"attributes":{}}]}"#,
            br#"{"event":"contact_deleted","email":[]}"#,
        ] {
            assert!(
                matches!(run(bad), Err(NormalizeError::UnexpectedShape(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }

        let deleted = run(&testkit::fixture(
            ProviderId::Brevo,
            "contact_deleted--several.json",
        ))
        .expect("normalizes");
        let emails: Vec<_> = deleted
            .iter()
            .map(|e| e.identity.email.as_deref().unwrap_or_default())
            .collect();
        assert_eq!(
            emails,
            [
                "noah.schmidt@example.com",
                "noah@schmidt-partner.example.net"
            ]
        );
        assert!(deleted
            .iter()
            .all(|e| e.contact.fields["brevo_deleted"] == json!(true)));
    }

    #[test]
    fn marketing_names_unsubscribe_and_clicked() {
        let unsubscribe =
            run(&testkit::fixture(ProviderId::Brevo, "unsubscribe.json")).expect("normalizes");
        assert_eq!(unsubscribe[0].contact.subscribed, Some(false));
        assert_eq!(
            unsubscribe[0].contact.fields["brevo_unsubscribed"],
            json!(true)
        );
        assert_eq!(
            unsubscribe[0].contact.fields["brevo_last_campaign_id"],
            json!("324")
        );
        let clicked =
            run(&testkit::fixture(ProviderId::Brevo, "clicked.json")).expect("normalizes");
        assert_eq!(clicked[0].contact.subscribed, None);
        assert!(clicked[0].event_fields["brevo_link"]
            .as_str()
            .is_some_and(|l| l.starts_with("https://app.example.com/changelog")));
    }

    #[test]
    fn batches_and_single_events() {
        let headers = http::HeaderMap::new();
        let id =
            |b: &[u8]| Brevo.identify(&Verified::skip_verification(ProviderId::Brevo, &headers, b));
        let batch = br#"[{"event":"delivered","email":"a@example.com"},{"event":"opened","email":"b@example.com"}]"#;
        let meta = id(batch).expect("batch");
        assert_eq!(meta.event_type, BATCH_TYPE);
        assert!(meta.mapped);
        assert!(meta.event_id.starts_with("sha256:"));
        assert!(id(b"[]").is_err());
        assert!(id(br#"[{"email":"x"}]"#).is_err());
        assert!(
            !id(br#"{"event":"proxy_open","email":"a@example.com"}"#)
                .expect("meta")
                .mapped
        );
        assert!(id(br#"{"event":"hard_bounced"}"#).expect("meta").mapped);
    }
}
