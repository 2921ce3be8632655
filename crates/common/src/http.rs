//! The HTTP stack every service shares, built once here.
//!
//! [`finish_router`] wraps a service's API routes, outermost first, in:
//!
//! 1. **request id**: `x-request-id` is set (a UUID) when absent and echoed back;
//! 2. **trace span**: method, matched route and request id on every log line of the request;
//! 3. **metrics and error style**, one layer: a count and a latency observation per
//!    route, method and final status; and any error response not already rendered from
//!    [`ApiError`] (axum's 405, a timeout, a caught panic) rewritten in the service's
//!    [`ErrorStyle`] (the JSON envelope for the API, an HTML page for the web client), so
//!    clients never see a bare status or framework text;
//! 4. **timeout**: a request that takes longer than the configured limit is answered 503;
//! 5. **body limit**: bodies over the limit are refused with 413 by the extractors;
//! 6. **catch panic**: a panicking handler becomes a 500, not a dropped connection.
//!
//! Unknown routes reach a 404 fallback in the same style. `/healthz`, `/readyz` and
//! `/metrics` are merged outside the stack so probes stay out of request logs and metrics.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::join_all;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::HttpSettings;
use crate::error::{ApiError, Enveloped, ErrorItem, envelope_response, message_for_status};
use crate::openapi::Api;
use crate::telemetry::{HttpLabels, Metrics};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A dependency `/readyz` checks.
#[derive(Clone)]
pub enum Dependency {
    Mongo(mongodb::Database),
    Nats(async_nats::Client),
    /// The revocation feed: loaded and following (see [`crate::events::revocation_feed`]).
    Revocations(crate::events::revocation_feed::FeedHealth),
    /// Anything else a service depends on, with its own check (the web client: the API).
    Custom {
        name: &'static str,
        check: CustomCheck,
    },
}

/// The check of a [`Dependency::Custom`]: true when the dependency answers.
pub type CustomCheck = std::sync::Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync>;

impl std::fmt::Debug for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Dependency {
    fn name(&self) -> &'static str {
        match self {
            Self::Mongo(_) => "mongodb",
            Self::Nats(_) => "nats",
            Self::Revocations(_) => "revocations",
            Self::Custom { name, .. } => name,
        }
    }

    /// What `/readyz` says when the check fails.
    fn failure(&self) -> &'static str {
        match self {
            Self::Mongo(_) | Self::Nats(_) | Self::Custom { .. } => "unreachable",
            Self::Revocations(_) => "stale",
        }
    }

    async fn check(&self) -> bool {
        let probe = async {
            match self {
                Self::Mongo(db) => crate::mongo::ping(db).await.is_ok(),
                Self::Nats(client) => {
                    client.connection_state() == async_nats::connection::State::Connected
                        && client.flush().await.is_ok()
                }
                Self::Revocations(feed) => feed.is_current(),
                Self::Custom { check, .. } => check().await,
            }
        };
        tokio::time::timeout(READY_CHECK_TIMEOUT, probe).await.unwrap_or(false)
    }
}

/// Everything the shared routes and middleware need from a service.
#[derive(Clone, Debug)]
pub struct Platform {
    /// The service's name, on its request spans (and so on its log lines).
    pub service: &'static str,
    pub settings: HttpSettings,
    pub metrics: Metrics,
    pub dependencies: Vec<Dependency>,
    pub errors: ErrorStyle,
}

/// How error responses look.
#[derive(Clone, Copy, Debug, Default)]
pub enum ErrorStyle {
    /// JSON APIs: every error in the envelope, unknown routes a JSON 404.
    #[default]
    Envelope,
    /// Web pages: the service renders its own error pages (and its own fallback); an error
    /// response that is not HTML yet (a timeout, a caught panic, axum's 405) is replaced by
    /// this page for its status.
    Html(fn(StatusCode) -> Response),
}

