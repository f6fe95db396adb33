//! Custom events: triggers a team defines and fires from its own backend (`POST /v1/triggers`,
//! `POST /v1/fires`, `hookgate triggers define`, `hookgate fire`). Pure rules only; the store,
//! the HTTP handlers and the command line call them.
//!
//! A fire is stored as an ingest row of the built-in source [`SOURCE`] (connection id
//! `custom:<workspace>`, event id = the idempotency key, body = a [`StoredFire`]), so it rides
//! the same durable pipeline as a provider webhook: the unique index on `(connection_id,
//! event_id)` makes keys unique per workspace, the pipeline claims it with a lease, retries it,
//! and a crash between the answer and processing loses nothing. [`normalize`] turns the stored
//! body into the [`NormalizedEvent`] the pipeline applies like any other.
//!
//! - Trigger ids use `[a-z0-9_.-]` and may not start with a namespace hookgate owns: a provider
//!   name, `contact`, `test` or `hookgate` as the first dot-separated segment.
//! - A schema declares every payload key with its JSON type; `email` must be a required string.
//!   `firstName`/`first_name` and `lastName`/`last_name` must be strings and `subscribed` a
//!   boolean, because they land in the contact's core columns.
//! - A payload is checked against the schema, every error reported with its path; keys the
//!   schema does not declare are errors too, so the catalog always tells the truth about what
//!   a trigger carries.

use std::collections::BTreeSet;

use hookgate_providers::{ContactUpdate, Identity, NormalizedEvent, ProviderId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::contacts::{normalize_email, PayloadSchema, SchemaField};

/// The `provider` of custom triggers, fires, ingest rows and field definitions.
pub const SOURCE: &str = "custom";
/// How far ahead of the gateway's clock a fire's `occurredAt` may be (clock skew); later is
/// refused, because a far-future time would pin the contact's fields against every real update.
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
/// The longest trigger id, workspace and idempotency key.
pub const MAX_ID_LEN: usize = 128;
pub const MAX_KEY_LEN: usize = 255;
/// The most fields a schema may declare.
pub const MAX_FIELDS: usize = 200;
/// First segments of a trigger id that hookgate owns (besides the provider names).
const RESERVED: [&str; 3] = ["contact", "test", "hookgate"];
/// Field types a schema may declare.
pub const TYPES: [&str; 5] = ["string", "number", "boolean", "object", "array"];

/// One problem with a request, and where it is (`payload.plan`, `payloadSchema.fields[2].type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// The ingest connection id of a workspace's fires: `:` never appears in a real connection id,
/// so these can never collide with one.
pub fn connection_id(workspace: &str) -> String {
    format!("{SOURCE}:{workspace}")
}

/// Checks a trigger id: `[a-z0-9_.-]{1,128}`, not in a namespace hookgate owns.
pub fn check_trigger_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(format!("must be 1 to {MAX_ID_LEN} characters"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "may only use a-z, 0-9, '_', '.' and '-' (found {bad:?})"
        ));
    }
    let first = id.split('.').next().unwrap_or(id);
    if ProviderId::ALL.iter().any(|p| p.as_str() == first) {
        return Err(format!(
            "may not start with the provider name {first:?}: `{first}.*` triggers are the provider's own"
        ));
    }
    if RESERVED.contains(&first) {
        return Err(format!(
            "may not start with {first:?}: `{first}.*` events are hookgate's own"
        ));
    }
    Ok(())
}

/// Checks a workspace name for custom triggers and fires: 1 to 128 characters, no control
/// characters and no `:` (the ingest connection id and fire keys use it as a separator).
pub fn check_workspace(workspace: &str) -> Result<(), String> {
    if workspace.is_empty() || workspace.len() > MAX_ID_LEN {
        return Err(format!("must be 1 to {MAX_ID_LEN} characters"));
    }
    if workspace.chars().any(|c| c == ':' || c.is_control()) {
        return Err("may not contain ':' or control characters".into());
    }
    Ok(())
}

