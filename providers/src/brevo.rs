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
//! - Mapped events: `delivered`, `opened`, `unique_opened`, `click`, `soft_bounce(d)`,
//!   `hard_bounce(d)`, `spam`, `complaint`, `unsubscribed`, `blocked`, `contact_updated`,
//!   `list_addition`, `contact_deleted`. A batch gives one normalized event per mapped element
//!   (unmapped elements are skipped), each with its own id `sha256:<hex>` of the element's
//!   canonical JSON (keys sorted, compact) and its own `event` as type; a single event keeps the
//!   ingest id. A mapped element without `email` fails the whole delivery, so a malformed
//!   batch is never half applied.
//! - Email: the top-level `email` (Brevo sends no contact id). `occurred_at_ms`: `ts_epoch`
//!   (ms), else `ts_event` or `ts` (seconds).
//! - `subscribed = false` on `hard_bounce(d)`, `spam`, `complaint` and `unsubscribed`. Names from
//!   `content.FIRSTNAME` / `content.LASTNAME` of `contact_updated` (Brevo's standard attributes).
//! - Contact fields: `brevo_last_event`, `brevo_unsubscribed`, `brevo_hard_bounced`,
//!   `brevo_blocked`, `brevo_deleted` (each `true` on its event), `brevo_last_message_id`,
//!   `brevo_last_campaign_id`, `brevo_list_ids` (list_addition: the lists joined).
//! - Fire-only fields: `brevo_subject`, `brevo_link`, `brevo_reason`, `brevo_template_id`,
//!   `brevo_tags`, `brevo_campaign_name`, `brevo_list_ids` (unsubscribed, contact_deleted: the
//!   lists left), `brevo_x_mailin_custom`, `brevo_api_key_name`.

use serde_json::Value;

use crate::normalize::{
    canonical_id, id_text, joined, mapped_meta, parse, secs_to_ms, shape, text,
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
    "soft_bounce",
    "soft_bounced",
    "hard_bounce",
    "hard_bounced",
    "spam",
    "complaint",
    "unsubscribed",
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
                        events.push(element(canonical_id(item), item)?);
                    }
                }
                if events.is_empty() {
                    return Err(NormalizeError::Unsupported(meta.event_type));
                }
                Ok(events)
            }
            body => Ok(vec![element(meta.event_id, &body)?]),
        }
    }
}

/// One Brevo event (a whole body, or one element of a batch).
fn element(event_id: String, e: &Value) -> Result<NormalizedEvent, NormalizeError> {
    let name = text(e, "event").ok_or_else(|| shape("no `event`"))?;
    let email = text(e, "email").ok_or_else(|| shape("a Brevo event without `email`"))?;
    let mut out = NormalizedEvent::new(event_id, name);
    out.set_email(Some(email));
    out.occurred_at_ms = e
        .get("ts_epoch")
        .and_then(Value::as_i64)
        .or_else(|| e.get("ts_event").and_then(secs_to_ms))
        .or_else(|| e.get("ts").and_then(secs_to_ms));

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
        "unsubscribed" => {
            out.contact.subscribed = Some(false);
            out.set_field("brevo_unsubscribed", true);
        }
        "blocked" => out.set_field("brevo_blocked", true),
        "contact_deleted" => out.set_field("brevo_deleted", true),
        "contact_updated" => {
            out.set_name(text(e, "content.FIRSTNAME"), text(e, "content.LASTNAME"))
        }
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
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;

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
