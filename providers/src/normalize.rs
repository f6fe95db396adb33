//! Helpers every provider's `normalize` shares: JSON path lookup, scalar conversion, snake_case
//! keys, timestamps (a small RFC 3339 parser, so the crate needs no date library), name splitting,
//! canonical JSON for synthetic ids, and the [`NormalizedEvent`] builder methods that keep every
//! field a JSON scalar.
//!
//! Nothing here panics on any input: every lookup returns `Option`, and arithmetic on provider
//! numbers is checked.

use serde_json::Value;

use crate::{EventMeta, NormalizeError, NormalizedEvent, Provider, Verified};

/// Runs the provider's `identify` on the already parsed body and refuses event types hookgate
/// does not map, so `normalize` always reports the same event id and type as the ingest log.
pub(crate) fn mapped_meta(
    provider: &dyn Provider,
    event: &Verified<'_>,
    body: &Value,
) -> Result<EventMeta, NormalizeError> {
    let meta = provider.identify_parsed(event, body)?;
    if meta.mapped {
        Ok(meta)
    } else {
        Err(NormalizeError::Unsupported(meta.event_type))
    }
}

/// Parses a verified body as JSON (any value: Brevo batches are arrays).
pub(crate) fn parse(event: &Verified<'_>) -> Result<Value, NormalizeError> {
    serde_json::from_slice(event.body()).map_err(|e| NormalizeError::InvalidJson(e.to_string()))
}

/// A short `UnexpectedShape` error.
pub(crate) fn shape(message: &str) -> NormalizeError {
    NormalizeError::UnexpectedShape(message.to_owned())
}

