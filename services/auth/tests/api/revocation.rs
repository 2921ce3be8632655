//! Ending sessions: sign out everywhere, admins, bans, and how long revocations are kept.

use std::time::Duration;

use common::events::{StreamName, UserBanned, UserSessionsRevoked, UserUnbanned};
use common::testing::wait_for_messages;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, errors, spawn_app, spawn_app_with, test_config};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn signing_out_everywhere_refuses_every_earlier_token_and_publishes_the_event() {
    let app = spawn_app().await;
    let laptop = app.signed_up("everywhere@test.com").await;
    let phone = app.signin("everywhere@test.com", PASSWORD).await;
    let phone_session = crate::helpers::cookie(&phone, "session").unwrap();
    let phone_refresh = crate::helpers::cookie(&phone, "refresh").unwrap();

    let response = app.post_with_cookie("/api/users/sessions/revoke", Some(laptop.session())).await;

    assert_eq!(response.status(), 200);
    for session in [laptop.session(), phone_session.as_str()] {
        assert_eq!(app.current_user(Some(session)).await.status(), 401);
    }
    for refresh in [laptop.refresh(), phone_refresh.as_str()] {
        assert_eq!(app.refresh(Some(refresh)).await.status(), 401);
    }
    let events = wait_for_messages(&app.bus, StreamName::Users, "user.sessions.revoked", 1, WAIT).await;
    let event: UserSessionsRevoked = events[0].json();
    assert_eq!(event.user_id, laptop.id);
    assert!(events[0].msg_id().is_some());
    // A sign-in right after (the same second, most likely) works.
    let again = app.signin("everywhere@test.com", PASSWORD).await;
    let session = crate::helpers::cookie(&again, "session").unwrap();
    let current: Value = app.current_user(Some(&session)).await.json().await.unwrap();
    assert_eq!(current["currentUser"]["id"], laptop.id.as_str());
}

