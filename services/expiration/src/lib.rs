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

pub mod config;
pub mod listeners;
pub mod schedule;

use std::time::Duration;

use common::events::StreamName;
use common::events::outbox::Outbox;
use common::service::{Backbone, Service};
use common::shutdown::CancellationToken;

pub use crate::config::Config;
use crate::listeners::{OrderCancelledHandler, OrderCompletedHandler, OrderCreatedHandler};
use crate::schedule::Schedules;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "expiration";

/// Longest the scheduler sleeps without looking for schedules written by other replicas.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The expiration worker, ready to start.
#[derive(Debug)]
pub struct Application {
    service: Service,
}

impl Application {
    /// Connects to MongoDB and NATS (waiting for both), declares streams and indexes.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let streams = [StreamName::Expiration, StreamName::Orders, StreamName::DeadLetter];
        let backbone =
            Backbone::connect(SERVICE, &config.mongo, &config.nats, &streams, config.listener.clone()).await?;
        let schedules = Schedules::new(&backbone.db, Outbox::new(&backbone.db));
        schedules.ensure_indexes().await?;
        let listeners = backbone.listeners();
        let scheduler = schedules.clone();
        let service = backbone
            .into_service(&config.http, axum::Router::new(), Some(schedules.outbox()))
            .await?
            .with_task("scheduler", move |token| scheduler.run(MAX_SLEEP, token))
            .with_listener(&listeners, OrderCreatedHandler { schedules: schedules.clone() })
            .with_listener(&listeners, OrderCancelledHandler { schedules: schedules.clone() })
            .with_listener(&listeners, OrderCompletedHandler { schedules });
        Ok(Self { service })
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Runs the scheduler, relay and listeners until `shutdown`, then stops them in order.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.service.run_until_stopped(shutdown).await
    }
}
