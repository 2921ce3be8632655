//! No double booking. The HTTP test fires 50 reservations at once from 50 users; the store
//! test makes 50 reservations from one snapshot of the free ticket, so every one of them
//! reaches the transactional claim (none can be turned away by the early "already
//! reserved" check), proving the claim itself is what serialises them.

use futures::future::join_all;
use orders::store::Store;

use crate::helpers::{errors, spawn_app};

#[tokio::test]
async fn of_fifty_concurrent_orders_for_one_ticket_exactly_one_succeeds() {
    let app = spawn_app().await;
    let ticket = app.ticket("hot concert", 5000).await;
    let users: Vec<(String, String)> = (0..50).map(|_| app.user()).collect();

    let responses = join_all(users.iter().map(|(_, cookie)| app.post_order(cookie, &ticket))).await;

    let created = responses.iter().filter(|r| r.status() == 201).count();
    assert_eq!(created, 1);
    for response in responses.into_iter().filter(|r| r.status() != 201) {
        assert_eq!(response.status(), 400);
        assert_eq!(errors(response).await, vec![("Ticket is already reserved".into(), None)]);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(app.order_events("order.created", 2).await.len(), 1);
    assert_eq!(app.db.collection::<bson::Document>("orders").count_documents(bson::doc! {}).await.unwrap(), 1);
}

#[tokio::test]
async fn fifty_reservations_from_one_snapshot_of_a_free_ticket_give_one_order() {
    let app = spawn_app().await;
    let ticket_id = app.ticket("hot concert", 5000).await;
    let store = Store::new(&app.db, common::events::outbox::Outbox::new(&app.db));
    let snapshot = store.find_ticket(bson::oid::ObjectId::parse_str(&ticket_id).unwrap()).await.unwrap().unwrap();
    assert!(snapshot.reserved_by.is_none());
    let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(15);

    let attempts = join_all((0..50).map(|n| {
        let (store, snapshot) = (store.clone(), snapshot.clone());
        async move { store.reserve(&format!("user-{n}"), &snapshot, expires, 5).await }
    }))
    .await;

    let orders: Vec<_> = attempts
        .into_iter()
        .filter_map(|r| match r.expect("no database error") {
            orders::store::Reservation::Reserved(order) => Some(order),
            _ => None,
        })
        .collect();
    assert_eq!(orders.len(), 1);
    let replica = store.find_ticket(snapshot.id).await.unwrap().unwrap();
    assert_eq!(replica.reserved_by, Some(orders[0].id.to_hex()));
    assert_eq!(app.db.collection::<bson::Document>("outbox").count_documents(bson::doc! {}).await.unwrap(), 1);
}
