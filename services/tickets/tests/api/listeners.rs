use common::events::listener::dead_letter_reason;
use common::events::{StreamName, TicketUpdated};
use common::testing::{object_id_hex, wait_for_messages};

use crate::helpers::{WAIT, order_cancelled, order_created, spawn_app};

#[tokio::test]
async fn order_created_reserves_the_ticket_and_publishes_ticket_updated() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let id = app.create_ticket(&cookie, "concert", 10.0).await["id"].as_str().unwrap().to_owned();
    let order_id = object_id_hex();

    app.publish(&order_created(&order_id, &id)).await;

    let ticket = app.wait_for_version(&id, 1).await;
    assert_eq!(ticket["orderId"], order_id.as_str());
    let events = app.ticket_events("ticket.updated", 1).await;
    let event: TicketUpdated = events[0].json();
    assert_eq!((event.version, event.order_id.as_deref()), (1, Some(order_id.as_str())));
}

#[tokio::test]
async fn order_cancelled_for_the_holding_order_releases_the_ticket() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let id = app.create_ticket(&cookie, "concert", 10.0).await["id"].as_str().unwrap().to_owned();
    let order_id = object_id_hex();
    app.publish(&order_created(&order_id, &id)).await;
    app.wait_for_version(&id, 1).await;

    app.publish(&order_cancelled(&order_id, &id)).await;

    let ticket = app.wait_for_version(&id, 2).await;
    assert!(ticket.get("orderId").is_none());
    let events = app.ticket_events("ticket.updated", 2).await;
    let released: TicketUpdated = events[1].json();
    assert_eq!((released.version, released.order_id), (2, None));
}

#[tokio::test]
async fn order_cancelled_for_another_order_leaves_the_reservation_alone() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let id = app.create_ticket(&cookie, "concert", 10.0).await["id"].as_str().unwrap().to_owned();
    let holder = object_id_hex();
    app.publish(&order_created(&holder, &id)).await;
    app.wait_for_version(&id, 1).await;

    app.publish(&order_cancelled(&object_id_hex(), &id)).await;
    app.wait_for_outcome("order.cancelled", "ack", 1).await;

    let ticket = app.ticket(&id).await;
    assert_eq!((ticket["version"].as_i64(), ticket["orderId"].as_str()), (Some(1), Some(holder.as_str())));
    assert_eq!(app.ticket_events("ticket.updated", 2).await.len(), 1, "no event for an ignored cancellation");
}

#[tokio::test]
async fn a_redelivered_order_created_is_harmless() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let id = app.create_ticket(&cookie, "concert", 10.0).await["id"].as_str().unwrap().to_owned();
    let event = order_created(&object_id_hex(), &id);

    app.publish(&event).await;
    app.publish(&event).await; // a new message id: the broker cannot deduplicate it
    app.wait_for_outcome("order.created", "ack", 2).await;

    assert_eq!(app.ticket(&id).await["version"], 1);
    assert_eq!(app.ticket_events("ticket.updated", 2).await.len(), 1);
}

#[tokio::test]
async fn a_cancellation_that_overtakes_its_creation_is_not_lost() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let id = app.create_ticket(&cookie, "concert", 10.0).await["id"].as_str().unwrap().to_owned();
    let order_id = object_id_hex();

    app.publish(&order_cancelled(&order_id, &id)).await;
    app.wait_for_outcome("order.cancelled", "ack", 1).await;
    app.publish(&order_created(&order_id, &id)).await;
    app.wait_for_outcome("order.created", "ack", 1).await;

    let ticket = app.ticket(&id).await;
    assert_eq!(ticket["version"], 0, "a cancelled order never reserves: {ticket}");
    assert!(ticket.get("orderId").is_none());
}

