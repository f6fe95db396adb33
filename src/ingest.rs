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
//! a batch from the one queue, so one batch is gathered while others wait on their commit: the
//! server overlaps their WAL flushes. Deduplication stays exact across them: a second insert of
//! the same (connection, event id) waits for the first transaction and then does nothing, and
//! each batch inserts in key order, so two batches never wait on each other in a cycle.
//!
//! Rejected requests are logged through the same writer without waiting (`log`): when the queue
//! is full they are dropped and counted rather than slowing down or blocking real deliveries.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, NewIngest, WriteOutcome};
use crate::metrics::Metrics;
use crate::pipeline::Signals;

/// The most rows one transaction carries.
pub const MAX_BATCH: usize = 512;
const QUEUE: usize = 16 * 1024;

/// The store could not commit the row (the request must not get a 2xx).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the ingest store could not commit")]
pub struct StoreUnavailable;

struct Job {
    row: NewIngest,
    reply: Option<oneshot::Sender<Result<WriteOutcome, StoreUnavailable>>>,
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
    health: Arc<StoreHealth>,
    metrics: Arc<Metrics>,
}

impl IngestWriter {
    /// Starts the writer task on `db`. It ends when every handle is dropped and the queue is empty.
    pub fn spawn(
        db: Db,
        metrics: Arc<Metrics>,
        signals: Arc<Signals>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let health = Arc::new(StoreHealth::default());
        let writers = db.parallel_writers();
        let task = {
            let (health, metrics) = (Arc::clone(&health), Arc::clone(&metrics));
            tokio::spawn(async move {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..writers {
                    set.spawn(run(
                        db.clone(),
                        Arc::clone(&rx),
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
            .send(Job {
                row,
                reply: Some(reply),
            })
            .await
            .map_err(|_| StoreUnavailable)?;
        answer.await.map_err(|_| StoreUnavailable)?
    }

    /// Queues a rejected request's log row without waiting; drops it if the queue is full.
    pub fn log(&self, row: NewIngest) {
        if self.tx.try_send(Job { row, reply: None }).is_err() {
            self.metrics.ingest_log_dropped.inc();
        }
    }
}

/// Takes the next batch from the queue: waits for one job, then takes whatever else is queued,
/// up to [`MAX_BATCH`]. `None` when every handle is dropped and the queue is empty.
async fn collect(
    rx: &tokio::sync::Mutex<mpsc::Receiver<Job>>,
    rows: &mut Vec<NewIngest>,
    replies: &mut Vec<Option<oneshot::Sender<Result<WriteOutcome, StoreUnavailable>>>>,
) -> Option<()> {
    let mut rx = rx.lock().await;
    let mut next = Some(rx.recv().await?);
    while let Some(job) = next.take() {
        // A handler that stopped waiting (it answered 503 on its timeout, or the client went
        // away) has told the provider the delivery failed; storing it now would only turn the
        // provider's retry into a duplicate, so it is not written.
        if !job.reply.as_ref().is_some_and(oneshot::Sender::is_closed) {
            rows.push(job.row);
            replies.push(job.reply);
        }
        if rows.len() < MAX_BATCH {
            next = rx.try_recv().ok();
        }
    }
    Some(())
}

async fn run(
    db: Db,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    health: Arc<StoreHealth>,
    metrics: Arc<Metrics>,
    signals: Arc<Signals>,
) {
    let mut rows = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while collect(&rx, &mut rows, &mut replies).await.is_some() {
        if rows.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = db.write_batch(&rows).await;
        metrics.observe_batch(rows.len(), started.elapsed());
        match result {
            Ok(outcomes) => {
                health.failing.store(false, Ordering::Relaxed);
                if outcomes.contains(&WriteOutcome::Stored) {
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
