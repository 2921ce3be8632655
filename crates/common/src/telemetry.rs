//! Logs, traces and metrics.
//!
//! Logs: `tracing` to stdout, human-readable text by default, one JSON object per line
//! with `LOG_FORMAT=json` (clusters), every service in the same shape: `timestamp`,
//! `level`, `service`, `trace_id` (inside a request or an event), `target`, `message`,
//! the event's fields, and `span` with the current span's name and fields. `RUST_LOG`
//! sets the filter (default `info`).
//!
//! Traces ([`crate::trace`]): with `OTEL_EXPORTER_OTLP_ENDPOINT` set (an OTLP/HTTP
//! receiver, e.g. `http://otel-collector:4318`), spans are exported in batches as
//! OTLP/JSON under `OTEL_SERVICE_NAME` (default: the binary's name). Without it no span is
//! exported and no exporter runs. `OTEL_SDK_DISABLED=true` turns tracing off altogether
//! (no trace ids, no spans but those `RUST_LOG` enables): bench/run measures its cost so.
//!
//! Metrics: one Prometheus registry per application (so tests running several apps in
//! one process see only their own numbers), rendered by `GET /metrics`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider as _};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{ConfigError, Env};
use crate::trace::TraceParent;

/// The process's service name (`OTEL_SERVICE_NAME`, else the binary's name), for log
/// lines outside any span that names its service.
static SERVICE_NAME: OnceLock<String> = OnceLock::new();
/// The span exporter, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
static TRACER_PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// Installs the global subscriber from `LOG_FORMAT`, `RUST_LOG`,
/// `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_SERVICE_NAME`. Call once, first thing in
/// `main` (inside the runtime: the exporter runs on it); later calls are no-ops.
pub fn init(env: &Env) -> Result<(), ConfigError> {
    init_with_writer(env, std::io::stdout)
}

/// [`init`], writing log lines to `writer` (tests read them back).
pub fn init_with_writer<W>(env: &Env, writer: W) -> Result<(), ConfigError>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(env.get("RUST_LOG").unwrap_or("info"))
        .map_err(|e| ConfigError::Invalid { name: "RUST_LOG", reason: e.to_string() })?;
    let service = env.get("OTEL_SERVICE_NAME").map(str::to_owned).unwrap_or_else(binary_name);
    let json = match env.get("LOG_FORMAT").unwrap_or("text") {
        "json" => true,
        "text" => false,
        other => {
            return Err(ConfigError::Invalid { name: "LOG_FORMAT", reason: format!("{other:?} is not json or text") });
        }
    };
    // `OTEL_SDK_DISABLED=true` (the OpenTelemetry variable): no trace at all, only what
    // `RUST_LOG` asks for. It exists to measure what tracing costs (bench/run).
    let tracing_on = !env.bool_or("OTEL_SDK_DISABLED", false)?;
    let exporter = match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(endpoint) if tracing_on => Some(tracer_provider(endpoint, &service)?),
        _ => None,
    };
    // The request and event spans carry the trace whatever the log level: they are
    // always on (for the trace fields, the exporter, and as the span of any line logged
    // inside them); `RUST_LOG` decides which log lines are written.
    let trace_spans = filter_fn(move |meta| tracing_on && meta.is_span() && meta.target().starts_with("common::"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer).with_target(true);
    let fmt = if json { fmt.event_format(JsonLines).boxed() } else { fmt.boxed() };
    let otel = exporter.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer("ticketing")).with_filter(trace_spans.clone())
    });
    let installed = tracing_subscriber::registry()
        .with(TraceFields.with_filter(trace_spans.clone()))
        .with(fmt.with_filter(filter.or(trace_spans)))
        .with(otel)
        .try_init();
    // An already-installed subscriber (several apps in one test process) is fine.
    if installed.is_ok() {
        let _ = SERVICE_NAME.set(service);
        if let Some(provider) = exporter {
            let _ = TRACER_PROVIDER.set(provider);
        }
    }
    Ok(())
}

fn binary_name() -> String {
    std::env::args()
        .next()
        .and_then(|path| std::path::Path::new(&path).file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "ticketing".to_owned())
}

