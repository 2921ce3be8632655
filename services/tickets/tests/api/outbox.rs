use std::collections::HashSet;
use std::time::Duration;

use common::events::outbox::Outbox;
use common::events::{StreamName, TicketCreated};
use common::testing::read_stream;
use serde_json::Value;

use crate::helpers::{WAIT, spawn, spawn_app_behind_nats_proxy, test_config};

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
    let (nats, proxy) = common::testing::nats_behind_proxy(&first.nats).await;
    first.nats = nats;
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
    let outbox = Outbox::new(&next.db);
    let marked =
        common::testing::eventually(WAIT, || async { outbox.pending(10).await.unwrap().is_empty().then_some(()) });
    assert!(marked.await.is_some(), "marked sent");
}

#[tokio::test]
async fn sent_outbox_records_and_old_marks_are_pruned_after_the_retention_but_pending_records_stay() {
    let mut config = crate::helpers::test_config();
    config.mongo.retention =
        common::retention::RetentionSettings { keep: Duration::from_secs(3600), interval: Duration::from_millis(100) };
    let app = crate::helpers::spawn(config, None).await;
    let old = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 2 * 3600 * 1000);
    let outbox = app.db.collection::<bson::Document>("outbox");
    let marks = app.db.collection::<bson::Document>("order_marks");
    outbox
        .insert_many([
            bson::doc! {"_id": "sent-long-ago", "subject": "ticket.created", "payload": "{}", "createdAt": old, "sentAt": old},
            bson::doc! {"_id": "sent-now", "subject": "ticket.created", "payload": "{}", "createdAt": old, "sentAt": bson::DateTime::now()},
        ])
        .await
        .unwrap();
    marks
        .insert_many([
            bson::doc! {"_id": "old-order", "cancelled": true, "updatedAt": old},
            bson::doc! {"_id": "recent-order", "cancelled": true, "updatedAt": bson::DateTime::now()},
        ])
        .await
        .unwrap();

    let pruned = common::testing::eventually(WAIT, || async {
        let left = outbox.count_documents(bson::doc! {"_id": "sent-long-ago"}).await.unwrap()
            + marks.count_documents(bson::doc! {"_id": "old-order"}).await.unwrap();
        (left == 0).then_some(())
    })
    .await;

    assert!(pruned.is_some(), "what is past the retention is deleted");
    assert_eq!(outbox.count_documents(bson::doc! {"_id": "sent-now"}).await.unwrap(), 1);
    assert_eq!(marks.count_documents(bson::doc! {"_id": "recent-order"}).await.unwrap(), 1);
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"documents_pruned_total{collection="outbox"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"documents_pruned_total{collection="order_marks"} 1"#), "{metrics}");
}

#[tokio::test]
async fn a_pending_record_is_never_pruned_however_old() {
    let mut config = crate::helpers::test_config();
    config.mongo.retention =
        common::retention::RetentionSettings { keep: Duration::from_secs(1), interval: Duration::from_millis(50) };
    let app = crate::helpers::spawn_app_behind_nats_proxy_with(config).await;
    app.nats_proxy.as_ref().unwrap().cut();
    let (_, cookie) = app.user();
    let ticket = app.create_ticket(&cookie, "kept", 10.0).await;

    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let pending =
        app.db.collection::<bson::Document>("outbox").count_documents(bson::doc! {"sentAt": null}).await.unwrap();
    assert_eq!(pending, 1, "the unsent event of {} waits for NATS, however long", ticket["id"]);
    app.nats_proxy.as_ref().unwrap().restore();
    assert_eq!(app.ticket_events("ticket.created", 1).await.len(), 1);
}

#[tokio::test]
async fn a_record_another_replica_committed_is_published_by_this_ones_poll_and_marked_sent() {
    // The relay publishes what its own writers hand over without reading it back; what
    // another replica wrote reaches it only through its periodic read of the collection.
    let app = crate::helpers::spawn_app().await;
    let event = TicketCreated {
        id: bson::oid::ObjectId::new().to_hex(),
        version: 0,
        title: "written elsewhere".into(),
        price: common::money::Price::from_cents(1000).unwrap(),
        user_id: common::testing::object_id_hex(),
    };
    let record = common::events::outbox::OutboxRecord {
        id: common::events::new_event_id(),
        subject: "ticket.created".into(),
        payload: serde_json::to_string(&event).unwrap(),
        created_at: bson::DateTime::now(),
        sent_at: None,
        traceparent: None,
    };
    app.db.collection::<common::events::outbox::OutboxRecord>("outbox").insert_one(&record).await.unwrap();

    let events = app.ticket_events("ticket.created", 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].msg_id().as_deref(), Some(record.id.as_str()));
    assert_eq!(events[0].json::<TicketCreated>(), event);
    let outbox = Outbox::new(&app.db);
    let marked =
        common::testing::eventually(WAIT, || async { outbox.pending(10).await.unwrap().is_empty().then_some(()) });
    assert!(marked.await.is_some(), "marked sent");
}
