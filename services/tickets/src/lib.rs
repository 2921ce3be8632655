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
use common::events::StreamName;
use common::events::outbox::Outbox;
use common::openapi::Api;
use common::service::{Backbone, Service};
use common::shutdown::CancellationToken;

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
        let streams = [StreamName::Tickets, StreamName::Orders, StreamName::DeadLetter];
        let mut backbone =
            Backbone::connect(SERVICE, &config.mongo, &config.nats, &streams, config.listener.clone()).await?;
        let store = Store::new(&backbone.db, Outbox::new(&backbone.db));
        store.ensure_indexes().await?;
        backbone.prune("order_marks", "updatedAt");
        let listeners = backbone.listeners();
        let state = AppState { store: store.clone(), sessions: backbone.sessions(&config.session).await? };
        let api = Api::new(routes::routes(), state, SERVICE);
        let service = backbone
            .into_service(&config.http, api, Some(store.outbox()))
            .await?
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
