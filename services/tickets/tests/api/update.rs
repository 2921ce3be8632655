use common::events::TicketUpdated;
use serde_json::{Value, json};

use crate::helpers::{errors, order_created, spawn_app};

#[tokio::test]
async fn updating_an_unknown_or_malformed_id_is_a_404() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for id in ["0123456789abcdef01234567", "nope"] {
        let response = app.put_ticket(Some(&cookie), id, &json!({"title": "x", "price": 1})).await;
        assert_eq!(response.status(), 404, "{id}");
    }
}

#[tokio::test]
async fn updating_requires_a_session_before_anything_else() {
    let app = spawn_app().await;

    let response = app.put_ticket(None, "nope", &json!({"title": ""})).await;

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn validation_comes_before_not_found() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    let response = app.put_ticket(Some(&cookie), "0123456789abcdef01234567", &json!({"title": "", "price": 1})).await;

    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn another_users_ticket_cannot_be_updated() {
    let app = spawn_app().await;
    let (_, owner) = app.user();
    let (_, intruder) = app.user();
    let ticket = app.create_ticket(&owner, "concert", 10.0).await;
    let id = ticket["id"].as_str().unwrap();

    let response = app.put_ticket(Some(&intruder), id, &json!({"title": "mine now", "price": 1})).await;

    assert_eq!(response.status(), 403);
    assert_eq!(errors(response).await, vec![("Forbidden".into(), None)]);
    assert_eq!(app.ticket(id).await, ticket);
}

#[tokio::test]
async fn invalid_input_is_a_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.create_ticket(&cookie, "concert", 10.0).await;
    let id = ticket["id"].as_str().unwrap();

    for body in [json!({"title": "", "price": 10}), json!({"title": "ok", "price": -10}), json!({"title": "ok"})] {
        let response = app.put_ticket(Some(&cookie), id, &body).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    assert_eq!(app.ticket(id).await, ticket);
}

#[tokio::test]
async fn a_valid_update_bumps_the_version_and_publishes_ticket_updated() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let ticket = app.create_ticket(&cookie, "concert", 10.0).await;
    let id = ticket["id"].as_str().unwrap();

    let response = app.put_ticket(Some(&cookie), id, &json!({"title": "new show", "price": 100.25})).await;

    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["title"], "new show");
    assert_eq!(updated["price"], 100.25);
    assert_eq!(updated["version"], 1);
    assert_eq!(app.ticket(id).await, updated);
    let events = app.ticket_events("ticket.updated", 1).await;
    let event: TicketUpdated = events[0].json();
    assert_eq!((event.id.as_str(), event.version, event.title.as_str()), (id, 1, "new show"));
    assert_eq!((event.price.cents(), event.user_id, event.order_id), (10025, user_id, None));
}

#[tokio::test]
async fn a_reserved_ticket_cannot_be_edited() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.create_ticket(&cookie, "concert", 10.0).await;
    let id = ticket["id"].as_str().unwrap();
    app.publish(&order_created(&common::testing::object_id_hex(), id)).await;
    app.wait_for_version(id, 1).await;

    let response = app.put_ticket(Some(&cookie), id, &json!({"title": "new", "price": 1})).await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Cannot edit a reserved ticket".into(), None)]);
}

#[tokio::test]
async fn of_two_conditional_updates_from_one_version_exactly_one_wins() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let created = app.create_ticket(&cookie, "concert", 10.0).await;
    let id = bson::oid::ObjectId::parse_str(created["id"].as_str().unwrap()).unwrap();
    let store = tickets::store::Store::new(&app.db, common::events::outbox::Outbox::new(&app.db));
    let read = store.find(id).await.unwrap().unwrap();
    let price = common::money::Price::from_cents(100).unwrap();

    let (a, b) = tokio::join!(store.update(&read, "a".into(), price), store.update(&read, "b".into(), price));

    let winners = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
    assert_eq!(winners, 1);
    assert_eq!(store.find(id).await.unwrap().unwrap().version, 1);
}

#[tokio::test]
async fn concurrent_updates_through_the_api_each_apply_once_in_version_order() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.create_ticket(&cookie, "concert", 10.0).await;
    let id = ticket["id"].as_str().unwrap();

    let (body_a, body_b) = (json!({"title": "a", "price": 1}), json!({"title": "b", "price": 2}));
    let (a, b) = tokio::join!(app.put_ticket(Some(&cookie), id, &body_a), app.put_ticket(Some(&cookie), id, &body_b));

    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let mut versions = vec![
        a.json::<Value>().await.unwrap()["version"].as_i64().unwrap(),
        b.json::<Value>().await.unwrap()["version"].as_i64().unwrap(),
    ];
    versions.sort_unstable();
    assert_eq!(versions, vec![1, 2]);
    let events = app.ticket_events("ticket.updated", 2).await;
    let event_versions: Vec<i64> = events.iter().map(|m| m.json::<TicketUpdated>().version).collect();
    assert_eq!(event_versions, vec![1, 2]);
}
