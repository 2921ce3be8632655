//! The course's own client sends the text of its price input (`"25.00"`); those strings
//! are prices under the same rules as numbers, and come back (and go out in events) as
//! numbers.

use common::events::{TicketCreated, TicketUpdated};
use serde_json::{Value, json};

use crate::helpers::{errors, spawn_app};

/// Sends a raw body with the course client's content type, as its browser does.
async fn send(
    app: &crate::helpers::TestApp,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    body: &str,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .header("Content-Type", "application/json;charset=utf-8")
        .header("Cookie", cookie)
        .body(body.to_owned())
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn a_price_sent_as_text_creates_the_ticket_with_a_numeric_price() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for (text, expected) in [("25.00", json!(25)), ("25", json!(25)), ("25.5", json!(25.5)), ("  19.99 ", json!(19.99))]
    {
        let body = json!({"title": "Concert", "price": text}).to_string();
        let response = send(&app, reqwest::Method::POST, "/api/tickets", &cookie, &body).await;

        assert_eq!(response.status(), 201, "{text:?}");
        let ticket: Value = response.json().await.unwrap();
        assert_eq!(ticket["price"], expected, "{text:?}");
    }
    let events = app.ticket_events("ticket.created", 4).await;
    let cents: Vec<i64> = events.iter().map(|m| m.json::<TicketCreated>().price.cents()).collect();
    assert_eq!(cents, vec![2500, 2500, 2550, 1999]);
    let raw: Value = serde_json::from_slice(&events[0].payload).unwrap();
    assert_eq!(raw["price"], json!(25), "events carry the price as a number");
}

#[tokio::test]
async fn the_exact_course_client_body_is_accepted() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    let response =
        send(&app, reqwest::Method::POST, "/api/tickets", &cookie, r#"{"title":"Concert","price":"25.00"}"#).await;

    assert_eq!(response.status(), 201);
    let ticket: Value = response.json().await.unwrap();
    assert_eq!((ticket["title"].as_str(), ticket["price"].as_f64()), (Some("Concert"), Some(25.0)));
}

#[tokio::test]
async fn text_that_is_not_a_plain_decimal_price_is_a_price_field_error() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for text in ["abc", "", "1e3", "25.001", "-5", "NaN", "Infinity", "0", "0.00", "1000000.01", ".5", "025"] {
        let body = json!({"title": "Concert", "price": text}).to_string();
        let response = send(&app, reqwest::Method::POST, "/api/tickets", &cookie, &body).await;

        assert_eq!(response.status(), 400, "{text:?}");
        let errors = errors(response).await;
        assert_eq!(errors.len(), 1, "{text:?}: {errors:?}");
        assert_eq!(errors[0].1.as_deref(), Some("price"), "{text:?}");
    }
    let list: Vec<Value> = app.get("/api/tickets").await.json().await.unwrap();
    assert!(list.is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_number_with_more_than_two_decimals_is_refused_even_when_it_rounds_to_cents() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    let response =
        send(&app, reqwest::Method::POST, "/api/tickets", &cookie, r#"{"title":"Concert","price":19.999999999}"#).await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Price must have at most two decimals".into(), Some("price".into()))]);
}

#[tokio::test]
async fn an_update_accepts_a_price_sent_as_text_and_refuses_bad_text() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.create_ticket(&cookie, "Concert", 10.0).await;
    let path = format!("/api/tickets/{}", ticket["id"].as_str().unwrap());

    let refused = send(&app, reqwest::Method::PUT, &path, &cookie, r#"{"title":"Concert","price":"1e3"}"#).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(errors(refused).await[0].1.as_deref(), Some("price"));

    let accepted = send(&app, reqwest::Method::PUT, &path, &cookie, r#"{"title":"Concert","price":"30.50"}"#).await;
    assert_eq!(accepted.status(), 200);
    let updated: Value = accepted.json().await.unwrap();
    assert_eq!((updated["price"].as_f64(), updated["version"].as_i64()), (Some(30.5), Some(1)));
    let events = app.ticket_events("ticket.updated", 1).await;
    assert_eq!(events.len(), 1, "only the accepted update is an event");
    assert_eq!(events[0].json::<TicketUpdated>().price.cents(), 3050);
}
