use std::collections::HashSet;

use common::events::outbox::Outbox;
use common::events::{StreamName, TicketCreated};
use common::testing::read_stream;
use serde_json::Value;

use crate::helpers::{WAIT, spawn, spawn_app_behind_nats_proxy, test_config};
use common::testing::TcpProxy;

#[tokio::test]
async fn with_nats_down_writes_succeed_and_their_events_are_published_once_it_is_back() {
    let app = spawn_app_behind_nats_proxy().await;
    let (_, cookie) = app.user();
    let proxy = app.nats_proxy.as_ref().unwrap();

    proxy.cut();
    let ready = app.get("/readyz").await;
    let ticket = app.create_ticket(&cookie, "during the outage", 10.0).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let during = read_stream(&app.bus, StreamName::Tickets, "ticket.created").await;
    proxy.restore();

    assert_eq!(ready.status(), 503);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["nats"], "unreachable");
    assert!(during.is_empty(), "nothing can be published while NATS is unreachable");
    let events = app.ticket_events("ticket.created", 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].json::<TicketCreated>().id, ticket["id"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(read_stream(&app.bus, StreamName::Tickets, "ticket.created").await.len(), 1, "published exactly once");
}

#[tokio::test]
async fn a_relay_that_died_between_publish_and_mark_publishes_nothing_twice() {
    let app = spawn_app_behind_nats_proxy().await;
    let (_, cookie) = app.user();
    let proxy = app.nats_proxy.as_ref().unwrap();
    proxy.cut();
    for n in 0..3 {
        app.create_ticket(&cookie, &format!("ticket {n}"), 10.0).await;
    }
    // A first relay published every pending record, then died before marking them sent.
    let outbox = Outbox::new(&app.db);
    let pending = outbox.pending(100).await.unwrap();
    assert_eq!(pending.len(), 3);
    for record in &pending {
        app.bus.publish_raw(&record.subject, &record.id, record.payload.clone().into()).await.unwrap();
    }

    // The app's own relay now gets through and publishes the same records again.
    proxy.restore();
    let cleared =
        common::testing::eventually(WAIT, || async { outbox.pending(100).await.unwrap().is_empty().then_some(()) })
            .await;

    assert!(cleared.is_some(), "the relay marks the records sent");
    let stored = read_stream(&app.bus, StreamName::Tickets, "ticket.created").await;
    let ids: HashSet<String> = stored.iter().filter_map(|m| m.msg_id()).collect();
    assert_eq!(stored.len(), 3, "the broker dropped the second copies by Nats-Msg-Id");
    assert_eq!(ids, pending.iter().map(|r| r.id.clone()).collect());
}

#[tokio::test]
async fn a_write_whose_instance_stopped_before_publishing_is_published_by_the_next_one() {
    // The crash window pinned: the ticket and its outbox record are committed, and the
    // instance is gone before its relay could publish (NATS unreachable for it throughout).
    let config = test_config();
    let mut first = config.clone();
    let proxy = TcpProxy::start(first.nats.url.trim_start_matches("nats://")).await.unwrap();
    first.nats.url = format!("nats://{}", proxy.addr());
    let app = spawn(first, Some(proxy)).await;
    let (_, cookie) = app.user();
    app.nats_proxy.as_ref().unwrap().cut();
    let ticket = app.create_ticket(&cookie, "committed, not published", 10.0).await;
    assert_eq!(Outbox::new(&app.db).pending(10).await.unwrap().len(), 1);
    drop(app);

    let next = spawn(config, None).await;
    let events = next.ticket_events("ticket.created", 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].json::<TicketCreated>().id, ticket["id"].as_str().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(read_stream(&next.bus, StreamName::Tickets, "ticket.created").await.len(), 1, "published exactly once");
    assert!(Outbox::new(&next.db).pending(10).await.unwrap().is_empty());
}
