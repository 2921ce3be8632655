//! The payments service: `POST /api/payments` charges an order through a payment provider.
//!
//! An order replica is fed by `order.created`, `order.cancelled` and `order.completed`.
//! At most one successful charge per order (see [`store`]); `payment.created` goes out
//! through the outbox; a charge that lands for an order cancelled meanwhile is refunded.
//! The provider is Stripe when `STRIPE_KEY` is set, a built-in test provider otherwise
//! (see [`provider`]).
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

use axum::extract::FromRef;
use common::Sessions;
use common::events::StreamName;
use common::events::outbox::Outbox;
use common::openapi::Api;
use common::service::{Backbone, Service};
use common::shutdown::CancellationToken;
use tokio::sync::Notify;

pub use crate::config::Config;
use crate::config::ProviderSettings;
use crate::listeners::{OrderCancelledHandler, OrderCompletedHandler, OrderCreatedHandler};
use crate::provider::{Provider, Stripe, TestProvider};
use crate::refunds::{RefundMetrics, RefundTask};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "payments";

/// Everything a handler needs: cheap handles only.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub sessions: Sessions,
    pub provider: Provider,
    /// Wakes the refund task when a request records a charge that needs refunding.
    pub refunds: Arc<Notify>,
}

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

/// The payments service, bound to its port, with its relay and listeners ready to start.
#[derive(Debug)]
pub struct Application {
    service: Service,
}

impl Application {
    /// Connects to MongoDB and NATS (waiting for both), declares streams and indexes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let provider = match &config.provider {
            ProviderSettings::Stripe { key, base_url, timeout } => {
                tracing::info!(base_url, "charging through Stripe");
                Provider::Stripe(Stripe::new(key.clone(), base_url, *timeout)?)
            }
            ProviderSettings::Test => {
                tracing::warn!("PAYMENTS_PROVIDER=test: the built-in test provider charges nothing");
                Provider::Test(TestProvider)
            }
        };
        let streams = [StreamName::Payments, StreamName::Orders, StreamName::DeadLetter];
        let mut backbone =
            Backbone::connect(SERVICE, &config.mongo, &config.nats, &streams, config.listener.clone()).await?;
        let store = Store::new(&backbone.db, Outbox::new(&backbone.db));
        store.ensure_indexes().await?;
        let listeners = backbone.listeners();
        let wake = Arc::new(Notify::new());
        let refunds = RefundTask {
            store: store.clone(),
            provider: provider.clone(),
            settings: config.refunds.clone(),
            metrics: RefundMetrics::register(backbone.metrics()),
            wake: Arc::clone(&wake),
        };
        let state = AppState {
            store: store.clone(),
            sessions: backbone.sessions(&config.session).await?,
            provider,
            refunds: Arc::clone(&wake),
        };
        let service = backbone
            .into_service(&config.http, Api::new(routes::routes(), state, SERVICE), Some(store.outbox()))
            .await?
            .with_task("refunds", move |token| refunds.run(token))
            .with_listener(&listeners, OrderCreatedHandler { store: store.clone() })
            .with_listener(&listeners, OrderCancelledHandler { store: store.clone(), refunds: wake })
            .with_listener(&listeners, OrderCompletedHandler { store });
        Ok(Self { service })
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Serves and runs the relay and listeners until `shutdown`, then stops them in order.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.service.run_until_stopped(shutdown).await
    }
}
