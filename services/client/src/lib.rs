//! The storefront: the course's server-rendered web client, in Rust.
//!
//! It owns no data. Every page is rendered here from the public API, called server-side
//! at `API_BASE_URL` with the browser's session ([`api`], [`visitor`]); every action is a
//! form with a CSRF token ([`forms`]), answered with a redirect. Pages work without
//! JavaScript; the one small script ([`assets`]) only adds the ticking countdown, busy
//! buttons and Stripe's card field. Behind the Ingress (and the local gateway) every path
//! that is not `/api/...` comes here.
//!
//! Run it with `API_BASE_URL=http://127.0.0.1:8080 cargo run -p client`, or the whole
//! platform with `dev/up` (see the README).

pub mod api;
pub mod assets;
pub mod config;
pub mod forms;
pub mod pages;
pub mod visitor;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use common::http::{Dependency, ErrorStyle, Platform, finish_router};
use common::service::Service;
use common::telemetry::Metrics;

pub use crate::config::Config;
use crate::pages::{auth, blog, orders, tickets};

/// The name logs use for this service.
pub const SERVICE: &str = "client";

/// Everything a page needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub api: api::Api,
    pub assets: assets::Assets,
    /// Stripe's publishable key; `None` when payments run on the test provider.
    pub stripe_key: Option<String>,
    pub cookie_secure: bool,
}

/// The pages and the static files, with the client's own layers: cookies relayed from
/// the API, security headers, compression.
pub fn router(state: AppState) -> Router {
    let headers = Arc::new(SecurityHeaders::new(state.stripe_key.is_some()));
    let assets = state.assets.clone();
    Router::new()
        .route("/", get(tickets::home))
        .route("/auth/signup", get(auth::signup_page).post(auth::signup))
        .route("/auth/signin", get(auth::signin_page).post(auth::signin))
        .route("/auth/signout", post(auth::signout))
        .route("/tickets/new", get(tickets::new).post(tickets::create))
        .route("/tickets/{id}", get(tickets::show))
        .route("/tickets/{id}/edit", get(tickets::edit).post(tickets::update))
        .route("/tickets/{id}/buy", post(tickets::buy))
        .route("/orders", get(orders::list))
        .route("/orders/{id}", get(orders::show))
        .route("/orders/{id}/pay", post(orders::pay))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/blog", get(blog::list))
        .route("/blog/posts", post(blog::create_post))
        .route("/blog/posts/{id}/comments", post(blog::create_comment))
        .route("/static/{name}", get(assets::serve).with_state(assets))
        .fallback(pages::not_found)
        .layer(middleware::from_fn(visitor::relay_cookies))
        .layer(middleware::from_fn_with_state(headers, security_headers))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

/// The headers every page carries.
#[derive(Debug)]
struct SecurityHeaders {
    csp: HeaderValue,
}

impl SecurityHeaders {
    fn new(stripe: bool) -> Self {
        // Scripts only from this origin (Stripe.js too, and only when Stripe is configured);
        // no inline script or style anywhere, so no 'unsafe-inline'.
        let (script, connect, frame) = if stripe {
            (
                "'self' https://js.stripe.com",
                "'self' https://api.stripe.com",
                "https://js.stripe.com https://hooks.stripe.com",
            )
        } else {
            ("'self'", "'self'", "'none'")
        };
        let csp = format!(
            "default-src 'self'; script-src {script}; style-src 'self'; img-src 'self' data:; connect-src {connect}; \
             frame-src {frame}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
        );
        Self { csp: HeaderValue::from_str(&csp).expect("a static policy is a valid header") }
    }
}

async fn security_headers(State(headers): State<Arc<SecurityHeaders>>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let out = response.headers_mut();
    out.insert(header::CONTENT_SECURITY_POLICY, headers.csp.clone());
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages carry the visitor's name and CSRF token: no shared cache may keep them.
    out.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Builds the API client and binds the port: the client, ready to serve. The API need not
/// be up yet: `/readyz` says whether it answers, and pages answer 503 until it does.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let state = AppState {
        api: api::Api::new(&config.api)?,
        assets: assets::Assets::default(),
        stripe_key: config.stripe_publishable_key.clone(),
        cookie_secure: config.cookie_secure,
    };
    let probe = state.api.clone();
    let api_answers: common::http::CustomCheck = Arc::new(move || {
        let probe = probe.clone();
        Box::pin(async move { probe.answers().await })
    });
    let platform = Platform {
        service: SERVICE,
        settings: config.http.clone(),
        metrics: Metrics::default(),
        dependencies: vec![Dependency::Custom { name: "api", check: api_answers }],
        errors: ErrorStyle::Html(pages::error_page),
    };
    let router = finish_router(router(state), &platform);
    Ok(Service::bind(SERVICE, &config.http, router).await?)
}
