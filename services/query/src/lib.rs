//! The query service: a read model of tickets (with their sale status), orders and
//! payments, built only from events, so it keeps answering when the services that own
//! the data are down.
//!
//! `GET /api/query/tickets` (filters `status`, `q`, cursor pagination),
//! `GET /api/query/tickets/{id}`, `GET /api/query/orders`, `GET /api/query/orders/{id}`.
//!
//! On an empty database its durable consumers are recreated from the start of every
//! stream, so it rebuilds itself from the full history; otherwise it resumes where they
//! left off. `query rebuild` drops the read model and the consumers: running replicas
//! replay at once.
//!
//! Run it with `MONGO_URI=… NATS_URL=… JWT_KEY=… cargo run -p query`, or the whole
//! platform with `dev/up` (see the README).

pub mod config;
pub mod feed;
pub mod listeners;
pub mod routes;
pub mod store;

use axum::extract::FromRef;
use common::Sessions;
use common::events::{EventBus, StreamName, Subject};
use common::openapi::Api;
use common::service::{Backbone, Service};
use common::shutdown::CancellationToken;

pub use crate::config::Config;
use crate::listeners::{
    OrderCancelledHandler, OrderCompletedHandler, OrderCreatedHandler, PaymentCreatedHandler, TicketCreatedHandler,
    TicketUpdatedHandler,
};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "query";

/// The subjects the read model is built from.
pub const SUBJECTS: [Subject; 6] = [
    Subject::TicketCreated,
    Subject::TicketUpdated,
    Subject::OrderCreated,
    Subject::OrderCancelled,
    Subject::OrderCompleted,
    Subject::PaymentCreated,
];

/// Everything a handler needs: cheap handles only.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub sessions: Sessions,
    /// The live ticket feed, as this replica follows it.
    pub feed: feed::Feed,
}

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

/// The name of this service's durable consumer of `subject`.
fn consumer_name(bus: &EventBus, subject: Subject) -> String {
    bus.namespace().name(&format!("{SERVICE}-{}", subject.as_str().replace('.', "-")))
}

/// Events not yet applied: delivered-but-unacknowledged plus not-yet-delivered messages of
/// every consumer. Zero once a replay has caught up (operators and the benchmark watch it).
pub async fn backlog(bus: &EventBus) -> anyhow::Result<u64> {
    let mut total = 0;
    for subject in SUBJECTS {
        let stream = bus.jetstream().get_stream(bus.namespace().stream(subject.stream())).await?;
        let info = stream.consumer_info(consumer_name(bus, subject)).await?;
        total += info.num_pending + info.num_ack_pending as u64;
    }
    Ok(total)
}

/// Deletes this service's durable consumers, so they are declared again from the start of
/// their streams. Missing ones are fine.
pub async fn reset_consumers(bus: &EventBus) -> anyhow::Result<()> {
    for subject in SUBJECTS {
        // A stream not created yet has no consumer to reset.
        let Some(stream) = bus.existing_stream(subject.stream()).await? else { continue };
        let name = consumer_name(bus, subject);
        if stream.delete_consumer(&name).await.is_ok() {
            tracing::info!(consumer = %name, "consumer reset; it replays from the start");
        }
    }
    Ok(())
}

/// The streams the read model is built from, and the dead-letter stream.
const STREAMS: [StreamName; 4] =
    [StreamName::Tickets, StreamName::Orders, StreamName::Payments, StreamName::DeadLetter];

/// Drops the read model and resets the consumers: every replica rebuilds from the streams.
pub async fn rebuild(config: &Config) -> anyhow::Result<()> {
    let db = common::mongo::connect(&mongo_settings(config), SERVICE).await?;
    let bus = EventBus::connect(&config.nats, SERVICE).await?;
    Store::new(&db).drop_all().await?;
    reset_consumers(&bus).await?;
    bus.client().drain().await?;
    Ok(())
}

/// The MongoDB settings with the driver's retryable writes off: every write of the read
/// model is idempotent, and a failed one is redelivered by its listener, so a driver-level
/// retry adds nothing. (It also costs: the development server keeps a record per retryable
/// write and, past 10,000, sorts them all on every write, which made a long replay
/// quadratic; see BENCHMARKS.md.)
fn mongo_settings(config: &Config) -> common::config::MongoSettings {
    common::config::MongoSettings { retry_writes: false, ..config.mongo.clone() }
}

/// The query service, bound to its port, with its listeners ready to start.
#[derive(Debug)]
pub struct Application {
    service: Service,
}

impl Application {
    /// Connects to MongoDB and NATS (waiting for both); on an empty read model, resets the
    /// consumers so the model is rebuilt from the full history.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let mut backbone =
            Backbone::connect(SERVICE, &mongo_settings(&config), &config.nats, &STREAMS, config.listener.clone())
                .await?;
        let store = Store::new(&backbone.db);
        if store.is_empty().await? {
            tracing::info!("empty read model: rebuilding from the streams");
            reset_consumers(&backbone.bus).await?;
        }
        store.ensure_indexes().await?;
        backbone.prune("status_locks", "updatedAt");
        let listeners = backbone.listeners();
        let live = feed::Feed::default();
        let publisher = config.live_feed.then(|| feed::FeedPublisher::new(backbone.bus.clone(), store.clone()));
        let state =
            AppState { store: store.clone(), sessions: backbone.sessions(&config.session).await?, feed: live.clone() };
        let bus = backbone.bus.clone();
        let service = backbone
            .into_service(&config.http, Api::new(routes::routes(), state, SERVICE), None)
            .await?
            .with_task("ticket-feed", move |token| live.follow(bus, token))
            .with_listener(&listeners, TicketCreatedHandler { store: store.clone(), feed: publisher.clone() })
            .with_listener(&listeners, TicketUpdatedHandler { store: store.clone(), feed: publisher.clone() })
            .with_listener(&listeners, OrderCreatedHandler { store: store.clone(), feed: publisher.clone() })
            .with_listener(&listeners, OrderCancelledHandler { store: store.clone(), feed: publisher.clone() })
            .with_listener(&listeners, OrderCompletedHandler { store: store.clone(), feed: publisher.clone() })
            .with_listener(&listeners, PaymentCreatedHandler { store, feed: None });
        Ok(Self { service })
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Serves and runs the listeners until `shutdown`, then stops them in order.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.service.run_until_stopped(shutdown).await
    }
}
