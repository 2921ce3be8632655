//! What a flood or a guesser meets: limits per client (as seen through trusted proxies
//! only), per account, and a hashing queue that refuses at once when full.

use serde_json::json;

use crate::helpers::{PASSWORD, errors, spawn_app_with, test_config};

async fn signup_from(app: &crate::helpers::TestApp, n: usize, forwarded_for: impl AsRef<str>) -> reqwest::Response {
    let forwarded_for = forwarded_for.as_ref();
    app.client
        .post(app.url("/api/users/signup"))
        .header("X-Forwarded-For", forwarded_for)
        .json(&json!({"email": format!("flood{n}@test.com"), "password": PASSWORD}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_ups_are_limited_per_client() {
    let mut config = test_config(common::testing::fresh_mongo("auth"));
    config.own.signup_attempts_per_minute = 2;
    let app = spawn_app_with(config).await;

    let first = signup_from(&app, 1, "203.0.113.1").await.status();
    let second = signup_from(&app, 2, "203.0.113.1").await.status();
    let third = signup_from(&app, 3, "203.0.113.1").await;
    let elsewhere = signup_from(&app, 4, "203.0.113.2").await.status();

    assert_eq!((first.as_u16(), second.as_u16()), (201, 201));
    assert_eq!(third.status(), 429);
    assert!(third.headers().get("retry-after").is_some());
    assert_eq!(errors(third).await, vec![("Too many requests".into(), None)]);
    assert_eq!(elsewhere, 201, "another client has its own allowance");
    assert_eq!(app.user_count().await, 3);
}

#[tokio::test]
async fn a_forwarded_address_from_an_untrusted_peer_is_ignored() {
    let mut config = test_config(common::testing::fresh_mongo("auth"));
    config.own.signup_attempts_per_minute = 1;
    config.own.trusted_proxies = common::ratelimit::TrustedProxies::parse("none").unwrap();
    let app = spawn_app_with(config).await;

    let first = signup_from(&app, 1, "203.0.113.1").await.status();
    // A new header does not buy a new allowance: the peer is what counts.
    let spoofed = signup_from(&app, 2, "198.51.100.99").await.status();

    assert_eq!((first.as_u16(), spoofed.as_u16()), (201, 429));
}

#[tokio::test]
async fn failed_sign_ins_are_limited_per_account_from_any_client() {
    let mut config = test_config(common::testing::fresh_mongo("auth"));
    config.own.signin_failures_per_account = 3;
    let app = spawn_app_with(config).await;
    app.signup("target@test.com", PASSWORD).await;
    let signin = |from: String, password: &'static str| {
        let request = app
            .client
            .post(app.url("/api/users/signin"))
            .header("X-Forwarded-For", from)
            .json(&json!({"email": "target@test.com", "password": password}));
        async move { request.send().await.unwrap() }
    };

    for n in 0..3 {
        assert_eq!(signin(format!("203.0.113.{n}"), "guess").await.status(), 400);
    }
    let locked = signin("198.51.100.1".into(), PASSWORD).await;

    assert_eq!(locked.status(), 429, "even the right password waits, from a new address");
    assert!(locked.headers().get("retry-after").is_some());
    assert_eq!(app.signin("someone-else@test.com", "x").await.status(), 400, "other accounts are not affected");
}

#[tokio::test]
async fn a_full_hashing_queue_answers_503_with_retry_after_at_once() {
    let mut config = test_config(common::testing::fresh_mongo("auth"));
    config.own.hash_queue = 1;
    let app = spawn_app_with(config).await;

    let flood = futures::future::join_all((0..24).map(|n| signup_from(&app, n, format!("203.0.113.{n}")))).await;

    let statuses: Vec<u16> = flood.iter().map(|r| r.status().as_u16()).collect();
    let busy: Vec<&reqwest::Response> = flood.iter().filter(|r| r.status() == 503).collect();
    assert!(!busy.is_empty(), "some were refused: {statuses:?}");
    assert!(busy.iter().all(|r| r.headers().get("retry-after").map(|v| v.to_str().unwrap()) == Some("1")));
    assert!(statuses.iter().all(|s| *s == 201 || *s == 503), "{statuses:?}");
    let created = statuses.iter().filter(|s| **s == 201).count() as u64;
    assert_eq!(app.user_count().await, created, "every refusal left no user behind");
}
