//! Supabase Database Webhooks (<https://supabase.com/docs/guides/database/webhooks>).
//!
//! - Authenticity: **unsigned**. A database webhook is a row trigger that posts through `pg_net`
//!   with whatever static headers or query parameters the user configured, so the connection holds
//!   a shared secret and an `auth` mode (default `bearer`; `header:X-Webhook-Secret` and
//!   `query:<param>` are common); see [`crate::scheme::shared_secret`].
//! - Event id: **none is sent**. The synthetic dedupe key is `sha256:<hex of the raw body>`, so a
//!   retried delivery is a duplicate; two identical consecutive row changes also collapse into one,
//!   which is harmless for upserts.
//! - Event type: `<schema>.<table>.<INSERT|UPDATE|DELETE>` from the body's `schema`, `table` and
//!   `type`; every table is mapped (the email lives at the connection's `email_path`).
//! - Retries: best effort (`pg_net` does not retry unless the trigger asks for it).
//! - Quirks: the body is jsonb's text form (`", "` separators, keys reordered).
//!
//! Normalizing:
//! - Mapped types: every `<schema>.<table>.<INSERT|UPDATE|DELETE>`. The row is `record`, or
//!   `old_record` for DELETE.
//! - Email: the connection's `email_path` (a dot path into the body), by default `record.email`,
//!   or `old_record.email` for DELETE; a configured path starting with `record.` reads
//!   `old_record.` on DELETE, since `record` is null there.
//! - Identity: `supabase_user_id` = the row's `id` for `auth.users`; for any other table
//!   `supabase_<table>_id`. With the connection's `user_id_column` (the column holding the
//!   `auth.users` id, such as `id` on a `profiles` table or `user_id`), that column's value is
//!   given first as `supabase_user_id`, so rows without an email resolve to the user's contact.
//!   Names only from `first_name` / `last_name` columns.
//! - Contact fields: `supabase_<column>` for every scalar column of the row (nulls, empty strings,
//!   JSON objects and arrays skipped), except `id` (it is the identity field), the email column,
//!   `first_name`/`last_name` (core fields) and credentials: columns whose name contains
//!   `password`, `token`, `secret` or `api_key` (`auth.users` holds a password hash and
//!   confirmation tokens, which must never reach a contact or a fire). Plus `supabase_table`,
//!   `supabase_schema` and `supabase_deleted` (`true` on DELETE, `false` on INSERT and UPDATE).
//! - Fire-only fields: `supabase_changed_columns` (UPDATE: comma-joined columns that differ).
//! - `occurred_at_ms`: the row's `updated_at` when present and RFC 3339; none for DELETE (the
//!   deletion time is not in the payload).

use crate::normalize::{id_text, mapped_meta, parse, rfc3339_ms, shape, snake_case, text};
use crate::Signing;
use crate::{
    as_object, str_field, EventMeta, IdentifyError, NormalizeContext, NormalizeError,
    NormalizedEvent, Provider, ProviderId, Verified,
};

pub struct Supabase;

impl Provider for Supabase {
    fn id(&self) -> ProviderId {
        ProviderId::Supabase
    }

    fn signing(&self) -> Signing {
        Signing::SharedSecret
    }

    fn identify_parsed(
        &self,
        event: &Verified<'_>,
        body: &serde_json::Value,
    ) -> Result<EventMeta, IdentifyError> {
        let body = as_object(body)?;
        let op = str_field(body, "type")
            .filter(|t| matches!(*t, "INSERT" | "UPDATE" | "DELETE"))
            .ok_or(IdentifyError::UnexpectedShape(
                "`type` must be INSERT, UPDATE or DELETE",
            ))?;
        let schema =
            str_field(body, "schema").ok_or(IdentifyError::UnexpectedShape("no `schema`"))?;
        let table = str_field(body, "table").ok_or(IdentifyError::UnexpectedShape("no `table`"))?;
        Ok(EventMeta {
            event_id: format!("sha256:{}", crate::body_digest(event.body())),
            event_type: format!("{schema}.{table}.{op}"),
            mapped: true,
        })
    }

    fn normalize(
        &self,
        event: &Verified<'_>,
        context: &NormalizeContext<'_>,
    ) -> Result<Vec<NormalizedEvent>, NormalizeError> {
        let body = parse(event)?;
        let meta = mapped_meta(self, event, &body)?;
        // `identify` has checked these three.
        let (Some(op), Some(schema), Some(table)) = (
            text(&body, "type"),
            text(&body, "schema"),
            text(&body, "table"),
        ) else {
            return Err(shape("`type`, `schema` and `table` must be present"));
        };
        let deleting = op == "DELETE";
        let row_key = if deleting { "old_record" } else { "record" };
        let row = body
            .get(row_key)
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| {
                shape(if deleting {
                    "no `old_record`"
                } else {
                    "no `record`"
                })
            })?;
        let mut out = NormalizedEvent::from_meta(meta);

