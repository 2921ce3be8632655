use std::time::Duration;

use common::events::PaymentCreated;
use futures::future::join_all;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{errors, intent_succeeded, spawn_app, spawn_app_with_stripe};

#[tokio::test]
async fn paying_requires_a_session() {
    let app = spawn_app().await;

    let response = app
        .http
        .post("/api/payments", None, &json!({"token": "tok_visa", "orderId": "0123456789abcdef01234567"}))
        .await;

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn token_and_order_id_are_validated() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for (body, field) in [
        (json!({"orderId": "0123456789abcdef01234567"}), "token"),
        (json!({"token": "", "orderId": "0123456789abcdef01234567"}), "token"),
        (json!({"token": "tok_visa"}), "orderId"),
        (json!({"token": "tok_visa", "orderId": "nope"}), "orderId"),
    ] {
        let response = app.http.post("/api/payments", Some(&cookie), &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(errors(response).await[0].1.as_deref(), Some(field), "{body}");
    }
}

#[tokio::test]
async fn an_unknown_order_is_a_404() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    let response = app.pay(&cookie, "0123456789abcdef01234567", "tok_visa").await;

    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn another_users_order_is_a_403() {
    let app = spawn_app().await;
    let (owner, _) = app.user();
    let (_, intruder) = app.user();
    let order = app.order_for(&owner, 1000).await;

    let response = app.pay(&intruder, &order, "tok_visa").await;

    assert_eq!(response.status(), 403);
    assert_eq!(app.payment_count().await, 0);
}

#[tokio::test]
async fn a_cancelled_order_cannot_be_paid() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;
    app.cancel_order(&order).await;
    app.wait_for_replica(&order, |r| r.get_str("status").ok() == Some("cancelled")).await;

    let response = app.pay(&cookie, &order, "tok_visa").await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Cannot pay for a cancelled order".into(), None)]);
}

#[tokio::test]
async fn a_valid_payment_is_stored_and_publishes_payment_created() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 2050).await;

    let response = app.pay(&cookie, &order, "tok_visa").await;

    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let payment_id = body["id"].as_str().unwrap();
    let stored = app.payment_of(&order).await.expect("a payment");
    assert_eq!(stored.get_object_id("_id").unwrap().to_hex(), payment_id);
    assert_eq!(stored.get_str("state").unwrap(), "succeeded");
    assert_eq!(stored.get_i64("amountCents").unwrap(), 2050);
    let events = app.payment_events(1).await;
    let event: PaymentCreated = events[0].json();
    assert_eq!((event.id.as_str(), event.order_id.as_str()), (payment_id, order.as_str()));
    assert_eq!(event.charge_id, stored.get_str("chargeId").unwrap());
    assert!(event.charge_id.starts_with("ch_test_"));
}

#[tokio::test]
async fn a_second_payment_is_refused_as_already_paid() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;
    assert_eq!(app.pay(&cookie, &order, "tok_visa").await.status(), 201);

    let again = app.pay(&cookie, &order, "pm_card_visa").await;

    assert_eq!(again.status(), 400);
    assert_eq!(errors(again).await, vec![("Order already paid".into(), None)]);
    assert_eq!(app.payment_count().await, 1);
}

#[tokio::test]
async fn a_declined_card_is_a_400_leaves_no_payment_and_the_order_stays_payable() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;

    let declined = app.pay(&cookie, &order, "tok_chargeDeclined").await;

    assert_eq!(declined.status(), 400);
    assert_eq!(errors(declined).await, vec![("Your card was declined.".into(), None)]);
    assert_eq!(app.payment_count().await, 0);
    assert_eq!(app.pay(&cookie, &order, "tok_visa").await.status(), 201);
}

#[tokio::test]
async fn twenty_concurrent_payments_for_one_order_charge_once() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(intent_succeeded(1)).set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    let app = spawn_app_with_stripe(&stripe.uri()).await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;

    let responses = join_all((0..20).map(|_| app.pay(&cookie, &order, "tok_visa"))).await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 19, "{statuses:?}");
    assert_eq!(app.payment_count().await, 1);
    stripe.verify().await;
}

#[tokio::test]
async fn a_charge_that_lands_after_the_order_was_cancelled_is_refunded() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(intent_succeeded(7)).set_delay(Duration::from_millis(1500)),
        )
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "re_mock_7", "object": "refund"})))
        .expect(1)
        .mount(&stripe)
        .await;
    let app = spawn_app_with_stripe(&stripe.uri()).await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;

    // The card is being charged while the order expires.
    let (response, ()) = tokio::join!(app.pay(&cookie, &order, "tok_visa"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.cancel_order(&order).await;
        app.wait_for_replica(&order, |r| r.get_str("status").ok() == Some("cancelled")).await;
    });

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Cannot pay for a cancelled order".into(), None)]);
    let refunded = common::testing::eventually(crate::helpers::WAIT, || async {
        let payment = app.payment_of(&order).await?;
        (payment.get_str("refundId").ok() == Some("re_mock_7")).then_some(())
    })
    .await;
    assert!(refunded.is_some(), "the charge is recorded and refunded");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        common::testing::read_stream(&app.bus, common::events::StreamName::Payments, "payment.created")
            .await
            .is_empty()
    );
    stripe.verify().await;
}
