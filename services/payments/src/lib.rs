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
pub mod routes;
pub mod store;

use axum::extract::FromRef;
use common::Sessions;
use common::events::outbox::Outbox;
use common::events::{EventBus, StreamName, listener};
use common::http::{Dependency, Platform, finish_router};
use common::service::Service;
use common::shutdown::CancellationToken;
use common::telemetry::Metrics;

pub use crate::config::Config;
use crate::config::ProviderSettings;
use crate::listeners::{OrderCancelledHandler, OrderCompletedHandler, OrderCreatedHandler};
use crate::provider::{Provider, STRIPE_TIMEOUT, Stripe, TestProvider};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "payments";

/// Everything a handler needs: cheap handles only.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub sessions: Sessions,
    pub provider: Provider,
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
            ProviderSettings::Stripe { key, base_url } => {
                tracing::info!(base_url, "charging through Stripe");
                Provider::Stripe(Stripe::new(key.clone(), base_url, STRIPE_TIMEOUT)?)
            }
            ProviderSettings::Test => {
                tracing::warn!("STRIPE_KEY is not set: using the built-in test provider (no real charges)");
                Provider::Test(TestProvider)
            }
        };
        let db = common::mongo::connect(&config.mongo, SERVICE).await?;
        let bus = EventBus::connect(&config.nats, SERVICE).await?;
        for stream in [StreamName::Payments, StreamName::Orders, StreamName::DeadLetter] {
            bus.ensure_stream(stream).await?;
        }
        let store = Store::new(&db, Outbox::new(&db));
        store.ensure_indexes().await?;

        let mut metrics = Metrics::builder();
        let listeners = listener::ListenerContext {
            bus: bus.clone(),
            service: SERVICE,
            settings: config.listener.clone(),
            metrics: listener::ListenerMetrics::register(metrics.registry()),
        };
        let platform = Platform {
            settings: config.http.clone(),
            metrics: metrics.build(),
            dependencies: vec![Dependency::Mongo(db), Dependency::Nats(bus.client().clone())],
        };
        let state = AppState { store: store.clone(), sessions: config.session.sessions(), provider: provider.clone() };
        let router = finish_router(routes::router().with_state(state), &platform);
        let relay = store.outbox().relay(bus.clone());
        let service = Service::bind(SERVICE, &config.http, router)
            .await?
            .with_bus(bus)
            .with_task("outbox-relay", move |token| relay.run(token))
            .with_listener(&listeners, OrderCreatedHandler { store: store.clone() })
            .with_listener(&listeners, OrderCancelledHandler { store: store.clone(), provider })
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
