//! The Stripe implementation against a local mock of Stripe's API.

use std::time::Duration;

use payments::provider::{Charge, ChargeRequest, DeclineReason, PaymentProvider, ProviderError, Stripe, charge_key};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{STRIPE_KEY, card_declined, form, intent_succeeded};

fn stripe(server: &MockServer, timeout: Duration) -> Stripe {
    Stripe::new(SecretString::from(STRIPE_KEY.to_owned()), &server.uri(), timeout).unwrap()
}

fn request(token: &str) -> ChargeRequest {
    ChargeRequest {
        amount_cents: 2050,
        token: token.into(),
        order_id: "6b0a0000000000000000abcd".into(),
        idempotency_key: charge_key("6b0a0000000000000000abcd", 1),
    }
}

async fn respond(server: &MockServer, route: &str, response: ResponseTemplate) {
    Mock::given(method("POST")).and(path(route)).respond_with(response).mount(server).await;
}

#[tokio::test]
async fn a_charge_is_one_confirmed_payment_intent_in_cents_with_an_idempotency_key() {
    let server = MockServer::start().await;
    respond(&server, "/v1/payment_intents", ResponseTemplate::new(200).set_body_json(intent_succeeded(1))).await;

    let charge = stripe(&server, Duration::from_secs(5)).charge(&request("tok_visa")).await.unwrap();

    assert_eq!(charge, Charge { id: "ch_mock_1".into(), payment_intent: "pi_mock_1".into() });
    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(sent.url.path(), "/v1/payment_intents");
    assert_eq!(sent.headers.get("authorization").unwrap(), &format!("Bearer {STRIPE_KEY}"));
    assert_eq!(sent.headers.get("idempotency-key").unwrap(), &charge_key("6b0a0000000000000000abcd", 1));
    assert!(
        sent.headers.get("content-type").unwrap().to_str().unwrap().starts_with("application/x-www-form-urlencoded")
    );
    let fields = form(sent);
    assert_eq!(fields["amount"], "2050");
    assert_eq!(fields["currency"], "usd");
    assert_eq!(fields["confirm"], "true");
    assert_eq!(fields["payment_method_data[type]"], "card");
    assert_eq!(fields["payment_method_data[card][token]"], "tok_visa");
    assert_eq!(fields["metadata[order_id]"], "6b0a0000000000000000abcd");
}

#[tokio::test]
async fn a_payment_method_id_is_sent_as_payment_method() {
    let server = MockServer::start().await;
    respond(&server, "/v1/payment_intents", ResponseTemplate::new(200).set_body_json(intent_succeeded(2))).await;

    stripe(&server, Duration::from_secs(5)).charge(&request("pm_card_visa")).await.unwrap();

    let fields = form(&server.received_requests().await.unwrap()[0]);
    assert_eq!(fields["payment_method"], "pm_card_visa");
    assert!(!fields.contains_key("payment_method_data[card][token]"));
}

#[tokio::test]
async fn a_decline_is_known_by_its_reason() {
    let server = MockServer::start().await;
    respond(&server, "/v1/payment_intents", ResponseTemplate::new(402).set_body_json(card_declined())).await;

    let err = stripe(&server, Duration::from_secs(5)).charge(&request("tok_chargeDeclined")).await.unwrap_err();

    assert!(matches!(err, ProviderError::Declined { reason: DeclineReason::Declined, .. }), "{err}");
}

#[tokio::test]
async fn an_invalid_request_is_rejected_with_stripes_message() {
    let server = MockServer::start().await;
    let body = json!({"error": {"type": "invalid_request_error", "message": "No such token: 'tok_nope'"}});
    respond(&server, "/v1/payment_intents", ResponseTemplate::new(400).set_body_json(body)).await;

    let err = stripe(&server, Duration::from_secs(5)).charge(&request("tok_nope")).await.unwrap_err();

    assert!(matches!(err, ProviderError::Rejected(m) if m == "No such token: 'tok_nope'"));
}

