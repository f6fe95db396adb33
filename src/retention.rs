//! Retention: what the store forgets, and when. `[retention] ingest_days` (default 30) removes
//! rejected requests whole, and the payloads (headers and body) of events that are finished
//! (processed, ignored or a duplicate), once older than that. Event rows themselves (connection,
//! event id, status) stay: they are the dedupe keys, so a provider retrying or a captured
//! delivery replayed late is still recognised, and `ingest_days` below
//! [`DEDUPE_FLOOR_DAYS`] is refused so no payload a provider may still retry is lost.
//!
//! Purging runs in the background in batches of [`BATCH`] rows, each its own short
//! transaction with a pause after it, so the receive path's group commits are never held up for
//! long; `hookgate purge [--dry-run]` runs the same steps once.
//!
//! `[retention] deliveries_days` (default 30) removes succeeded and skipped outbound deliveries
//! with their attempt logs once their last change is older than that; deliveries still pending,
//! retrying, paused or dead are kept whatever their age, so nothing awaiting an operator goes.
//!
//! Drains' feed rows older than `ingest_days` (records a sink refused that long) go too.
//!
//! The steps are data ([`STEPS`]).

use std::time::Duration;

use crate::db::Db;

pub use crate::policy::{
    FileRetention, Retention, DEDUPE_FLOOR_DAYS, DEFAULT_DELIVERIES_DAYS, DEFAULT_INGEST_DAYS,
};

/// Rows removed per transaction.
pub const BATCH: usize = 500;
/// The pause after each batch, so other writers get the store in between.
const BATCH_PAUSE: Duration = Duration::from_millis(50);
/// How often the background purge runs.
pub const INTERVAL: Duration = Duration::from_secs(600);
const DAY_MS: i64 = 86_400_000;

/// How a step's rows are keyed, and so how its cutoff is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// ULID text ids (ingest rows): the cutoff is the ULID of the boundary, so the scan is a
    /// range of the primary key.
    Ulid,
    /// Integer sequence numbers (deliveries): the cutoff is the boundary in Unix milliseconds,
    /// compared with the row's own time column in the step's `select`.
    Seq,
}

/// One purge step: which rows, how old, removed from which tables.
pub struct Step {
    /// What `hookgate purge` calls the rows.
    pub what: &'static str,
    /// `SELECT <key> ...` of the rows due, `$1` being the cutoff written as [`Step::key`] says.
    select: &'static str,
    key: Key,
    /// Tables the selected keys are deleted from, in this order, each with its key column.
    delete_from: &'static [(&'static str, &'static str)],
    days: fn(&Retention) -> u32,
}

/// The purge steps, in order.
pub const STEPS: &[Step] = &[
    Step {
        what: "rejected requests",
        select: "SELECT id FROM ingest WHERE outcome = 'rejected' AND id < $1",
        key: Key::Ulid,
        delete_from: &[("ingest_payloads", "id"), ("ingest", "id")],
        days: |r| r.ingest_days,
    },
    Step {
        what: "payloads of processed, ignored and duplicate events",
        select: "SELECT i.id FROM ingest i JOIN ingest_payloads p ON p.id = i.id \
                 WHERE (i.status IN ('processed', 'ignored') OR i.outcome = 'duplicate') AND i.id < $1",
        key: Key::Ulid,
        delete_from: &[("ingest_payloads", "id")],
        days: |r| r.ingest_days,
    },
    // Finished deliveries only: pending, retrying, paused and dead ones stay until someone
    // resends or requeues them, whatever their age.
    Step {
        what: "succeeded and skipped deliveries",
        select: "SELECT seq FROM deliveries \
                 WHERE status IN ('succeeded', 'skipped') AND updated_at < $1",
        key: Key::Seq,
        delete_from: &[("delivery_attempts", "delivery_seq"), ("deliveries", "seq")],
        days: |r| r.deliveries_days,
    },
];

/// What one step removed (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub what: &'static str,
    pub days: u32,
    pub rows: u64,
}

/// The instant (Unix ms) before which rows are older than `days` at `now_ms`.
fn boundary_ms(now_ms: i64, days: u32) -> i64 {
    now_ms.saturating_sub(i64::from(days) * DAY_MS).max(0)
}

/// The ULID below which rows are older than `days` at `now_ms`.
fn cutoff(now_ms: i64, days: u32) -> String {
    let at = boundary_ms(now_ms, days);
    ulid::Ulid::from_parts(u64::try_from(at).unwrap_or(0), 0).to_string()
}

