//! The query service: a read model of tickets (with their sale status), orders and
//! payments, built only from events, so it keeps answering when the services that own
//! the data are down.
//!
//! `GET /api/query/tickets` (filters `status`, `q`, cursor pagination),
//! `GET /api/query/tickets/{id}`, `GET /api/query/orders`, `GET /api/query/orders/{id}`,
//! and `GET /api/query/tickets/events`, the live feed of ticket changes (see [`feed`]).
//! The blog's read model is here too: `GET /api/query/posts`, posts with their comments
//! and each comment's moderation status (see [`blog`]).
//!
//! On an empty database its durable consumers are recreated from the start of every
//! stream, so it rebuilds itself from the full history; otherwise it resumes where they
//! left off. `query rebuild` drops the read model and the consumers: running replicas
//! replay at once.
//!
//! Run it with `MONGO_URI=… NATS_URL=… JWT_KEY=… cargo run -p query`, or the whole
//! platform with `dev/up` (see the README).

pub mod blog;
pub mod config;
pub mod feed;
pub mod listeners;
pub mod routes;
pub mod store;

use common::events::listener::Listeners;
use common::events::{EventBus, Subject};
use common::openapi::Api;
use common::service::{Backbone, Service};

use crate::blog::BlogStore;
pub use crate::config::{Config, Settings};
use crate::feed::FeedPublisher;
use crate::listeners::{
    OrderCancelledHandler, OrderCompletedHandler, OrderCreatedHandler, PaymentCreatedHandler, TicketCreatedHandler,
    TicketUpdatedHandler,
};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "query";

/// What the handlers use, besides the session verifier.
#[derive(Debug)]
pub struct Handles {
    pub store: Store,
    pub blog: BlogStore,
    /// The live ticket feed, as this replica follows it.
    pub feed: feed::Feed,
}

pub type AppState = common::AppState<Handles>;

/// The read model's listeners, one per subject it is built from: what the service runs,
/// and what a rebuild resets.
fn listeners(backbone: &Backbone, store: &Store, feed: Option<&FeedPublisher>) -> Listeners {
    let handler_feed = || feed.cloned();
    let blog = BlogStore::new(&backbone.db);
    backbone
        .listeners()
        .listen(TicketCreatedHandler { store: store.clone(), feed: handler_feed() })
        .listen(TicketUpdatedHandler { store: store.clone(), feed: handler_feed() })
        .listen(OrderCreatedHandler { store: store.clone(), feed: handler_feed() })
        .listen(OrderCancelledHandler { store: store.clone(), feed: handler_feed() })
        .listen(OrderCompletedHandler { store: store.clone(), feed: handler_feed() })
        .listen(PaymentCreatedHandler { store: store.clone(), feed: None })
        .listen(blog::PostCreatedHandler { blog: blog.clone() })
        .listen(blog::CommentCreatedHandler { blog: blog.clone() })
        .listen(blog::CommentUpdatedHandler { blog })
}

/// Events not yet applied: delivered-but-unacknowledged plus not-yet-delivered messages of
/// the `durables` ([`Service::durables`]). Zero once a replay has caught up (operators and
/// the benchmark watch it). A stream that does not exist yet has nothing to replay; a
/// missing consumer on an existing stream is an error (not declared again yet).
pub async fn backlog(bus: &EventBus, durables: &[(Subject, String)]) -> anyhow::Result<u64> {
    let mut total = 0;
    for (subject, name) in durables {
        let Some(stream) = bus.existing_stream(subject.stream()).await? else { continue };
        let info = stream.consumer_info(name).await?;
        total += info.num_pending + info.num_ack_pending as u64;
    }
    Ok(total)
}

