//! The expiration worker: when an order's reservation runs out, publishes
//! `expiration.complete`.
//!
//! No public API besides `/healthz`, `/readyz` and `/metrics`. On `order.created` it stores
//! a schedule at `expiresAt` in its own MongoDB database (see [`schedule`] for why), fires
//! it once when due (through the outbox), and drops it on `order.cancelled` or
//! `order.completed`.
//!
//! Run it with `MONGO_URI=… NATS_URL=… cargo run -p expiration`, or the whole platform
//! with `dev/up` (see the README).

pub mod listeners;
pub mod schedule;

use std::time::Duration;

use common::config::ServiceConfig;
use common::events::outbox::Outbox;
use common::service::{Backbone, Service};

use crate::listeners::{OrderCancelledHandler, OrderCompletedHandler, OrderCreatedHandler};
pub use crate::schedule::Clock;
use crate::schedule::Schedules;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "expiration";

/// The platform's settings; nothing of its own (it serves no user routes, so it needs no
/// `JWT_KEY`).
pub type Config = ServiceConfig<()>;

/// Longest the scheduler sleeps without looking for schedules written by other replicas.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Connects to MongoDB and NATS (waiting for both), declares the stream and indexes: the
/// worker, with its scheduler, relay and listeners ready to start.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    build_with_clock(config, Clock::system()).await
}

/// [`build`] with the scheduler reading `clock` (tests move a manual one).
pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Service> {
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let schedules = Schedules::new(&backbone.db, Outbox::new(&backbone.db), clock);
    schedules.ensure_indexes().await?;
    schedules.register_metrics(backbone.metrics());
    let listeners = backbone
        .listeners()
        .listen(OrderCreatedHandler { schedules: schedules.clone() })
        .listen(OrderCancelledHandler { schedules: schedules.clone() })
        .listen(OrderCompletedHandler { schedules: schedules.clone() });
    let scheduler = schedules.clone();
    Ok(backbone
        .into_service(&config.http, axum::Router::new(), Some(schedules.outbox()))
        .await?
        .with_task("scheduler", move |token| scheduler.run(MAX_SLEEP, token))
        .with_listeners(listeners))
}
