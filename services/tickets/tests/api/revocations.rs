//! Tokens of users whose sessions were revoked, as the tickets service sees them: it
//! learns revocations from `user.>` on its own, and keeps refusing what it knows while
//! NATS is away.

use common::events::UserBanned;
use common::testing::eventually;
use serde_json::{Value, json};

use crate::helpers::{WAIT, spawn_app_behind_nats_proxy};

fn banned_at_now(user_id: &str) -> UserBanned {
    let at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    UserBanned { user_id: user_id.to_owned(), at, reason: None }
}

#[tokio::test]
async fn a_ban_refuses_earlier_tokens_and_an_outage_keeps_what_is_known_while_readyz_says_stale() {
    let app = spawn_app_behind_nats_proxy().await;
    let (user, cookie) = app.user();
    assert_eq!(app.post_ticket(Some(&cookie), &json!({"title": "a", "price": 1})).await.status(), 201);

    app.publish(&banned_at_now(&user)).await;
    let refused = eventually(WAIT, || async {
        let status = app.post_ticket(Some(&cookie), &json!({"title": "b", "price": 1})).await.status();
        (status == 401).then_some(())
    })
    .await;
    assert!(refused.is_some(), "the banned user's token is refused");

    app.nats_proxy.as_ref().unwrap().cut();
    let stale = eventually(WAIT, || async {
        let report: Value = app.get("/readyz").await.json().await.unwrap();
        (report["checks"]["revocations"] == "stale").then_some(report)
    })
    .await;
    assert!(stale.is_some(), "readyz reports the feed as stale while NATS is away");
    assert_eq!(app.post_ticket(Some(&cookie), &json!({"title": "c", "price": 1})).await.status(), 401);
    let (_, other) = app.user();
    assert_eq!(
        app.post_ticket(Some(&other), &json!({"title": "d", "price": 1})).await.status(),
        201,
        "other users are served as usual"
    );

    // Banned while the feed was away: learnt once NATS is back.
    let (late, late_cookie) = app.user();
    app.publish(&banned_at_now(&late)).await;
    app.nats_proxy.as_ref().unwrap().restore();
    let caught_up = eventually(WAIT, || async {
        let status = app.post_ticket(Some(&late_cookie), &json!({"title": "e", "price": 1})).await.status();
        (status == 401).then_some(())
    })
    .await;
    assert!(caught_up.is_some(), "the feed resumes after the outage without missing the ban");
    let ready = eventually(WAIT, || async { (app.get("/readyz").await.status() == 200).then_some(()) }).await;
    assert!(ready.is_some());
}
