use serde_json::{Value, json};

use crate::helpers::{PASSWORD, errors, set_cookie, spawn_app};

#[tokio::test]
async fn signin_with_the_right_password_returns_the_user_and_a_cookie() {
    let app = spawn_app().await;
    app.signup("test@test.com", PASSWORD).await;

    let response = app.signin(" Test@Test.com", PASSWORD).await;

    assert_eq!(response.status(), 200);
    assert!(set_cookie(&response).is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], "test@test.com");
}

#[tokio::test]
async fn signin_fails_with_the_same_message_for_an_unknown_email_and_a_wrong_password() {
    let app = spawn_app().await;
    app.signup("test@test.com", PASSWORD).await;

    let unknown = app.signin("nobody@test.com", PASSWORD).await;
    let wrong = app.signin("test@test.com", "not the password").await;

    assert_eq!(unknown.status(), 400);
    assert_eq!(wrong.status(), 400);
    assert!(set_cookie(&unknown).is_none() && set_cookie(&wrong).is_none());
    let expected = vec![("Invalid credentials".to_owned(), None)];
    assert_eq!(errors(unknown).await, expected);
    assert_eq!(errors(wrong).await, expected);
}

#[tokio::test]
async fn signin_validates_its_body() {
    let app = spawn_app().await;

    let response = app.post_json("/api/users/signin", &json!({"email": "not-an-email", "password": ""})).await;

    assert_eq!(response.status(), 400);
    let fields: Vec<_> = errors(response).await.into_iter().map(|(_, f)| f.unwrap()).collect();
    assert_eq!(fields, vec!["email", "password"]);
}

#[tokio::test]
async fn too_many_signins_from_one_client_are_refused_with_429_in_the_envelope() {
    let mut config = crate::helpers::test_config(common::testing::fresh_mongo("auth"));
    config.own.signin_attempts_per_minute = 3;
    let app = crate::helpers::spawn_app_with(config).await;
    app.signup("test@test.com", PASSWORD).await;

    for _ in 0..3 {
        assert_eq!(app.signin("test@test.com", "wrong password").await.status(), 400);
    }
    let limited = app.signin("test@test.com", PASSWORD).await;
    let other_client = app
        .client
        .post(app.url("/api/users/signin"))
        .header("X-Forwarded-For", "203.0.113.9")
        .json(&json!({"email": "test@test.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_eq!(limited.status(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    assert_eq!(errors(limited).await, vec![("Too many requests".into(), None)]);
    assert_eq!(other_client.status(), 200, "the limit is per client");
}