/// Adds the JSON 404 fallback, the middleware stack and the operational routes to a
/// service's API router, and serves its OpenAPI description when it has one.
pub fn finish_router(api: impl Into<Api>, platform: &Platform) -> Router {
    let api = api.into().into_router();
    let layer_state = LayerState { metrics: platform.metrics.clone(), errors: platform.errors };
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(RequestSpan(platform.service)))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(middleware::from_fn_with_state(layer_state, platform_layer))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, platform.settings.request_timeout))
        .layer(DefaultBodyLimit::max(platform.settings.body_limit))
        .layer(CatchPanicLayer::new());
    let api = match platform.errors {
        ErrorStyle::Envelope => api.fallback(not_found),
        ErrorStyle::Html(_) => api,
    };
    api.layer(stack).merge(ops_router(platform))
}

#[derive(Clone)]
struct LayerState {
    metrics: Metrics,
    errors: ErrorStyle,
}

/// The `request` span of every request: its service, method, route and request id, and
/// the trace it belongs to (the caller's `traceparent`, or a new trace).
#[derive(Clone, Copy, Debug)]
struct RequestSpan(&'static str);

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> tracing::Span {
        let path = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
        let request_id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let span = tracing::info_span!(
            "request",
            service = self.0,
            method = %req.method(),
            path,
            request_id,
            trace_id = tracing::field::Empty,
        );
        let traceparent = req.headers().get(crate::trace::TRACEPARENT).and_then(|v| v.to_str().ok());
        crate::trace::continue_trace(&span, traceparent);
        span
    }
}

/// The fallback for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// The platform's own per-request work, in one middleware: refuse oversized headers,
/// put any bare error response into the envelope, and count the request by route and
/// status. One layer, not three: each `from_fn` layer clones the rest of the stack for
/// every request, and the profile of currentuser showed those clones.
async fn platform_layer(
    State(LayerState { metrics, errors }): State<LayerState>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Labels stay bounded whatever clients send: a method outside HTTP's own set is
    // `other`, a path no route matched is `unmatched`.
    let method = match *req.method() {
        Method::GET | Method::POST | Method::PUT | Method::DELETE | Method::PATCH | Method::HEAD | Method::OPTIONS => {
            req.method().as_str().to_owned()
        }
        _ => "other".to_owned(),
    };
    let path = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = if header_bytes(&req) > MAX_HEADER_BYTES {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.into_response()
    } else {
        next.run(req).await
    };
    let response = match errors {
        ErrorStyle::Envelope => ensure_envelope(response),
        ErrorStyle::Html(page) => ensure_html(response, page),
    };
    let labels = HttpLabels { method, path, status: response.status().as_u16().to_string() };
    metrics.observe_request(labels, started.elapsed());
    response
}

/// The most header bytes (names and values) a request may carry. A browser sends well
/// under 8 KiB to this API (nginx's default per line); more is an error or an attack, and
/// is a 431 in the envelope. (Blocks beyond hyper's own parser limits, over 100 headers or
/// about 400 KB, are refused by the HTTP parser before any application code runs, with a
/// bare 431.)
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

fn header_bytes(req: &Request) -> usize {
    req.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum()
}

/// Rewrites an error response that is not in the envelope yet (axum's 405, a timeout, a
/// caught panic, the header limit) into the envelope.
fn ensure_envelope(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.extensions().get::<Enveloped>().is_some() {
        return response;
    }
    if status.is_server_error() {
        tracing::error!(%status, "request failed outside a handler (panic or timeout)");
    }
    let mut enveloped = envelope_response(status, vec![ErrorItem::new(message_for_status(status))]);
    // Keep meaningful headers such as `Allow` on a 405; drop the old body's.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            enveloped.headers_mut().append(name, value.clone());
        }
    }
    enveloped
}