        let email_path = match context.email_path {
            None => format!("{row_key}.email"),
            // `record` is null on DELETE: the same column lives in `old_record`.
            Some(path) if deleting => match path.strip_prefix("record.") {
                Some(rest) => format!("old_record.{rest}"),
                None => path.to_owned(),
            },
            Some(path) => path.to_owned(),
        };
        out.set_email(text(&body, &email_path));
        let email_column = email_path
            .strip_prefix(row_key)
            .and_then(|rest| rest.strip_prefix('.'));

        let id_key = if schema == "auth" && table == "users" {
            "supabase_user_id".to_owned()
        } else {
            format!("supabase_{}_id", snake_case(table))
        };
        // The user's id first: it is what an `auth.users` event links to the user's email, so a
        // row without an email (a `profiles` row) resolves through it.
        if let Some(column) = context.user_id_column {
            out.add_id("supabase_user_id", row.get(column).and_then(id_text));
        }
        out.add_id(&id_key, row.get("id").and_then(id_text));
        out.set_name(
            row.get("first_name").and_then(|v| v.as_str()),
            row.get("last_name").and_then(|v| v.as_str()),
        );

        for (column, value) in row {
            let skip = matches!(column.as_str(), "id" | "first_name" | "last_name")
                || Some(column.as_str()) == email_column
                || is_credential(column);
            let key = format!("supabase_{}", snake_case(column));
            if skip || key == "supabase_" || key == id_key {
                continue;
            }
            out.field(&key, Some(value));
        }
        // Written last so a column called `table`, `schema` or `deleted` cannot hide them.
        out.set_field("supabase_table", table);
        out.set_field("supabase_schema", schema);
        // A row inserted again after a delete is no longer deleted.
        out.set_field("supabase_deleted", deleting);

        if op == "UPDATE" {
            if let Some(old) = body.get("old_record").and_then(|v| v.as_object()) {
                let mut changed: Vec<&str> = row
                    .iter()
                    .filter(|(column, value)| {
                        !is_credential(column) && old.get(column.as_str()) != Some(*value)
                    })
                    .map(|(column, _)| column.as_str())
                    .collect();
                changed.sort_unstable();
                if !changed.is_empty() {
                    out.set_event_field("supabase_changed_columns", changed.join(","));
                }
            }
        }
        if !deleting {
            out.occurred_at_ms = row
                .get("updated_at")
                .and_then(|v| v.as_str())
                .and_then(rfc3339_ms);
        }
        Ok(vec![out])
    }
}