/// Checks an idempotency key: 1 to 255 characters, no control characters.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!("must be 1 to {MAX_KEY_LEN} characters"));
    }
    if key.chars().any(char::is_control) {
        return Err("may not contain control characters".into());
    }
    Ok(())
}

/// The type a contact core field must have, for keys that land in core columns.
fn core_type(key: &str) -> Option<&'static str> {
    match key {
        "email" | "firstName" | "first_name" | "lastName" | "last_name" => Some("string"),
        "subscribed" => Some("boolean"),
        _ => None,
    }
}

/// A field key: a letter or `_`, then letters, digits or `_`; at most 64 characters.
fn valid_field_key(key: &str) -> bool {
    let mut chars = key.chars();
    key.len() <= 64
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A schema as a request gives it: `required` may be left out (false).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaInput {
    pub fields: Vec<FieldInput>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldInput {
    pub key: String,
    /// `string`, `number`, `boolean`, `object` or `array`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub required: bool,
}

/// A trigger definition as `POST /v1/triggers` and `hookgate triggers define` take it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TriggerInput {
    /// `[a-z0-9_.-]`, not starting with a provider name, `contact.`, `test.` or `hookgate.`.
    pub id: String,
    /// Default `default` (a workspace-bound key: its own).
    pub workspace: Option<String>,
    /// `email` must be declared as a required string.
    pub payload_schema: SchemaInput,
}

/// A checked trigger definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerDefinition {
    pub id: String,
    pub workspace: String,
    pub schema: PayloadSchema,
}

