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

use crate::scheme::shared_secret;
use crate::{
    json_object, str_field, AuthKind, AuthMode, EventMeta, IdentifyError, Provider, ProviderId,
    Request, Secret, SecretError, SignError, SignOptions, Signed, Verified, VerifyError,
    VerifyOptions,
};

pub struct Supabase;

impl Provider for Supabase {
    fn id(&self) -> ProviderId {
        ProviderId::Supabase
    }

    fn auth_kind(&self) -> AuthKind {
        AuthKind::SharedSecret
    }

    fn default_tolerance_secs(&self) -> Option<u64> {
        None
    }

    fn check_secret(&self, secret: &Secret, auth: Option<&AuthMode>) -> Result<(), SecretError> {
        shared_secret::check_secret(secret, auth.unwrap_or(&AuthMode::Bearer))
    }

    fn verify<'a>(
        &self,
        request: &Request<'a>,
        secrets: &[Secret],
        options: &VerifyOptions<'_>,
    ) -> Result<Verified<'a>, VerifyError> {
        shared_secret::verify(request, secrets, options.auth.unwrap_or(&AuthMode::Bearer))?;
        Ok(Verified::new(ProviderId::Supabase, request))
    }

    fn identify(&self, event: &Verified<'_>) -> Result<EventMeta, IdentifyError> {
        let body = json_object(event.body())?;
        let op = str_field(&body, "type")
            .filter(|t| matches!(*t, "INSERT" | "UPDATE" | "DELETE"))
            .ok_or(IdentifyError::UnexpectedShape(
                "`type` must be INSERT, UPDATE or DELETE",
            ))?;
        let schema =
            str_field(&body, "schema").ok_or(IdentifyError::UnexpectedShape("no `schema`"))?;
        let table =
            str_field(&body, "table").ok_or(IdentifyError::UnexpectedShape("no `table`"))?;
        Ok(EventMeta {
            event_id: format!("sha256:{}", crate::body_digest(event.body())),
            event_type: format!("{schema}.{table}.{op}"),
            mapped: true,
        })
    }

    fn sign(
        &self,
        _body: &[u8],
        secret: &Secret,
        options: &SignOptions,
    ) -> Result<Signed, SignError> {
        let mode = options.auth.clone().unwrap_or(AuthMode::Bearer);
        shared_secret::check_secret(secret, &mode)?;
        Ok(shared_secret::sign(secret, &mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn conformance() {
        let body = br#"{"type": "INSERT", "table": "profiles", "record": {"id": 1, "email": "a@example.com"}, "schema": "public", "old_record": null}"#;
        testkit::shared_secret_conformance(&Supabase, body);
        let headers = http::HeaderMap::new();
        let meta = Supabase
            .identify(&Verified::from_store(ProviderId::Supabase, &headers, body))
            .expect("meta");
        assert_eq!(meta.event_type, "public.profiles.INSERT");
        assert_eq!(
            meta.event_id,
            format!("sha256:{}", crate::body_digest(body))
        );
        let bad = br#"{"type": "TRUNCATE", "table": "profiles", "schema": "public"}"#;
        assert!(Supabase
            .identify(&Verified::from_store(ProviderId::Supabase, &headers, bad))
            .is_err());
    }
}
