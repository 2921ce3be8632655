use common::events::{OrderCreated, OrderStatus, OrderTicket, TicketCreated};
use common::money::Price;
use common::testing::{object_id_hex, test_database, unique_name};
use futures::future::join_all;
use query::store::{Store, TicketStatus, TicketView};

use crate::helpers::{History, spawn_app};

#[tokio::test]
async fn a_ticket_goes_from_available_to_reserved_to_sold_with_its_payment_joined() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let buyer = object_id_hex();

    let ticket = history.ticket("Rock Concert", 2050).await;
    let created = app.wait_for_ticket(&ticket, |t| t["status"] == "available").await;
    assert_eq!((created["title"].as_str(), created["price"].as_f64()), (Some("Rock Concert"), Some(20.5)));
    assert!(created.get("orderId").is_none());

    let order = history.order(&buyer, &ticket).await;
    let reserved = app.wait_for_ticket(&ticket, |t| t["status"] == "reserved").await;
    assert_eq!(reserved["orderId"], order.as_str());

    let payment = history.pay(&order).await;
    history.complete(&order, &ticket).await;
    app.wait_for_ticket(&ticket, |t| t["status"] == "sold").await;
    // The payment arrives on its own stream, independently of the order's completion.
    let joined = app.wait_for_order(&buyer, &order, |o| o["status"] == "complete" && o["payment"].is_object()).await;
    assert_eq!(joined["ticket"]["title"], "Rock Concert");
    assert_eq!(joined["ticket"]["price"], 20.5);
    assert_eq!(joined["payment"]["id"], payment.as_str());
    assert_eq!(joined["payment"]["chargeId"], format!("ch_{payment}"));
}

#[tokio::test]
async fn a_cancelled_order_makes_its_ticket_available_again() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let ticket = history.ticket("show", 100).await;
    let order = history.order(&object_id_hex(), &ticket).await;
    app.wait_for_ticket(&ticket, |t| t["status"] == "reserved").await;

    history.cancel(&order, &ticket).await;

    let available = app.wait_for_ticket(&ticket, |t| t["status"] == "available").await;
    assert!(available.get("orderId").is_none());
}

#[tokio::test]
async fn ticket_updates_apply_in_version_order_whatever_the_arrival_order() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let ticket = history.ticket("v0", 100).await;
    app.wait_for_ticket(&ticket, |_| true).await;

    history.ticket_updated(&ticket, 2, "v2").await;
    history.ticket_updated(&ticket, 1, "v1").await;

    let updated = app.wait_for_ticket(&ticket, |t| t["version"] == 2).await;
    assert_eq!((updated["title"].as_str(), updated["price"].as_f64()), (Some("v2"), Some(9.99)));
}

#[tokio::test]
async fn duplicates_are_harmless() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let buyer = object_id_hex();
    let ticket = history.ticket("dup", 100).await;
    history.ticket_with_id(&ticket, "dup", 100).await;
    let order = history.order(&buyer, &ticket).await;
    history.order_with_id(&order, &buyer, &ticket).await;
    history.ticket_updated(&ticket, 1, "v1").await;
    history.ticket_updated(&ticket, 1, "v1").await; // the same event, delivered twice
    history.complete(&order, &ticket).await;
    history.complete(&order, &ticket).await;

    app.wait_for_ticket(&ticket, |t| t["status"] == "sold" && t["version"] == 1).await;
    app.http.wait_for_outcome("query-order-completed", "ack", 2).await;
    app.http.wait_for_outcome("query-ticket-updated", "ack", 2).await;
    // A redelivered creation is a no-op that is acknowledged, not a failing transaction.
    app.http.wait_for_outcome("query-order-created", "ack", 2).await;
    app.http.wait_for_outcome("query-ticket-created", "ack", 2).await;

    let orders = app.orders_of(&buyer).await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["version"], 1);
    assert_eq!(app.ticket(&ticket).await.unwrap()["title"], "v1");
}