#[tokio::test]
async fn server_errors_rate_limits_and_undecodable_answers_leave_the_outcome_unknown() {
    for (name, response) in [
        ("500", ResponseTemplate::new(500).set_body_json(json!({"error": {"type": "api_error", "message": "boom"}}))),
        ("502", ResponseTemplate::new(502)),
        ("429", ResponseTemplate::new(429).set_body_json(json!({"error": {"type": "rate_limit_error"}}))),
        ("409", ResponseTemplate::new(409).set_body_json(json!({"error": {"type": "idempotency_error"}}))),
        ("undecodable 200", ResponseTemplate::new(200).set_body_string("{\"id\": \"pi_")),
    ] {
        let server = MockServer::start().await;
        respond(&server, "/v1/payment_intents", response).await;

        let err = stripe(&server, Duration::from_secs(5)).charge(&request("tok_visa")).await.unwrap_err();

        assert!(matches!(err, ProviderError::Unknown(_)), "{name}: {err}");
    }
}

#[tokio::test]
async fn a_refused_key_and_no_connection_mean_nothing_was_charged() {
    let server = MockServer::start().await;
    respond(&server, "/v1/payment_intents", ResponseTemplate::new(401)).await;
    let refused = stripe(&server, Duration::from_secs(5)).charge(&request("tok_visa")).await.unwrap_err();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let nowhere =
        Stripe::new(SecretString::from(STRIPE_KEY.to_owned()), &format!("http://{closed}"), Duration::from_secs(5))
            .unwrap()
            .charge(&request("tok_visa"))
            .await
            .unwrap_err();

    assert!(matches!(refused, ProviderError::Unavailable(_)), "{refused}");
    assert!(matches!(nowhere, ProviderError::Unavailable(_)), "{nowhere}");
}

#[tokio::test]
async fn a_timeout_leaves_the_outcome_unknown() {
    let server = MockServer::start().await;
    let slow = ResponseTemplate::new(200).set_body_json(intent_succeeded(9)).set_delay(Duration::from_secs(2));
    respond(&server, "/v1/payment_intents", slow).await;

    let err = stripe(&server, Duration::from_millis(300)).charge(&request("tok_visa")).await.unwrap_err();

    assert!(matches!(err, ProviderError::Unknown(_)));
}

#[tokio::test]
async fn an_intent_that_needs_another_payment_method_is_a_decline() {
    let server = MockServer::start().await;
    let body = json!({"id": "pi_x", "status": "requires_payment_method",
        "last_payment_error": {"type": "card_error", "message": "Your card has insufficient funds."}});
    respond(&server, "/v1/payment_intents", ResponseTemplate::new(200).set_body_json(body)).await;

    let err = stripe(&server, Duration::from_secs(5)).charge(&request("tok_visa")).await.unwrap_err();

    assert!(matches!(err, ProviderError::Declined { .. }), "{err}");
}

#[tokio::test]
async fn a_refund_names_the_payment_intent_with_its_own_idempotency_key() {
    let server = MockServer::start().await;
    respond(&server, "/v1/refunds", ResponseTemplate::new(200).set_body_json(json!({"id": "re_1"}))).await;
    let charge = Charge { id: "ch_1".into(), payment_intent: "pi_1".into() };

    let refund = stripe(&server, Duration::from_secs(5)).refund(&charge, "refund-p1").await.unwrap();

    assert_eq!(refund, "re_1");
    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(form(sent)["payment_intent"], "pi_1");
    assert_eq!(sent.headers.get("idempotency-key").unwrap(), "refund-p1");
}

#[tokio::test]
async fn a_stripe_that_cannot_be_reached_makes_the_payment_a_503_and_leaves_the_order_payable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = crate::helpers::spawn_app_with_stripe(&format!("http://{closed}")).await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;

    let response = app.pay(&cookie, &order, "tok_visa").await;

    assert_eq!(response.status(), 503);
    assert_eq!(crate::helpers::errors(response).await, vec![("Service unavailable".into(), None)]);
    assert_eq!(app.payment_count().await, 0, "nothing left Stripe's door: the claim was released");
}

fn search_result(intents: Vec<serde_json::Value>) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"object": "search_result", "data": intents, "has_more": false}))
}

async fn respond_to_search(server: &MockServer, order_id: &str, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/search"))
        .and(query_param("query", format!("metadata['order_id']:'{order_id}' AND status:'succeeded'")))
        .respond_with(response)
        .mount(server)
        .await;
}

