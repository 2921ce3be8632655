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

use common::events::outbox::Outbox;
use common::openapi::Api;
use common::service::{Backbone, Service};

pub use crate::config::{Config, Settings};
use crate::listeners::{
    ExpirationCompleteHandler, PaymentCreatedHandler, TicketCreatedHandler, TicketUpdatedHandler, UserBannedHandler,
};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "orders";

/// What the handlers use, besides the session verifier.
#[derive(Debug)]
pub struct Handles {
    pub store: Store,
    pub expiration_window: Duration,
    /// Reservations (orders `created`) one buyer may hold at once.
    pub max_active_per_user: u64,
    /// `orders_reserved_total`: tickets reserved.
    pub reserved: prometheus_client::metrics::counter::Counter,
}

pub type AppState = common::AppState<Handles>;

/// Connects to MongoDB and NATS (waiting for both), declares the stream and indexes, and
/// binds the port: the service, with its relay and listeners ready to start.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let store = Store::new(&backbone.db, Outbox::new(&backbone.db));
    store.ensure_indexes().await?;
    let listeners = backbone
        .listeners()
        .listen(TicketCreatedHandler { store: store.clone() })
        .listen(TicketUpdatedHandler { store: store.clone() })
        .listen(ExpirationCompleteHandler { store: store.clone() })
        .listen(PaymentCreatedHandler { store: store.clone() })
        .listen(UserBannedHandler { store: store.clone() });
    let reserved = prometheus_client::metrics::counter::Counter::default();
    backbone.metrics().register("orders_reserved", "Tickets reserved (orders created)", reserved.clone());
    let handles = Handles {
        store: store.clone(),
        expiration_window: config.own.expiration_window,
        max_active_per_user: config.own.max_active_per_user,
        reserved,
    };
    let state = AppState::new(handles, backbone.sessions(&config.own.session).await?);
    let api = Api::new(routes::routes(), state, SERVICE);
    Ok(backbone.into_service(&config.http, api, Some(store.outbox())).await?.with_listeners(listeners))
}
