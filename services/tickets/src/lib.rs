//! The tickets service: tickets for sale, owned here.
//!
//! `POST /api/tickets`, `GET /api/tickets`, `GET /api/tickets/{id}`, `PUT /api/tickets/{id}`.
//! Every change is written together with its event (`ticket.created`, `ticket.updated`) in
//! one MongoDB transaction; the outbox relay publishes the events to the `TICKETS` stream.
//! `order.created` reserves a ticket and `order.cancelled` releases it (each through its own
//! durable consumer).
//!
//! Run it with `MONGO_URI=… NATS_URL=… JWT_KEY=… cargo run -p tickets`, or the whole
//! platform with `dev/up` (see the README).

pub mod config;
pub mod listeners;
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
use crate::listeners::{OrderCancelledHandler, OrderCreatedHandler};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "tickets";

/// Everything a handler needs: cheap handles only.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub sessions: Sessions,
}

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

/// The tickets service, bound to its port, with its relay and listeners ready to start.
#[derive(Debug)]
pub struct Application {
    service: Service,
}

impl Application {
    /// Connects to MongoDB and NATS (waiting for both), declares the stream and indexes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = common::mongo::connect(&config.mongo, SERVICE).await?;
        let bus = EventBus::connect(&config.nats, SERVICE).await?;
        // Its own stream, the one it consumes, and the dead-letter stream: declared before
        // the service reports ready, so nothing published meanwhile is refused.
        for stream in [StreamName::Tickets, StreamName::Orders, StreamName::DeadLetter] {
            bus.ensure_stream(stream).await?;
        }
        let store = Store::new(&db, Outbox::new(&db));
        store.ensure_indexes().await?;

        let mut metrics = Metrics::builder();
        let listener_metrics = listener::ListenerMetrics::register(metrics.registry());
        let platform = Platform {
            settings: config.http.clone(),
            metrics: metrics.build(),
            dependencies: vec![Dependency::Mongo(db), Dependency::Nats(bus.client().clone())],
        };
        let state = AppState { store: store.clone(), sessions: config.session.sessions() };
        let router = finish_router(routes::router().with_state(state), &platform);

        let listeners = listener::ListenerContext {
            bus: bus.clone(),
            service: SERVICE,
            settings: config.listener.clone(),
            metrics: listener_metrics,
        };
        let relay = store.outbox().relay(bus.clone());
        let service = Service::bind(SERVICE, &config.http, router)
            .await?
            .with_bus(bus)
            .with_task("outbox-relay", move |token| relay.run(token))
            .with_listener(&listeners, OrderCreatedHandler { store: store.clone() })
            .with_listener(&listeners, OrderCancelledHandler { store });
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
