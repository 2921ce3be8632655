use serde_json::{Value, json};

use crate::helpers::{PASSWORD, errors, set_cookie, spawn_app};

#[tokio::test]
async fn signup_returns_201_with_the_user_and_sets_a_session_cookie() {
    let app = spawn_app().await;

    let response = app.signup("test@test.com", PASSWORD).await;

    assert_eq!(response.status(), 201);
    let cookie = set_cookie(&response).expect("a session cookie");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], "test@test.com");
    assert_eq!(body["id"].as_str().unwrap().len(), 24);
    assert_eq!(body.as_object().unwrap().len(), 2, "only id and email: {body}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "plain-http local runs have no Secure flag");
}

#[tokio::test]
async fn signup_trims_and_lowercases_the_email() {
    let app = spawn_app().await;

    let response = app.signup("  Mixed.Case@Example.COM ", PASSWORD).await;

    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["email"], "mixed.case@example.com");
}

#[tokio::test]
async fn signup_with_an_invalid_email_is_a_400_naming_the_field() {
    let app = spawn_app().await;

    for email in ["alskdflaskjfd", "", "a@", "@b.com"] {
        let response = app.signup(email, PASSWORD).await;
        assert_eq!(response.status(), 400, "email {email:?}");
        assert_eq!(errors(response).await, vec![("Email must be valid".into(), Some("email".into()))]);
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn signup_with_a_password_outside_8_to_128_characters_is_a_400() {
    let app = spawn_app().await;

    for password in ["p".repeat(7), "p".repeat(129), String::new()] {
        let response = app.signup("test@test.com", &password).await;
        assert_eq!(response.status(), 400, "password of {} chars", password.len());
        assert_eq!(errors(response).await[0].1.as_deref(), Some("password"));
    }
    assert_eq!(app.signup("eight@test.com", &"p".repeat(8)).await.status(), 201);
    assert_eq!(app.signup("long@test.com", &"é".repeat(128)).await.status(), 201, "length counts characters");
}

#[tokio::test]
async fn signup_with_missing_email_and_password_lists_both_fields() {
    let app = spawn_app().await;

    let response = app.post_json("/api/users/signup", &json!({})).await;

    assert_eq!(response.status(), 400);
    let fields: Vec<_> = errors(response).await.into_iter().map(|(_, f)| f.unwrap()).collect();
    assert_eq!(fields, vec!["email", "password"]);
}

#[tokio::test]
async fn signup_with_a_field_of_the_wrong_type_is_a_400_naming_it() {
    let app = spawn_app().await;

    let response = app.post_json("/api/users/signup", &json!({"email": 42, "password": PASSWORD})).await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await[0].1.as_deref(), Some("email"));
}

#[tokio::test]
async fn signup_refuses_an_email_already_in_use_whatever_its_case() {
    let app = spawn_app().await;
    assert_eq!(app.signup("test@test.com", PASSWORD).await.status(), 201);

    let response = app.signup("TEST@test.com ", PASSWORD).await;

    assert_eq!(response.status(), 400);
    assert_eq!(errors(response).await, vec![("Email in use".into(), None)]);
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn twenty_concurrent_signups_with_one_email_create_exactly_one_user() {
    let app = spawn_app().await;

    let attempts = (0..20).map(|_| app.signup("race@test.com", PASSWORD));
    let responses = futures::future::join_all(attempts).await;

    let created = responses.iter().filter(|r| r.status() == 201).count();
    assert_eq!(created, 1);
    for response in responses.into_iter().filter(|r| r.status() != 201) {
        assert_eq!(response.status(), 400);
        assert_eq!(errors(response).await, vec![("Email in use".into(), None)]);
    }
    assert_eq!(app.user_count().await, 1);
}
