use common::events::TicketCreated;
use serde_json::{Value, json};

use crate::helpers::{errors, spawn_app};

#[tokio::test]
async fn post_api_tickets_exists_and_requires_a_session() {
    let app = spawn_app().await;

    let response = app.post_ticket(None, &json!({"title": "concert", "price": 10})).await;

    assert_eq!(response.status(), 401);
    assert_eq!(errors(response).await, vec![("Not authorized".into(), None)]);
}

#[tokio::test]
async fn an_invalid_title_is_a_400_naming_title() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for body in [
        json!({"title": "", "price": 10}),
        json!({"title": "   ", "price": 10}),
        json!({"price": 10}),
        json!({"title": "t".repeat(201), "price": 10}),
        json!({"title": 42, "price": 10}),
    ] {
        let response = app.post_ticket(Some(&cookie), &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(errors(response).await[0].1.as_deref(), Some("title"), "{body}");
    }
}

#[tokio::test]
async fn an_invalid_price_is_a_400_naming_price() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for price in
        [json!(null), json!(-10), json!(0), json!(10.123), json!(1_000_000.01), json!(19.999999999), json!(true)]
    {
        let response = app.post_ticket(Some(&cookie), &json!({"title": "concert", "price": price})).await;
        assert_eq!(response.status(), 400, "price {price}");
        assert_eq!(errors(response).await[0].1.as_deref(), Some("price"), "price {price}");
    }
    let missing = app.post_ticket(Some(&cookie), &json!({"title": "concert"})).await;
    assert_eq!(errors(missing).await, vec![("Price must be greater than 0".into(), Some("price".into()))]);
    let list: Vec<Value> = app.get("/api/tickets").await.json().await.unwrap();
    assert!(list.is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_valid_ticket_is_created_at_version_0() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();

    let response = app.post_ticket(Some(&cookie), &json!({"title": "  concert  ", "price": 20.5})).await;

    assert_eq!(response.status(), 201);
    let ticket: Value = response.json().await.unwrap();
    assert_eq!(ticket["title"], "concert");
    assert_eq!(ticket["price"], 20.5);
    assert_eq!(ticket["userId"], user_id.as_str());
    assert_eq!(ticket["version"], 0);
    assert!(ticket.get("orderId").is_none());
    assert_eq!(app.ticket(ticket["id"].as_str().unwrap()).await, ticket);
}

#[tokio::test]
async fn creating_a_ticket_publishes_ticket_created_with_its_event_id() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();

    let ticket = app.create_ticket(&cookie, "concert", 1_000_000.0).await;

    let events = app.ticket_events("ticket.created", 1).await;
    assert_eq!(events.len(), 1);
    let event: TicketCreated = events[0].json();
    assert_eq!(event.id, ticket["id"].as_str().unwrap());
    assert_eq!(event.version, 0);
    assert_eq!(event.title, "concert");
    assert_eq!(event.price.cents(), 100_000_000);
    assert_eq!(event.user_id, user_id);
    let msg_id = events[0].msg_id().expect("a Nats-Msg-Id");
    let outbox = app.db.collection::<bson::Document>("outbox");
    let stored = outbox.find_one(bson::doc! {"_id": &msg_id}).await.unwrap();
    assert!(stored.is_some(), "the event id is the outbox record's id");
    // Marks are written in batches, within the relay's mark delay.
    let marked = common::testing::eventually(crate::helpers::WAIT, || async {
        let stored = outbox.find_one(bson::doc! {"_id": &msg_id}).await.unwrap()?;
        stored.get_datetime("sentAt").is_ok().then_some(())
    });
    assert!(marked.await.is_some(), "the relay marked it sent");
}
