//! Money that must not be lost or taken twice: a charge whose outcome is unknown is
//! resolved before any new attempt (whatever card the retry brings), a refund that fails
//! is retried until it succeeds, an expired reservation cannot be paid, and a decline is
//! told in our words.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{WAIT, card_declined, errors, form, intent_succeeded, spawn_app, spawn_app_with_stripe};

/// Stripe answers the first charge with `first`, and every later one as a success
/// (`pi_mock_1`): the first attempt reached Stripe and charged, whatever it answered.
async fn first_answer_then_charged(server: &MockServer, first: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(first)
        .up_to_n_times(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_succeeded(1)))
        .mount(server)
        .await;
    // Stripe's search index lags: the charge is not listed yet.
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/search"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"object": "search_result", "data": [], "has_more": false})),
        )
        .mount(server)
        .await;
}

#[tokio::test]
async fn every_unknown_outcome_keeps_the_claim_and_a_retry_with_another_card_keeps_exactly_one_charge() {
    let outcomes = [
        ("timeout", ResponseTemplate::new(200).set_body_json(intent_succeeded(1)).set_delay(Duration::from_secs(3))),
        ("500", ResponseTemplate::new(500).set_body_json(json!({"error": {"type": "api_error", "message": "boom"}}))),
        ("429", ResponseTemplate::new(429).set_body_json(json!({"error": {"type": "rate_limit_error"}}))),
        ("undecodable 200", ResponseTemplate::new(200).set_body_string("{\"id\": \"pi_mock_1\", \"stat")),
    ];
    for (name, first) in outcomes {
        let server = MockServer::start().await;
        first_answer_then_charged(&server, first).await;
        let app = spawn_app_with_stripe(&server.uri()).await;
        let (user_id, cookie) = app.user();
        let order = app.order_for(&user_id, 2500).await;

        let unknown = app.pay(&cookie, &order, "pm_card_first").await;
        assert_eq!(unknown.status(), 503, "{name}");
        let kept = app.payment_of(&order).await.expect("the claim is kept");
        assert_eq!(kept.get_str("state").unwrap(), "unknown", "{name}");

        // The buyer tries again, with a new card (a new Stripe.js PaymentMethod).
        let retry = app.pay(&cookie, &order, "pm_card_second").await;

        assert_eq!(retry.status(), 201, "{name}");
        let stored = app.payment_of(&order).await.unwrap();
        assert_eq!(stored.get_str("chargeId").unwrap(), "ch_mock_1", "{name}: the first attempt's charge is kept");
        assert_eq!(app.payment_count().await, 1);
        let charges: Vec<_> = server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method == wiremock::http::Method::POST && r.url.path() == "/v1/payment_intents")
            .collect();
        assert_eq!(charges.len(), 2, "{name}: the first attempt, then its replay");
        for charge in &charges {
            assert_eq!(charge.headers.get("idempotency-key").unwrap(), &format!("charge-{order}-1"), "{name}");
            assert_eq!(form(charge)["payment_method"], "pm_card_first", "{name}: the second card is never charged");
        }
        let events = app.payment_events(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            common::testing::read_stream(&app.bus, common::events::StreamName::Payments, "payment.created").await.len(),
            1
        );
        assert_eq!(events[0].json::<common::events::PaymentCreated>().charge_id, "ch_mock_1");
    }
}

