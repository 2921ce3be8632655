//! Health, readiness, metrics, start-up refusal, database outages and secrecy of hashes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::helpers::{PASSWORD, errors, spawn_app, spawn_app_with, test_config};

#[tokio::test]
async fn healthz_and_readyz_answer_200_when_mongodb_is_reachable() {
    let app = spawn_app().await;

    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();

    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["mongodb"], "ok");
}

#[tokio::test]
async fn the_openapi_description_is_served_and_documents_the_signin_limit() {
    let app = spawn_app().await;

    let response = app.client.get(app.url("/openapi.json")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    let mut paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/users/currentuser",
            "/api/users/refresh",
            "/api/users/sessions/revoke",
            "/api/users/signin",
            "/api/users/signout",
            "/api/users/signup",
            "/api/users/{id}/ban"
        ]
    );
    let signin = &doc["paths"]["/api/users/signin"]["post"]["responses"];
    assert!(signin["429"]["headers"]["retry-after"].is_object(), "{signin}");
    let signup = &doc["components"]["schemas"]["SignupBody"]["properties"];
    assert_eq!(
        (signup["password"]["minLength"].as_u64(), signup["password"]["maxLength"].as_u64()),
        (Some(8), Some(128))
    );
    assert_eq!(signup["email"]["format"], "email");
}

#[tokio::test]
async fn metrics_count_requests_per_route_and_status() {
    let app = spawn_app().await;
    app.signup("m@test.com", PASSWORD).await;
    app.signup("m@test.com", PASSWORD).await;

    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();

    assert!(text.contains(r#"http_requests_total{method="POST",path="/api/users/signup",status="201"} 1"#), "{text}");
    assert!(text.contains(r#"http_requests_total{method="POST",path="/api/users/signup",status="400"} 1"#), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
}

#[tokio::test]
async fn a_database_outage_is_a_503_and_readyz_reports_it_then_recovers() {
    let base = common::testing::mongo_base_uri();
    let proxy = common::testing::TcpProxy::start(&common::testing::mongo_authority(&base)).await.unwrap();
    let app = spawn_app_with(test_config(common::testing::fresh_mongo_via(&proxy, "auth"))).await;
    assert_eq!(app.signup("before@test.com", PASSWORD).await.status(), 201);

    proxy.cut();
    let during = app.signin("before@test.com", PASSWORD).await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();

    assert_eq!(during.status(), 503);
    assert_eq!(errors(during).await, vec![("Service unavailable".into(), None)]);
    assert_eq!(ready.status(), 503);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["checks"]["mongodb"], "unreachable");

    proxy.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if app.signin("before@test.com", PASSWORD).await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "the service recovers once MongoDB is back");
}

#[test]
fn the_service_refuses_to_start_without_jwt_key_and_names_it() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_auth"))
        .env_clear()
        .env("MONGO_URI", "mongodb://127.0.0.1:1/auth")
        .env("PORT", "0")
        .output()
        .expect("the binary runs");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_KEY"), "stderr: {stderr}");
}

#[test]
fn the_service_refuses_a_short_jwt_key() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_auth"))
        .env_clear()
        .env("MONGO_URI", "mongodb://127.0.0.1:1/auth")
        .env("JWT_KEY", "too-short")
        .output()
        .expect("the binary runs");

    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWT_KEY"));
}

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned log sink"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// A current-thread runtime keeps the app's tasks on this thread, under the test's
// thread-local subscriber, so every log line the requests produce is captured.
#[tokio::test(flavor = "current_thread")]
async fn the_password_its_hash_and_refresh_tokens_never_appear_in_responses_or_logs() {
    let sink = Captured::default();
    let writer = sink.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = spawn_app().await;

    let mut bodies = Vec::new();
    let signup = app.signup("secret@test.com", PASSWORD).await;
    let cookie = crate::helpers::cookie_header(&signup).unwrap();
    bodies.push(signup.text().await.unwrap());
    bodies.push(app.signin("secret@test.com", PASSWORD).await.text().await.unwrap());
    bodies.push(app.signin("secret@test.com", "wrong password").await.text().await.unwrap());
    bodies.push(app.signup("secret@test.com", PASSWORD).await.text().await.unwrap());
    bodies.push(app.current_user(Some(&cookie)).await.text().await.unwrap());
    let browser = app.signed_up("refresh-secret@test.com").await;
    let refresh_token = browser.refresh().trim_start_matches("refresh=").to_owned();
    let refreshed = app.refresh(Some(browser.refresh())).await;
    let next_token = crate::helpers::cookie(&refreshed, "refresh").unwrap().trim_start_matches("refresh=").to_owned();
    bodies.push(refreshed.text().await.unwrap());
    bodies.push(app.refresh(Some(&format!("refresh={next_token}"))).await.text().await.unwrap());
    bodies.push(app.post_with_cookie("/api/users/signout", Some(&browser.header())).await.text().await.unwrap());

    let stored: bson::Document = app
        .db
        .collection("users")
        .find_one(bson::doc! {"email": "secret@test.com"})
        .await
        .unwrap()
        .expect("the user is stored");
    let hash = stored.get_str("passwordHash").unwrap().to_owned();
    assert!(hash.starts_with("$argon2id$"));
    let salt_and_digest = hash.rsplit('$').take(2).collect::<Vec<_>>();
    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("user signed up"), "the capture works: {logs}");
    for text in bodies.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
        assert!(!text.contains(&refresh_token) && !text.contains(&next_token), "refresh token leaked: {text}");
        for part in &salt_and_digest {
            assert!(!text.contains(part), "hash leaked: {text}");
        }
    }
}