impl TriggerInput {
    /// Checks the whole definition and reports every problem with its path.
    ///
    /// # Errors
    /// Each problem found.
    pub fn into_definition(self) -> Result<TriggerDefinition, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Err(e) = check_trigger_id(&self.id) {
            errors.push(FieldError::new("id", e));
        }
        let workspace = self.workspace.unwrap_or_else(|| "default".into());
        if let Err(e) = check_workspace(&workspace) {
            errors.push(FieldError::new("workspace", e));
        }
        let fields = self.payload_schema.fields;
        if fields.len() > MAX_FIELDS {
            errors.push(FieldError::new(
                "payloadSchema.fields",
                format!("at most {MAX_FIELDS} fields"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, field) in fields.iter().enumerate() {
            let path = format!("payloadSchema.fields[{i}]");
            if !valid_field_key(&field.key) {
                errors.push(FieldError::new(
                    format!("{path}.key"),
                    "must start with a letter or '_' and use only letters, digits and '_' (at most 64 characters)",
                ));
            } else if !seen.insert(field.key.as_str()) {
                errors.push(FieldError::new(
                    format!("{path}.key"),
                    format!("{:?} is declared twice", field.key),
                ));
            }
            if !TYPES.contains(&field.kind.as_str()) {
                errors.push(FieldError::new(
                    format!("{path}.type"),
                    format!(
                        "{:?} is not a type; use string, number, boolean, object or array",
                        field.kind
                    ),
                ));
            } else if let Some(kind) = core_type(&field.key) {
                if field.kind != kind {
                    errors.push(FieldError::new(
                        format!("{path}.type"),
                        format!(
                            "{:?} lands in the contact's core columns and must be a {kind}",
                            field.key
                        ),
                    ));
                }
            }
            if field.key == "email" && !field.required {
                errors.push(FieldError::new(
                    format!("{path}.required"),
                    "email must be required",
                ));
            }
        }
        if !fields.iter().any(|f| f.key == "email") {
            errors.push(FieldError::new(
                "payloadSchema.fields",
                "must declare email as a required string field",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // email first, as in every trigger of the catalog.
        let mut fields: Vec<SchemaField> = fields
            .into_iter()
            .map(|f| SchemaField {
                key: f.key,
                kind: f.kind,
                required: f.required,
            })
            .collect();
        fields.sort_by_key(|f| f.key != "email");
        Ok(TriggerDefinition {
            id: self.id,
            workspace,
            schema: PayloadSchema { fields },
        })
    }
}

/// The JSON type name of a value, as schemas name types.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `payload` against `schema` of trigger `trigger`; reports every error with its path.
/// A `null` counts as absent.
///
/// # Errors
/// Each problem found, in schema order, then undeclared keys in key order.
pub fn check_payload(
    trigger: &str,
    schema: &PayloadSchema,
    payload: &Value,
) -> Result<(), Vec<FieldError>> {
    let Value::Object(map) = payload else {
        return Err(vec![FieldError::new(
            "payload",
            format!("must be a JSON object, not {}", type_name(payload)),
        )]);
    };
    let mut errors = Vec::new();
    for field in &schema.fields {
        let path = format!("payload.{}", field.key);
        match map.get(&field.key) {
            None | Some(Value::Null) => {
                if field.required {
                    errors.push(FieldError::new(
                        path,
                        format!("required {} is missing", field.kind),
                    ));
                }
            }
            Some(value) if type_name(value) != field.kind => errors.push(FieldError::new(
                path,
                format!("expected {}, got {}", field.kind, type_name(value)),
            )),
            Some(Value::String(text)) if field.key == "email" => {
                if normalize_email(text).is_none() {
                    errors.push(FieldError::new(path, "is not an email address"));
                }
            }
            Some(_) => {}
        }
    }
    for key in map.keys() {
        if !schema.fields.iter().any(|f| &f.key == key) {
            errors.push(FieldError::new(
                format!("payload.{key}"),
                format!("is not declared in the schema of trigger {trigger:?}"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Parses `occurredAt` (Unix milliseconds or RFC 3339) and refuses one more than
/// [`MAX_FUTURE_MS`] ahead of `now_ms`.
///
/// # Errors
/// What is wrong with it.
pub fn check_occurred_at(value: &Value, now_ms: i64) -> Result<i64, String> {
    let ms = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(text) => hookgate_providers::time::parse_rfc3339_ms(text),
        _ => None,
    }
    .ok_or("must be Unix milliseconds or an RFC 3339 time")?;
    if ms > now_ms + MAX_FUTURE_MS {
        return Err(format!(
            "is {} s in the future; at most {} s ahead of the gateway's clock is accepted",
            (ms - now_ms) / 1000,
            MAX_FUTURE_MS / 1000
        ));
    }
    Ok(ms)
}

/// What an accepted fire stores as its ingest body: enough to process it later, and to tell a
/// retry with the same key (same trigger and payload) from a conflicting reuse of the key.
///
/// When events carry a `messageId`, the one a fire will get belongs here too: made when the fire
/// is accepted (so `202` can answer it), and used by the pipeline when it writes the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredFire {
    pub trigger_event_id: String,
    pub workspace: String,
    pub payload: Map<String, Value>,
    /// Unix ms: the request's `occurredAt`, else the time the fire was accepted.
    pub occurred_at: i64,
}

impl StoredFire {
    /// Whether a second request with the same key asks for the same fire. `occurredAt` is not
    /// compared: a client retrying without one gets a new default time.
    pub fn same_request(&self, trigger: &str, payload: &Map<String, Value>) -> bool {
        self.trigger_event_id == trigger && &self.payload == payload
    }
}

/// The normalized event of a stored fire: the contact upsert (core columns from
/// `firstName`/`first_name`, `lastName`/`last_name`, `subscribed`; every other scalar key a
/// custom field under its own name) and the fire's event fields (the whole payload).
///
/// # Errors
/// The stored body is not a [`StoredFire`] (never written by this code).
pub fn normalize(body: &[u8], key: &str) -> Result<NormalizedEvent, String> {
    let fire: StoredFire = serde_json::from_slice(body)
        .map_err(|e| format!("the stored custom fire does not parse: {e}"))?;
    let text = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| fire.payload.get(*n).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let mut contact = ContactUpdate {
        first_name: text(["first_name", "firstName"]),
        last_name: text(["last_name", "lastName"]),
        subscribed: fire.payload.get("subscribed").and_then(Value::as_bool),
        ..ContactUpdate::default()
    };
    for (k, v) in &fire.payload {
        if core_type(k).is_some() || !(v.is_string() || v.is_number() || v.is_boolean()) {
            continue;
        }
        contact.fields.insert(k.clone(), v.clone());
    }
    let email = fire
        .payload
        .get("email")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut event = NormalizedEvent {
        event_id: key.to_owned(),
        event_type: fire.trigger_event_id,
        occurred_at_ms: Some(fire.occurred_at),
        identity: Identity {
            email,
            ..Identity::default()
        },
        contact,
        ..NormalizedEvent::default()
    };
    event.event_fields = fire.payload.into_iter().collect();
    Ok(event)
}

/// The trigger id of the fire `event` of source `provider` makes: `<provider>.<event_type>`,
/// or a custom trigger's own id.
pub fn trigger_id(provider: &str, event: &NormalizedEvent) -> String {
    if provider == SOURCE {
        event.event_type.clone()
    } else {
        format!("{provider}.{}", event.event_type)
    }
}

/// The payload of the fire `event` of source `provider` makes, whose contact is `email`: a
/// provider's flat fields ([`crate::contacts::fire_payload`]), or a custom fire's payload as
/// sent, objects and arrays kept, with `email` as the contact key (trimmed, lower-cased).
pub fn fire_payload(provider: &str, email: &str, event: &NormalizedEvent) -> Map<String, Value> {
    if provider != SOURCE {
        return crate::contacts::fire_payload(email, event);
    }
    let mut payload: Map<String, Value> = event
        .event_fields
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    payload.insert("email".into(), Value::String(email.to_owned()));
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(value: Value) -> TriggerInput {
        serde_json::from_value(value).expect("input shape")
    }

    fn signup() -> TriggerDefinition {
        input(
            json!({"id": "app.signup", "workspace": "acme", "payloadSchema": {"fields": [
                {"key": "plan", "type": "string"},
                {"key": "email", "type": "string", "required": true},
                {"key": "seats", "type": "number", "required": true},
                {"key": "firstName", "type": "string"},
                {"key": "subscribed", "type": "boolean"},
                {"key": "meta", "type": "object"},
            ]}}),
        )
        .into_definition()
        .expect("valid")
    }

    #[test]
    fn trigger_ids_keep_out_of_reserved_namespaces() {
        for ok in [
            "app.signup",
            "order.shipped",
            "a",
            "stripe_sync.done",
            "x-1_2.y",
        ] {
            assert_eq!(check_trigger_id(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("stripe.invoice.paid", "provider name"),
            ("clerk", "provider name"),
            ("contact.created", "hookgate's own"),
            ("test.ping", "hookgate's own"),
            ("hookgate.endpoint.disabled", "hookgate's own"),
            ("App.Signup", "a-z"),
            ("app signup", "a-z"),
            ("", "1 to"),
        ] {
            let e = check_trigger_id(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_definition_lists_every_problem_with_its_path() {
        let errors = input(
            json!({"id": "shopify.x", "workspace": "a:b", "payloadSchema": {"fields": [
                {"key": "email", "type": "string"},
                {"key": "n", "type": "integer"},
                {"key": "n", "type": "number"},
                {"key": "subscribed", "type": "string"},
                {"key": "bad key", "type": "string"},
            ]}}),
        )
        .into_definition()
        .expect_err("invalid");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "id",
                "workspace",
                "payloadSchema.fields[0].required",
                "payloadSchema.fields[1].type",
                "payloadSchema.fields[2].key",
                "payloadSchema.fields[3].type",
                "payloadSchema.fields[4].key",
            ]
        );
        let no_email = input(json!({"id": "app.x", "payloadSchema": {"fields": []}}))
            .into_definition()
            .expect_err("no email");
        assert_eq!(no_email[0].path, "payloadSchema.fields");
        assert!(no_email[0].message.contains("email"));
    }

    #[test]
    fn definitions_put_email_first_and_default_the_workspace() {
        let d = signup();
        assert_eq!(d.schema.fields[0].key, "email");
        assert!(d.schema.fields[0].required);
        assert!(!d
            .schema
            .fields
            .iter()
            .any(|f| f.key == "plan" && f.required));
        let d = input(json!({"id": "app.x", "payloadSchema": {"fields": [
            {"key": "email", "type": "string", "required": true}]}}))
        .into_definition()
        .expect("valid");
        assert_eq!(d.workspace, "default");
    }

    #[test]
    fn payload_errors_name_every_field() {
        let d = signup();
        let errors = check_payload(
            "app.signup",
            &d.schema,
            &json!({"email": "not-an-email", "plan": 3, "extra": true, "meta": null}),
        )
        .expect_err("invalid");
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.path.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("payload.email", "is not an email address"),
                ("payload.plan", "expected string, got number"),
                ("payload.seats", "required number is missing"),
                (
                    "payload.extra",
                    "is not declared in the schema of trigger \"app.signup\""
                ),
            ]
        );
        assert_eq!(
            check_payload(
                "app.signup",
                &d.schema,
                &json!({"email": "a@x.io", "seats": 2, "meta": {"k": [1]}})
            ),
            Ok(())
        );
        assert_eq!(
            check_payload("app.signup", &d.schema, &json!([1])).expect_err("array")[0].path,
            "payload"
        );
    }

    #[test]
    fn occurred_at_takes_ms_or_rfc3339_and_refuses_the_far_future() {
        let now = 1_800_000_000_000;
        assert_eq!(check_occurred_at(&json!(now - 1), now), Ok(now - 1));
        assert_eq!(
            check_occurred_at(&json!("2027-01-15T08:00:00Z"), now),
            Ok(1_800_000_000_000)
        );
        assert!(check_occurred_at(&json!(now + MAX_FUTURE_MS), now).is_ok());
        let far = check_occurred_at(&json!(now + MAX_FUTURE_MS + 1_000), now).expect_err("far");
        assert!(far.contains("future"), "{far}");
        assert!(check_occurred_at(&json!(true), now).is_err());
    }

    #[test]
    fn a_stored_fire_normalizes_to_core_columns_and_own_name_fields() {
        let stored = StoredFire {
            trigger_event_id: "app.signup".into(),
            workspace: "acme".into(),
            payload: serde_json::from_value(json!({
                "email": " Ada@X.io ", "firstName": "Ada", "last_name": "Lovelace",
                "subscribed": false, "plan": "pro", "seats": 3, "meta": {"a": 1}, "gone": null
            }))
            .expect("map"),
            occurred_at: 42,
        };
        let body = serde_json::to_vec(&stored).expect("json");
        let event = normalize(&body, "key-1").expect("normalizes");
        assert_eq!(event.event_id, "key-1");
        assert_eq!(event.event_type, "app.signup");
        assert_eq!(event.occurred_at_ms, Some(42));
        assert_eq!(event.identity.email.as_deref(), Some(" Ada@X.io "));
        assert_eq!(event.contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(event.contact.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(event.contact.subscribed, Some(false));
        let keys: Vec<&str> = event.contact.fields.keys().map(String::as_str).collect();
        assert_eq!(keys, ["plan", "seats"]);
        let payload = fire_payload(SOURCE, "ada@x.io", &event);
        assert_eq!(trigger_id(SOURCE, &event), "app.signup");
        assert_eq!(trigger_id("stripe", &event), "stripe.app.signup");
        assert_eq!(payload["email"], "ada@x.io");
        assert_eq!(payload["meta"], json!({"a": 1}));
        assert!(stored.same_request("app.signup", &stored.payload));
        assert!(!stored.same_request("app.other", &stored.payload));
        assert!(normalize(b"{}", "k").is_err());
    }
}
