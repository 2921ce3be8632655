//! Starting expiration workers on a shared database and namespace, and feeding them orders.

use std::time::Duration;

use common::config::MongoSettings;
use common::events::{
    EventBus, ExpirationComplete, NatsSettings, OrderCancelled, OrderCompleted, OrderCreated, OrderStatus, OrderTicket,
    StreamName, TicketRef,
};
use common::money::Price;
use common::shutdown::CancellationToken;
use common::testing::{StoredMessage, object_id_hex, publish_event, read_stream, service_config};

pub struct Worker {
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
}

pub async fn start(mongo: &MongoSettings, nats: &NatsSettings) -> Worker {
    let config = service_config("expiration", mongo.clone(), nats, ());
    let application = expiration::build(config).await.expect("the worker builds");
    let stop = CancellationToken::new();
    let handle = tokio::spawn(application.run_until_stopped(stop.clone()));
    Worker { stop: common::testing::StopOnDrop(stop), handle: Some(handle) }
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
