//! Outbound delivery of events to subscribers' endpoints.
//!
//! - [`endpoint`]: endpoint definitions and `[delivery]` settings, validated.
//! - [`sign`]: Standard Webhooks signatures of each attempt.
//! - [`destination`]: which destinations may be reached (server-side request forgery rules).
//! - [`transform`]: optional jq programs that reshape the body.
//! - [`store`]: endpoints, deliveries and attempts in the database.
//! - [`worker`]: claims due deliveries and sends them.
//!
//! The outbox is a database trigger on `fires` (see the `delivery` migration): whichever code
//! inserts an event, its deliveries are inserted by the same statement, in the same
//! transaction, for every enabled endpoint of the event's workspace whose globs match.

pub mod destination;
pub mod endpoint;
pub mod manage;
pub mod sign;
pub mod store;
pub mod transform;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};

use hookgate_providers::time::format_rfc3339_ms;

/// Bumped by every endpoint change made in this process, so the worker reloads endpoints at
/// once instead of at its next periodic refresh (changes made by other processes, such as the
/// CLI, are picked up by that refresh).
static ENDPOINTS_CHANGED: AtomicU64 = AtomicU64::new(0);

/// Tells this process's delivery worker that endpoints changed.
pub fn endpoints_changed() {
    ENDPOINTS_CHANGED.fetch_add(1, Ordering::SeqCst);
}

/// The current endpoint change count.
pub fn endpoints_generation() -> u64 {
    ENDPOINTS_CHANGED.load(Ordering::SeqCst)
}

/// An event's Standard Webhooks message id: `msg_` + the ULID whose time part is the event's
/// commit time and whose random part is its sequence number. Derived from two values that
/// never change, so it is stable for ever and needs no column of its own.
pub fn message_id(created_at_ms: i64, seq: i64) -> String {
    let ms = u64::try_from(created_at_ms).unwrap_or(0);
    let random = u128::from(u64::try_from(seq).unwrap_or(0));
    format!("msg_{}", ulid::Ulid::from_parts(ms, random))
}

/// The body of a delivery before any transform:
/// `{"id","type","timestamp","workspace","data"}`.
pub fn envelope(
    created_at_ms: i64,
    seq: i64,
    event_type: &str,
    workspace: &str,
    payload: &str,
) -> serde_json::Value {
    serde_json::json!({
        "id": message_id(created_at_ms, seq),
        "type": event_type,
        "timestamp": format_rfc3339_ms(created_at_ms),
        "workspace": workspace,
        "data": serde_json::from_str::<serde_json::Value>(payload).unwrap_or(serde_json::Value::Null),
    })
}

/// The public id of a delivery row.
pub fn delivery_id(seq: i64) -> String {
    format!("dlv_{seq}")
}

/// The row number of a public delivery id (`dlv_<n>`, or the bare number).
pub fn parse_delivery_id(text: &str) -> Option<i64> {
    text.strip_prefix("dlv_")
        .unwrap_or(text)
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let a = message_id(1_764_547_200_000, 1);
        assert_eq!(a, message_id(1_764_547_200_000, 1));
        assert_ne!(a, message_id(1_764_547_200_000, 2));
        assert!(a.starts_with("msg_") && a.len() == 30, "{a}");
        let ulid: ulid::Ulid = a["msg_".len()..].parse().expect("a ULID");
        assert_eq!(ulid.timestamp_ms(), 1_764_547_200_000);
        assert_eq!(parse_delivery_id(&delivery_id(42)), Some(42));
        assert_eq!(parse_delivery_id("dlv_x"), None);
    }
}
