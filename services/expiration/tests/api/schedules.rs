use std::time::Duration;

use common::testing::{fresh_mongo, fresh_nats, test_database};

use crate::helpers::{
    bus, cancel, complete, expirations, expirations_of, order_expiring_in, start, wait_for_expiration,
    wait_for_schedule,
};

#[tokio::test]
async fn an_order_expires_at_its_expires_at_and_not_before() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let _worker = start(&mongo, &nats).await;
    let bus = bus(&nats).await;
    let published = time::OffsetDateTime::now_utc();

    let order = order_expiring_in(&bus, time::Duration::milliseconds(1500)).await;

    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(expirations_of(&bus, &order).await, 0, "too early");
    assert!(wait_for_expiration(&bus, &order, Duration::from_secs(10)).await);
    let fired_after = time::OffsetDateTime::now_utc() - published;
    assert!(fired_after >= time::Duration::milliseconds(1500), "fired after {fired_after}");
    assert_eq!(expirations_of(&bus, &order).await, 1);
    let db = test_database(&mongo.database).await;
    wait_for_schedule(&db, &order, "fired").await;
}

#[tokio::test]
async fn an_order_already_past_its_expiry_expires_at_once() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let _worker = start(&mongo, &nats).await;
    let bus = bus(&nats).await;

    let order = order_expiring_in(&bus, time::Duration::seconds(-5)).await;

    assert!(wait_for_expiration(&bus, &order, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_cancelled_or_completed_order_never_expires() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let _worker = start(&mongo, &nats).await;
    let bus = bus(&nats).await;
    let db = test_database(&mongo.database).await;
    let cancelled = order_expiring_in(&bus, time::Duration::seconds(2)).await;
    let completed = order_expiring_in(&bus, time::Duration::seconds(2)).await;
    wait_for_schedule(&db, &cancelled, "pending").await;
    wait_for_schedule(&db, &completed, "pending").await;

    cancel(&bus, &cancelled).await;
    complete(&bus, &completed).await;
    wait_for_schedule(&db, &cancelled, "skipped").await;
    wait_for_schedule(&db, &completed, "skipped").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert!(expirations(&bus).await.is_empty());
}

#[tokio::test]
async fn a_cancellation_that_overtakes_the_creation_still_prevents_the_expiration() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let _worker = start(&mongo, &nats).await;
    let bus = bus(&nats).await;
    let db = test_database(&mongo.database).await;
    let order = common::testing::object_id_hex();

    cancel(&bus, &order).await;
    wait_for_schedule(&db, &order, "skipped").await;
    // The order.created for the same order arrives late, already due.
    let event = common::events::OrderCreated {
        id: order.clone(),
        version: 0,
        status: common::events::OrderStatus::Created,
        user_id: common::testing::object_id_hex(),
        expires_at: "2020-01-01T00:00:00Z".into(),
        ticket: common::events::OrderTicket {
            id: common::testing::object_id_hex(),
            price: common::money::Price::from_cents(100).unwrap(),
        },
    };
    common::testing::publish_event(&bus, &event).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(expirations_of(&bus, &order).await, 0);
    wait_for_schedule(&db, &order, "skipped").await;
}

#[tokio::test]
async fn a_schedule_survives_a_restart_of_the_worker_and_fires_once() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let bus = bus(&nats).await;
    let db = test_database(&mongo.database).await;
    let first = start(&mongo, &nats).await;
    let order = order_expiring_in(&bus, time::Duration::seconds(2)).await;
    wait_for_schedule(&db, &order, "pending").await;

    first.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await; // it falls due while nobody runs
    let _second = start(&mongo, &nats).await;

    assert!(wait_for_expiration(&bus, &order, Duration::from_secs(10)).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(expirations_of(&bus, &order).await, 1);
}

#[tokio::test]
async fn two_replicas_fire_each_order_exactly_once() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let _a = start(&mongo, &nats).await;
    let _b = start(&mongo, &nats).await;
    let bus = bus(&nats).await;

    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(order_expiring_in(&bus, time::Duration::milliseconds(1200)).await);
    }

    let all = common::testing::eventually(Duration::from_secs(15), || async {
        (expirations(&bus).await.len() >= orders.len()).then_some(())
    })
    .await;
    assert!(all.is_some(), "every order expires");
    tokio::time::sleep(Duration::from_secs(2)).await;
    for order in &orders {
        assert_eq!(expirations_of(&bus, order).await, 1, "order {order}");
    }
}

#[tokio::test]
async fn a_malformed_expiry_is_dead_lettered() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let _worker = start(&mongo, &nats).await;
    let bus = bus(&nats).await;
    let event = common::events::OrderCreated {
        id: common::testing::object_id_hex(),
        version: 0,
        status: common::events::OrderStatus::Created,
        user_id: common::testing::object_id_hex(),
        expires_at: "tomorrow-ish".into(),
        ticket: common::events::OrderTicket {
            id: common::testing::object_id_hex(),
            price: common::money::Price::from_cents(100).unwrap(),
        },
    };

    common::testing::publish_event(&bus, &event).await;

    let dead = common::testing::wait_for_messages(
        &bus,
        common::events::StreamName::DeadLetter,
        "deadletter.>",
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(common::events::listener::dead_letter_reason(&dead[0].headers).as_deref(), Some("poison"));
}