#[tokio::test]
async fn an_order_and_a_payment_that_arrive_before_their_ticket_and_order_are_kept() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let buyer = object_id_hex();
    let (ticket, order) = (object_id_hex(), object_id_hex());

    let payment = history.pay(&order).await;
    history.order_with_id(&order, &buyer, &ticket).await;
    app.wait_for_order(&buyer, &order, |o| o["payment"]["id"] == payment.as_str()).await;
    // The ticket arrives last: it is reserved from the start.
    history.ticket_with_id(&ticket, "late", 100).await;

    let reserved = app.wait_for_ticket(&ticket, |t| t["status"] == "reserved").await;
    assert_eq!(reserved["orderId"], order.as_str());
}

#[tokio::test]
async fn an_update_seen_before_its_ticket_creates_it_and_the_late_creation_is_ignored() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let buyer = object_id_hex();
    let ticket = object_id_hex();
    history.order(&buyer, &ticket).await;
    history.ticket_updated(&ticket, 1, "renamed").await;

    let seen = app.wait_for_ticket(&ticket, |t| t["version"] == 1 && t["status"] == "reserved").await;
    assert_eq!((seen["title"].as_str(), seen["status"].as_str()), (Some("renamed"), Some("reserved")));

    history.ticket_with_id(&ticket, "original", 100).await;
    app.http.wait_for_outcome("query-ticket-created", "ack", 1).await;
    let after = app.ticket(&ticket).await.unwrap();
    assert_eq!((after["title"].as_str(), after["version"].as_i64()), (Some("renamed"), Some(1)));
    assert_eq!(after["price"].as_f64(), Some(9.99));
}

/// The store's event handling, called directly: every event of a ticket's sale at once,
/// and the same events again, in an order that differs per ticket.
#[tokio::test]
async fn a_ticket_s_events_applied_all_at_once_and_twice_leave_the_status_they_add_up_to() {
    let store = Store::new(&test_database(&unique_name("query_race")).await);
    store.ensure_indexes().await.unwrap();
    for round in 0..6 {
        let ticket = object_id_hex();
        let events: Vec<OrderCreated> = (0..8).map(|_| order_of(&ticket)).collect();
        let (last, cancelled) = events.split_last().unwrap();
        let last = &last.id;
        let creation = creation_of(&ticket);
        let mut work: Vec<futures::future::BoxFuture<'_, ()>> = Vec::new();
        for _ in 0..2 {
            work.push(Box::pin(async { store.ticket_state((&creation).into()).await.map(drop).unwrap() }));
            for event in &events {
                work.push(Box::pin(async { store.order_created(event).await.unwrap() }));
            }
            for event in cancelled {
                work.push(Box::pin(async {
                    store.order_status(&event.id, &ticket, 1, OrderStatus::Cancelled).await.map(drop).unwrap();
                }));
            }
        }
        work.rotate_left(round * 3);
        join_all(work).await;

        let view = store.ticket(&ticket).await.unwrap().expect("the ticket");
        assert_eq!((view.status, view.order_id.as_deref()), (TicketStatus::Reserved, Some(last.as_str())));

        store.order_status(last, &ticket, 1, OrderStatus::Complete).await.unwrap();
        let view = store.ticket(&ticket).await.unwrap().expect("the ticket");
        assert_eq!((view.status, view.order_id.as_deref()), (TicketStatus::Sold, Some(last.as_str())));
    }
}

