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

pub mod listeners;
pub mod routes;
pub mod store;

use common::config::{ServiceConfig, SessionSettings};
use common::events::outbox::Outbox;
use common::openapi::Api;
use common::service::{Backbone, Service};

use crate::listeners::{OrderCancelledHandler, OrderCreatedHandler};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "tickets";

/// The platform's settings plus the sessions it checks (`JWT_KEY`, ...).
pub type Config = ServiceConfig<SessionSettings>;

/// What the handlers use, besides the session verifier.
#[derive(Debug)]
pub struct Handles {
    pub store: Store,
}

pub type AppState = common::AppState<Handles>;

/// Connects to MongoDB and NATS (waiting for both), declares the stream and indexes, and
/// binds the port: the service, with its relay and listeners ready to start.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let store = Store::new(&backbone.db, Outbox::new(&backbone.db));
    store.ensure_indexes().await?;
    backbone.prune("order_marks", "updatedAt");
    let listeners = backbone
        .listeners()
        .listen(OrderCreatedHandler { store: store.clone() })
        .listen(OrderCancelledHandler { store: store.clone() });
    let state = AppState::new(Handles { store: store.clone() }, backbone.sessions(&config.own).await?);
    let api = Api::new(routes::routes(), state, SERVICE);
    Ok(backbone.into_service(&config.http, api, Some(store.outbox())).await?.with_listeners(listeners))
}
