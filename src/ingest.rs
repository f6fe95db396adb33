//! The group-commit ingest writer.
//!
//! Handlers hand rows to one writer task through a channel. The writer takes whatever has queued
//! up (up to [`MAX_BATCH`]), writes it in one transaction (one commit, so one fsync for the whole
//! batch), then answers each waiting handler with its row's outcome. It commits as soon as it is
//! free: under light load a batch is one row and nothing waits for a timer, under heavy load
//! batches grow by themselves. A handler answers 2xx only after its reply says the batch
//! committed; if the commit fails every row of the batch gets an error and its request 503.
//!
//! On PostgreSQL several writers (see [`crate::db::Db::parallel_writers`]) take turns collecting
//! a batch from the queues, so one batch is gathered while others wait on their commit: the
//! server overlaps their WAL flushes. Deduplication stays exact across them: a second insert of
//! the same (connection, event id) waits for the first transaction and then does nothing, and
//! each batch inserts in key order, so two batches never wait on each other in a cycle.
//!
//! Rejected requests are logged through the same writer without waiting (`log`), on a queue of
//! their own: a batch takes every delivery waiting first and then at most [`MAX_LOG_ROWS`] log
//! rows, so a flood of rejected requests (a connection hammered far past its rate limit) can
//! neither queue ahead of real deliveries nor make their batches slow. When the log queue is
//! full its rows are dropped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, NewIngest, WriteOutcome};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, Signals};

/// The most rows one transaction carries.
pub const MAX_BATCH: usize = 512;
/// The most rejected-request log rows one transaction carries.
pub const MAX_LOG_ROWS: usize = 64;
const QUEUE: usize = 16 * 1024;
const LOG_QUEUE: usize = 4 * 1024;

/// The store could not commit the row (the request must not get a 2xx).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the ingest store could not commit")]
pub struct StoreUnavailable;

struct Job {
    row: NewIngest,
    reply: Reply,
}

/// Whether the last write succeeded (`/readyz` reports it).
#[derive(Debug, Default)]
pub struct StoreHealth {
    failing: AtomicBool,
    failures: AtomicU64,
}

impl StoreHealth {
    pub fn writes_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub fn failed_batches(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// The handle handlers use; cloning is cheap.
#[derive(Clone)]
pub struct IngestWriter {
    tx: mpsc::Sender<Job>,
    log_tx: mpsc::Sender<NewIngest>,
    health: Arc<StoreHealth>,
    metrics: Arc<Metrics>,
}

impl IngestWriter {
    /// Starts the writer task on `db`. It ends when every handle is dropped and the queue is empty.
    ///
    /// With `inline`, each batch's new events are normalized and applied in the transaction
    /// that stores them ([`Pipeline::write_and_apply`]); the pipeline's workers then only take
    /// what that could not finish (retries, events an identity reveals later).
    pub fn spawn(
        db: Db,
        metrics: Arc<Metrics>,
        signals: Arc<Signals>,
        inline: Option<Weak<Pipeline>>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (log_tx, log_rx) = mpsc::channel(LOG_QUEUE);
        let queues = Arc::new(tokio::sync::Mutex::new(Queues {
            rx,
            log_rx,
            deliveries_open: true,
            log_open: true,
        }));
        let health = Arc::new(StoreHealth::default());
        let writers = db.parallel_writers();
        let task = {
            let (health, metrics) = (Arc::clone(&health), Arc::clone(&metrics));
            tokio::spawn(async move {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..writers {
                    set.spawn(run(
                        db.clone(),
                        inline.clone(),
                        Arc::clone(&queues),
                        Arc::clone(&health),
                        Arc::clone(&metrics),
                        Arc::clone(&signals),
                    ));
                }
                while set.join_next().await.is_some() {}
            })
        };
        (
            IngestWriter {
                tx,
                log_tx,
                health,
                metrics,
            },
            task,
        )
    }

    pub fn health(&self) -> &StoreHealth {
        &self.health
    }

    /// Queues `row` and waits until its batch is committed.
    ///
    /// # Errors
    /// `StoreUnavailable` when the batch did not commit or the writer has stopped.
    pub async fn store(&self, row: NewIngest) -> Result<WriteOutcome, StoreUnavailable> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { row, reply })
            .await
            .map_err(|_| StoreUnavailable)?;
        answer.await.map_err(|_| StoreUnavailable)?
    }

    /// Queues a rejected request's log row without waiting; drops it if the queue is full.
    pub fn log(&self, row: NewIngest) {
        if self.log_tx.try_send(row).is_err() {
            self.metrics.ingest_log_dropped.inc();
        }
    }
}

type Reply = oneshot::Sender<Result<WriteOutcome, StoreUnavailable>>;

/// Adds a delivery to the batch, unless its handler stopped waiting: it answered 503 on its
/// timeout, or the client went away, so the provider was told the delivery failed and storing
/// it now would only turn the provider's retry into a duplicate.
fn take(job: Job, rows: &mut Vec<NewIngest>, replies: &mut Vec<Option<Reply>>) {
    if !job.reply.is_closed() {
        rows.push(job.row);
        replies.push(Some(job.reply));
    }
}

/// The two queues the writers share, and whether each still has senders.
struct Queues {
    rx: mpsc::Receiver<Job>,
    log_rx: mpsc::Receiver<NewIngest>,
    deliveries_open: bool,
    log_open: bool,
}