/// Whether a column holds a credential (a password hash, a token, a key) that must never be
/// copied into a contact or a fire.
fn is_credential(column: &str) -> bool {
    let column = column.to_ascii_lowercase();
    ["password", "token", "secret", "api_key", "apikey"]
        .iter()
        .any(|word| column.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;
    use crate::*;
    use serde_json::json;

    #[test]
    fn conformance() {
        let body = br#"{"type": "INSERT", "table": "profiles", "record": {"id": 1, "email": "a@example.com"}, "schema": "public", "old_record": null}"#;
        testkit::shared_secret_conformance(&Supabase, body);
        let headers = http::HeaderMap::new();
        let meta = Supabase
            .identify(&Verified::skip_verification(
                ProviderId::Supabase,
                &headers,
                body,
            ))
            .expect("meta");
        assert_eq!(meta.event_type, "public.profiles.INSERT");
        assert_eq!(
            meta.event_id,
            format!("sha256:{}", crate::body_digest(body))
        );
        let bad = br#"{"type": "TRUNCATE", "table": "profiles", "schema": "public"}"#;
        assert!(Supabase
            .identify(&Verified::skip_verification(
                ProviderId::Supabase,
                &headers,
                bad
            ))
            .is_err());
    }

    fn run(body: &[u8], email_path: Option<&str>) -> NormalizedEvent {
        let context = NormalizeContext {
            email_path,
            ..NormalizeContext::default()
        };
        let mut events =
            testkit::normalize(ProviderId::Supabase, &[], body, &context).expect("normalizes");
        assert_eq!(events.len(), 1);
        events.remove(0)
    }

    #[test]
    fn delete_reads_old_record() {
        let body = testkit::fixture(ProviderId::Supabase, "public.profiles.DELETE.json");
        let e = run(&body, None);
        assert_eq!(e.event_type, "public.profiles.DELETE");
        assert_eq!(e.identity.email.as_deref(), Some("sam.rivera@example.com"));
        assert_eq!(
            e.identity.ids,
            vec![(
                "supabase_profiles_id".to_owned(),
                "5b1e9c3a-7d24-4f86-9a0b-2c8e6f4d1a73".to_owned()
            )]
        );
        assert_eq!(e.contact.fields["supabase_username"], json!("samrivera"));
        assert_eq!(e.contact.fields["supabase_table"], json!("profiles"));
        assert!(!e.contact.fields.contains_key("supabase_email"));
        assert_eq!(e.occurred_at_ms, None);
    }

    #[test]
    fn a_profile_without_email_resolves_through_the_user_id_column() {
        let body = testkit::fixture(ProviderId::Supabase, "public.profiles.UPDATE--starter.json");
        let plain = run(&body, None);
        assert_eq!(plain.identity.email, None);
        assert_eq!(plain.identity.ids[0].0, "supabase_profiles_id");
        let context = NormalizeContext {
            user_id_column: Some("id"),
            ..NormalizeContext::default()
        };
        let events =
            testkit::normalize(ProviderId::Supabase, &[], &body, &context).expect("normalizes");
        let user = "5b1e9c3a-7d24-4f86-9a0b-2c8e6f4d1a73";
        assert_eq!(
            events[0].identity.ids,
            vec![
                ("supabase_user_id".to_owned(), user.to_owned()),
                ("supabase_profiles_id".to_owned(), user.to_owned()),
            ]
        );
        assert_eq!(events[0].contact.fields["supabase_user_id"], json!(user));
        assert_eq!(events[0].contact.fields["supabase_deleted"], json!(false));
        // A table that references the user: the id of the row and the user's id differ.
        let orders = br#"{"type": "DELETE", "table": "orders", "record": null, "schema": "public", "old_record": {"id": 7, "total": 12, "user_id": "u-1"}}"#;
        let context = NormalizeContext {
            user_id_column: Some("user_id"),
            ..NormalizeContext::default()
        };
        let events =
            testkit::normalize(ProviderId::Supabase, &[], orders, &context).expect("normalizes");
        assert_eq!(
            events[0].identity.ids,
            vec![
                ("supabase_user_id".to_owned(), "u-1".to_owned()),
                ("supabase_orders_id".to_owned(), "7".to_owned()),
            ]
        );
        assert_eq!(events[0].contact.fields["supabase_deleted"], json!(true));
    }

    #[test]
    fn custom_email_paths() {
        let delete = br#"{"type": "DELETE", "table": "accounts", "record": null, "schema": "public", "old_record": {"id": 42, "contact_email": "owner@example.com", "email": "other@example.com"}}"#;
        let e = run(delete, Some("record.contact_email"));
        assert_eq!(e.identity.email.as_deref(), Some("owner@example.com"));
        assert_eq!(
            e.identity.ids,
            vec![("supabase_accounts_id".to_owned(), "42".to_owned())]
        );
        assert_eq!(
            e.contact.fields["supabase_email"],
            json!("other@example.com")
        );
        assert!(!e.contact.fields.contains_key("supabase_contact_email"));
        let e = run(delete, Some("old_record.email"));
        assert_eq!(e.identity.email.as_deref(), Some("other@example.com"));
        let insert = br#"{"type": "INSERT", "table": "accounts", "record": {"id": 1, "owner": {"email": "nested@example.com"}}, "schema": "public", "old_record": null}"#;
        assert_eq!(
            run(insert, Some("record.owner.email"))
                .identity
                .email
                .as_deref(),
            Some("nested@example.com")
        );
        assert_eq!(run(insert, None).identity.email, None);
    }

    #[test]
    fn auth_users_never_leak_credentials() {
        let body = testkit::fixture(ProviderId::Supabase, "auth.users.INSERT.json");
        let e = run(&body, None);
        assert_eq!(e.identity.email.as_deref(), Some("sam.rivera@example.com"));
        assert_eq!(e.identity.ids[0].0, "supabase_user_id");
        let f = &e.contact.fields;
        for key in f.keys() {
            assert!(!is_credential(key), "{key} must not be copied");
        }
        assert!(!f.contains_key("supabase_raw_user_meta_data"));
        assert_eq!(f["supabase_schema"], json!("auth"));
        assert_eq!(f["supabase_aud"], json!("authenticated"));
        assert_eq!(e.occurred_at_ms, Some(1_760_433_151_779));
    }

    #[test]
    fn updates_list_changed_columns_and_names_come_from_columns() {
        let body = testkit::fixture(ProviderId::Supabase, "public.profiles.UPDATE.json");
        let e = run(&body, None);
        assert_eq!(
            e.event_fields["supabase_changed_columns"],
            json!("avatar_url,full_name,updated_at,website")
        );
        assert_eq!(e.contact.first_name, None, "full_name is not split");
        let named = br#"{"type": "INSERT", "table": "people", "record": {"id": "p1", "first_name": "Ana", "last_name": "Lima", "table": "x"}, "schema": "crm", "old_record": null}"#;
        let e = run(named, None);
        assert_eq!(e.contact.first_name.as_deref(), Some("Ana"));
        assert_eq!(e.contact.last_name.as_deref(), Some("Lima"));
        assert_eq!(e.contact.fields["supabase_table"], json!("people"));
        assert!(!e.contact.fields.contains_key("supabase_first_name"));
        let missing_row = br#"{"type": "UPDATE", "table": "t", "record": null, "schema": "public", "old_record": null}"#;
        assert!(matches!(
            testkit::normalize(
                ProviderId::Supabase,
                &[],
                missing_row,
                &NormalizeContext::default()
            ),
            Err(NormalizeError::UnexpectedShape(_))
        ));
    }
}
