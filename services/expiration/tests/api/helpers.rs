//! Starting expiration workers on a shared database and namespace, and feeding them orders.

use std::time::Duration;

use common::config::MongoSettings;
use common::events::{
    EventBus, ExpirationComplete, NatsSettings, OrderCancelled, OrderCompleted, OrderCreated, OrderStatus, OrderTicket,
    StreamName, TicketRef,
};
use common::money::Price;
use common::shutdown::CancellationToken;
use common::testing::{StoredMessage, TestHttp, object_id_hex, publish_event, read_stream, service_config};
use expiration::Clock;

pub struct Worker {
    pub clock: Clock,
    http: TestHttp,
    stop: common::testing::StopOnDrop,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Worker {
    /// Stops the worker and waits until it has shut down.
    pub async fn stop(mut self) {
        self.stop.0.cancel();
        let handle = self.handle.take().expect("started");
        handle.await.expect("the worker task").expect("a clean shutdown");
    }

    /// `expiration_scheduler_rounds_total`.
    async fn rounds(&self) -> u64 {
        let metrics = self.http.metrics().await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("expiration_scheduler_rounds_total ")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no expiration_scheduler_rounds_total in:\n{metrics}"))
    }

    /// Waits until the scheduler has run a whole round that began after this call: it has
    /// fired everything due by the clock's current time.
    pub async fn next_round(&self) {
        // The round in progress may have read the clock before the caller moved it; the
        // one after it cannot have.
        let target = self.rounds().await + 2;
        let reached = common::testing::eventually(Duration::from_secs(10), || async {
            self.clock.nudge();
            (self.rounds().await >= target).then_some(())
        })
        .await;
        assert!(reached.is_some(), "the scheduler never ran two more rounds");
    }

    /// Waits until the listener for `subject` has acknowledged `count` deliveries.
    pub async fn handled(&self, subject: &str, count: u64) {
        let consumer = format!("expiration-{}", subject.replace('.', "-"));
        self.http.wait_for_outcome(&consumer, "ack", count).await;
    }

    /// Moves the worker's (manual) clock by `by` and waits for the round that sees it.
    pub async fn pass(&self, by: Duration) {
        self.clock.advance(by);
        self.next_round().await;
    }
}

/// A worker on the system clock.
pub async fn start(mongo: &MongoSettings, nats: &NatsSettings) -> Worker {
    start_with_clock(mongo, nats, Clock::system()).await
}

/// A worker whose scheduler reads `clock`: share one manual clock between replicas.
pub async fn start_with_clock(mongo: &MongoSettings, nats: &NatsSettings, clock: Clock) -> Worker {
    let config = service_config("expiration", mongo.clone(), nats, ());
    let application = expiration::build_with_clock(config, clock.clone()).await.expect("the worker builds");
    let http = TestHttp::new(application.port());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(application.run_until_stopped(stop.clone()));
    Worker { clock, http, stop: common::testing::StopOnDrop(stop), handle: Some(handle) }
}

/// A manual clock standing at the real time now, as the orders' `expiresAt` are.
pub fn stopped_clock() -> Clock {
    Clock::manual(bson::DateTime::now())
}

pub async fn bus(nats: &NatsSettings) -> EventBus {
    EventBus::connect(nats, "expiration-test").await.expect("a NATS connection")
}

/// Publishes `order.created` for a new order expiring `in_` from now; returns its id.
pub async fn order_expiring_in(bus: &EventBus, in_: time::Duration) -> String {
    let id = object_id_hex();
    let expires_at =
        (time::OffsetDateTime::now_utc() + in_).format(&time::format_description::well_known::Rfc3339).unwrap();
    let event = OrderCreated {
        id: id.clone(),
        version: 0,
        status: OrderStatus::Created,
        user_id: object_id_hex(),
        expires_at,
        ticket: OrderTicket { id: object_id_hex(), price: Price::from_cents(100).unwrap() },
    };
    publish_event(bus, &event).await;
    id
}

pub async fn cancel(bus: &EventBus, order_id: &str) {
    let event = OrderCancelled { id: order_id.to_owned(), version: 1, ticket: TicketRef { id: object_id_hex() } };
    publish_event(bus, &event).await;
}

pub async fn complete(bus: &EventBus, order_id: &str) {
    let event = OrderCompleted { id: order_id.to_owned(), version: 1, ticket: TicketRef { id: object_id_hex() } };
    publish_event(bus, &event).await;
}

/// Every `expiration.complete` published so far.
pub async fn expirations(bus: &EventBus) -> Vec<StoredMessage> {
    read_stream(bus, StreamName::Expiration, "expiration.complete").await
}

/// How many `expiration.complete` name `order_id`.
pub async fn expirations_of(bus: &EventBus, order_id: &str) -> usize {
    expirations(bus).await.iter().filter(|m| m.json::<ExpirationComplete>().order_id == order_id).count()
}

/// Waits until `order_id` has expired at least once, or `timeout` passes.
pub async fn wait_for_expiration(bus: &EventBus, order_id: &str, timeout: Duration) -> bool {
    common::testing::eventually(timeout, || async { (expirations_of(bus, order_id).await > 0).then_some(()) })
        .await
        .is_some()
}

/// Waits until the worker has stored a schedule for `order_id` in state `state`.
pub async fn wait_for_schedule(db: &mongodb::Database, order_id: &str, state: &str) {
    let found = common::testing::eventually(Duration::from_secs(10), || async {
        let doc: Option<bson::Document> =
            db.collection("schedules").find_one(bson::doc! {"_id": order_id}).await.ok()?;
        doc.filter(|d| d.get_str("state").ok() == Some(state)).map(drop)
    })
    .await;
    assert!(found.is_some(), "schedule {order_id} never reached {state}");
}
