//! The durable baseline (`hookgate-bench durable`): the least a receiver must do to acknowledge
//! a webhook honestly, so the load test can say how close the gateway comes to it.
//!
//! Same HTTP stack as the gateway (axum on hyper), the same verification (the provider's
//! signature checked by `hookgate-providers`, the event id taken from the verified request),
//! then one row per event — `(id, key, body)`, `INSERT ... ON CONFLICT DO NOTHING` — into a
//! single table on the same store and durability, written by one writer that commits whatever
//! has queued up since its last commit in one transaction (a group commit), and the request is
//! answered 200 only after that commit. No normalization, no ingest log, no other index.

use std::net::SocketAddr;
use std::str::FromStr as _;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hookgate::db::Durability;
use hookgate_providers::{ProviderId, Request, Secret, VerifyOptions};
use tokio::sync::{mpsc, oneshot};

use crate::args::DurableArgs;

/// Rows per group commit at most (two bind parameters each on SQLite).
const MAX_BATCH: usize = 512;

/// One verified event waiting for the writer.
struct Pending {
    key: String,
    body: Bytes,
    done: oneshot::Sender<bool>,
}

struct Shared {
    provider: ProviderId,
    secrets: Vec<Secret>,
    writer: mpsc::Sender<Pending>,
}

enum Store {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The SQLite INSERT of `rows` events: `(key, body)` pairs, duplicates ignored.
fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
        .collect();
    format!(
        "INSERT INTO durable_events (key, body) VALUES {} ON CONFLICT (key) DO NOTHING",
        values.join(", ")
    )
}

macro_rules! commit_batch {
    ($pool:expr, $batch:expr) => {{
        let sql = insert_sql($batch.len());
        let mut query = sqlx::query(&sql);
        for p in $batch {
            query = query.bind(p.key.as_str()).bind(p.body.as_ref());
        }
        let mut tx = $pool.begin().await?;
        query.execute(&mut *tx).await?;
        tx.commit().await
    }};
}

impl Store {
    async fn open(url: &str, durability: Durability) -> anyhow::Result<Store> {
        if url.starts_with("postgres") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .context("cannot reach PostgreSQL")?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS durable_events (\
                 key TEXT COLLATE \"C\" PRIMARY KEY, \
                 id BIGINT GENERATED ALWAYS AS IDENTITY, \
                 body BYTEA NOT NULL)",
            )
            .execute(&pool)
            .await?;
            return Ok(Store::Postgres(pool));
        }
        let synchronous = match durability {
            Durability::Full => sqlx::sqlite::SqliteSynchronous::Full,
            Durability::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
        };
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            // The same page size as the gateway's store: the same store, tuned alike.
            .page_size(hookgate::db::SQLITE_PAGE_SIZE)
            .synchronous(synchronous);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open {url}"))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS durable_events (\
             id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, body BLOB NOT NULL)",
        )
        .execute(&pool)
        .await?;
        Ok(Store::Sqlite(pool))
    }

    async fn commit(&self, batch: &[Pending]) -> Result<(), sqlx::Error> {
        match self {
            Store::Sqlite(pool) => commit_batch!(pool, batch),
            // One statement of two array parameters whatever the batch size, as the
            // prototype measured: the server parses and plans one statement, not one per
            // batch size with two parameters a row.
            Store::Postgres(pool) => {
                let keys: Vec<&str> = batch.iter().map(|p| p.key.as_str()).collect();
                let bodies: Vec<&[u8]> = batch.iter().map(|p| p.body.as_ref()).collect();
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO durable_events (key, body) \
                     SELECT * FROM UNNEST($1::text[], $2::bytea[]) ON CONFLICT (key) DO NOTHING",
                )
                .bind(keys)
                .bind(bodies)
                .execute(&mut *tx)
                .await?;
                tx.commit().await
            }
        }
    }
}

/// The one writer: takes what has queued up (up to [`MAX_BATCH`]), commits it in one
/// transaction, then answers every request in it.
async fn write(store: Store, mut rx: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let ok = match store.commit(&batch).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, rows = batch.len(), "durable baseline: commit failed");
                false
            }
        };
        for p in batch.drain(..) {
            let _ = p.done.send(ok);
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path((_provider, _connection)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let adapter = shared.provider.adapter();
    let request = Request {
        headers: &headers,
        body: &body,
        query: uri.query(),
    };
    let options = VerifyOptions {
        now_ms: hookgate::now_ms(),
        tolerance_secs: None,
        auth: None,
    };
    let key = match adapter
        .verify(&request, &shared.secrets, &options)
        .map_err(|e| e.code())
        .and_then(|verified| adapter.identify(&verified).map_err(|e| e.code()))
    {
        Ok(meta) => meta.event_id,
        Err(code) => return (StatusCode::UNAUTHORIZED, code).into_response(),
    };
    let (done, committed) = oneshot::channel();
    let pending = Pending {
        key,
        body: body.clone(),
        done,
    };
    if shared.writer.send(pending).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match committed.await {
        Ok(true) => axum::Json(serde_json::json!({"status": "accepted"})).into_response(),
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `hookgate-bench durable`: serves the durable baseline until killed.
///
/// # Errors
/// The store cannot be opened or the address bound.
pub async fn serve(args: DurableArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.database_url, args.durability).await?;
    let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(write(store, rx));
    let shared = Arc::new(Shared {
        provider: args.provider,
        secrets: vec![Secret::new(args.secret)],
        writer: tx,
    });
    let app = axum::Router::new()
        .route(
            "/integrations/{provider}/webhook/{id}",
            axum::routing::post(receive),
        )
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(listen = %addr, "durable baseline is listening");
    axum::serve(listener, app).await?;
    Ok(())
}

/// Rows the durable baseline stored (to check it lost nothing either).
///
/// # Errors
/// The store cannot be read.
pub async fn stored(url: &str) -> anyhow::Result<i64> {
    let count = match Store::open(url, Durability::Normal).await? {
        Store::Sqlite(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM durable_events")
                .fetch_one(&pool)
                .await?
        }
        Store::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM durable_events")
                .fetch_one(&pool)
                .await?
        }
    };
    Ok(count)
}
