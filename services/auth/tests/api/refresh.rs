//! Refresh tokens: issued with the session, rotated on every use, revoked by sign-out and
//! by reuse after the grace period, never shown anywhere but their cookie.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{PASSWORD, errors, raw_set_cookie, spawn_app, spawn_app_with, test_config};

#[tokio::test]
async fn sign_up_and_sign_in_set_a_refresh_cookie_with_the_spec_attributes() {
    let app = spawn_app().await;

    let signup = app.signup("fresh@test.com", PASSWORD).await;
    let signin = app.signin("fresh@test.com", PASSWORD).await;

    for response in [&signup, &signin] {
        let cookie = raw_set_cookie(response, "refresh").expect("a refresh cookie");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        let value = cookie.split(';').next().unwrap().trim_start_matches("refresh=");
        assert_eq!(value.len(), 43, "256 bits in base64url: {value}");
    }
    assert_ne!(
        raw_set_cookie(&signup, "refresh"),
        raw_set_cookie(&signin, "refresh"),
        "each sign-in starts its own session"
    );
}

#[tokio::test]
async fn a_refresh_rotates_both_cookies_and_the_new_session_works() {
    let app = spawn_app().await;
    let mut browser = app.signed_up("rotate@test.com").await;
    let old_refresh = browser.refresh().to_owned();

    let response = app.refresh(Some(&old_refresh)).await;

    assert_eq!(response.status(), 200);
    browser.take(&response);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["id"].as_str(), body["email"].as_str()), (Some(browser.id.as_str()), Some("rotate@test.com")));
    assert_ne!(browser.refresh(), old_refresh, "rotated");
    let current: Value = app.current_user(Some(browser.session())).await.json().await.unwrap();
    assert_eq!(current["currentUser"]["id"], browser.id.as_str());
    assert_eq!(app.refresh(Some(browser.refresh())).await.status(), 200, "the new token refreshes in turn");
}

#[tokio::test]
async fn a_rotated_token_presented_after_the_grace_period_revokes_its_whole_family() {
    let mut config = test_config(common::testing::fresh_mongo("auth"));
    config.own.refresh.reuse_grace = Duration::from_millis(300);
    let app = spawn_app_with(config).await;
    let mut browser = app.signed_up("stolen@test.com").await;
    let stolen = browser.refresh().to_owned();
    let rotated = app.refresh(Some(&stolen)).await;
    browser.take(&rotated);
    tokio::time::sleep(Duration::from_millis(600)).await;

    let replay = app.refresh(Some(&stolen)).await;

    assert_eq!(replay.status(), 401);
    assert_eq!(errors(replay).await, vec![("Not authorized".into(), None)]);
    assert_eq!(
        app.refresh(Some(browser.refresh())).await.status(),
        401,
        "the family is revoked, the rightful copy too"
    );
    let family: bson::Document =
        app.db.collection("refresh_families").find_one(bson::doc! {}).await.unwrap().expect("the family");
    assert_eq!(family.get_str("revokedBecause").unwrap(), "reused");
}

#[tokio::test]
async fn two_refreshes_at_once_within_the_grace_period_both_stay_signed_in() {
    let app = spawn_app().await;
    let browser = app.signed_up("twotabs@test.com").await;

    let (first, second) = tokio::join!(app.refresh(Some(browser.refresh())), app.refresh(Some(browser.refresh())));

    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let tokens: Vec<String> =
        [&first, &second].iter().map(|r| crate::helpers::cookie(r, "refresh").expect("a new token")).collect();
    assert_ne!(tokens[0], tokens[1]);
    for token in &tokens {
        assert_eq!(app.refresh(Some(token)).await.status(), 200, "each tab can refresh again");
    }
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let mut config = test_config(common::testing::fresh_mongo("auth"));
    config.own.refresh.ttl = Duration::from_secs(1);
    let app = spawn_app_with(config).await;
    let browser = app.signed_up("expired@test.com").await;

    tokio::time::sleep(Duration::from_millis(1_200)).await;

    assert_eq!(app.refresh(Some(browser.refresh())).await.status(), 401);
}

#[tokio::test]
async fn sign_out_revokes_the_session_and_clears_both_cookies() {
    let app = spawn_app().await;
    let browser = app.signed_up("leaving@test.com").await;
    let other_device = app.signin("leaving@test.com", PASSWORD).await;
    let other_refresh = crate::helpers::cookie(&other_device, "refresh").unwrap();

    let signout = app.post_with_cookie("/api/users/signout", Some(&browser.header())).await;

    assert_eq!(signout.status(), 200);
    for name in ["session", "refresh"] {
        let cleared = raw_set_cookie(&signout, name).unwrap();
        assert!(cleared.starts_with(&format!("{name}=;")) && cleared.contains("Max-Age=0"), "{cleared}");
    }
    assert_eq!(app.refresh(Some(browser.refresh())).await.status(), 401);
    assert_eq!(app.refresh(Some(&other_refresh)).await.status(), 200, "another device's session is its own");
}

#[tokio::test]
async fn missing_unknown_and_malformed_refresh_tokens_are_401_in_the_envelope() {
    let app = spawn_app().await;

    for cookie in [None, Some("refresh="), Some("refresh=nope"), Some("refresh=%%%;;"), Some(&*"refresh=a".repeat(500))]
    {
        let response = app.refresh(cookie).await;
        assert_eq!(response.status(), 401, "{cookie:?}");
        assert_eq!(errors(response).await, vec![("Not authorized".into(), None)], "{cookie:?}");
    }
}

#[tokio::test]
async fn only_the_hash_of_a_refresh_token_is_stored() {
    let app = spawn_app().await;
    let browser = app.signed_up("hashed@test.com").await;
    let value = browser.refresh().trim_start_matches("refresh=").to_owned();

    let stored: Vec<bson::Document> = futures::TryStreamExt::try_collect(
        app.db.collection::<bson::Document>("refresh_tokens").find(bson::doc! {}).await.unwrap(),
    )
    .await
    .unwrap();

    assert_eq!(stored.len(), 1);
    let text = format!("{stored:?}");
    assert!(!text.contains(&value), "the token itself is not stored: {text}");
    assert_eq!(stored[0].get_str("_id").unwrap().len(), 64, "a SHA-256, hex");
}