#[tokio::test]
async fn a_reservation_for_a_second_order_waits_until_the_first_is_cancelled() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let id = app.create_ticket(&cookie, "concert", 10.0).await["id"].as_str().unwrap().to_owned();
    let (first, second) = (object_id_hex(), object_id_hex());
    app.publish(&order_created(&first, &id)).await;
    app.wait_for_version(&id, 1).await;

    app.publish(&order_created(&second, &id)).await;
    app.wait_for_outcome("order.created", "retry", 1).await;
    app.publish(&order_cancelled(&first, &id)).await;

    let ticket = app.wait_for_version(&id, 3).await;
    assert_eq!(ticket["orderId"], second.as_str());
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_and_the_next_one_still_handled() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let id = app.create_ticket(&cookie, "concert", 10.0).await["id"].as_str().unwrap().to_owned();

    app.bus.ensure_stream(StreamName::Orders).await.unwrap();
    app.bus.publish_raw("order.created", "poison-1", b"{not json".as_slice().into()).await.unwrap();
    app.publish(&order_created(&object_id_hex(), &id)).await;

    app.wait_for_version(&id, 1).await;
    let dead = wait_for_messages(&app.bus, StreamName::DeadLetter, "deadletter.>", 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].subject, "deadletter.tickets.order.created");
    assert_eq!(dead_letter_reason(&dead[0].headers).as_deref(), Some("undecodable"));
    assert_eq!(dead[0].headers.get("Original-Msg-Id").map(|v| v.as_str()), Some("poison-1"));
    assert!(dead[0].headers.get("Original-Subject").unwrap().as_str().ends_with("order.created"));
    assert_eq!(&dead[0].payload[..], b"{not json");
    let metrics = app.metrics().await;
    assert!(
        metrics.lines().any(|l| l.starts_with("events_dead_lettered_total{")
            && l.contains("outcome=\"undecodable\"")
            && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_dead_lettered_after_bounded_attempts() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let id = app.create_ticket(&cookie, "concert", 10.0).await["id"].as_str().unwrap().to_owned();
    app.publish(&order_created(&object_id_hex(), &id)).await;
    app.wait_for_version(&id, 1).await;

    // Held by the first order, never cancelled: the fast test policy gives up after 4.
    app.publish(&order_created(&object_id_hex(), &id)).await;

    let dead = wait_for_messages(&app.bus, StreamName::DeadLetter, "deadletter.>", 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead_letter_reason(&dead[0].headers).as_deref(), Some("attempts_exhausted"));
    assert_eq!(dead[0].headers.get("Original-Attempts").map(|v| v.as_str()), Some("4"));
}

#[tokio::test]
async fn an_order_for_an_unknown_ticket_is_dead_lettered_at_once() {
    let app = spawn_app().await;

    app.publish(&order_created(&object_id_hex(), &object_id_hex())).await;

    let dead = wait_for_messages(&app.bus, StreamName::DeadLetter, "deadletter.>", 1, WAIT).await;
    assert_eq!(dead_letter_reason(&dead[0].headers).as_deref(), Some("poison"));
    assert_eq!(dead[0].headers.get("Original-Attempts").map(|v| v.as_str()), Some("1"));
}

#[tokio::test]
async fn a_changed_consumer_configuration_is_applied_at_start_up() {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    let config = crate::helpers::test_config();
    let bus =
        common::events::EventBus::connect(&common::testing::as_harness(&config.nats), "old-deployment").await.unwrap();
    bus.ensure_stream(StreamName::Orders).await.unwrap();
    let ns = bus.namespace().clone();
    let stream = bus.jetstream().get_stream(ns.stream(StreamName::Orders)).await.unwrap();
    let durable = ns.name("tickets-order-created");
    // An older deployment declared the consumer with other settings.
    stream
        .create_consumer(pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: ns.subject("order.created"),
            ack_policy: AckPolicy::Explicit,
            ack_wait: std::time::Duration::from_secs(5),
            max_ack_pending: 7,
            ..Default::default()
        })
        .await
        .unwrap();

    let _app = crate::helpers::spawn(config, None).await;

    let applied = common::testing::eventually(WAIT, || async {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream.get_consumer(&durable).await.ok()?;
        let info = consumer.info().await.ok()?;
        (info.config.max_ack_pending == 1024).then_some(info.config.ack_wait)
    })
    .await;
    assert_eq!(applied, Some(std::time::Duration::from_secs(30)), "handler timeout (20 s) + 10 s");
}
