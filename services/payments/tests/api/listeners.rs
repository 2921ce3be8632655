use std::time::Duration;

use common::events::{OrderCancelled, TicketRef};
use common::testing::{object_id_hex, publish_event};
use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{intent_succeeded, spawn_app, spawn_app_with_stripe};

#[tokio::test]
async fn order_created_creates_the_replica_with_its_version_and_price_once() {
    let app = spawn_app().await;
    let (user_id, _) = app.user();

    let order = app.order_for(&user_id, 4321).await;

    let replica = app.wait_for_replica(&order, |_| true).await;
    assert_eq!(replica.get_i64("priceCents").unwrap(), 4321);
    assert_eq!((replica.get_i64("version").unwrap(), replica.get_str("status").unwrap()), (0, "created"));
    assert_eq!(replica.get_str("userId").unwrap(), user_id);
}

#[tokio::test]
async fn cancelled_and_completed_apply_in_version_order() {
    let app = spawn_app().await;
    let (user_id, _) = app.user();
    let (a, b) = (app.order_for(&user_id, 100).await, app.order_for(&user_id, 100).await);

    app.cancel_order(&a).await;
    app.complete_order(&b).await;

    app.wait_for_replica(&a, |r| r.get_str("status").ok() == Some("cancelled") && r.get_i64("version").ok() == Some(1))
        .await;
    app.wait_for_replica(&b, |r| r.get_str("status").ok() == Some("complete") && r.get_i64("version").ok() == Some(1))
        .await;
}

#[tokio::test]
async fn a_cancellation_before_its_creation_is_retried_until_the_order_exists() {
    let app = spawn_app().await;
    let (user_id, _) = app.user();
    let order = object_id_hex();
    let cancelled = OrderCancelled { id: order.clone(), version: 1, ticket: TicketRef { id: object_id_hex() } };

    publish_event(&app.bus, &cancelled).await;
    app.http.wait_for_outcome("payments-order-cancelled", "retry", 1).await;
    let created = common::events::OrderCreated {
        id: order.clone(),
        version: 0,
        status: common::events::OrderStatus::Created,
        user_id,
        expires_at: "2030-01-01T00:00:00Z".into(),
        ticket: common::events::OrderTicket {
            id: object_id_hex(),
            price: common::money::Price::from_cents(100).unwrap(),
        },
    };
    publish_event(&app.bus, &created).await;

    app.wait_for_replica(&order, |r| r.get_str("status").ok() == Some("cancelled")).await;
}

#[tokio::test]
async fn a_cancellation_after_a_successful_charge_refunds_it_with_one_idempotency_key() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_succeeded(3)))
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .and(body_string_contains("payment_intent=pi_mock_3"))
        .and(header("authorization", format!("Bearer {}", crate::helpers::STRIPE_KEY).as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "re_mock_3", "object": "refund"})))
        .mount(&stripe)
        .await;
    let app = spawn_app_with_stripe(&stripe.uri()).await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;
    assert_eq!(app.pay(&cookie, &order, "tok_visa").await.status(), 201);

    // The expiration won the race in orders: the order is cancelled after all.
    app.cancel_order(&order).await;
    app.cancel_order(&order).await; // redelivered

    let refunded = common::testing::eventually(Duration::from_secs(10), || async {
        app.payment_of(&order).await.and_then(|p| p.get_str("refundId").ok().map(str::to_owned))
    })
    .await;
    assert_eq!(refunded.as_deref(), Some("re_mock_3"));
    app.http.wait_for_outcome("payments-order-cancelled", "ack", 2).await;
    // Concurrent deliveries may both ask; every request carries the payment's one refund
    // key, so Stripe refunds once and answers the others with the same refund.
    let refund_requests: Vec<_> =
        stripe.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == "/v1/refunds").collect();
    assert!(!refund_requests.is_empty());
    let keys: std::collections::HashSet<String> = refund_requests
        .iter()
        .map(|r| r.headers.get("idempotency-key").unwrap().to_str().unwrap().to_owned())
        .collect();
    let payment_id = app.payment_of(&order).await.unwrap().get_object_id("_id").unwrap().to_hex();
    assert_eq!(keys, std::collections::HashSet::from([format!("refund-{payment_id}")]));
}
