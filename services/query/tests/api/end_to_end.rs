//! The owners run, then stop: the query service keeps answering from its own store.

use std::time::Duration;

use common::shutdown::CancellationToken;
use common::testing::{eventually, fresh_mongo, session_cookie};
use serde_json::{Value, json};

use crate::helpers::{WAIT, spawn_app};

#[tokio::test]
async fn query_answers_with_tickets_orders_and_payments_stopped() {
    let query = spawn_app().await;
    let (nats, session) = (query.config.nats.clone(), query.config.own.session.clone());
    let owners = CancellationToken::new();
    let tickets = testkit::tickets(fresh_mongo("tickets"), &nats, &session, &owners).await;
    let orders = testkit::orders(fresh_mongo("orders"), &nats, &session, Duration::from_secs(900), &owners).await;
    let payments = testkit::payments(fresh_mongo("payments"), &nats, &session, &owners).await;
    let (tickets_http, orders_http, payments_http) = (tickets.http, orders.http, payments.http);
    let (tickets_task, orders_task, payments_task) = (tickets.task, orders.task, payments.task);
    let seller = session_cookie(&query.sessions, &common::testing::object_id_hex());
    let buyer_id = common::testing::object_id_hex();
    let buyer = query.cookie(&buyer_id);

    let ticket: Value = tickets_http
        .post("/api/tickets", Some(&seller), &json!({"title": "Last Show", "price": 50}))
        .await
        .json()
        .await
        .unwrap();
    let ticket_id = ticket["id"].as_str().unwrap().to_owned();
    query.wait_for_ticket(&ticket_id, |t| t["status"] == "available").await;
    let order: Value = eventually(WAIT, || async {
        let response = orders_http.post("/api/orders", Some(&buyer), &json!({"ticketId": ticket_id})).await;
        (response.status() == 201).then_some(response.json().await.unwrap())
    })
    .await
    .unwrap();
    let order_id = order["id"].as_str().unwrap().to_owned();
    query.wait_for_ticket(&ticket_id, |t| t["status"] == "reserved").await;
    let paid = eventually(WAIT, || async {
        let response =
            payments_http.post("/api/payments", Some(&buyer), &json!({"token": "tok_visa", "orderId": order_id})).await;
        (response.status() == 201).then_some(())
    })
    .await;
    assert!(paid.is_some());
    query.wait_for_ticket(&ticket_id, |t| t["status"] == "sold").await;
    query.wait_for_order(&buyer_id, &order_id, |o| o["status"] == "complete" && o["payment"].is_object()).await;

    owners.cancel();
    for task in [tickets_task, orders_task, payments_task] {
        task.await.unwrap().unwrap();
    }
    assert!(tickets_http.client.get(tickets_http.url("/healthz")).send().await.is_err(), "tickets is down");

    let sold = query.ticket(&ticket_id).await.expect("still answered");
    assert_eq!((sold["status"].as_str(), sold["orderId"].as_str()), (Some("sold"), Some(order_id.as_str())));
    let orders = query.orders_of(&buyer_id).await;
    assert_eq!(orders[0]["payment"]["chargeId"].as_str().map(|c| c.starts_with("ch_test_")), Some(true));
}