/// Deletes the `durables`, so they are declared again from the start of their streams.
/// One that does not exist (or whose stream does not yet) is fine; any other error fails.
pub async fn reset_consumers(bus: &EventBus, durables: &[(Subject, String)]) -> anyhow::Result<()> {
    use async_nats::jetstream::ErrorCode;
    use async_nats::jetstream::stream::ConsumerErrorKind;
    for (subject, name) in durables {
        let Some(stream) = bus.existing_stream(subject.stream()).await? else { continue };
        match stream.delete_consumer(name).await {
            Ok(_) => tracing::info!(consumer = %name, "consumer reset; it replays from the start"),
            Err(err)
                if matches!(err.kind(), ConsumerErrorKind::JetStream(ref e)
                    if e.error_code() == ErrorCode::CONSUMER_NOT_FOUND) => {}
            Err(err) => anyhow::bail!("cannot reset the consumer {name}: {err}"),
        }
    }
    Ok(())
}

/// Drops the read model and resets the consumers: every replica rebuilds from the streams.
pub async fn rebuild(config: &Config) -> anyhow::Result<()> {
    let backbone = Backbone::connect(SERVICE, &without_retryable_writes(config)).await?;
    let store = Store::new(&backbone.db);
    store.drop_all().await?;
    reset_consumers(&backbone.bus, &listeners(&backbone, &store, None).durables()).await?;
    backbone.bus.client().drain().await?;
    Ok(())
}

/// Follows the replay a [`rebuild`] started until every consumer has caught up, calling
/// `report(applied, total)` once a second (`total`: the events waiting when the replay
/// began, plus any published since). Done when the backlog has been empty at two looks in
/// a row: every event is then handled and acknowledged, so the model is whole. It waits
/// for as long as no replica has declared the consumers again (`query rebuild` without a
/// running query service waits for one to start).
pub async fn follow_replay(config: &Config, mut report: impl FnMut(u64, u64)) -> anyhow::Result<()> {
    let backbone = Backbone::connect(SERVICE, &without_retryable_writes(config)).await?;
    let durables = listeners(&backbone, &Store::new(&backbone.db), None).durables();
    let (mut total, mut last, mut empty_looks) = (0u64, 0u64, 0);
    while empty_looks < 2 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        // An error: some consumer is not declared again yet.
        let Ok(waiting) = backlog(&backbone.bus, &durables).await else { continue };
        total += waiting.saturating_sub(last);
        last = waiting;
        report(total - waiting, total);
        empty_looks = if waiting == 0 { empty_looks + 1 } else { 0 };
    }
    backbone.bus.client().drain().await?;
    Ok(())
}

/// The configuration with the driver's retryable writes off: every write of the read model
/// is idempotent, and a failed one is redelivered by its listener, so a driver-level retry
/// adds nothing. (It also costs: the development server keeps a record per retryable write
/// and, past 10,000, sorts them all on every write, which made a long replay quadratic;
/// see BENCHMARKS.md.)
fn without_retryable_writes(config: &Config) -> Config {
    let mut config = config.clone();
    config.mongo.retry_writes = false;
    config
}

/// Connects to MongoDB and NATS (waiting for both) and binds the port; on an empty read
/// model, resets the consumers so the model is rebuilt from the full history.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let config = without_retryable_writes(&config);
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let store = Store::new(&backbone.db);
    let publisher = config.own.live_feed.then(|| FeedPublisher::new(backbone.bus.clone(), store.clone()));
    let listeners = listeners(&backbone, &store, publisher.as_ref());
    if store.is_empty().await? {
        tracing::info!("empty read model: rebuilding from the streams");
        reset_consumers(&backbone.bus, &listeners.durables()).await?;
    }
    store.ensure_indexes().await?;
    let upgraded = store.upgrade().await?;
    if upgraded > 0 {
        tracing::warn!(
            tickets = upgraded,
            "read model from an earlier version: run `query rebuild` once no replica of it is left"
        );
    }
    let blog = BlogStore::new(&backbone.db);
    blog.ensure_indexes().await?;
    let live = feed::Feed::default();
    let state = AppState::new(
        Handles { store: store.clone(), blog, feed: live.clone() },
        backbone.sessions(&config.own.session).await?,
    );
    let bus = backbone.bus.clone();
    Ok(backbone
        .into_service(&config.http, Api::new(routes::routes(), state, SERVICE), None)
        .await?
        .with_task("ticket-feed", move |token| live.follow(bus, token))
        .with_listeners(listeners))
}
