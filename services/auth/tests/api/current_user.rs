use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::Claims;
use common::session::encode_session_cookie;
use serde_json::Value;

use crate::helpers::{errors, spawn_app};

#[tokio::test]
async fn currentuser_returns_the_signed_in_user() {
    let app = spawn_app().await;
    let cookie = app.signed_up_cookie("test@test.com").await;

    let response = app.current_user(Some(&cookie)).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let user = &body["currentUser"];
    assert_eq!(user["email"], "test@test.com");
    assert_eq!(user["id"].as_str().unwrap().len(), 24);
    assert_eq!(user["exp"].as_i64().unwrap() - user["iat"].as_i64().unwrap(), 900);
}

#[tokio::test]
async fn currentuser_is_null_without_a_session() {
    let app = spawn_app().await;

    let response = app.current_user(None).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"currentUser": null}));
}

#[tokio::test]
async fn a_bearer_token_is_accepted_as_well_as_the_cookie() {
    let app = spawn_app().await;
    let (token, _) = app.sessions.issue("0123456789abcdef01234567", "api@test.com").unwrap();

    let response = app.client.get(app.url("/api/users/currentuser")).bearer_auth(token).send().await.unwrap();

    let body: Value = response.json().await.unwrap();
    assert_eq!(body["currentUser"]["email"], "api@test.com");
}

async fn assert_refused(app: &crate::helpers::TestApp, token: &str, case: &str) {
    let cookie = format!("session={}", encode_session_cookie(token));
    let response = app.current_user(Some(&cookie)).await;
    assert_eq!(response.status(), 401, "{case}");
    assert_eq!(errors(response).await, vec![("Not authorized".into(), None)], "{case}");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401_in_the_envelope() {
    let app = spawn_app().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = Claims {
        id: "0123456789abcdef01234567".into(),
        email: "a@test.com".into(),
        iat: now,
        exp: now + 900,
        admin: false,
    };
    let valid = app.sessions.sign(&claims).unwrap();

    let expired = app.sessions.sign(&Claims { iat: now - 1000, exp: now - 10, ..claims.clone() }).unwrap();
    assert_refused(&app, &expired, "expired").await;

    let other_key =
        common::Sessions::new(&common::testing::random_jwt_key(), std::time::Duration::from_secs(900), false)
            .sign(&claims)
            .unwrap();
    assert_refused(&app, &other_key, "signed with another key").await;

    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    assert_refused(&app, &format!("{header}.{payload}."), "alg none").await;

    let mut parts: Vec<&str> = valid.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Claims { id: "someone-else".into(), ..claims }).unwrap());
    parts[1] = &forged;
    assert_refused(&app, &parts.join("."), "tampered payload").await;

    assert_refused(&app, "not-a-jwt", "garbage").await;

    let response = app.current_user(Some("session=%%%not-base64")).await;
    assert_eq!(response.status(), 401, "undecodable cookie");
}
