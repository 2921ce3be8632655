//! The orders service: reserve a ticket for a limited time, list, show, cancel.
//!
//! `POST /api/orders`, `GET /api/orders`, `GET /api/orders/{id}`, `DELETE /api/orders/{id}`.
//! A replica of every ticket is fed by `ticket.created` / `ticket.updated`. Reservation is
//! one transaction (claim the replica's slot, insert the order, stage `order.created`), so
//! concurrent orders for one ticket cannot both succeed. `expiration.complete` cancels an
//! order still `created`; `payment.created` completes it; `user.banned` cancels the banned
//! user's orders still `created`. Events go out through the outbox.
//!
//! Run it with `MONGO_URI=… NATS_URL=… JWT_KEY=… cargo run -p orders`, or the whole
//! platform with `dev/up` (see the README).

pub mod config;
pub mod listeners;
pub mod routes;
pub mod store;

use std::time::Duration;

use axum::extract::FromRef;
use common::Sessions;
use common::events::StreamName;
use common::events::outbox::Outbox;
use common::openapi::Api;
use common::service::{Backbone, Service};
use common::shutdown::CancellationToken;

pub use crate::config::Config;
use crate::listeners::{
    ExpirationCompleteHandler, PaymentCreatedHandler, TicketCreatedHandler, TicketUpdatedHandler, UserBannedHandler,
};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "orders";

/// Everything a handler needs: cheap handles only.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub sessions: Sessions,
    pub expiration_window: Duration,
    /// Reservations (orders `created`) one buyer may hold at once.
    pub max_active_per_user: u64,
}

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

/// The orders service, bound to its port, with its relay and listeners ready to start.
#[derive(Debug)]
pub struct Application {
    service: Service,
}

impl Application {
    /// Connects to MongoDB and NATS (waiting for both), declares streams and indexes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let streams = [
            StreamName::Orders,
            StreamName::Tickets,
            StreamName::Expiration,
            StreamName::Payments,
            StreamName::Users,
            StreamName::DeadLetter,
        ];
        let mut backbone =
            Backbone::connect(SERVICE, &config.mongo, &config.nats, &streams, config.listener.clone()).await?;
        let store = Store::new(&backbone.db, Outbox::new(&backbone.db));
        store.ensure_indexes().await?;
        let listeners = backbone.listeners();
        let state = AppState {
            store: store.clone(),
            sessions: backbone.sessions(&config.session).await?,
            expiration_window: config.expiration_window,
            max_active_per_user: config.max_active_per_user,
        };
        let service = backbone
            .into_service(&config.http, Api::new(routes::routes(), state, SERVICE), Some(store.outbox()))
            .await?
            .with_listener(&listeners, TicketCreatedHandler { store: store.clone() })
            .with_listener(&listeners, TicketUpdatedHandler { store: store.clone() })
            .with_listener(&listeners, ExpirationCompleteHandler { store: store.clone() })
            .with_listener(&listeners, PaymentCreatedHandler { store: store.clone() })
            .with_listener(&listeners, UserBannedHandler { store });
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
