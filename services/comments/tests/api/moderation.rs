use common::events::listener::dead_letter_reason;
use common::events::{CommentModerated, CommentStatus, CommentUpdated, StreamName};
use common::testing::{object_id_hex, publish_event, wait_for_messages};

use crate::helpers::{WAIT, spawn_app};

#[tokio::test]
async fn comment_moderated_sets_the_status_once_and_publishes_comment_updated() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let post = app.known_post().await;
    let approved = app.create_comment(&cookie, &post, "nice").await;
    let rejected = app.create_comment(&cookie, &post, "orange").await;

    app.moderate(&approved, CommentStatus::Approved).await;
    app.moderate(&rejected, CommentStatus::Rejected).await;

    let a = app.wait_for_version(&post, approved["id"].as_str().unwrap(), 1).await;
    let r = app.wait_for_version(&post, rejected["id"].as_str().unwrap(), 1).await;
    assert_eq!((a["status"].as_str(), r["status"].as_str()), (Some("approved"), Some("rejected")));
    let events = app.comment_events("comment.updated", 2).await;
    let mut updated: Vec<CommentUpdated> = events.iter().map(|m| m.json()).collect();
    updated.sort_by_key(|e| e.content.clone());
    assert_eq!(updated[0].id, approved["id"].as_str().unwrap());
    assert_eq!((updated[0].version, updated[0].status), (1, CommentStatus::Approved));
    assert_eq!(
        (updated[1].version, updated[1].status, updated[1].content.as_str()),
        (1, CommentStatus::Rejected, "orange")
    );
    assert_eq!((updated[1].user_id.as_str(), updated[1].post_id.as_str()), (user_id.as_str(), post.as_str()));
}

#[tokio::test]
async fn a_repeated_or_contradicting_decision_changes_nothing() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let post = app.known_post().await;
    let comment = app.create_comment(&cookie, &post, "nice").await;
    app.moderate(&comment, CommentStatus::Approved).await;
    let id = comment["id"].as_str().unwrap();
    app.wait_for_version(&post, id, 1).await;

    // The same decision again (a fresh event id, past deduplication), and another one
    // about the same version: both are stale.
    app.moderate(&comment, CommentStatus::Approved).await;
    app.moderate(&comment, CommentStatus::Rejected).await;
    app.wait_for_outcome("comment.moderated", "ack", 3).await;

    let now = app.wait_for_version(&post, id, 1).await;
    assert_eq!(now["status"], "approved");
    assert_eq!(app.comment_events("comment.updated", 2).await.len(), 1, "one comment.updated only");
}

#[tokio::test]
async fn a_decision_about_an_unknown_comment_is_dead_lettered() {
    let app = spawn_app().await;

    let event =
        CommentModerated { id: object_id_hex(), version: 0, post_id: object_id_hex(), status: CommentStatus::Approved };
    publish_event(&app.bus, &event).await;

    app.wait_for_outcome("comment.moderated", "dead_letter", 1).await;
    let dead = wait_for_messages(&app.bus, StreamName::DeadLetter, "deadletter.>", 1, WAIT).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].subject, "deadletter.comments.comment.moderated");
    assert_eq!(dead_letter_reason(&dead[0].headers).as_deref(), Some("poison"));
    let detail = dead[0].headers.get("Dead-Letter-Detail").map(|v| v.as_str().to_owned()).unwrap_or_default();
    assert!(detail.contains("does not exist"), "{detail}");
}
