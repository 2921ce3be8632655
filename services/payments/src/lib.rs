//! The payments service: `POST /api/payments` charges an order through a payment provider.
//!
//! An order replica is fed by `order.created`, `order.cancelled` and `order.completed`.
//! At most one successful charge per order (see [`store`]); `payment.created` goes out
//! through the outbox; a charge that lands for an order cancelled meanwhile is refunded.
//! The provider is chosen by `PAYMENTS_PROVIDER`: Stripe (`stripe`, with `STRIPE_KEY`) or
//! the built-in test provider (`test`), never by default (see [`provider`]).
//!
//! Run it with `MONGO_URI=… NATS_URL=… JWT_KEY=… cargo run -p payments`, or the whole
//! platform with `dev/up` (see the README).

pub mod config;
pub mod listeners;
pub mod provider;
pub mod refunds;
pub mod routes;
pub mod store;

use std::sync::Arc;

use common::events::outbox::Outbox;
use common::openapi::Api;
use common::service::{Backbone, Service};
use tokio::sync::Notify;

use crate::config::ProviderSettings;
pub use crate::config::{Config, Settings};
use crate::listeners::{OrderCancelledHandler, OrderCompletedHandler, OrderCreatedHandler};
use crate::provider::{Provider, Stripe, TestProvider};
use crate::refunds::{RefundMetrics, RefundTask};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "payments";

/// What the handlers use, besides the session verifier.
#[derive(Debug)]
pub struct Handles {
    pub store: Store,
    pub provider: Provider,
    /// Wakes the refund task when a request records a charge that needs refunding.
    pub refunds: Arc<Notify>,
    /// `payments_charges_total{outcome}`: charges by outcome.
    pub charges: routes::ChargeMetrics,
}

pub type AppState = common::AppState<Handles>;

/// Connects to MongoDB and NATS (waiting for both), declares the stream and indexes, and
/// binds the port: the service, with its relay, refund task and listeners ready to start.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let provider = match &config.own.provider {
        ProviderSettings::Stripe { key, base_url, timeout } => {
            tracing::info!(base_url, "charging through Stripe");
            Provider::Stripe(Stripe::new(key.clone(), base_url, *timeout)?)
        }
        ProviderSettings::Test => {
            tracing::warn!("PAYMENTS_PROVIDER=test: the built-in test provider charges nothing");
            Provider::Test(TestProvider)
        }
    };
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let store = Store::new(&backbone.db, Outbox::new(&backbone.db));
    store.ensure_indexes().await?;
    let wake = Arc::new(Notify::new());
    let refunds = RefundTask {
        store: store.clone(),
        provider: provider.clone(),
        settings: config.own.refunds.clone(),
        metrics: RefundMetrics::register(backbone.metrics()),
        wake: Arc::clone(&wake),
    };
    let listeners = backbone
        .listeners()
        .listen(OrderCreatedHandler { store: store.clone() })
        .listen(OrderCancelledHandler { store: store.clone(), refunds: Arc::clone(&wake) })
        .listen(OrderCompletedHandler { store: store.clone() });
    let charges = routes::ChargeMetrics::register(backbone.metrics());
    let handles = Handles { store: store.clone(), provider, refunds: wake, charges };
    let state = AppState::new(handles, backbone.sessions(&config.own.session).await?);
    let api = Api::new(routes::routes(), state, SERVICE);
    Ok(backbone
        .into_service(&config.http, api, Some(store.outbox()))
        .await?
        .with_task("refunds", move |token| refunds.run(token))
        .with_listeners(listeners))
}
