//! Seeding a store with events as if it had been in service for a while (`--seed-events`), so
//! that the load test can measure the gateway against a large store next to an empty one.
//!
//! The seeded history is written straight into the store with set-based SQL, far faster than
//! through the gateway, and shaped like what the gateway itself leaves behind for the bench
//! connection's Stripe traffic: per event an ingest row (1 in 20 rejected, 1 in 20 ignored, the
//! rest processed) with its headers and a 2 KiB body, a fire per processed event, and a contact
//! (with its `stripe_customer_id` link) per ten events. Ids sort before any live ULID, so the
//! live traffic appends after the history as it would in service.

use std::time::Instant;

use anyhow::{bail, Context as _};
use sqlx::ConnectOptions as _;

/// Events per transaction while seeding (each one a progress line).
const CHUNK: u64 = 250_000;

/// What seeding took.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seeded {
    pub events: u64,
    pub seconds: f64,
    /// The store's size on disk after seeding (database and WAL), MiB.
    pub store_mib: f64,
}

/// Seeds `events` events of connection `connection` into the SQLite store at `path`.
///
/// # Errors
/// The store cannot be opened or written, or it is not SQLite.
pub async fn seed(
    store: &str,
    path: &std::path::Path,
    connection: &str,
    events: u64,
) -> anyhow::Result<Seeded> {
    if store != "sqlite" {
        bail!("--seed-events seeds SQLite stores only; run it without --store");
    }
    let started = Instant::now();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        // A bulk load that is thrown away if it fails: no need to wait for the disk.
        .synchronous(sqlx::sqlite::SqliteSynchronous::Off)
        .disable_statement_logging();
    let mut conn = options
        .connect()
        .await
        .context("cannot open the store to seed")?;
    let now = hookgate::now_ms();
    let first_ms = now - i64::try_from(events).unwrap_or(i64::MAX / 2) * 10;
    let mut done = 0u64;
    while done < events {
        let n = (events - done).min(CHUNK);
        let (from, to) = (
            i64::try_from(done).unwrap_or(i64::MAX),
            i64::try_from(done + n - 1).unwrap_or(i64::MAX),
        );
        let mut tx = sqlx::Connection::begin(&mut conn).await?;
        // One row of `n` per event number k; k % 20 = 0 rejected, 1 ignored, else processed.
        // Every statement numbers its rows the same way and reads the seed's first time (t0)
        // and connection (conn) from the numbering, so all of them take the same four binds.
        let numbers = "WITH RECURSIVE n(k, t0, conn) AS (SELECT $1, $3, $4 \
                       UNION ALL SELECT k + 1, t0, conn FROM n WHERE k < $2)";
        let steps = [
            (
                "ingest rows",
                format!(
                "{numbers} INSERT INTO ingest (id, received_at, connection_id, provider, workspace, outcome, status, \
                 http_status, event_id, event_type, reason, client_addr, path, body_size, body_truncated, read_us, \
                 verify_us, attempts, processed_at, contact_email) \
                 SELECT '01J' || printf('%023d', k), t0 + k * 10, conn, 'stripe', 'default', \
                 CASE k % 20 WHEN 0 THEN 'rejected' WHEN 1 THEN 'ignored' ELSE 'accepted' END, \
                 CASE k % 20 WHEN 0 THEN NULL WHEN 1 THEN 'ignored' ELSE 'processed' END, \
                 CASE k % 20 WHEN 0 THEN 401 ELSE 200 END, \
                 CASE k % 20 WHEN 0 THEN NULL ELSE 'evt_seed_' || printf('%010d', k) END, \
                 CASE k % 4 WHEN 0 THEN 'invoice.paid' WHEN 1 THEN 'customer.created' \
                 WHEN 2 THEN 'customer.subscription.updated' ELSE 'checkout.session.completed' END, \
                 CASE k % 20 WHEN 0 THEN 'signature_mismatch' ELSE NULL END, '192.0.2.10', \
                 '/integrations/stripe/webhook/' || conn, 2048, FALSE, 40, 12, \
                 CASE k % 20 WHEN 0 THEN 0 ELSE 1 END, \
                 CASE k % 20 WHEN 0 THEN NULL ELSE t0 + k * 10 + 3 END, \
                 CASE WHEN k % 20 > 1 THEN 'seed' || (k / 10) || '@example.com' END FROM n"
                ),
            ),
            (
                "ingest payloads",
                format!(
                "{numbers} INSERT INTO ingest_payloads (id, headers, body) \
                 SELECT '01J' || printf('%023d', k), \
                 '[[\"content-type\",\"application/json\"],[\"stripe-signature\",\"t=1760000000,v1=' || hex(randomblob(32)) || '\"]]', \
                 CAST('{{\"id\":\"evt_seed_' || printf('%010d', k) || '\",\"object\":\"event\",\"type\":\"invoice.paid\",' || \
                 '\"data\":{{\"object\":{{\"customer\":\"cus_seed' || (k / 10) || '\",\"customer_email\":\"seed' || (k / 10) || \
                 '@example.com\",\"padding\":\"' || hex(randomblob(950)) || '\"}}}}}}' AS BLOB) FROM n"
                ),
            ),
            (
                "fires",
                format!(
                "{numbers} INSERT INTO fires (idempotency_key, workspace, trigger_id, provider, ingest_id, email, payload, \
                 occurred_at, created_at) \
                 SELECT conn || ':evt_seed_' || printf('%010d', k), 'default', 'stripe.invoice.paid', 'stripe', \
                 '01J' || printf('%023d', k), 'seed' || (k / 10) || '@example.com', \
                 '{{\"amount_paid\":2900,\"currency\":\"usd\",\"customer_id\":\"cus_seed' || (k / 10) || \
                 '\",\"invoice_id\":\"in_seed' || k || '\",\"status\":\"paid\",\"subscription_id\":\"sub_seed' || (k / 10) || '\"}}', \
                 t0 + k * 10, t0 + k * 10 + 3 FROM n WHERE k % 20 > 1"
                ),
            ),
            (
                "contacts",
                format!(
                "{numbers} INSERT INTO contacts (workspace, email, first_name, last_name, subscribed, custom_fields, \
                 field_times, created_at, updated_at) \
                 SELECT 'default', 'seed' || (k / 10) || '@example.com', 'Seed', 'User' || (k / 10), NULL, \
                 '{{\"stripe_customer_id\":\"cus_seed' || (k / 10) || '\",\"stripe_invoice_status\":\"paid\",\"stripe_amount_paid\":2900}}', \
                 '{{}}', t0 + k * 10, t0 + k * 10 FROM n WHERE k % 10 = 2"
                ),
            ),
            (
                "contact links",
                format!(
                "{numbers} INSERT INTO contact_ids (workspace, key, value, email, seen_at) \
                 SELECT 'default', 'stripe_customer_id', 'cus_seed' || (k / 10), 'seed' || (k / 10) || '@example.com', \
                 t0 + k * 10 FROM n WHERE k % 10 = 2"
                ),
            ),
        ];
        for (what, sql) in steps {
            sqlx::query(&sql)
                .bind(from)
                .bind(to)
                .bind(first_ms)
                .bind(connection)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("seeding {what}"))?;
        }
        tx.commit().await?;
        done += n;
        eprintln!(
            "bench: seeded {done} of {events} events ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    // No ANALYZE: the gateway never runs one on SQLite, so a store that grew in service has no
    // planner statistics either.
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    sqlx::Connection::close(conn).await?;
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = path.with_extension("db-wal");
    Ok(Seeded {
        events,
        seconds: started.elapsed().as_secs_f64(),
        store_mib: (size(path) + size(&wal)) as f64 / (1024.0 * 1024.0),
    })
}

/// Every seeded id sorts before this (`01J` and 23 digits); every live ULID after it.
const LIVE_IDS_FROM: &str = "01JA";

/// A read-only connection to the SQLite store at `path`.
async fn open_read_only(path: &std::path::Path) -> anyhow::Result<sqlx::SqliteConnection> {
    Ok(sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .disable_statement_logging()
        .connect()
        .await?)
}

/// The event ids the live traffic stored for `connection` in a seeded store.
///
/// # Errors
/// The store cannot be read.
pub async fn live_event_ids(
    path: &std::path::Path,
    connection: &str,
) -> anyhow::Result<Vec<String>> {
    let mut conn = open_read_only(path).await?;
    let ids = sqlx::query_scalar(
        "SELECT event_id FROM ingest WHERE connection_id = $1 AND outcome IN ('accepted', 'ignored') \
         AND id >= $2",
    )
    .bind(connection)
    .bind(LIVE_IDS_FROM)
    .fetch_all(&mut conn)
    .await?;
    sqlx::Connection::close(conn).await?;
    Ok(ids)
}

/// The fires made for the live traffic's events in a seeded store.
///
/// # Errors
/// The store cannot be read.
pub async fn live_fire_count(path: &std::path::Path) -> anyhow::Result<i64> {
    let mut conn = open_read_only(path).await?;
    let fires = sqlx::query_scalar("SELECT COUNT(*) FROM fires WHERE ingest_id >= $1")
        .bind(LIVE_IDS_FROM)
        .fetch_one(&mut conn)
        .await?;
    sqlx::Connection::close(conn).await?;
    Ok(fires)
}