fn tracer_provider(endpoint: &str, service: &str) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, ConfigError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let invalid = |reason: String| ConfigError::Invalid { name: "OTEL_EXPORTER_OTLP_ENDPOINT", reason };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(invalid("must be an http:// or https:// URL".into()));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let processor = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
        exporter,
        opentelemetry_sdk::runtime::Tokio,
    )
    .build();
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

/// Exports the spans still buffered (the end of a test, a shutdown).
pub async fn flush_traces() {
    if let Some(provider) = TRACER_PROVIDER.get() {
        let provider = provider.clone();
        drop(tokio::task::spawn_blocking(move || provider.force_flush()).await);
    }
}

fn exporting() -> bool {
    TRACER_PROVIDER.get().is_some()
}

/// With spans exported: makes `span` a child of the remote `parent`.
pub(crate) fn set_remote_parent(span: &tracing::Span, parent: &TraceParent) {
    if !exporting() {
        return;
    }
    let context = SpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(parent.trace_id),
        opentelemetry::trace::SpanId::from_bytes(parent.parent_id),
        if parent.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() },
        true,
        TraceState::default(),
    );
    drop(span.set_parent(opentelemetry::Context::new().with_remote_span_context(context)));
}

/// The trace of the current span, with the current span as parent (the exported span's
/// id when spans are exported, a fresh id otherwise).
pub(crate) fn current_trace() -> Option<TraceParent> {
    let current = tracing::Span::current();
    if exporting() {
        let context = current.context();
        let span = context.span();
        let span_context = span.span_context();
        if span_context.is_valid() {
            return Some(TraceParent {
                trace_id: span_context.trace_id().to_bytes(),
                parent_id: span_context.span_id().to_bytes(),
                sampled: span_context.is_sampled(),
            });
        }
    }
    let trace_id = current.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let span = registry.span(id)?;
        span.scope().find_map(|s| s.extensions().get::<Fields>().and_then(|info| info.text("trace_id")))
    })??;
    let parsed = TraceParent::parse(&format!("00-{trace_id}-0000000000000001-01"))?;
    let fresh = TraceParent::new_root();
    Some(parsed.child_of(fresh.parent_id))
}

/// A span's or an event's fields, as JSON values (what [`TraceFields`] keeps of a span,
/// and what a log line shows).
#[derive(Debug, Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Fields {
    /// A text field (`service`, `trace_id`, `message`).
    fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).and_then(serde_json::Value::as_str).map(str::to_owned)
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Keeps each span's fields (its `service` and `trace_id` above all) for the log lines
/// written inside it and for [`crate::trace::current_traceparent`].
struct TraceFields;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for TraceFields {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut info = Fields::default();
        attrs.record(&mut info);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(info);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(info) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(info);
        }
    }
}

/// The JSON shape of every log line (see the module's documentation).
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message");
        let mut service = None;
        let mut trace_id = None;
        let mut span_json = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let extensions = span.extensions();
                let Some(info) = extensions.get::<Fields>() else { continue };
                if span_json.is_none() {
                    let mut object = info.0.clone();
                    object.insert("name".into(), span.name().into());
                    span_json = Some(serde_json::Value::Object(object));
                }
                service = service.or_else(|| info.text("service"));
                trace_id = trace_id.or_else(|| info.text("trace_id"));
            }
        }
        let timestamp =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let mut line = serde_json::Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert(
            "service".into(),
            service.or_else(|| SERVICE_NAME.get().cloned()).map_or(serde_json::Value::Null, Into::into),
        );
        if let Some(trace_id) = trace_id {
            line.insert("trace_id".into(), trace_id.into());
        }
        line.insert("target".into(), event.metadata().target().into());
        line.insert("message".into(), message.unwrap_or_else(|| "".into()));
        for (key, value) in fields.0 {
            line.entry(key).or_insert(value);
        }
        if let Some(span) = span_json {
            line.insert("span".into(), span);
        }
        writeln!(writer, "{}", serde_json::Value::Object(line))
    }
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
