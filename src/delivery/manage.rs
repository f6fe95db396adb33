//! Endpoint management shared by the config file, the admin API and the CLI.

use serde_json::{json, Value};

use super::endpoint::{
    open_secrets, seal_secrets, EndpointSpec, StoredSecret, ROTATION_OVERLAP_MS,
};
use super::sign::generate_secret;
use super::store::{self, EndpointRow, EndpointWrite};
use crate::crypto::SecretKey;
use crate::db::Db;

/// The result of saving an endpoint.
#[derive(Debug)]
pub enum Saved {
    /// Written; `generated_secret` is set when a secret was made for it (shown once).
    Written { generated_secret: Option<String> },
    /// It exists and `replace` was off.
    Exists,
}

/// Why an endpoint operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("endpoint {0:?}: {1}")]
    Secrets(String, crate::crypto::SecretsError),
    #[error("{0}")]
    Invalid(String),
}

/// Stores `spec`. Without secrets in the spec, an existing endpoint keeps its secrets and a new
/// one gets a generated secret.
///
/// # Errors
/// The store fails, or the existing secrets cannot be read.
pub async fn save(
    db: &Db,
    spec: &EndpointSpec,
    key: Option<&SecretKey>,
    source: &str,
    replace: bool,
    now_ms: i64,
) -> Result<Saved, ManageError> {
    let existing = store::get_endpoint(db, &spec.id).await?;
    if existing.is_some() && !replace {
        return Ok(Saved::Exists);
    }
    let mut generated_secret = None;
    let secrets = if !spec.secrets.is_empty() {
        let list: Vec<StoredSecret> = spec
            .secrets
            .iter()
            .map(|s| StoredSecret {
                secret: s.clone(),
                expires_at: None,
            })
            .collect();
        seal_secrets(&spec.id, &list, key)
    } else if let Some(row) = &existing {
        let list = open_secrets(&row.id, &row.secrets, key)
            .map_err(|e| ManageError::Secrets(row.id.clone(), e))?;
        seal_secrets(&spec.id, &list, key)
    } else {
        let secret = generate_secret();
        let list = [StoredSecret {
            secret: secret.clone(),
            expires_at: None,
        }];
        generated_secret = Some(secret);
        seal_secrets(&spec.id, &list, key)
    };
    let written = store::put_endpoint(
        db,
        &EndpointWrite {
            id: &spec.id,
            url: &spec.url,
            workspace: &spec.workspace,
            event_types: &spec.event_types,
            secrets,
            transform: spec.transform.as_deref(),
            max_in_flight: i64::from(spec.max_in_flight),
            rate_limit_per_sec: spec.rate_limit_per_sec.map(i64::from),
            ordered: spec.ordered,
            enabled: spec.enabled,
            source,
            now_ms,
        },
        replace,
    )
    .await?;
    Ok(if written {
        Saved::Written { generated_secret }
    } else {
        Saved::Exists
    })
}

/// Adds a new secret (given, or generated); the ones before it keep signing for 24 h.
/// Returns the new secret, or `None` when the endpoint does not exist.
///
/// # Errors
/// The store fails, the stored secrets cannot be read, or the given secret is malformed.
pub async fn rotate(
    db: &Db,
    id: &str,
    new_secret: Option<String>,
    key: Option<&SecretKey>,
    now_ms: i64,
) -> Result<Option<String>, ManageError> {
    let Some(row) = store::get_endpoint(db, id).await? else {
        return Ok(None);
    };
    let secret = match new_secret {
        Some(s) => {
            super::sign::check_secret(&s)
                .map_err(|e| ManageError::Invalid(format!("secret: {e}")))?;
            s
        }
        None => generate_secret(),
    };
    let mut list = open_secrets(&row.id, &row.secrets, key)
        .map_err(|e| ManageError::Secrets(row.id.clone(), e))?;
    list.retain(|s| s.expires_at.is_none_or(|at| at > now_ms));
    for old in &mut list {
        let until = now_ms + ROTATION_OVERLAP_MS;
        old.expires_at = Some(old.expires_at.map_or(until, |at| at.min(until)));
    }
    list.push(StoredSecret {
        secret: secret.clone(),
        expires_at: None,
    });
    store::set_endpoint_secrets(db, id, &seal_secrets(id, &list, key), now_ms).await?;
    Ok(Some(secret))
}