/// Replaces an error response that is not a page yet by the service's page for its status.
fn ensure_html(response: Response, page: fn(StatusCode) -> Response) -> Response {
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    // A page, or an envelope the service chose on purpose (an unknown `/api/...` path).
    if !(status.is_client_error() || status.is_server_error())
        || is_html
        || response.extensions().get::<Enveloped>().is_some()
    {
        return response;
    }
    if status.is_server_error() {
        tracing::error!(%status, "request failed outside a handler (panic or timeout)");
    }
    let mut rendered = page(status);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().append(name, value.clone());
        }
    }
    rendered
}

fn ops_router(platform: &Platform) -> Router {
    let metrics = platform.metrics.clone();
    let dependencies = platform.dependencies.clone();
    let errors = platform.errors;
    Router::new()
        .route("/healthz", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/readyz", get(move || readyz(dependencies.clone())))
        .route(
            "/metrics",
            get(move || {
                let body = metrics.render();
                async move {
                    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
                }
            }),
        )
        .layer(middleware::from_fn(move |req: Request, next: Next| private_ops(errors, req, next)))
}

/// The operational routes answer probes and scrapers, which reach a pod directly, never a
/// request that came through a proxy (the Ingress and the local gateway add
/// `X-Forwarded-For`): a service whose every path is public behind the Ingress (the web
/// client) must not publish its metrics. Such a request gets the service's 404.
async fn private_ops(errors: ErrorStyle, req: Request, next: Next) -> Response {
    if req.headers().contains_key("x-forwarded-for") {
        return match errors {
            ErrorStyle::Envelope => ApiError::NotFound.into_response(),
            ErrorStyle::Html(page) => page(StatusCode::NOT_FOUND),
        };
    }
    next.run(req).await
}

async fn readyz(dependencies: Vec<Dependency>) -> Response {
    let results = join_all(dependencies.iter().map(|d| async move { (d, d.check().await) })).await;
    let ready = results.iter().all(|(_, ok)| *ok);
    let checks: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        .map(|(dependency, ok)| (dependency.name().to_owned(), json!(if ok { "ok" } else { dependency.failure() })))
        .collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({"status": if ready { "ready" } else { "unavailable" }, "checks": checks});
    (status, axum::Json(body)).into_response()
}

/// Binds the listener for the configured host and port (port 0 picks a free one).
pub async fn bind(settings: &HttpSettings) -> std::io::Result<TcpListener> {
    TcpListener::bind((settings.host.as_str(), settings.port)).await
}

/// Serves `router` until `shutdown` is cancelled, then lets in-flight requests finish.
/// Handlers can extract the peer address (`ConnectInfo<SocketAddr>`).
pub async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::routing::post;
    use tower::ServiceExt;

    fn app() -> Router {
        let platform = Platform {
            service: "test",
            settings: HttpSettings {
                port: 0,
                host: "127.0.0.1".into(),
                request_timeout: Duration::from_millis(50),
                body_limit: 16,
            },
            metrics: Metrics::default(),
            dependencies: vec![],
            errors: ErrorStyle::Envelope,
        };
        let api = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("handler bug");
                    }
                    "unreachable"
                }),
            )
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
            .route("/echo", post(|body: axum::body::Bytes| async move { body }));
        finish_router(api, &platform)
    }

    async fn call(method: &str, uri: &str, body: &'static str) -> (StatusCode, Response) {
        let req = Request::builder().method(method).uri(uri).body(Body::from(body)).unwrap();
        let res = app().oneshot(req).await.unwrap();
        (res.status(), res)
    }

    async fn envelope_message(res: Response) -> String {
        let bytes = to_bytes(res.into_body(), usize::MAX).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("the body is JSON");
        body["errors"][0]["message"].as_str().expect("an envelope").to_owned()
    }

    #[tokio::test]
    async fn unknown_routes_are_a_json_404() {
        let (status, res) = call("GET", "/nope", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(envelope_message(res).await, "Not Found");
    }

    #[tokio::test]
    async fn wrong_methods_are_a_405_in_the_envelope() {
        let (status, res) = call("DELETE", "/ok", "").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(res.headers().contains_key(header::ALLOW));
        assert_eq!(envelope_message(res).await, "Method not allowed");
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_in_the_envelope() {
        let (status, res) = call("GET", "/panic", "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(envelope_message(res).await, "Something went wrong");
    }

    #[tokio::test]
    async fn a_slow_handler_times_out_with_a_503_in_the_envelope() {
        let (status, res) = call("GET", "/slow", "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(envelope_message(res).await, "Service unavailable");
    }

    #[tokio::test]
    async fn an_oversized_body_is_a_413_in_the_envelope() {
        let (status, res) = call("POST", "/echo", "this body is longer than sixteen bytes").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(envelope_message(res).await, "Payload too large");
    }

    #[tokio::test]
    async fn oversized_headers_are_a_431_in_the_envelope() {
        let big = "x".repeat(MAX_HEADER_BYTES);
        let req = Request::builder().uri("/ok").header("x-filler", big.as_str()).body(Body::empty()).unwrap();
        let res = app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(envelope_message(res).await, "Request headers too large");

        let fits = "x".repeat(MAX_HEADER_BYTES / 2);
        let req = Request::builder().uri("/ok").header("x-filler", fits.as_str()).body(Body::empty()).unwrap();
        assert_eq!(app().oneshot(req).await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn every_response_carries_a_request_id() {
        let (_, res) = call("GET", "/ok", "").await;
        assert!(res.headers().contains_key(&REQUEST_ID));
    }

    #[tokio::test]
    async fn readyz_reports_ok_without_dependencies_and_metrics_count_requests() {
        let platform = Platform {
            service: "test",
            settings: HttpSettings {
                port: 0,
                host: "127.0.0.1".into(),
                request_timeout: Duration::from_secs(1),
                body_limit: 1024,
            },
            metrics: Metrics::default(),
            dependencies: vec![],
            errors: ErrorStyle::Envelope,
        };
        let app = finish_router(Router::new().route("/ok", get(|| async { "ok" })), &platform);
        let res = app.clone().oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        app.clone().oneshot(Request::get("/ok").body(Body::empty()).unwrap()).await.unwrap();
        let text = platform.metrics.render();
        assert!(text.contains(r#"http_requests_total{method="GET",path="/ok",status="200"} 1"#), "{text}");
        assert!(!text.contains("/readyz"), "probes stay out of the metrics");
    }

    #[tokio::test]
    async fn a_thousand_random_methods_and_paths_add_no_metric_series() {
        let platform = Platform {
            service: "test",
            settings: HttpSettings {
                port: 0,
                host: "127.0.0.1".into(),
                request_timeout: Duration::from_secs(1),
                body_limit: 1024,
            },
            metrics: Metrics::default(),
            dependencies: vec![],
            errors: ErrorStyle::Envelope,
        };
        let app = finish_router(Router::new().route("/ok", get(|| async { "ok" })), &platform);
        let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
        for n in 0..5 {
            let req =
                Request::builder().method(format!("X{n}").as_str()).uri(format!("/p{n}")).body(Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        let before = series(&platform.metrics.render());

        for n in 0..1000 {
            let method = format!("M{n:04}X");
            let req = Request::builder()
                .method(method.as_str())
                .uri(format!("/random/{n}/path"))
                .body(Body::empty())
                .unwrap();
            app.clone().oneshot(req).await.unwrap();
        }

        let text = platform.metrics.render();
        assert_eq!(series(&text), before, "no new series:\n{text}");
        assert!(text.contains(r#"method="other",path="unmatched",status="404""#), "{text}");
    }

    #[tokio::test]
    async fn operational_routes_are_not_served_through_a_proxy() {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let direct = app().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
            let proxied = app()
                .oneshot(Request::get(path).header("x-forwarded-for", "203.0.113.9").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(direct.status(), StatusCode::OK, "{path}");
            assert_eq!(proxied.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}