/// Collects the next batch: waits for a first row (a delivery if both queues have one), then
/// takes every delivery waiting, then log rows up to their share. `false` once both queues are
/// closed and empty. One writer collects at a time; the others are committing meanwhile.
async fn collect(
    queues: &tokio::sync::Mutex<Queues>,
    rows: &mut Vec<NewIngest>,
    replies: &mut Vec<Option<Reply>>,
) -> bool {
    let mut guard = queues.lock().await;
    let q = &mut *guard;
    let mut logged = 0;
    if !(q.deliveries_open || q.log_open) {
        return false;
    }
    tokio::select! {
        biased;
        job = q.rx.recv(), if q.deliveries_open => match job {
            Some(job) => take(job, rows, replies),
            None => q.deliveries_open = false,
        },
        row = q.log_rx.recv(), if q.log_open => match row {
            Some(row) => {
                rows.push(row);
                replies.push(None);
                logged += 1;
            }
            None => q.log_open = false,
        },
        else => return false,
    }
    while rows.len() < MAX_BATCH {
        match q.rx.try_recv() {
            Ok(job) => take(job, rows, replies),
            Err(_) => break,
        }
    }
    while rows.len() < MAX_BATCH && logged < MAX_LOG_ROWS {
        match q.log_rx.try_recv() {
            Ok(row) => {
                rows.push(row);
                replies.push(None);
                logged += 1;
            }
            Err(_) => break,
        }
    }
    true
}

async fn run(
    db: Db,
    inline: Option<Weak<Pipeline>>,
    queues: Arc<tokio::sync::Mutex<Queues>>,
    health: Arc<StoreHealth>,
    metrics: Arc<Metrics>,
    signals: Arc<Signals>,
) {
    let mut rows = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while collect(&queues, &mut rows, &mut replies).await {
        if rows.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = match inline.as_ref().and_then(Weak::upgrade) {
            Some(pipeline) => pipeline.write_and_apply(&rows).await,
            None => db.write_batch(&rows).await.map(|outcomes| {
                let stored = outcomes.contains(&WriteOutcome::Stored);
                (outcomes, stored)
            }),
        };
        metrics.observe_batch(rows.len(), started.elapsed());
        match result {
            Ok((outcomes, left_pending)) => {
                health.failing.store(false, Ordering::Relaxed);
                if left_pending {
                    signals.pending.notify_one();
                }
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    if let Some(reply) = reply {
                        // The handler may have gone (client disconnected); the row is stored anyway.
                        let _ = reply.send(Ok(outcome));
                    }
                }
            }
            Err(error) => {
                health.failing.store(true, Ordering::Relaxed);
                health.failures.fetch_add(1, Ordering::Relaxed);
                metrics.store_failures.inc();
                tracing::error!(error = %error, rows = rows.len(), "ingest batch did not commit; answering 503");
                for reply in replies.drain(..).flatten() {
                    let _ = reply.send(Err(StoreUnavailable));
                }
            }
        }
        rows.clear();
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::db::IngestKind;

    fn row(kind: IngestKind, n: usize) -> NewIngest {
        NewIngest {
            id: ulid::Ulid::new().to_string(),
            kind,
            received_at: crate::now_ms(),
            connection_id: "c".into(),
            provider: "stripe",
            workspace: Some("default".into()),
            http_status: if kind == IngestKind::Rejected {
                429
            } else {
                200
            },
            event_id: (kind != IngestKind::Rejected).then(|| format!("evt_{n}")),
            event_type: Some("invoice.paid".into()),
            reason: (kind == IngestKind::Rejected).then(|| "rate_limited".into()),
            client_addr: None,
            path: "/integrations/stripe/webhook/c".into(),
            headers: "[]".into(),
            body: Bytes::from_static(b"{}"),
            body_size: 2,
            body_truncated: false,
            read_us: None,
            verify_us: None,
        }
    }

    /// A delivery queued behind a full log queue is written in the writer's first batch, not
    /// after the thousands of log rows queued before it.
    #[tokio::test(flavor = "current_thread")]
    async fn deliveries_go_ahead_of_log_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = Db::connect(&url, crate::db::Durability::Normal)
            .await
            .expect("open");
        db.migrate().await.expect("migrate");
        let (writer, task) = IngestWriter::spawn(
            db.clone(),
            Arc::new(Metrics::new()),
            Arc::new(Signals::default()),
            None,
        );
        // On a current-thread runtime the writer cannot run until the delivery is awaited, so
        // every log row is queued before it.
        for n in 0..LOG_QUEUE {
            writer.log(row(IngestKind::Rejected, n));
        }
        let outcome = writer.store(row(IngestKind::Accepted, 0)).await;
        assert_eq!(outcome.expect("stored"), WriteOutcome::Stored);
        drop(writer);
        task.await.expect("writer ends");
        // Rows are inserted in batch order (a batch's delivery before its log rows), so the
        // delivery's place in insertion order is how many log rows were committed before it.
        let Db::Sqlite { readers, .. } = &db else {
            unreachable!("a SQLite store")
        };
        let outcomes: Vec<String> = sqlx::query_scalar("SELECT outcome FROM ingest ORDER BY rowid")
            .fetch_all(readers)
            .await
            .expect("read");
        assert_eq!(outcomes.len(), LOG_QUEUE + 1, "every log row is written");
        assert_eq!(outcomes.iter().position(|o| o == "accepted"), Some(0));
    }
}
