//! Every malformed request gets the error envelope with the right status.

use crate::helpers::{errors, spawn_app};

#[tokio::test]
async fn malformed_json_is_a_400_in_the_envelope() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/api/users/signup"))
        .header("Content-Type", "application/json")
        .body(r#"{"email": "a@b.com", "password": "#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Malformed JSON body".into(), None)]);
}

#[tokio::test]
async fn a_wrong_content_type_is_a_415_in_the_envelope() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/api/users/signup"))
        .header("Content-Type", "text/plain")
        .body(r#"{"email":"a@b.com","password":"password123"}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 415);
    assert_eq!(errors(response).await, vec![("Unsupported media type".into(), None)]);
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn an_oversized_body_is_a_413_in_the_envelope() {
    let app = spawn_app().await;
    let huge = format!(r#"{{"email":"a@b.com","password":"{}"}}"#, "x".repeat(64 * 1024));

    let response = app
        .client
        .post(app.url("/api/users/signup"))
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 413);
    assert_eq!(errors(response).await, vec![("Payload too large".into(), None)]);
}

#[tokio::test]
async fn huge_headers_are_a_431_in_the_envelope_and_create_nothing() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/api/users/signup"))
        .header("Content-Type", "application/json")
        .header("Cookie", format!("session={}", "a".repeat(64 * 1024)))
        .body(r#"{"email":"a@b.com","password":"password123"}"#)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 431);
    assert_eq!(errors(response).await, vec![("Request headers too large".into(), None)]);
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_not_a_crash() {
    let app = spawn_app().await;
    let nested = format!("{}{}", "[".repeat(5000), "]".repeat(5000));

    let response = app
        .client
        .post(app.url("/api/users/signup"))
        .header("Content-Type", "application/json")
        .body(nested)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await.len(), 1);
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = spawn_app().await;

    let response = app.client.get(app.url("/api/users/nope")).send().await.unwrap();

    assert_eq!(response.status(), 404);
    assert_eq!(errors(response).await, vec![("Not Found".into(), None)]);
}

#[tokio::test]
async fn a_wrong_method_is_a_405_in_the_envelope() {
    let app = spawn_app().await;

    let response = app.client.get(app.url("/api/users/signup")).send().await.unwrap();

    assert_eq!(response.status(), 405);
    assert_eq!(errors(response).await, vec![("Method not allowed".into(), None)]);
}

#[tokio::test]
async fn an_operator_object_in_place_of_the_email_is_a_validation_error() {
    let app = spawn_app().await;
    app.signup("victim@test.com", crate::helpers::PASSWORD).await;

    let response =
        app.post_json("/api/users/signin", &serde_json::json!({"email": {"$gt": ""}, "password": "whatever1"})).await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await[0].1.as_deref(), Some("email"));
}