/// An endpoint as the admin API and the CLI show it (never its secrets, only how many sign).
pub fn view(row: &EndpointRow, key: Option<&SecretKey>, now_ms: i64) -> Value {
    let signing = open_secrets(&row.id, &row.secrets, key)
        .map(|list| super::endpoint::active_secrets(&list, now_ms).len())
        .ok();
    json!({
        "id": row.id,
        "url": row.url,
        "workspace": row.workspace,
        "event_types": row.globs(),
        "transform": row.transform,
        "max_in_flight": row.max_in_flight,
        "rate_limit_per_sec": row.rate_limit_per_sec,
        "ordered": row.ordered,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "failing_since": row.failing_since,
        "signing_secrets": signing,
        "source": row.source,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

/// A delivery as the admin API and the CLI show it.
pub fn delivery_view(d: &store::DeliveryRow) -> Value {
    json!({
        "id": super::delivery_id(d.seq),
        "endpoint_id": d.endpoint_id,
        "event_id": d.fire_seq.to_string(),
        "message_id": super::message_id(d.fire_created_at, d.fire_seq),
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at.filter(|_| matches!(d.status.as_str(), "pending" | "retrying")),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
    })
}

/// Queues every event of the endpoint's workspace in the range that its globs (and
/// `event_type`, when given) match, including events older than the endpoint.
///
/// # Errors
/// The store fails.
pub async fn replay(
    db: &Db,
    row: &EndpointRow,
    since: Option<i64>,
    until: Option<i64>,
    event_type: Option<&str>,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    let globs = row.globs();
    let events: Vec<(i64, i64, String)> =
        store::events_in_range(db, &row.workspace, since, until, event_type)
            .await?
            .into_iter()
            .filter(|(_, _, t)| globs.iter().any(|g| super::endpoint::glob_match(g, t)))
            .collect();
    if events.is_empty() {
        return Ok(0);
    }
    store::queue_events(db, &row.id, &row.workspace, &events, now_ms).await?;
    Ok(events.len() as u64)
}

/// Sends one signed `hookgate.test` event to the endpoint now, outside the queue.
///
/// # Errors
/// The endpoint's secrets cannot be read or the HTTP client cannot be built.
pub async fn send_test(
    row: &EndpointRow,
    settings: &super::endpoint::DeliverySettings,
    key: Option<&SecretKey>,
    now_ms: i64,
) -> Result<Value, ManageError> {
    let secrets = open_secrets(&row.id, &row.secrets, key)
        .map_err(|e| ManageError::Secrets(row.id.clone(), e))?;
    let secrets = super::endpoint::active_secrets(&secrets, now_ms);
    let msg_id = format!("msg_{}", ulid::Ulid::new());
    let body = json!({
        "id": msg_id,
        "type": "hookgate.test",
        "timestamp": hookgate_providers::time::format_rfc3339_ms(now_ms),
        "workspace": row.workspace,
        "data": {"endpoint_id": row.id},
    })
    .to_string();
    let url = match super::destination::check_url(&row.url, &settings.policy) {
        Ok(url) => url,
        Err(e) => {
            return Ok(
                json!({"message_id": msg_id, "status_code": 0, "duration_ms": 0, "error": e.to_string()}),
            )
        }
    };
    let client = super::worker::client(settings)
        .map_err(|e| ManageError::Invalid(format!("cannot build the HTTP client: {e}")))?;
    let signed = super::sign::sign(&msg_id, now_ms.div_euclid(1000), body.as_bytes(), &secrets);
    let started = std::time::Instant::now();
    let result = signed
        .apply(
            client
                .post(url)
                .header(http::header::CONTENT_TYPE, "application/json"),
        )
        .body(body)
        .send()
        .await;
    let duration_ms = started.elapsed().as_millis() as u64;
    Ok(match result {
        Ok(r) => {
            json!({"message_id": msg_id, "status_code": r.status().as_u16(), "duration_ms": duration_ms,
                   "error": (!r.status().is_success()).then(|| format!("answered {}", r.status()))})
        }
        Err(e) => {
            json!({"message_id": msg_id, "status_code": 0, "duration_ms": duration_ms, "error": super::worker::describe(&e)})
        }
    })
}
