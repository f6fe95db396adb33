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
//! Drains' feed rows older than `ingest_days` (records a sink refused that long) go too.
//!
//! The steps are data ([`STEPS`]): the outbound deliveries' retention (`deliveries_days`) is one
//! more entry once a deliveries table exists.

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

/// One purge step: which rows, how old, removed from which tables.
pub struct Step {
    /// What `hookgate purge` calls the rows.
    pub what: &'static str,
    /// `SELECT id ...` of the rows due, `$1` being the cutoff as a ULID (ingest ids are ULIDs,
    /// so the primary key orders them by receive time and the scan is an index range).
    select: &'static str,
    /// Tables the selected ids are deleted from, in this order.
    delete_from: &'static [&'static str],
    days: fn(&Retention) -> u32,
}

/// The purge steps, in order.
pub const STEPS: &[Step] = &[
    Step {
        what: "rejected requests",
        select: "SELECT id FROM ingest WHERE outcome = 'rejected' AND id < $1",
        delete_from: &["ingest_payloads", "ingest"],
        days: |r| r.ingest_days,
    },
    Step {
        what: "payloads of processed, ignored and duplicate events",
        select: "SELECT i.id FROM ingest i JOIN ingest_payloads p ON p.id = i.id \
                 WHERE (i.status IN ('processed', 'ignored') OR i.outcome = 'duplicate') AND i.id < $1",
        delete_from: &["ingest_payloads"],
        days: |r| r.ingest_days,
    },
    // Outbound deliveries (`deliveries_days`): one more entry here once that table exists.
];

/// What one step removed (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub what: &'static str,
    pub days: u32,
    pub rows: u64,
}

/// The ULID below which rows are older than `days` at `now_ms`.
fn cutoff(now_ms: i64, days: u32) -> String {
    let at = now_ms.saturating_sub(i64::from(days) * DAY_MS).max(0);
    ulid::Ulid::from_parts(u64::try_from(at).unwrap_or(0), 0).to_string()
}

macro_rules! purge_step {
    ($pool:expr, $step:expr, $cutoff:expr, $dry_run:expr) => {{
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
                let ids: Vec<String> =
                    sqlx::query_scalar(&format!("{} ORDER BY 1 LIMIT {BATCH}", step.select))
                        .bind($cutoff)
                        .fetch_all(pool)
                        .await?;
                if ids.is_empty() {
                    break;
                }
                let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
                let mut tx = pool.begin().await?;
                for table in step.delete_from {
                    let sql = format!(
                        "DELETE FROM {table} WHERE id IN ({})",
                        placeholders.join(", ")
                    );
                    let mut query = sqlx::query(&sql);
                    for id in &ids {
                        query = query.bind(id);
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                total += ids.len() as u64;
                if ids.len() < BATCH {
                    break;
                }
                tokio::time::sleep(BATCH_PAUSE).await;
            }
            total
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
        let cut = cutoff(now_ms, days);
        let rows = match db {
            Db::Sqlite { writer, .. } => purge_step!(writer, step, &cut, dry_run),
            Db::Postgres(pool) => purge_step!(pool, step, &cut, dry_run),
        };
        out.push(Purged {
            what: step.what,
            days,
            rows,
        });
    }
    let days = retention.ingest_days;
    let cut = now_ms.saturating_sub(i64::from(days) * DAY_MS);
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
