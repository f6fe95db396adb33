//! Outbound delivery of events to subscribers' endpoints.
//!
//! - [`sign`]: Standard Webhooks signatures of each attempt.
//! - [`destination`]: which destinations may be reached (server-side request forgery rules).
//! - [`transform`]: optional jq programs that reshape the body.

pub mod destination;
pub mod endpoint;
pub mod sign;
pub mod transform;
