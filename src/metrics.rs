//! Prometheus metrics (`GET /metrics`), one registry per gateway instance.
//!
//! Label values are bounded: providers come from the closed `ProviderId` list (or `unknown`),
//! outcomes and reasons are stable codes.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub provider: &'static str,
    pub outcome: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub provider: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub endpoint: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DrainLabels {
    pub drain: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DrainFailLabels {
    pub drain: String,
    /// `retried` (429, 502, 503, 504, no answer) or `paused` (any other answer).
    pub action: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Records a drain's sink accepted (2xx), per drain.
    pub drain_records_sent: Family<DrainLabels, Counter>,
    /// Drain batches that failed, per drain and what the drain did next.
    pub drain_batches_failed: Family<DrainFailLabels, Counter>,
    /// Age in seconds of a drain's oldest unsent record (0 when it is caught up).
    pub drain_lag: Family<DrainLabels, Gauge>,
    /// A drain's unsent records (counted up to a cap).
    pub drain_queued: Family<DrainLabels, Gauge>,
    /// Delivery attempts by endpoint and outcome (succeeded, failed, dead, skipped).
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Event committed → 2xx from the endpoint.
    pub delivery_latency: Histogram,
    /// Pending and retrying deliveries per endpoint.
    pub delivery_backlog: Family<EndpointLabels, Gauge>,
    /// 1 while an endpoint's circuit is open (its last attempts all failed), else 0.
    pub delivery_circuit_open: Family<EndpointLabels, Gauge>,
    pub processed: Family<StatusLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub verification_failures: Family<FailureLabels, Counter>,
    pub ingest_latency: Family<ProviderLabels, Histogram>,
    pub batch_size: Histogram,
    pub batch_commit: Histogram,
    pub store_failures: Counter,
    pub ingest_log_dropped: Counter,
    pub unknown_log_dropped: Counter,
    pub connections_at_cap: Counter,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
    .into_iter()
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hookgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Receive requests by provider, outcome (accepted, duplicate, ignored, rejected) and HTTP status",
            requests.clone(),
        );
        let verification_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "verification_failures",
            "Requests that failed authentication, by provider and reason code",
            verification_failures.clone(),
        );
        let ingest_latency = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "ingest_latency_seconds",
            "Time from request start to the answer of stored deliveries, by provider",
            ingest_latency.clone(),
        );
        let batch_size =
            Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]);
        registry.register(
            "ingest_batch_rows",
            "Rows per group commit",
            batch_size.clone(),
        );
        let batch_commit = Histogram::new(latency_buckets());
        registry.register(
            "ingest_batch_commit_seconds",
            "Time to write and commit one batch",
            batch_commit.clone(),
        );
        let store_failures = Counter::default();
        registry.register(
            "ingest_store_failures",
            "Batches that failed to commit",
            store_failures.clone(),
        );
        let ingest_log_dropped = Counter::default();
        registry.register(
            "ingest_log_dropped",
            "Rejected-request log rows not written: the log queue was full, or a connection's refusals passed its rate again",
            ingest_log_dropped.clone(),
        );
        let unknown_log_dropped = Counter::default();
        registry.register(
            "unknown_connection_log_dropped",
            "Requests to unknown connection ids not written to the ingest log: their client address passed its log budget",
            unknown_log_dropped.clone(),
        );
        let connections_at_cap = Counter::default();
        registry.register(
            "connections_at_cap",
            "Times the accept loop waited because max_connections connections were open",
            connections_at_cap.clone(),
        );
        let processed = Family::<StatusLabels, Counter>::default();
        registry.register(
            "events_processed",
            "Stored events the pipeline finished, by resulting status",
            processed.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Outbound delivery attempts by endpoint and outcome (succeeded, failed, dead, skipped)",
            deliveries.clone(),
        );
        let delivery_latency = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            3600.0,
        ]);
        registry.register(
            "delivery_latency_seconds",
            "Time from an event's commit to a 2xx answer from an endpoint",
            delivery_latency.clone(),
        );
        let delivery_backlog = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "delivery_backlog",
            "Pending and retrying deliveries per endpoint",
            delivery_backlog.clone(),
        );
        let delivery_circuit_open = Family::<EndpointLabels, Gauge>::default();
        registry.register(
            "delivery_circuit_open",
            "1 while an endpoint's circuit is open (its last attempts all failed and its new deliveries wait), else 0",
            delivery_circuit_open.clone(),
        );
        let drain_records_sent = Family::<DrainLabels, Counter>::default();
        registry.register(
            "drain_records_sent",
            "Records a drain's sink accepted (2xx), per drain",
            drain_records_sent.clone(),
        );
        let drain_batches_failed = Family::<DrainFailLabels, Counter>::default();
        registry.register(
            "drain_batches_failed",
            "Drain batches that failed, per drain and action (retried, paused)",
            drain_batches_failed.clone(),
        );
        let drain_lag = Family::<DrainLabels, Gauge>::default();
        registry.register(
            "drain_lag_seconds",
            "Age of a drain's oldest unsent record (0 when caught up)",
            drain_lag.clone(),
        );
        let drain_queued = Family::<DrainLabels, Gauge>::default();
        registry.register(
            "drain_queued_records",
            "A drain's unsent records (counted up to 100 000)",
            drain_queued.clone(),
        );
        Metrics {
            registry,
            drain_records_sent,
            drain_batches_failed,
            drain_lag,
            drain_queued,
            deliveries,
            delivery_latency,
            delivery_backlog,
            delivery_circuit_open,
            processed,
            requests,
            verification_failures,
            ingest_latency,
            batch_size,
            batch_commit,
            store_failures,
            ingest_log_dropped,
            unknown_log_dropped,
            connections_at_cap,
        }
    }

    pub fn observe_batch(&self, rows: usize, took: Duration) {
        self.batch_size.observe(rows as f64);
        self.batch_commit.observe(took.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