#[tokio::test]
async fn a_ticket_written_by_the_earlier_read_model_takes_statuses_after_the_upgrade() {
    let db = test_database(&unique_name("query_upgrade")).await;
    let store = Store::new(&db);
    let ticket = object_id_hex();
    // As the earlier version wrote it: no `statusStamp`.
    db.collection::<bson::Document>("tickets")
        .insert_one(bson::doc! {
            "_id": &ticket, "title": "old", "words": ["old"], "priceCents": 100_i64,
            "userId": object_id_hex(), "version": 0_i64, "status": "available",
        })
        .await
        .unwrap();

    assert_eq!(store.upgrade().await.unwrap(), 1);
    assert_eq!(store.upgrade().await.unwrap(), 0, "nothing left to upgrade");
    let order = order_of(&ticket);
    store.order_created(&order).await.unwrap();

    let view = store.ticket(&ticket).await.unwrap().expect("the ticket");
    assert_eq!((view.status, view.order_id.as_deref()), (TicketStatus::Reserved, Some(order.id.as_str())));
}

fn order_of(ticket: &str) -> OrderCreated {
    OrderCreated {
        id: object_id_hex(),
        version: 0,
        status: OrderStatus::Created,
        user_id: object_id_hex(),
        expires_at: "2030-01-01T00:00:00Z".into(),
        ticket: OrderTicket { id: ticket.into(), price: Price::from_cents(100).unwrap() },
    }
}

fn creation_of(ticket: &str) -> TicketCreated {
    let price = Price::from_cents(100).unwrap();
    TicketCreated { id: ticket.into(), version: 0, title: "seat".into(), price, user_id: object_id_hex() }
}

#[tokio::test]
async fn a_ticket_inserted_without_its_status_gets_it_when_its_creation_is_delivered_again() {
    let db = test_database(&unique_name("query_half")).await;
    let store = Store::new(&db);
    let ticket = object_id_hex();
    let order = order_of(&ticket);
    store.order_created(&order).await.unwrap();
    // The first delivery of the creation inserted the ticket, then failed before its
    // status was written.
    let creation = creation_of(&ticket);
    db.collection::<TicketView>("tickets").insert_one(TicketView::from(&creation)).await.unwrap();
    assert_eq!(store.ticket(&ticket).await.unwrap().unwrap().status, TicketStatus::Available);

    let outcome = store.ticket_state((&creation).into()).await.unwrap();

    assert_eq!(outcome, common::events::versioning::ReplicaOutcome::Stale);
    let view = store.ticket(&ticket).await.unwrap().unwrap();
    assert_eq!((view.status, view.order_id.as_deref()), (TicketStatus::Reserved, Some(order.id.as_str())));
}

#[tokio::test]
async fn a_status_derived_from_earlier_orders_never_overwrites_a_later_one() {
    let store = Store::new(&test_database(&unique_name("query_stamp")).await);
    store.ensure_indexes().await.unwrap();
    let ticket = object_id_hex();
    store.ticket_state((&creation_of(&ticket)).into()).await.unwrap();
    let first = order_of(&ticket);
    store.order_created(&first).await.unwrap();
    let reserved = store.ticket_orders(&ticket).await.unwrap().unwrap();

    // Within one document: a handler's late write of an earlier state.
    store.order_status(&first.id, &ticket, 1, OrderStatus::Cancelled).await.unwrap();
    store.write_status(&reserved).await.unwrap();
    assert_eq!(store.ticket(&ticket).await.unwrap().unwrap().status, TicketStatus::Available);

    // Across a rebuild: a handler that recorded before the drop (its document counted
    // many redeliveries) writes after the replay has inserted the ticket again.
    for _ in 0..20 {
        store.order_created(&first).await.unwrap();
    }
    let before_drop = store.ticket_orders(&ticket).await.unwrap().unwrap();
    assert!(before_drop.changes > 20);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.drop_all().await.unwrap();
    store.ticket_state((&creation_of(&ticket)).into()).await.unwrap();
    let replayed = order_of(&ticket);
    store.order_created(&replayed).await.unwrap();
    store.write_status(&before_drop).await.unwrap();

    let view = store.ticket(&ticket).await.unwrap().unwrap();
    assert_eq!((view.status, view.order_id.as_deref()), (TicketStatus::Reserved, Some(replayed.id.as_str())));
}
