//! hookgate: an inbound webhook gateway.
//!
//! Module map:
//! - [`config`]: command line, environment and TOML file; the only reader of the environment.
//! - [`error`]: `AppError`, the single status-code table.
//! - [`http`]: router, receive handler, admin API, health and metrics, the accept loop.
//! - [`ingest`]: the group-commit writer between handlers and the store.
//! - [`connections`]: the in-memory connection registry (allowlists, rate limiters).
//! - [`crypto`]: encryption at rest of connection secrets (`HOOKGATE_SECRET_KEY`).
//! - [`custom`]: custom events: trigger definitions, payload checks, and the stored fire's
//!   normalization.
//! - [`db`]: the `Db` facade over SQLite and PostgreSQL, and the migrations.
//! - [`resolution`]: identity resolution and status decisions for a batch, pure code over a
//!   snapshot the store reads up front.
//! - [`metrics`]: Prometheus metrics.
//! - [`drains`]: `[[drains]]`, streaming ingest, delivery and processing records to an
//!   observability sink (OTLP/HTTP or signed JSON).
//! - [`retention`]: what the store forgets and when (`[retention]`, `hookgate purge`).
//! - [`policy`]: shared security rules (shared-secret length, event-time skew).
//! - [`cli`]: the command line, one file per subcommand with its arguments and its handler.
//!
//! Provider-specific code (signatures, event ids and types) lives in the pure
//! `hookgate-providers` crate.

pub mod auth;
pub mod cli;
pub mod config;
pub mod connections;
pub mod contacts;
pub mod crypto;
pub mod custom;
pub mod db;
pub mod delivery;
pub mod drains;
pub mod error;
pub mod http;
pub mod ingest;
pub mod lifecycle;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod resolution;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::connections::Registry;
use crate::db::Db;
use crate::ingest::IngestWriter;
use crate::metrics::Metrics;

pub use hookgate_providers as providers;

/// What `hookgate --version` prints after the name: the package version and the git commit the
/// binary was built from (`unknown` when it was built outside a git checkout; see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HOOKGATE_GIT_COMMIT"),
    ")"
);

/// How often connections are reloaded from the database (changes made by the CLI or another
/// process show up within this time; admin API changes apply at once).
pub const CONNECTION_REFRESH: Duration = Duration::from_secs(2);

/// How often SQLite's WAL is checkpointed (by a reader connection, never the writer).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Shared state of one gateway instance; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    pub db: Db,
    pub registry: Arc<Registry>,
    pub writer: IngestWriter,
    pub metrics: Arc<Metrics>,
    pub signals: Arc<pipeline::Signals>,
    /// The normalization pipeline's handles (its workers hold them weakly).
    pub pipeline: Arc<pipeline::Pipeline>,
    /// Rate limits per API key of the custom-event routes.
    pub key_limits: http::fires::KeyLimits,
    /// How many requests to unknown connection ids each client address may still have logged.
    pub unknown_log: http::webhook::UnknownIdLog,
    /// Open event streams per API key (capped).
    pub open_streams: http::api::OpenStreams,
    /// The config file's drains and their live state.
    pub drains: Arc<drains::Drains>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// A started gateway: its state and its background tasks.