/// Counts (dry run) or removes, batch by batch, the rows `step.select` finds below `$cutoff`,
/// whose keys are of type `$key`.
macro_rules! purge_step {
    ($pool:expr, $step:expr, $cutoff:expr, $key:ty, $dry_run:expr) => {{
        let pool = $pool;
        let step: &Step = $step;
        if $dry_run {
            let count: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM ({}) AS due", step.select))
                    .bind($cutoff)
                    .fetch_one(pool)
                    .await?;
            u64::try_from(count).unwrap_or(0)
        } else {
            let mut total = 0_u64;
            loop {
                let keys: Vec<$key> =
                    sqlx::query_scalar(&format!("{} ORDER BY 1 LIMIT {BATCH}", step.select))
                        .bind($cutoff)
                        .fetch_all(pool)
                        .await?;
                if keys.is_empty() {
                    break;
                }
                let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
                let mut tx = pool.begin().await?;
                for (table, column) in step.delete_from {
                    let sql = format!(
                        "DELETE FROM {table} WHERE {column} IN ({})",
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query(&sql);
                    for key in &keys {
                        query = query.bind(key);
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                total += keys.len() as u64;
                if keys.len() < BATCH {
                    break;
                }
                tokio::time::sleep(BATCH_PAUSE).await;
            }
            total
        }
    }};
}

macro_rules! purge_keyed {
    ($pool:expr, $step:expr, $now_ms:expr, $days:expr, $dry_run:expr) => {{
        let step: &Step = $step;
        match step.key {
            Key::Ulid => {
                let cut = cutoff($now_ms, $days);
                purge_step!($pool, step, &cut, String, $dry_run)
            }
            Key::Seq => {
                let cut = boundary_ms($now_ms, $days);
                purge_step!($pool, step, cut, i64, $dry_run)
            }
        }
    }};
}

/// What `hookgate purge` calls the drain feed's rows. A drain deletes its rows as its sink
/// accepts them, so only the records of a drain whose sink has refused them for `ingest_days`
/// are left for this step.
pub const DRAIN_FEED: &str = "drain records never accepted by their sink";

macro_rules! purge_drain_feed {
    ($pool:expr, $cutoff:expr, $dry_run:expr) => {{
        let pool = $pool;
        if $dry_run {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM drain_outbox WHERE at < $1")
                .bind($cutoff)
                .fetch_one(pool)
                .await?;
            u64::try_from(count).unwrap_or(0)
        } else {
            let mut total = 0_u64;
            loop {
                // The feed has no index on `at` (one index less on the receive path's extra
                // write): rows are appended in time order, so the old ones are the first in
                // `seq` order, and a feed whose first row is recent has nothing to purge.
                let first: Option<i64> =
                    sqlx::query_scalar("SELECT at FROM drain_outbox ORDER BY seq LIMIT 1")
                        .fetch_optional(pool)
                        .await?;
                if first.is_none_or(|at| at >= $cutoff) {
                    break;
                }
                let done = sqlx::query(&format!(
                    "DELETE FROM drain_outbox WHERE seq IN \
                     (SELECT seq FROM (SELECT seq, at FROM drain_outbox ORDER BY seq LIMIT {BATCH}) AS head \
                      WHERE at < $1)"
                ))
                .bind($cutoff)
                .execute(pool)
                .await?;
                total += done.rows_affected();
                if done.rows_affected() == 0 {
                    break;
                }
                tokio::time::sleep(BATCH_PAUSE).await;
            }
            total
        }
    }};
}

/// Runs every step once at `now_ms`; with `dry_run`, only counts.
///
/// # Errors
/// A database error (batches already committed stay removed).
pub async fn purge(
    db: &Db,
    retention: &Retention,
    now_ms: i64,
    dry_run: bool,
) -> Result<Vec<Purged>, sqlx::Error> {
    let mut out = Vec::with_capacity(STEPS.len());
    for step in STEPS {
        let days = (step.days)(retention);
        let rows = match db {
            Db::Sqlite { writer, .. } => purge_keyed!(writer, step, now_ms, days, dry_run),
            Db::Postgres(pool) => purge_keyed!(pool, step, now_ms, days, dry_run),
        };
        out.push(Purged {
            what: step.what,
            days,
            rows,
        });
    }
    let days = retention.ingest_days;
    let cut = boundary_ms(now_ms, days);
    let rows = match db {
        Db::Sqlite { writer, .. } => purge_drain_feed!(writer, cut, dry_run),
        Db::Postgres(pool) => purge_drain_feed!(pool, cut, dry_run),
    };
    out.push(Purged {
        what: DRAIN_FEED,
        days,
        rows,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dedupe_floor_is_enforced_and_defaults_apply() {
        assert_eq!(
            Retention::from_file(None).expect("defaults"),
            Retention::default()
        );
        let short = FileRetention {
            ingest_days: Some(6),
            deliveries_days: None,
        };
        let message = format!(
            "{:#}",
            Retention::from_file(Some(&short)).expect_err("refused")
        );
        assert!(
            message.contains("retention.ingest_days") && message.contains('7'),
            "{message}"
        );
        let week = FileRetention {
            ingest_days: Some(7),
            deliveries_days: Some(1),
        };
        assert_eq!(
            Retention::from_file(Some(&week)).expect("a week is enough"),
            Retention {
                ingest_days: 7,
                deliveries_days: 1
            }
        );
    }

    #[test]
    fn cutoffs_are_ulids_of_the_day_boundary() {
        let now = 1_800_000_000_000;
        let cut = cutoff(now, 30);
        let id = ulid::Ulid::from_string(&cut).expect("ulid");
        assert_eq!(
            id.timestamp_ms(),
            u64::try_from(now - 30 * DAY_MS).expect("positive")
        );
        // A row received a millisecond before the cutoff sorts below it, one at it does not.
        let older = ulid::Ulid::from_parts(id.timestamp_ms() - 1, u128::MAX >> 48).to_string();
        let same = ulid::Ulid::from_parts(id.timestamp_ms(), 1).to_string();
        assert!(older < cut && same > cut);
    }
}
