use std::time::Duration;

use common::events::ExpirationComplete;
use common::testing::{fresh_mongo, fresh_nats, test_database};

use crate::helpers::{
    bus, cancel, complete, expirations, expirations_of, order_expiring_in, start, start_with_clock, stopped_clock,
    wait_for_expiration, wait_for_schedule,
};

const RESERVATION: time::Duration = time::Duration::minutes(15);

#[tokio::test]
async fn an_order_expires_at_its_expires_at_and_not_before() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let worker = start_with_clock(&mongo, &nats, stopped_clock()).await;
    let bus = bus(&nats).await;
    let db = test_database(&mongo.database).await;
    let order = order_expiring_in(&bus, RESERVATION).await;
    wait_for_schedule(&db, &order, "pending").await;

    worker.pass(Duration::from_secs(15 * 60 - 5)).await;
    assert_eq!(expirations_of(&bus, &order).await, 0, "five seconds early");

    worker.pass(Duration::from_secs(10)).await;
    assert!(wait_for_expiration(&bus, &order, Duration::from_secs(5)).await);
    assert_eq!(expirations_of(&bus, &order).await, 1);
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
    let worker = start_with_clock(&mongo, &nats, stopped_clock()).await;
    let bus = bus(&nats).await;
    let db = test_database(&mongo.database).await;
    let cancelled = order_expiring_in(&bus, RESERVATION).await;
    let completed = order_expiring_in(&bus, RESERVATION).await;
    wait_for_schedule(&db, &cancelled, "pending").await;
    wait_for_schedule(&db, &completed, "pending").await;

    cancel(&bus, &cancelled).await;
    complete(&bus, &completed).await;
    wait_for_schedule(&db, &cancelled, "skipped").await;
    wait_for_schedule(&db, &completed, "skipped").await;
    worker.pass(Duration::from_secs(60 * 60)).await;

    assert!(expirations(&bus).await.is_empty());
}

#[tokio::test]
async fn a_cancellation_that_overtakes_the_creation_still_prevents_the_expiration() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let worker = start(&mongo, &nats).await;
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
    worker.handled("order.created", 1).await;
    worker.next_round().await;

    assert_eq!(expirations_of(&bus, &order).await, 0);
    wait_for_schedule(&db, &order, "skipped").await;
}

#[tokio::test]
async fn a_schedule_survives_a_restart_of_the_worker_and_fires_once() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let bus = bus(&nats).await;
    let db = test_database(&mongo.database).await;
    let clock = stopped_clock();
    let first = start_with_clock(&mongo, &nats, clock.clone()).await;
    let order = order_expiring_in(&bus, RESERVATION).await;
    wait_for_schedule(&db, &order, "pending").await;

    first.stop().await;
    clock.advance(Duration::from_secs(16 * 60)); // it falls due while nobody runs
    let second = start_with_clock(&mongo, &nats, clock).await;

    assert!(wait_for_expiration(&bus, &order, Duration::from_secs(10)).await);
    second.next_round().await;
    assert_eq!(expirations_of(&bus, &order).await, 1);
}

#[tokio::test]
async fn two_replicas_fire_each_order_exactly_once() {
    let (mongo, nats) = (fresh_mongo("expiration"), fresh_nats());
    let clock = stopped_clock();
    let a = start_with_clock(&mongo, &nats, clock.clone()).await;
    let b = start_with_clock(&mongo, &nats, clock.clone()).await;
    let bus = bus(&nats).await;
    let db = test_database(&mongo.database).await;
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(order_expiring_in(&bus, RESERVATION).await);
    }
    for order in &orders {
        wait_for_schedule(&db, order, "pending").await;
    }

    clock.advance(Duration::from_secs(16 * 60)); // both replicas wake at once
    let all = common::testing::eventually(Duration::from_secs(15), || async {
        (expirations(&bus).await.len() >= orders.len()).then_some(())
    })
    .await;
    assert!(all.is_some(), "every order expires");
    a.next_round().await;
    b.next_round().await;
    let fired = expirations(&bus).await;
    for order in &orders {
        let times = fired.iter().filter(|m| m.json::<ExpirationComplete>().order_id == *order).count();
        assert_eq!(times, 1, "order {order}");
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
