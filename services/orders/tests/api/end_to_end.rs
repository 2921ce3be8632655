//! tickets, orders and expiration together, through real events only.

use std::time::{Duration, Instant};

use common::events::NatsSettings;
use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, TestHttp, eventually, fresh_mongo, fresh_nats, session_cookie};
use serde_json::{Value, json};

use crate::helpers::{spawn, test_config};

/// A tickets service and an expiration worker in `nats`'s namespace; stopped on drop.
async fn start_neighbours(nats: &NatsSettings, session: &common::config::SessionSettings) -> (TestHttp, StopOnDrop) {
    let stop = CancellationToken::new();
    let tickets = testkit::tickets(fresh_mongo("tickets"), nats, session, &stop).await;
    testkit::expiration(fresh_mongo("expiration"), nats, &stop).await;
    (tickets.http, StopOnDrop(stop))
}

#[tokio::test]
async fn an_unpaid_order_expires_and_its_ticket_is_released_in_tickets() {
    let nats = fresh_nats();
    let mut config = test_config(nats.clone());
    config.own.expiration_window = Duration::from_secs(2);
    let session = config.own.session.clone();
    let orders = spawn(config).await;
    let (tickets, _neighbours) = start_neighbours(&nats, &session).await;
    let seller = session_cookie(&orders.sessions, &common::testing::object_id_hex());
    let (_, buyer) = orders.user();

    // The seller lists a ticket in tickets; orders learns of it from ticket.created.
    let created = tickets.post("/api/tickets", Some(&seller), &json!({"title": "concert", "price": 20})).await;
    assert_eq!(created.status(), 201);
    let ticket_id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    orders.wait_for_replica(&ticket_id, 0).await;

    // The buyer reserves it; tickets marks it reserved from order.created.
    let order = orders.order(&buyer, &ticket_id).await;
    let order_id = order["id"].as_str().unwrap().to_owned();
    let reserved = wait_for_ticket(&tickets, &ticket_id, 1).await;
    assert_eq!(reserved["orderId"], order_id.as_str());

    // Nobody pays: expiration fires, orders cancels, tickets releases.
    let expires_at = time::OffsetDateTime::parse(
        order["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let cancelled = orders.wait_for_status(&buyer, &order_id, "cancelled").await;
    let visible_after = time::OffsetDateTime::now_utc() - expires_at;
    assert!(visible_after >= time::Duration::ZERO, "never cancelled before expiresAt");
    eprintln!("order cancellation visible {} ms after expiresAt", visible_after.whole_milliseconds());
    assert_eq!(cancelled["version"], 1);
    let released = wait_for_ticket(&tickets, &ticket_id, 2).await;
    assert!(released.get("orderId").is_none(), "{released}");

    // The released ticket can be reserved again.
    let (_, next_buyer) = orders.user();
    assert_eq!(orders.post_order(&next_buyer, &ticket_id).await.status(), 201);
}

#[tokio::test]
async fn an_expiration_that_arrives_after_payment_changes_nothing() {
    let nats = fresh_nats();
    let mut config = test_config(nats.clone());
    config.own.expiration_window = Duration::from_secs(2);
    let session = config.own.session.clone();
    let orders = spawn(config).await;
    let (tickets, _neighbours) = start_neighbours(&nats, &session).await;
    let seller = session_cookie(&orders.sessions, &common::testing::object_id_hex());
    let (_, buyer) = orders.user();
    let created = tickets.post("/api/tickets", Some(&seller), &json!({"title": "concert", "price": 20})).await;
    let ticket_id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    orders.wait_for_replica(&ticket_id, 0).await;
    let order_id = orders.order(&buyer, &ticket_id).await["id"].as_str().unwrap().to_owned();

    orders.pay(&order_id).await;
    orders.wait_for_status(&buyer, &order_id, "complete").await;
    tokio::time::sleep(Duration::from_secs(3)).await; // past expiresAt

    let order = orders.get_order(&buyer, &order_id).await;
    assert_eq!((order["status"].as_str(), order["version"].as_i64()), (Some("complete"), Some(1)));
    let ticket = tickets.get(&format!("/api/tickets/{ticket_id}"), None).await.json::<Value>().await.unwrap();
    assert_eq!((ticket["orderId"].as_str(), ticket["version"].as_i64()), (Some(order_id.as_str()), Some(1)));
}

async fn wait_for_ticket(tickets: &TestHttp, id: &str, version: i64) -> Value {
    let started = Instant::now();
    eventually(Duration::from_secs(20), || async {
        let ticket: Value = tickets.get(&format!("/api/tickets/{id}"), None).await.json().await.ok()?;
        (ticket["version"] == version).then_some(ticket)
    })
    .await
    .unwrap_or_else(|| panic!("ticket {id} never reached version {version} ({:?})", started.elapsed()))
}
