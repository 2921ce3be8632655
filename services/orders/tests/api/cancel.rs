use common::events::OrderCancelled;

use std::time::{Duration, Instant};

use common::testing::fresh_nats;
use orders::store::TakenTickets;

use crate::helpers::{errors, spawn, spawn_app, test_config};

#[tokio::test]
async fn cancelling_marks_the_order_cancelled_releases_the_ticket_and_publishes() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let (_, next_buyer) = app.user();
    let ticket = app.ticket("concert", 1000).await;
    let order = app.order(&cookie, &ticket).await;
    let id = order["id"].as_str().unwrap();

    let response = app.http.delete(&format!("/api/orders/{id}"), Some(&cookie)).await;

    assert_eq!(response.status(), 204);
    let cancelled = app.get_order(&cookie, id).await;
    assert_eq!((cancelled["status"].as_str(), cancelled["version"].as_i64()), (Some("cancelled"), Some(1)));
    let events = app.order_events("order.cancelled", 1).await;
    let event: OrderCancelled = events[0].json();
    assert_eq!((event.id.as_str(), event.version, event.ticket.id.as_str()), (id, 1, ticket.as_str()));
    assert_eq!(app.post_order(&next_buyer, &ticket).await.status(), 201, "the ticket can be reserved again");
}

#[tokio::test]
async fn cancelling_a_cancelled_order_is_a_204_without_a_new_event() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.ticket("concert", 1000).await;
    let id = app.order(&cookie, &ticket).await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/orders/{id}");
    assert_eq!(app.http.delete(&path, Some(&cookie)).await.status(), 204);

    let again = app.http.delete(&path, Some(&cookie)).await;

    assert_eq!(again.status(), 204);
    assert_eq!(app.get_order(&cookie, &id).await["version"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.order_events("order.cancelled", 2).await.len(), 1);
}

#[tokio::test]
async fn only_the_owner_can_cancel_and_unknown_orders_are_404() {
    let app = spawn_app().await;
    let (_, owner) = app.user();
    let (_, other) = app.user();
    let ticket = app.ticket("concert", 1000).await;
    let id = app.order(&owner, &ticket).await["id"].as_str().unwrap().to_owned();

    let forbidden = app.http.delete(&format!("/api/orders/{id}"), Some(&other)).await;
    let unknown = app.http.delete("/api/orders/0123456789abcdef01234567", Some(&owner)).await;
    let anonymous = app.http.delete(&format!("/api/orders/{id}"), None).await;

    assert_eq!(forbidden.status(), 403);
    assert_eq!(unknown.status(), 404);
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.get_order(&owner, &id).await["status"], "created");
}

#[tokio::test]
async fn a_paid_order_cannot_be_cancelled() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.ticket("concert", 1000).await;
    let id = app.order(&cookie, &ticket).await["id"].as_str().unwrap().to_owned();
    app.pay(&id).await;
    app.wait_for_status(&cookie, &id, "complete").await;

    let response = app.http.delete(&format!("/api/orders/{id}"), Some(&cookie)).await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Cannot cancel a paid order".into(), None)]);
    assert_eq!(app.get_order(&cookie, &id).await["status"], "complete");
}

#[tokio::test]
async fn a_ticket_freed_through_another_replica_is_refused_there_for_at_most_a_second_then_reserved() {
    let config = test_config(fresh_nats());
    let (here, there) = (spawn(config.clone()).await, spawn(config).await);
    let (_, first) = here.user();
    let (_, second) = here.user();
    let ticket = here.ticket("concert", 1000).await;
    let id = here.order(&first, &ticket).await["id"].as_str().unwrap().to_owned();
    let refused = there.post_order(&second, &ticket).await;
    assert_eq!(errors(refused).await, vec![("Ticket is already reserved".into(), None)]);
    let remembered = Instant::now();

    assert_eq!(here.http.delete(&format!("/api/orders/{id}"), Some(&first)).await.status(), 204);

    // The replica that read it held remembers that for a second: it refuses, never the
    // opposite, and then reads again.
    assert_eq!(there.post_order(&second, &ticket).await.status(), 400, "still remembered there");
    let reserved = loop {
        let response = there.post_order(&second, &ticket).await;
        if response.status() == 201 || remembered.elapsed() > TakenTickets::KEPT * 5 {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reserved.status(), 201, "reserved once the memory lapsed");
    assert!(remembered.elapsed() >= TakenTickets::KEPT);
}
