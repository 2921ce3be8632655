//! The local gateway: one port that routes exactly like the cluster's Ingress.
//!
//! It reads its route table from the Ingress manifest itself ([`routes`]), so a path added
//! to the Ingress works locally with no other edit. Each Ingress backend (a Service name)
//! is mapped to a local address (`GATEWAY_BACKENDS=auth=127.0.0.1:8101,...`, written by
//! `dev/up`). Unknown paths get the platform's JSON 404; an unreachable backend a 503.
//!
//! `GET /-/openapi.json` is the platform's whole HTTP API: the services' own OpenAPI
//! descriptions merged ([`openapi`]).
//!
//! `dev/up` runs it; by hand: `GATEWAY_INGRESS=infra/k8s/base/ingress.yaml
//! GATEWAY_BACKENDS=auth=127.0.0.1:3001 cargo run -p gateway`.

pub mod openapi;
pub mod routes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use common::ApiError;
use common::config::{ConfigError, Env};

pub use crate::routes::RouteTable;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// Largest body forwarded (the services' own limit is smaller).
const BODY_LIMIT: usize = 1024 * 1024;

/// The gateway's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub host: String,
    pub routes: RouteTable,
    /// Ingress backend service name -> `host:port`.
    pub backends: HashMap<String, String>,
}

impl Config {
    /// `PORT` (default 8080), `BIND_HOST` (default 127.0.0.1), `GATEWAY_INGRESS` (the
    /// manifest, default `infra/k8s/base/ingress.yaml`), `GATEWAY_BACKENDS`.
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let manifest = env.get("GATEWAY_INGRESS").unwrap_or("infra/k8s/base/ingress.yaml");
        let text = std::fs::read_to_string(manifest)
            .map_err(|e| ConfigError::Invalid { name: "GATEWAY_INGRESS", reason: format!("{manifest}: {e}") })?;
        let routes = RouteTable::from_manifest(&text)
            .map_err(|e| ConfigError::Invalid { name: "GATEWAY_INGRESS", reason: format!("{manifest}: {e}") })?;
        let backends = parse_backends(env.required("GATEWAY_BACKENDS")?)
            .map_err(|reason| ConfigError::Invalid { name: "GATEWAY_BACKENDS", reason })?;
        Ok(Self {
            port: env.parse_or("PORT", 8080)?,
            host: env.get("BIND_HOST").unwrap_or("127.0.0.1").to_owned(),
            routes,
            backends,
        })
    }
}

/// `name=host:port,name=host:port`.
pub fn parse_backends(raw: &str) -> Result<HashMap<String, String>, String> {
    raw.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (name, address) = entry.split_once('=').ok_or_else(|| format!("{entry:?} is not name=host:port"))?;
            Ok((name.trim().to_owned(), address.trim().to_owned()))
        })
        .collect()
}

#[derive(Clone)]
struct Gateway {
    routes: Arc<RouteTable>,
    backends: Arc<HashMap<String, String>>,
    client: reqwest::Client,
}

/// The gateway's router: every request is routed by the Ingress table.
pub fn router(config: &Config) -> anyhow::Result<Router> {
    // No overall timeout: a response may be a live stream (Server-Sent Events). A backend
    // that stops answering is still caught: nothing read for a minute ends the response
    // (the feed sends a heartbeat every 15 s).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .build()?;
    for route in config.routes.routes() {
        if !config.backends.contains_key(&route.service) {
            tracing::warn!(service = %route.service, path = %route.path, "no local backend for this Ingress path: it will answer 503");
        }
    }
    let state =
        Gateway { routes: Arc::new(config.routes.clone()), backends: Arc::new(config.backends.clone()), client };
    Ok(Router::new()
        .route("/-/healthz", axum::routing::get(|| async { "ok" }))
        .route("/-/openapi.json", axum::routing::get(merged_openapi))
        .fallback(proxy)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state))
}

async fn proxy(
    State(gateway): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = request.uri().path().to_owned();
    let route = gateway.routes.route(&path).ok_or(ApiError::NotFound)?;
    let backend = gateway
        .backends
        .get(&route.service)
        .ok_or_else(|| ApiError::unavailable(anyhow::anyhow!("no local backend for service {}", route.service)))?;
    let path_and_query = request.uri().path_and_query().map_or(path.as_str(), |pq| pq.as_str()).to_owned();
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|_| ApiError::Http(axum::http::StatusCode::PAYLOAD_TOO_LARGE))?;

    let mut headers = strip_hop_by_hop(&parts.headers);
    let host = parts.headers.get(header::HOST).cloned();
    headers.remove(header::HOST);
    if let Some(host) = host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    headers.insert(HeaderName::from_static("x-forwarded-proto"), "http".parse().expect("static"));
    headers
        .insert(HeaderName::from_static("x-forwarded-for"), peer.ip().to_string().parse().expect("an ip is a header"));

    let upstream = gateway
        .client
        .request(parts.method, format!("http://{backend}{path_and_query}"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            ApiError::unavailable(anyhow::Error::new(e).context(format!("backend {} unreachable", route.service)))
        })?;
    let status = upstream.status();
    let headers = strip_hop_by_hop(upstream.headers());
    // Streamed through as it arrives, so a live stream is not held back.
    let mut response = (status, Body::from_stream(upstream.bytes_stream())).into_response();
    *response.headers_mut() = headers;
    Ok(response)
}

/// Fetches every routed service's description and merges them.
async fn merged_openapi(State(gateway): State<Gateway>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    // The services of the API: the web client behind the catch-all serves pages, not API.
    let mut services: Vec<&str> =
        gateway.routes.routes().iter().filter(|r| r.path.starts_with("/api/")).map(|r| r.service.as_str()).collect();
    services.sort_unstable();
    services.dedup();
    let fetches = services.into_iter().map(|service| {
        let gateway = gateway.clone();
        async move {
            let unavailable = |reason: String| ApiError::unavailable(anyhow::anyhow!("openapi of {service}: {reason}"));
            let backend = gateway.backends.get(service).ok_or_else(|| unavailable("no local backend".into()))?;
            let url = format!("http://{backend}{}", common::openapi::PATH);
            let response = gateway.client.get(url).send().await.map_err(|e| unavailable(e.to_string()))?;
            if !response.status().is_success() {
                return Err(unavailable(format!("status {}", response.status())));
            }
            let doc = response.json::<serde_json::Value>().await.map_err(|e| unavailable(e.to_string()))?;
            Ok((service.to_owned(), doc))
        }
    });
    let descriptions = futures::future::try_join_all(fetches).await?;
    let merged = openapi::merge(&descriptions, env!("CARGO_PKG_VERSION")).map_err(ApiError::internal)?;
    Ok(axum::Json(merged))
}

fn strip_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in HOP_BY_HOP {
        out.remove(name);
    }
    out.remove(header::CONTENT_LENGTH);
    out
}

/// Binds and serves until `shutdown`.
pub async fn serve(config: Config, shutdown: common::shutdown::CancellationToken) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port)).await?;
    tracing::info!(port = listener.local_addr()?.port(), routes = config.routes.routes().len(), "gateway listening");
    axum::serve(listener, router(&config)?.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
