use common::events::{OrderCreated, OrderStatus};
use serde_json::{Value, json};

use crate::helpers::{errors, spawn_app};

#[tokio::test]
async fn ordering_requires_a_session() {
    let app = spawn_app().await;

    let response = app.http.post("/api/orders", None, &json!({"ticketId": "0123456789abcdef01234567"})).await;

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_missing_or_malformed_ticket_id_is_a_400_naming_it() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for body in [json!({}), json!({"ticketId": ""}), json!({"ticketId": "abc"}), json!({"ticketId": {"$gt": ""}})] {
        let response = app.http.post("/api/orders", Some(&cookie), &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(errors(response).await[0].1.as_deref(), Some("ticketId"), "{body}");
    }
}

#[tokio::test]
async fn a_ticket_unknown_to_orders_is_a_404() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    let response = app.post_order(&cookie, "0123456789abcdef01234567").await;

    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_reserved_ticket_is_a_400() {
    let app = spawn_app().await;
    let (_, first) = app.user();
    let (_, second) = app.user();
    let ticket = app.ticket("concert", 2000).await;
    app.order(&first, &ticket).await;

    let response = app.post_order(&second, &ticket).await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Ticket is already reserved".into(), None)]);
}

#[tokio::test]
async fn ordering_reserves_the_ticket_and_publishes_order_created() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let ticket = app.ticket("concert", 2050).await;
    let before = time::OffsetDateTime::now_utc();

    let order = app.order(&cookie, &ticket).await;

    assert_eq!(order["status"], "created");
    assert_eq!(order["version"], 0);
    assert_eq!(order["userId"], user_id.as_str());
    assert_eq!(order["ticket"], json!({"id": ticket, "title": "concert", "price": 20.5, "version": 0}));
    let expires_at = time::OffsetDateTime::parse(
        order["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let window = (expires_at - before).whole_seconds();
    assert!((899..=901).contains(&window), "expiresAt is now + 900 s, got {window} s");
    let events = app.order_events("order.created", 1).await;
    assert_eq!(events.len(), 1);
    let event: OrderCreated = events[0].json();
    assert_eq!(event.id, order["id"].as_str().unwrap());
    assert_eq!((event.version, event.status, event.user_id.as_str()), (0, OrderStatus::Created, user_id.as_str()));
    assert_eq!(event.expires_at, order["expiresAt"].as_str().unwrap());
    assert_eq!((event.ticket.id.as_str(), event.ticket.price.cents()), (ticket.as_str(), 2050));
    let listed: Vec<Value> = app.http.get("/api/orders", Some(&cookie)).await.json().await.unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn nobody_buys_their_own_ticket() {
    let app = crate::helpers::spawn_app().await;
    let (seller, cookie) = app.user();
    let event = common::events::TicketCreated {
        id: common::testing::object_id_hex(),
        version: 0,
        title: "mine".into(),
        price: common::money::Price::from_cents(1000).unwrap(),
        user_id: seller,
    };
    app.publish(&event).await;
    app.wait_for_replica(&event.id, 0).await;

    let response = app.post_order(&cookie, &event.id).await;

    assert_eq!(response.status(), 400);
    assert_eq!(crate::helpers::errors(response).await, vec![("Cannot buy your own ticket".into(), None)]);
}

#[tokio::test]
async fn a_buyer_holds_at_most_five_reservations_even_when_asking_for_more_at_once() {
    let app = crate::helpers::spawn_app().await;
    let (_, cookie) = app.user();
    let mut tickets = Vec::new();
    for n in 0..8 {
        tickets.push(app.ticket(&format!("t{n}"), 1000).await);
    }

    let answers = futures::future::join_all(tickets.iter().map(|t| app.post_order(&cookie, t))).await;

    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    for response in answers.into_iter().filter(|r| r.status() == 400) {
        assert_eq!(crate::helpers::errors(response).await, vec![("Too many active reservations".into(), None)]);
    }
    // Cancelling one makes room for one more.
    let list: Vec<serde_json::Value> = app.http.get("/api/orders", Some(&cookie)).await.json().await.unwrap();
    let first = list[0]["id"].as_str().unwrap();
    assert_eq!(app.http.delete(&format!("/api/orders/{first}"), Some(&cookie)).await.status(), 204);
    let free = tickets.iter().find(|t| !list.iter().any(|o| o["ticket"]["id"] == t.as_str())).unwrap();
    assert_eq!(app.post_order(&cookie, free).await.status(), 201);
}
