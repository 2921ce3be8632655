//! tickets, orders and payments together, through real events only.

use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, TestHttp, eventually, fast_listener_settings, fresh_mongo, session_cookie};
use serde_json::{Value, json};

use crate::helpers::{WAIT, spawn, test_config};

#[tokio::test]
async fn paying_completes_the_order_and_the_ticket_stays_reserved_for_good() {
    let config = test_config(payments::config::ProviderSettings::Test);
    let (nats, session) = (config.nats.clone(), config.session.clone());
    let payments = spawn(config).await;
    let stop = CancellationToken::new();
    let _stop = StopOnDrop(stop.clone());
    let tickets = tickets::Application::build(tickets::Config {
        http: common::testing::test_http_settings(),
        mongo: fresh_mongo("tickets"),
        nats: nats.clone(),
        session: session.clone(),
        listener: fast_listener_settings(),
    })
    .await
    .unwrap();
    let tickets_http = TestHttp::new(tickets.port());
    tokio::spawn(tickets.run_until_stopped(stop.clone()));
    let orders = orders::Application::build(orders::Config {
        http: common::testing::test_http_settings(),
        mongo: fresh_mongo("orders"),
        nats,
        session,
        expiration_window: std::time::Duration::from_secs(900),
        listener: fast_listener_settings(),
    })
    .await
    .unwrap();
    let orders_http = TestHttp::new(orders.port());
    tokio::spawn(orders.run_until_stopped(stop.clone()));
    let seller = session_cookie(&payments.sessions, &common::testing::object_id_hex());
    let (_, buyer) = payments.user();

    let ticket: Value = tickets_http
        .post("/api/tickets", Some(&seller), &json!({"title": "concert", "price": 35.5}))
        .await
        .json()
        .await
        .unwrap();
    let ticket_id = ticket["id"].as_str().unwrap().to_owned();
    let order: Value = eventually(WAIT, || async {
        let response = orders_http.post("/api/orders", Some(&buyer), &json!({"ticketId": ticket_id})).await;
        (response.status() == 201).then_some(response.json().await.unwrap())
    })
    .await
    .expect("orders learns the ticket and reserves it");
    let order_id = order["id"].as_str().unwrap().to_owned();
    payments.wait_for_replica(&order_id, |r| r.get_i64("priceCents").ok() == Some(3550)).await;

    let paid = payments.pay(&buyer, &order_id, "tok_visa").await;

    assert_eq!(paid.status(), 201);
    let complete = eventually(WAIT, || async {
        let order: Value = orders_http.get(&format!("/api/orders/{order_id}"), Some(&buyer)).await.json().await.ok()?;
        (order["status"] == "complete").then_some(order)
    })
    .await
    .expect("orders completes the order from payment.created");
    assert_eq!(complete["version"], 1);
    payments.wait_for_replica(&order_id, |r| r.get_str("status").ok() == Some("complete")).await;
    let held: Value = tickets_http.get(&format!("/api/tickets/{ticket_id}"), None).await.json().await.unwrap();
    assert_eq!(held["orderId"], order_id.as_str(), "sold: the ticket stays reserved");
    let edit =
        tickets_http.put(&format!("/api/tickets/{ticket_id}"), Some(&seller), &json!({"title": "x", "price": 1})).await;
    assert_eq!(edit.status(), 400);
}
