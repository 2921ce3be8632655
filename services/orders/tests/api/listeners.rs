use common::events::{OrderCompleted, TicketUpdated};
use common::money::Price;
use common::testing::object_id_hex;

use crate::helpers::spawn_app;

fn updated(id: &str, version: i64, title: &str) -> TicketUpdated {
    TicketUpdated {
        id: id.to_owned(),
        version,
        title: title.to_owned(),
        price: Price::from_cents(1500).unwrap(),
        user_id: object_id_hex(),
        order_id: None,
    }
}

#[tokio::test]
async fn ticket_created_creates_the_replica() {
    let app = spawn_app().await;

    let id = app.ticket("concert", 1234).await;

    let replica = app.wait_for_replica(&id, 0).await;
    assert_eq!(replica.get_str("title").unwrap(), "concert");
    assert_eq!(replica.get_i64("priceCents").unwrap(), 1234);
}

#[tokio::test]
async fn ticket_updated_applies_in_order_and_waits_for_a_missing_version() {
    let app = spawn_app().await;
    let id = app.ticket("v0", 1000).await;

    app.publish(&updated(&id, 2, "v2")).await;
    app.wait_for_outcome("ticket.updated", "retry", 1).await;
    assert_eq!(app.wait_for_replica(&id, 0).await.get_str("title").unwrap(), "v0", "v2 is not applied over v0");
    app.publish(&updated(&id, 1, "v1")).await;

    let replica = app.wait_for_replica(&id, 2).await;
    assert_eq!(replica.get_str("title").unwrap(), "v2");
    assert_eq!(replica.get_i64("priceCents").unwrap(), 1500);
}

#[tokio::test]
async fn an_old_or_repeated_ticket_update_is_acknowledged_and_ignored() {
    let app = spawn_app().await;
    let id = app.ticket("v0", 1000).await;
    app.publish(&updated(&id, 1, "v1")).await;
    app.wait_for_replica(&id, 1).await;

    app.publish(&updated(&id, 1, "v1 again")).await;
    app.wait_for_outcome("ticket.updated", "ack", 2).await;

    assert_eq!(app.wait_for_replica(&id, 1).await.get_str("title").unwrap(), "v1");
}

#[tokio::test]
async fn expiration_cancels_a_created_order_and_publishes_order_cancelled() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.ticket("concert", 1000).await;
    let id = app.order(&cookie, &ticket).await["id"].as_str().unwrap().to_owned();

    app.expire(&id).await;

    let order = app.wait_for_status(&cookie, &id, "cancelled").await;
    assert_eq!(order["version"], 1);
    assert_eq!(app.order_events("order.cancelled", 1).await.len(), 1);
}

#[tokio::test]
async fn expiration_is_ignored_for_cancelled_and_complete_orders() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let (t1, t2) = (app.ticket("one", 1000).await, app.ticket("two", 1000).await);
    let cancelled = app.order(&cookie, &t1).await["id"].as_str().unwrap().to_owned();
    let paid = app.order(&cookie, &t2).await["id"].as_str().unwrap().to_owned();
    app.http.delete(&format!("/api/orders/{cancelled}"), Some(&cookie)).await;
    app.pay(&paid).await;
    app.wait_for_status(&cookie, &paid, "complete").await;

    app.expire(&cancelled).await;
    app.expire(&paid).await;
    app.wait_for_outcome("expiration.complete", "ack", 2).await;

    assert_eq!(app.get_order(&cookie, &cancelled).await["version"], 1);
    let after = app.get_order(&cookie, &paid).await;
    assert_eq!((after["status"].as_str(), after["version"].as_i64()), (Some("complete"), Some(1)));
    assert_eq!(app.order_events("order.cancelled", 2).await.len(), 1, "only the user's own cancellation");
}

#[tokio::test]
async fn payment_completes_the_order_once_and_publishes_order_completed() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.ticket("concert", 1000).await;
    let id = app.order(&cookie, &ticket).await["id"].as_str().unwrap().to_owned();

    app.pay(&id).await;
    app.pay(&id).await;
    app.wait_for_outcome("payment.created", "ack", 2).await;

    let order = app.get_order(&cookie, &id).await;
    assert_eq!((order["status"].as_str(), order["version"].as_i64()), (Some("complete"), Some(1)));
    let events = app.order_events("order.completed", 1).await;
    assert_eq!(events.len(), 1);
    let event: OrderCompleted = events[0].json();
    assert_eq!((event.id.as_str(), event.version, event.ticket.id.as_str()), (id.as_str(), 1, ticket.as_str()));
    let (_, other) = app.user();
    assert_eq!(app.post_order(&other, &ticket).await.status(), 400, "a sold ticket stays reserved");
}

#[tokio::test]
async fn a_ban_cancels_the_users_pending_orders_and_leaves_paid_ones_paid() {
    let app = spawn_app().await;
    let (user, cookie) = app.user();
    let (paid, pending) = (app.ticket("paid", 1000).await, app.ticket("pending", 1000).await);
    let paid = app.order(&cookie, &paid).await;
    let pending = app.order(&cookie, &pending).await;
    app.pay(paid["id"].as_str().unwrap()).await;
    app.wait_for_status(&cookie, paid["id"].as_str().unwrap(), "complete").await;

    let at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    app.publish(&common::events::UserBanned { user_id: user.clone(), at, reason: None }).await;
    app.wait_for_outcome("user.banned", "ack", 1).await;

    let cancelled = app.order_events("order.cancelled", 1).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].json::<common::events::OrderCancelled>().id, pending["id"].as_str().unwrap());
    let status = |id: &str| {
        let id = bson::oid::ObjectId::parse_str(id).unwrap();
        let orders = app.db.collection::<bson::Document>("orders");
        async move { orders.find_one(bson::doc! {"_id": id}).await.unwrap().unwrap().get_str("status").unwrap().to_owned() }
    };
    assert_eq!(status(pending["id"].as_str().unwrap()).await, "cancelled");
    assert_eq!(status(paid["id"].as_str().unwrap()).await, "complete");
    let replica = app.wait_for_replica(pending["ticket"]["id"].as_str().unwrap(), 0).await;
    assert!(replica.get("reservedBy").is_none(), "the ticket is free to reserve again");
    assert_eq!(app.http.get("/api/orders", Some(&cookie)).await.status(), 401, "and the token is refused");
}