#[tokio::test]
async fn signing_out_everywhere_needs_a_session() {
    let app = spawn_app().await;

    let response = app.post_with_cookie("/api/users/sessions/revoke", None).await;

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn the_ban_routes_are_for_administrators_only() {
    let app = spawn_app().await;
    let user = app.signed_up("plain@test.com").await;
    let target = app.signed_up("target@test.com").await;
    let path = format!("/api/users/{}/ban", target.id);

    let anonymous = app.client.post(app.url(&path)).send().await.unwrap();
    let not_admin = app.client.post(app.url(&path)).header("Cookie", user.session()).send().await.unwrap();
    let not_admin_delete = app.client.delete(app.url(&path)).header("Cookie", user.session()).send().await.unwrap();
    let not_admin_unknown = app
        .client
        .post(app.url("/api/users/0123456789abcdef01234567/ban"))
        .header("Cookie", user.session())
        .send()
        .await
        .unwrap();

    assert_eq!(anonymous.status(), 401);
    assert_eq!(not_admin.status(), 403);
    assert_eq!(errors(not_admin).await, vec![("Forbidden".into(), None)]);
    assert_eq!(not_admin_delete.status(), 403);
    assert_eq!(not_admin_unknown.status(), 403, "a non-admin learns nothing about ids");
    assert_eq!(app.current_user(Some(target.session())).await.status(), 200, "nothing happened");
}

#[tokio::test]
async fn banning_an_unknown_or_malformed_id_is_a_404_and_banning_yourself_a_400() {
    let app = spawn_app().await;
    let admin = app.admin("admin@test.com").await;

    for id in ["0123456789abcdef01234567", "nope"] {
        let response = app
            .client
            .post(app.url(&format!("/api/users/{id}/ban")))
            .header("Cookie", admin.session())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{id}");
    }
    let yourself = app
        .client
        .post(app.url(&format!("/api/users/{}/ban", admin.id)))
        .header("Cookie", admin.session())
        .send()
        .await
        .unwrap();
    assert_eq!(yourself.status(), 400);
    assert_eq!(errors(yourself).await, vec![("You cannot ban yourself".into(), None)]);
    let too_long = app
        .client
        .post(app.url(&format!("/api/users/{}/ban", admin.id)))
        .header("Cookie", admin.session())
        .json(&json!({"reason": "x".repeat(501)}))
        .send()
        .await
        .unwrap();
    assert_eq!(errors(too_long).await[0].1.as_deref(), Some("reason"));
}

#[tokio::test]
async fn a_ban_ends_every_session_suspends_sign_in_and_an_unban_lets_new_ones_in() {
    let app = spawn_app().await;
    let admin = app.admin("admin@test.com").await;
    let user = app.signed_up("banned@test.com").await;
    let path = format!("/api/users/{}/ban", user.id);

    let banned = app
        .client
        .post(app.url(&path))
        .header("Cookie", admin.session())
        .json(&json!({"reason": "chargebacks"}))
        .send()
        .await
        .unwrap();

    assert_eq!(banned.status(), 200);
    let view: Value = banned.json().await.unwrap();
    assert_eq!((view["banned"].as_bool(), view["banReason"].as_str()), (Some(true), Some("chargebacks")));
    assert_eq!(app.current_user(Some(user.session())).await.status(), 401, "auth refuses at once");
    assert_eq!(app.refresh(Some(user.refresh())).await.status(), 401);
    let signin = app.signin("banned@test.com", PASSWORD).await;
    assert_eq!(signin.status(), 403);
    assert_eq!(errors(signin).await, vec![("Account suspended".into(), None)]);
    let wrong_password = app.signin("banned@test.com", "not the password").await;
    assert_eq!(wrong_password.status(), 400, "a ban is only told to whoever knows the password");
    let events = wait_for_messages(&app.bus, StreamName::Users, "user.banned", 1, WAIT).await;
    let event: UserBanned = events[0].json();
    assert_eq!((event.user_id.as_str(), event.reason.as_deref()), (user.id.as_str(), Some("chargebacks")));

    let again = app.client.post(app.url(&path)).header("Cookie", admin.session()).send().await.unwrap();
    assert_eq!(again.status(), 200, "banning a banned user changes nothing");

    let unbanned = app.client.delete(app.url(&path)).header("Cookie", admin.session()).send().await.unwrap();
    assert_eq!(unbanned.status(), 200);
    assert_eq!(unbanned.json::<Value>().await.unwrap()["banned"], false);
    let events = wait_for_messages(&app.bus, StreamName::Users, "user.unbanned", 1, WAIT).await;
    assert_eq!(events[0].json::<UserUnbanned>().user_id, user.id);
    assert_eq!(app.current_user(Some(user.session())).await.status(), 401, "tokens from before the ban stay refused");
    let back = app.signin("banned@test.com", PASSWORD).await;
    assert_eq!(back.status(), 200);
    let session = crate::helpers::cookie(&back, "session").unwrap();
    assert_eq!(app.current_user(Some(&session)).await.status(), 200, "a token issued after the unban works");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let banned_events = common::testing::read_stream(&app.bus, StreamName::Users, "user.banned").await;
    assert_eq!(banned_events.len(), 1, "the second ban published nothing");
}

#[tokio::test]
async fn an_admins_token_says_so() {
    let app = spawn_app().await;
    let admin = app.admin("boss@test.com").await;
    let user = app.signed_up("worker@test.com").await;

    let admin_view: Value = app.current_user(Some(admin.session())).await.json().await.unwrap();
    let user_view: Value = app.current_user(Some(user.session())).await.json().await.unwrap();

    assert_eq!(admin_view["currentUser"]["admin"], true);
    assert!(user_view["currentUser"].get("admin").is_none(), "{user_view}");
}

#[tokio::test]
async fn revocations_are_forgotten_once_no_token_they_refuse_can_be_alive() {
    let mut config = test_config(common::testing::fresh_mongo("auth"));
    config.own.session.jwt_ttl = Duration::from_secs(2);
    let app = spawn_app_with(config).await;
    let user = app.signed_up("short@test.com").await;
    app.post_with_cookie("/api/users/sessions/revoke", Some(user.session())).await;
    let entries = || async {
        let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines().find_map(|l| l.strip_prefix("session_revocations ")).and_then(|n| n.trim().parse::<u64>().ok())
    };
    assert!(
        common::testing::eventually(WAIT, || async { (entries().await == Some(1)).then_some(()) }).await.is_some(),
        "the revocation is held"
    );

    let forgotten = common::testing::eventually(WAIT, || async { (entries().await == Some(0)).then_some(()) }).await;

    assert!(forgotten.is_some(), "the entry is dropped a token lifetime after the revocation");
}

#[test]
fn grant_admin_is_a_command_of_the_binary_that_names_an_unknown_email() {
    let mongo = common::testing::fresh_mongo("auth");
    let uri = secrecy::ExposeSecret::expose_secret(&mongo.uri).to_owned();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_auth"))
            .args(args)
            .env("MONGO_URI", &uri)
            .env("NATS_URL", common::testing::nats_url())
            .env("JWT_KEY", "k".repeat(32))
            .env("RUST_LOG", "warn")
            .output()
            .expect("the binary runs")
    };

    let unknown = run(&["grant-admin", "nobody@test.com"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user has the email nobody@test.com"));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let db = common::testing::test_database(&mongo.database).await;
        db.collection::<bson::Document>("users")
            .insert_one(bson::doc! {"email": "chief@test.com", "passwordHash": "x", "createdAt": bson::DateTime::now()})
            .await
            .unwrap();
    });
    let granted = run(&["grant-admin", "Chief@Test.com"]);
    assert!(granted.status.success(), "{}", String::from_utf8_lossy(&granted.stderr));
    assert!(String::from_utf8_lossy(&granted.stdout).contains("chief@test.com is now an administrator"));
    let admin = runtime.block_on(async {
        let db = common::testing::test_database(&mongo.database).await;
        let user = db.collection::<bson::Document>("users").find_one(bson::doc! {"email": "chief@test.com"}).await;
        user.unwrap().unwrap().get_bool("admin").unwrap()
    });
    assert!(admin);
    let usage = run(&["grant-admin"]);
    assert!(!usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: auth grant-admin EMAIL"));
}