#[tokio::test]
async fn an_earlier_attempt_found_to_have_charged_nothing_makes_room_for_the_new_card() {
    let server = MockServer::start().await;
    let app = spawn_app_with_stripe(&server.uri()).await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;
    let empty = json!({"object": "search_result", "data": [], "has_more": false});
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(empty))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    // Replayed, the first attempt turns out declined; the second card is then charged.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(header("idempotency-key", format!("charge-{order}-1").as_str()))
        .respond_with(ResponseTemplate::new(402).set_body_json(card_declined()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(header("idempotency-key", format!("charge-{order}-2").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_succeeded(2)))
        .mount(&server)
        .await;

    assert_eq!(app.pay(&cookie, &order, "pm_card_first").await.status(), 503);
    let retry = app.pay(&cookie, &order, "pm_card_second").await;

    assert_eq!(retry.status(), 201);
    assert_eq!(app.payment_of(&order).await.unwrap().get_str("chargeId").unwrap(), "ch_mock_2");
    let sent: Vec<(String, String)> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/v1/payment_intents")
        .map(|r| {
            (r.headers.get("idempotency-key").unwrap().to_str().unwrap().to_owned(), form(r)["payment_method"].clone())
        })
        .collect();
    let (first, second) = (format!("charge-{order}-1"), format!("charge-{order}-2"));
    assert_eq!(
        sent,
        vec![
            (first.clone(), "pm_card_first".into()),
            (first, "pm_card_first".into()),
            (second, "pm_card_second".into())
        ]
    );
}

#[tokio::test]
async fn a_refund_that_fails_is_retried_until_it_succeeds_exactly_once() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_succeeded(7)))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": {"type": "api_error"}})))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/refunds"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "re_mock_1"})))
        .mount(&server)
        .await;
    let app = spawn_app_with_stripe(&server.uri()).await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 4000).await;
    assert_eq!(app.pay(&cookie, &order, "pm_card_visa").await.status(), 201);

    // The order is cancelled after the charge landed (an expiry that raced the payment).
    app.cancel_order(&order).await;

    let refunded = common::testing::eventually(WAIT, || async {
        let payment = app.payment_of(&order).await?;
        (payment.get_str("refundId").ok() == Some("re_mock_1")).then_some(payment)
    })
    .await
    .expect("the refund went through in the end");
    assert!(!refunded.get_bool("refundDue").unwrap(), "none due any more");
    assert_eq!(refunded.get_i64("refundAttempts").unwrap(), 2, "two failures recorded before the success");
    let refunds: Vec<_> =
        server.received_requests().await.unwrap().into_iter().filter(|r| r.url.path() == "/v1/refunds").collect();
    assert_eq!(refunds.len(), 3, "failed, failed, refunded: and nothing after");
    let payment_id = refunded.get_object_id("_id").unwrap().to_hex();
    for refund in &refunds {
        assert_eq!(refund.headers.get("idempotency-key").unwrap(), &format!("refund-{payment_id}"));
        assert_eq!(form(refund)["payment_intent"], "pi_mock_7");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let metrics = app.http.metrics().await;
    assert!(metrics.contains("payments_refunds_due 0"), "{metrics}");
    assert!(metrics.contains(r#"payments_refund_tries_total{outcome="failed"} 2"#), "{metrics}");
}

#[tokio::test]
async fn an_expired_reservation_cannot_be_paid_even_before_its_cancellation_arrives() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let past = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let order =
        app.order_expiring(&user_id, 1000, &past.format(&time::format_description::well_known::Rfc3339).unwrap()).await;

    let response = app.pay(&cookie, &order, "tok_visa").await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Order has expired".into(), None)]);
    assert_eq!(app.payment_count().await, 0, "nothing was claimed or charged");
}

#[tokio::test]
async fn a_decline_is_told_in_our_words_and_the_providers_text_stays_in_the_log() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;

    let poor = app.pay(&cookie, &order, "tok_chargeDeclinedInsufficientFunds").await;
    let unknown_token = app.pay(&cookie, &order, "tok_nonsense").await;

    assert_eq!(errors(poor).await, vec![("Your card was declined: insufficient funds.".into(), None)]);
    let refused = errors(unknown_token).await;
    assert_eq!(refused.len(), 1);
    assert!(!refused[0].0.contains("tok_nonsense"), "the provider's text is not shown: {refused:?}");

    let server = MockServer::start().await;
    let fraud = json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "fraudulent",
        "message": "Your card was declined because we suspect fraud (rule 42)."}});
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(402).set_body_json(fraud))
        .mount(&server)
        .await;
    let stripe_app = spawn_app_with_stripe(&server.uri()).await;
    let (user_id, cookie) = stripe_app.user();
    let order = stripe_app.order_for(&user_id, 1000).await;

    let declined = stripe_app.pay(&cookie, &order, "pm_card_visa").await;

    assert_eq!(declined.status(), 400);
    assert_eq!(errors(declined).await, vec![("Your card was declined.".into(), None)]);
    assert_eq!(stripe_app.payment_count().await, 0, "a decline gives the claim back");
}