/// The value at a dot path (`data.object.email`; a numeric segment indexes an array).
/// Keys that themselves contain a dot cannot be reached this way; use `Value::get` for those.
pub(crate) fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(root, |value, segment| match value {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

/// The non-empty string at a dot path.
pub(crate) fn text<'v>(root: &'v Value, path: &str) -> Option<&'v str> {
    lookup(root, path)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The boolean at a dot path.
pub(crate) fn flag(root: &Value, path: &str) -> Option<bool> {
    lookup(root, path).and_then(Value::as_bool)
}

/// A value usable as a field: a non-empty string, a number or a boolean. Nulls, empty strings,
/// objects and arrays give `None` (fields are scalars, and an absent value must not erase one).
pub(crate) fn scalar(value: &Value) -> Option<Value> {
    match value {
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(value.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// An id as text: a non-empty string, or an integer's exact digits. serde_json keeps integers up
/// to 2^64 exact, so Shopify's ids above 2^53 survive; a float is not an id.
pub(crate) fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// The id at a dot path, also when the provider expanded the object (`{"id": ...}`), as Stripe
/// does for `customer` or `product` when asked to.
pub(crate) fn id_at(root: &Value, path: &str) -> Option<String> {
    let value = lookup(root, path)?;
    id_text(value).or_else(|| value.get("id").and_then(id_text))
}

/// An array of scalars as one comma-separated string (`"pro,team"`); `None` when empty.
pub(crate) fn joined(value: &Value) -> Option<String> {
    let parts: Vec<String> = value
        .as_array()?
        .iter()
        .filter_map(|item| match scalar(item)? {
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Unix seconds (an integer) as Unix milliseconds.
pub(crate) fn secs_to_ms(value: &Value) -> Option<i64> {
    value.as_i64()?.checked_mul(1000)
}

/// `snake_case` for a provider's key: `userName` → `user_name`, `FIRSTNAME` → `firstname`,
/// `X-Mailin-custom` → `x_mailin_custom`, `campaign name` → `campaign_name`,
/// `HTTPServer` → `http_server`. Anything but ASCII letters and digits separates words.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 && !out.is_empty() && !out.ends_with('_') {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            // A word starts at a lower→upper step (`userName`) or at the last capital of an
            // acronym followed by lower case (`HTTPServer` → `http_server`).
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_is_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// Splits a display name at its first space: `"Jenny Rosen-Park"` → (`Jenny`, `Rosen-Park`).
/// A single word is a first name only.
pub(crate) fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    if full.is_empty() {
        return (None, None);
    }
    match full.split_once(' ') {
        Some((first, last)) => (non_empty(first), non_empty(last.trim())),
        None => (Some(full.to_owned()), None),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

pub(crate) use crate::time::parse_rfc3339_ms as rfc3339_ms;

/// `sha256:<hex>` of a JSON value's canonical form: compact, object keys sorted at every level.
/// It sorts explicitly rather than relying on serde_json's default `BTreeMap`, so the id stays
/// the same even if some crate in a build turns on serde_json's `preserve_order`.
pub(crate) fn canonical_id(value: &Value) -> String {
    let bytes = serde_json::to_vec(&sorted(value)).unwrap_or_default();
    format!("sha256:{}", crate::body_digest(&bytes))
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Builder methods the providers use, so every field goes through the same scalar and
/// empty-value rules.
impl NormalizedEvent {
    /// An event with no identity, contact changes or fields yet.
    pub(crate) fn new(event_id: impl Into<String>, event_type: impl Into<String>) -> Self {
        NormalizedEvent {
            event_id: event_id.into(),
            event_type: event_type.into(),
            ..NormalizedEvent::default()
        }
    }

    /// An event with the id and type `identify` reported.
    pub(crate) fn from_meta(meta: EventMeta) -> Self {
        Self::new(meta.event_id, meta.event_type)
    }

    /// Sets the contact's email as given (the pipeline normalizes it); empty means none.
    pub(crate) fn set_email(&mut self, email: Option<&str>) {
        self.identity.email = email.filter(|e| !e.trim().is_empty()).map(str::to_owned);
    }

    /// Adds an identity id (`stripe_customer_id`, …). The first value of each key is also
    /// written to the contact's fields, so a later email-less event can be resolved by it.
    /// Repeated identical pairs are dropped.
    pub(crate) fn add_id(&mut self, key: &str, value: Option<String>) {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return;
        };
        let pair = (key.to_owned(), value);
        if self.identity.ids.contains(&pair) {
            return;
        }
        self.contact
            .fields
            .entry(pair.0.clone())
            .or_insert_with(|| Value::String(pair.1.clone()));
        self.identity.ids.push(pair);
    }

    /// Sets the names; empty strings mean "not given" and leave the contact's value alone.
    pub(crate) fn set_name(&mut self, first: Option<&str>, last: Option<&str>) {
        let clean = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        self.contact.first_name = clean(first);
        self.contact.last_name = clean(last);
    }

    /// Writes a contact field from a payload value, if it is a usable scalar.
    pub(crate) fn field(&mut self, key: &str, value: Option<&Value>) {
        if let Some(v) = value.and_then(scalar) {
            self.contact.fields.insert(key.to_owned(), v);
        }
    }

    /// Writes a contact field the adapter computed (a flag, a joined list, milliseconds…).
    pub(crate) fn set_field(&mut self, key: &str, value: impl Into<Value>) {
        self.field(key, Some(&value.into()));
    }

    /// Writes a fire-only field from a payload value, if it is a usable scalar.
    pub(crate) fn event_field(&mut self, key: &str, value: Option<&Value>) {
        if let Some(v) = value.and_then(scalar) {
            self.event_fields.insert(key.to_owned(), v);
        }
    }

    /// Writes a fire-only field the adapter computed.
    pub(crate) fn set_event_field(&mut self, key: &str, value: impl Into<Value>) {
        self.event_field(key, Some(&value.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_walks_objects_and_arrays() {
        let v = json!({"a": {"b": [{"c": "x"}, {"c": ""}]}, "n": 5});
        assert_eq!(text(&v, "a.b.0.c"), Some("x"));
        assert_eq!(text(&v, "a.b.1.c"), None, "empty strings are absent");
        assert_eq!(lookup(&v, "a.b.2.c"), None);
        assert_eq!(lookup(&v, "a.b.x"), None);
        assert_eq!(lookup(&v, "n.m"), None);
        assert_eq!(lookup(&v, "n"), Some(&json!(5)));
    }

    #[test]
    fn snake_case_examples() {
        for (input, expected) in [
            ("userName", "user_name"),
            ("FIRSTNAME", "firstname"),
            ("X-Mailin-custom", "x_mailin_custom"),
            ("campaign name", "campaign_name"),
            ("HTTPServer", "http_server"),
            ("already_snake", "already_snake"),
            ("marketing_opt_in", "marketing_opt_in"),
            ("field2Name", "field2_name"),
            ("__weird--key__", "weird_key"),
            ("ünïcode", "n_code"),
            ("", ""),
        ] {
            assert_eq!(snake_case(input), expected, "{input}");
        }
    }

    #[test]
    fn scalars_and_ids() {
        assert_eq!(scalar(&json!("a")), Some(json!("a")));
        assert_eq!(scalar(&json!("  ")), None);
        assert_eq!(scalar(&json!(null)), None);
        assert_eq!(scalar(&json!([1])), None);
        assert_eq!(scalar(&json!(false)), Some(json!(false)));
        let big: Value = serde_json::from_str("706405506930370084").expect("json");
        assert_eq!(id_text(&big).as_deref(), Some("706405506930370084"));
        assert_eq!(id_text(&json!(1.5)), None);
        assert_eq!(
            id_at(&json!({"c": {"id": "cus_1"}}), "c").as_deref(),
            Some("cus_1")
        );
        assert_eq!(joined(&json!(["a", 3, null, ""])).as_deref(), Some("a,3"));
        assert_eq!(joined(&json!([])), None);
        assert_eq!(secs_to_ms(&json!(1_760_433_151)), Some(1_760_433_151_000));
        assert_eq!(secs_to_ms(&json!(i64::MAX)), None);
    }

    #[test]
    fn names_split_at_the_first_space() {
        assert_eq!(
            split_name("Jenny Rosen-Park"),
            (Some("Jenny".into()), Some("Rosen-Park".into()))
        );
        assert_eq!(
            split_name(" Grace B. Hopper "),
            (Some("Grace".into()), Some("B. Hopper".into()))
        );
        assert_eq!(split_name("Cher"), (Some("Cher".into()), None));
        assert_eq!(split_name("  "), (None, None));
    }

    #[test]
    fn rfc3339_parses_what_providers_send() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ms("2025-10-14T05:12:31-04:00"),
            Some(1_760_433_151_000)
        );
        assert_eq!(
            rfc3339_ms("2025-10-14T09:12:31.761904+00:00"),
            Some(1_760_433_151_761)
        );
        assert_eq!(
            rfc3339_ms("2025-11-03T08:47:19.266804133Z"),
            Some(1_762_159_639_266)
        );
        assert_eq!(
            rfc3339_ms("2024-02-29T12:00:00.5Z"),
            Some(1_709_208_000_500)
        );
        assert_eq!(rfc3339_ms("1969-12-31T23:59:59Z"), Some(-1000));
        for bad in [
            "",
            "2025-10-14",
            "2025-10-14T05:12:31",
            "2025-13-14T05:12:31Z",
            "2025-02-29T05:12:31Z",
            "2025-10-14T24:00:00Z",
            "2025-10-14T05:12:31.Z",
            "2025-10-14T05:12:31+0400",
            "2025-10-14T05:12:31Zjunk",
            "+025-10-14T05:12:31Z",
            "1760433151000",
            "２０２５-10-14T05:12:31Z",
        ] {
            assert_eq!(rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn canonical_id_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[{"k":1,"j":2}]}}"#).expect("json");
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":[{"j":2,"k":1}],"y":2},"b":1}"#).expect("json");
        assert_eq!(canonical_id(&a), canonical_id(&b));
        let compact = br#"{"a":{"x":[{"j":2,"k":1}],"y":2},"b":1}"#;
        assert_eq!(
            canonical_id(&a),
            format!("sha256:{}", crate::body_digest(compact))
        );
    }

    #[test]
    fn builder_keeps_fields_scalar_and_ids_unique() {
        let mut e = NormalizedEvent::new("evt", "t");
        e.set_email(Some("  "));
        assert_eq!(e.identity.email, None);
        e.add_id("x_user_id", Some("a".into()));
        e.add_id("x_user_id", Some("b".into()));
        e.add_id("x_user_id", Some("a".into()));
        e.add_id("x_user_id", Some(String::new()));
        e.add_id("x_user_id", None);
        assert_eq!(
            e.identity.ids,
            vec![
                ("x_user_id".to_owned(), "a".to_owned()),
                ("x_user_id".to_owned(), "b".to_owned())
            ]
        );
        assert_eq!(e.contact.fields.get("x_user_id"), Some(&json!("a")));
        e.field("x_obj", Some(&json!({"a": 1})));
        e.field("x_null", Some(&Value::Null));
        e.set_field("x_flag", true);
        e.set_event_field("x_empty", "");
        assert!(!e.contact.fields.contains_key("x_obj"));
        assert!(!e.contact.fields.contains_key("x_null"));
        assert_eq!(e.contact.fields.get("x_flag"), Some(&json!(true)));
        assert!(e.event_fields.is_empty());
    }
}
