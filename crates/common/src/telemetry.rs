//! Logs and metrics.
//!
//! Logs: `tracing` to stdout, human-readable text by default, one JSON object per line
//! with `LOG_FORMAT=json` (clusters). `RUST_LOG` sets the filter (default `info`).
//!
//! Metrics: one Prometheus registry per application (so tests running several apps in
//! one process see only their own numbers), rendered by `GET /metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, Env};

/// Installs the global tracing subscriber from `LOG_FORMAT` and `RUST_LOG`. Call once,
/// first thing in `main`; later calls are no-ops.
pub fn init(env: &Env) -> Result<(), ConfigError> {
    let filter = EnvFilter::try_new(env.get("RUST_LOG").unwrap_or("info"))
        .map_err(|e| ConfigError::Invalid { name: "RUST_LOG", reason: e.to_string() })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let installed = match env.get("LOG_FORMAT").unwrap_or("text") {
        "json" => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        "text" => builder.try_init(),
        other => {
            return Err(ConfigError::Invalid { name: "LOG_FORMAT", reason: format!("{other:?} is not json or text") });
        }
    };
    // An already-installed subscriber (tests) is fine.
    drop(installed);
    Ok(())
}

/// Labels of the HTTP metrics. `path` is the matched route template (`/api/tickets/{id}`),
/// never the raw path, so the number of series stays bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub path: String,
    pub status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms .. ~8 s
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// Collects metric families before the application starts; [`MetricsBuilder::build`]
/// freezes them into the cheap, shareable [`Metrics`].
#[derive(Debug, Default)]
pub struct MetricsBuilder {
    registry: Registry,
}

impl MetricsBuilder {
    /// The registry, for a service or a runtime to register its own families.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn build(mut self) -> Metrics {
        let requests = Family::<HttpLabels, Counter>::default();
        let latency: HistogramFamily<HttpLabels> = Family::new_with_constructor(latency_histogram);
        self.registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        self.registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route and status",
            latency.clone(),
        );
        Metrics { inner: Arc::new(MetricsInner { registry: self.registry, requests, latency }) }
    }
}

#[derive(Debug)]
struct MetricsInner {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    latency: HistogramFamily<HttpLabels>,
}

/// The application's metrics: HTTP counters and histograms plus whatever was registered
/// on the builder. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<MetricsInner>,
}

impl Default for Metrics {
    fn default() -> Self {
        MetricsBuilder::default().build()
    }
}

impl Metrics {
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::default()
    }

    /// Records one answered HTTP request.
    pub fn observe_request(&self, labels: HttpLabels, elapsed: Duration) {
        self.inner.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
        self.inner.requests.get_or_create(&labels).inc();
    }

    /// The registry in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }
}