#[tokio::test]
async fn find_charge_searches_the_orders_succeeded_payment_intents() {
    let server = MockServer::start().await;
    respond_to_search(&server, "6b0a0000000000000000abcd", search_result(vec![intent_succeeded(7)])).await;
    respond_to_search(&server, "6b0a00000000000000000000", search_result(vec![])).await;
    let stripe = stripe(&server, Duration::from_secs(5));

    let found = stripe.find_charge("6b0a0000000000000000abcd").await.unwrap();
    let none = stripe.find_charge("6b0a00000000000000000000").await.unwrap();

    assert_eq!(found, Some(Charge { id: "ch_mock_7".into(), payment_intent: "pi_mock_7".into() }));
    assert_eq!(none, None);
    let received = server.received_requests().await.unwrap();
    assert_eq!(received[0].headers.get("authorization").unwrap(), &format!("Bearer {STRIPE_KEY}"));
}

/// The app on the Stripe mock, with an order of a user whose payment was claimed two
/// minutes ago by a process that then died: the app, the user's cookie and the order.
async fn abandoned_charge(server: &MockServer) -> (crate::helpers::TestApp, String, String) {
    let app = crate::helpers::spawn_app_with_stripe(&server.uri()).await;
    let (user_id, cookie) = app.user();
    let order = app.order_for(&user_id, 1000).await;
    let claimed_at = bson::DateTime::from_millis(bson::DateTime::now().timestamp_millis() - 120_000);
    app.db
        .collection::<bson::Document>("payments")
        .insert_one(bson::doc! {
            "_id": bson::oid::ObjectId::new(), "orderId": &order, "state": "charging",
            "claimedAt": claimed_at, "amountCents": 0_i64,
        })
        .await
        .unwrap();
    (app, cookie, order)
}

#[tokio::test]
async fn a_takeover_records_the_charge_the_abandoned_attempt_made_instead_of_charging_again() {
    let server = MockServer::start().await;
    let (app, cookie, order) = abandoned_charge(&server).await;
    respond_to_search(&server, &order, search_result(vec![intent_succeeded(3)])).await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_succeeded(4)))
        .expect(0)
        .mount(&server)
        .await;

    // The customer comes back with another card.
    let response = app.pay(&cookie, &order, "pm_card_mastercard").await;

    assert_eq!(response.status(), 201);
    let stored = app.payment_of(&order).await.expect("the payment");
    assert_eq!(stored.get_str("state").unwrap(), "succeeded");
    assert_eq!(stored.get_str("chargeId").unwrap(), "ch_mock_3", "the first charge, recorded");
    let event: common::events::PaymentCreated = app.payment_events(1).await[0].json();
    assert_eq!(event.charge_id, "ch_mock_3");
    server.verify().await;
}

#[tokio::test]
async fn a_takeover_charges_when_the_abandoned_attempt_charged_nothing() {
    let server = MockServer::start().await;
    let (app, cookie, order) = abandoned_charge(&server).await;
    respond_to_search(&server, &order, search_result(vec![])).await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_succeeded(5)))
        .expect(1)
        .mount(&server)
        .await;

    let response = app.pay(&cookie, &order, "tok_visa").await;

    assert_eq!(response.status(), 201);
    assert_eq!(app.payment_of(&order).await.unwrap().get_str("chargeId").unwrap(), "ch_mock_5");
    assert_eq!(app.payment_count().await, 1, "the abandoned claim was reused, not duplicated");
    server.verify().await;
}

#[tokio::test]
async fn a_takeover_whose_lookup_fails_is_a_503_and_charges_nothing() {
    let server = MockServer::start().await;
    let (app, cookie, order) = abandoned_charge(&server).await;
    respond_to_search(&server, &order, ResponseTemplate::new(500)).await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;

    let response = app.pay(&cookie, &order, "tok_visa").await;

    assert_eq!(response.status(), 503);
    assert_eq!(crate::helpers::errors(response).await, vec![("Service unavailable".into(), None)]);
    let kept = app.payment_of(&order).await.expect("the claim is kept for the next attempt to look again");
    assert_eq!(kept.get_str("state").unwrap(), "unknown", "the next request resolves it at once");
    server.verify().await;
}
