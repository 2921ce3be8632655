//! tickets, orders and payments together, through real events only.

use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, eventually, fresh_mongo, session_cookie};
use serde_json::{Value, json};

use crate::helpers::{WAIT, spawn, test_config};

#[tokio::test]
async fn paying_completes_the_order_and_the_ticket_stays_reserved_for_good() {
    let config = test_config(payments::config::ProviderSettings::Test);
    let (nats, session) = (config.nats.clone(), config.own.session.clone());
    let payments = spawn(config).await;
    let stop = CancellationToken::new();
    let _stop = StopOnDrop(stop.clone());
    let tickets_http = testkit::tickets(fresh_mongo("tickets"), &nats, &session, &stop).await.http;
    let window = std::time::Duration::from_secs(900);
    let orders_http = testkit::orders(fresh_mongo("orders"), &nats, &session, window, &stop).await.http;
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
    // Tickets hears of the order on its own consumer, perhaps after the payment went
    // through: wait for it, then the ticket stays reserved for good.
    let held = eventually(WAIT, || async {
        let ticket: Value = tickets_http.get(&format!("/api/tickets/{ticket_id}"), None).await.json().await.ok()?;
        (ticket["orderId"] == order_id.as_str()).then_some(ticket)
    })
    .await;
    assert!(held.is_some(), "sold: the ticket is reserved by the order");
    let edit =
        tickets_http.put(&format!("/api/tickets/{ticket_id}"), Some(&seller), &json!({"title": "x", "price": 1})).await;
    assert_eq!(edit.status(), 400);
}
