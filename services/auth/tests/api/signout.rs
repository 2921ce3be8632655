use serde_json::Value;

use crate::helpers::{set_cookie, spawn_app};

#[tokio::test]
async fn signout_clears_the_session_cookie() {
    let app = spawn_app().await;
    let cookie = app.signed_up_cookie("test@test.com").await;

    let response = app.client.post(app.url("/api/users/signout")).header("Cookie", &cookie).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let cleared = set_cookie(&response).expect("a Set-Cookie for the session");
    assert!(cleared.starts_with("session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({}));
}