pub struct Gateway {
    pub state: AppState,
    writer_task: JoinHandle<()>,
    refresh_task: JoinHandle<()>,
    purge_task: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

/// The router for `state` (what tests and `serve` use).
pub fn app(state: AppState) -> axum::Router {
    http::router(state)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

impl Gateway {
    /// Connects the store, applies migrations (unless disabled), upserts the config file's
    /// connections, loads the registry and starts the writer.
    ///
    /// # Errors
    /// The store cannot be opened, migrated or written, or a stored connection's secrets cannot
    /// be decrypted with the configured key.
    pub async fn start(config: Config) -> anyhow::Result<Gateway> {
        let db = Db::connect(&config.database_url, config.durability)
            .await
            .with_context(|| {
                format!(
                    "cannot open the database {}",
                    config::redact_url(&config.database_url)
                )
            })?;
        Self::start_with_db(config, db).await
    }

    /// As [`Gateway::start`] with an already connected store (tests isolate PostgreSQL schemas).
    ///
    /// # Errors
    /// As [`Gateway::start`].
    pub async fn start_with_db(config: Config, db: Db) -> anyhow::Result<Gateway> {
        if config.migrate {
            db.migrate()
                .await
                .context("cannot apply database migrations")?;
        }
        let now = now_ms();
        for spec in &config.connections {
            connections::save(&db, spec, config.secret_key.as_ref(), "config", true, now)
                .await
                .with_context(|| {
                    format!("cannot store connection {:?} from the config file", spec.id)
                })?;
        }
        for spec in &config.endpoints {
            let saved =
                delivery::manage::save(&db, spec, config.secret_key.as_ref(), "config", true, now)
                    .await
                    .with_context(|| {
                        format!("cannot store endpoint {:?} from the config file", spec.id)
                    })?;
            if let delivery::manage::Saved::Written {
                generated_secret: Some(_),
            } = saved
            {
                tracing::info!(endpoint = %spec.id, "endpoint stored with a generated signing secret; run `hookgate endpoints rotate {}` to get one you can copy", spec.id);
            }
        }
        drains::store::sync(&db, &config.drains, now)
            .await
            .context("cannot store the config file's drains")?;
        // A connection whose secrets this process cannot read would silently answer 404: refuse
        // to start instead, naming it and saying which key to set.
        connections::check_readable(&db, config.secret_key.as_ref()).await?;
        let registry = Arc::new(Registry::new(
            (config.rate_limit_per_sec, config.rate_limit_burst),
            config.secret_key.clone(),
        ));
        registry
            .reload(&db)
            .await
            .context("cannot load connections")?;
        registry.warn_short_secrets();
        let metrics = Arc::new(Metrics::new());
        let signals = Arc::new(pipeline::Signals::default());
        let run_workers = config.workers;
        let pipeline = Arc::new(pipeline::Pipeline {
            store: db.clone(),
            registry: Arc::clone(&registry),
            metrics: Arc::clone(&metrics),
            signals: Arc::clone(&signals),
            known: db::Known::default(),
        });
        // Events are normalized as they are stored where the store gains from it; the workers
        // below still take retries, re-queued events and other processes' leftovers.
        let inline = (run_workers && !config.defer_processing && db.applies_inline())
            .then(|| Arc::downgrade(&pipeline));
        let (writer, writer_task) = IngestWriter::spawn(
            db.clone(),
            Arc::clone(&metrics),
            Arc::clone(&signals),
            inline,
        );
        let unknown_log = http::webhook::UnknownIdLog::new(config.unknown_id_log_per_minute);
        let mut workers = Vec::new();
        if run_workers {
            for _ in 0..db.pipeline_workers() {
                let worker = format!("{}-{}", std::process::id(), ulid::Ulid::new());
                workers.push(tokio::spawn(pipeline::run(
                    Arc::downgrade(&pipeline),
                    worker,
                )));
            }
        }
        let drain_set = Arc::new(drains::Drains::new(config.drains.clone()));
        let state = AppState {
            inner: Arc::new(Inner {
                db,
                registry,
                writer,
                metrics,
                key_limits: http::fires::KeyLimits::new(
                    config.rate_limit_per_sec,
                    config.rate_limit_burst,
                ),
                config,
                signals,
                pipeline,
                unknown_log,
                open_streams: http::api::OpenStreams::default(),
                drains: drain_set,
            }),
        };
        // Each drain is a task of its own, beside receiving and delivery.
        for spec in &state.drains.specs {
            let worker = format!("{}-{}", std::process::id(), ulid::Ulid::new());
            workers.push(tokio::spawn(drains::worker::run(
                Arc::downgrade(&state.inner),
                Arc::clone(&state.drains),
                spec.clone(),
                worker,
            )));
        }
        if run_workers {
            let worker = format!("{}-{}", std::process::id(), ulid::Ulid::new());
            workers.push(tokio::spawn(delivery::worker::run(
                Arc::downgrade(&state.inner),
                worker,
            )));
        }
        let weak = Arc::downgrade(&state.inner);
        let refresh_task = tokio::spawn(async move {
            let mut last_refresh = std::time::Instant::now();
            loop {
                // SQLite checkpoints run here, off the writer's commit path, every 250 ms.
                tokio::time::sleep(CHECKPOINT_INTERVAL).await;
                let Some(inner) = weak.upgrade() else { break };
                inner.unknown_log.forget_idle();
                if let Err(error) = inner.db.checkpoint().await {
                    tracing::warn!(error = %error, "WAL checkpoint failed; will retry");
                }
                if last_refresh.elapsed() < CONNECTION_REFRESH {
                    continue;
                }
                last_refresh = std::time::Instant::now();
                if let Err(error) = inner.registry.reload(&inner.db).await {
                    tracing::warn!(error = %error, "could not reload connections; keeping the previous ones");
                }
            }
        });
        let weak = Arc::downgrade(&state.inner);
        let purge_task = tokio::spawn(async move {
            loop {
                // Off the receive path: its own short transactions, with pauses between.
                tokio::time::sleep(retention::INTERVAL).await;
                let Some(inner) = weak.upgrade() else { break };
                let retention = inner.config.retention;
                match retention::purge(&inner.db, &retention, now_ms(), false).await {
                    Ok(purged) => {
                        for p in purged.iter().filter(|p| p.rows > 0) {
                            tracing::info!(rows = p.rows, days = p.days, "purged {}", p.what);
                        }
                    }
                    Err(error) => tracing::warn!(error = %error, "purge failed; will retry"),
                }
            }
        });
        Ok(Gateway {
            state,
            writer_task,
            refresh_task,
            purge_task,
            workers,
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then drains: in-flight requests finish,
    /// the writer commits what is queued, and the store is closed.
    ///
    /// # Errors
    /// The listener fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let config = &self.state.config;
        let limits = http::serve::Limits::new(
            Duration::from_secs(config.header_timeout_secs),
            Duration::from_secs(config.body_timeout_secs),
            config.max_body_bytes,
        )
        .with_max_connections(config.max_connections);
        let at_cap = self.state.metrics.connections_at_cap.clone();
        let router = app(self.state.clone());
        let signals = Arc::clone(&self.state.signals);
        // On shutdown, end event streams first: they would otherwise hold their connections open.
        let shutdown = async move {
            shutdown.await;
            signals
                .stopping
                .store(true, std::sync::atomic::Ordering::Relaxed);
            signals.fires.notify_waiters();
        };
        let result =
            http::serve::serve_counted(listener, router, limits, shutdown, Some(at_cap)).await;
        self.shutdown().await;
        result
    }

    /// Stops the background tasks after the writer has committed everything queued.
    pub async fn shutdown(self) {
        let Gateway {
            state,
            writer_task,
            refresh_task,
            purge_task,
            workers,
        } = self;
        refresh_task.abort();
        purge_task.abort();
        // Workers finish the batch in hand, then stop; what is left stays pending for next time.
        state
            .signals
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        state.signals.pending.notify_waiters();
        for worker in workers {
            if tokio::time::timeout(Duration::from_secs(30), worker)
                .await
                .is_err()
            {
                tracing::warn!("a pipeline worker did not stop within 30 s");
            }
        }
        let db = state.db.clone();
        drop(state);
        // The writer ends once the last handle (held by the state) is gone and its queue is empty.
        if tokio::time::timeout(Duration::from_secs(30), writer_task)
            .await
            .is_err()
        {
            tracing::warn!("the ingest writer did not finish within 30 s");
        }
        db.close().await;
    }
}
