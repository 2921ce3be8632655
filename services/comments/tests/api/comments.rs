use common::events::{CommentCreated, CommentStatus};
use common::testing::{envelope, object_id_hex};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn commenting_requires_a_session() {
    let app = spawn_app().await;
    let post = app.known_post().await;

    let response = app.comment(None, &post, &json!({"content": "hi"})).await;

    assert_eq!(response.status(), 401);
    assert_eq!(envelope(response).await, vec![("Not authorized".into(), None)]);
}

#[tokio::test]
async fn a_post_not_seen_in_post_created_is_a_404() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for id in [object_id_hex(), "nope".to_owned()] {
        let created = app.comment(Some(&cookie), &id, &json!({"content": "hi"})).await;
        assert_eq!(created.status(), 404, "{id}");
        assert_eq!(envelope(created).await, vec![("Not Found".into(), None)]);
        let listed = app.http.get(&format!("/api/posts/{id}/comments"), None).await;
        assert_eq!(listed.status(), 404, "{id}");
    }
}

#[tokio::test]
async fn invalid_content_is_a_400_naming_content() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let post = app.known_post().await;

    for body in [json!({}), json!({"content": ""}), json!({"content": " \n "}), json!({"content": "x".repeat(2001)})] {
        let response = app.comment(Some(&cookie), &post, &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(envelope(response).await[0].1.as_deref(), Some("content"), "{body}");
    }
    assert!(app.comments(&post).await.is_empty());
}

#[tokio::test]
async fn a_comment_is_created_pending_listed_and_published_as_comment_created() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.user();
    let post = app.known_post().await;

    let comment = app.create_comment(&cookie, &post, "  First!  ").await;

    assert_eq!(comment["content"], "First!");
    assert_eq!(comment["status"], "pending");
    assert_eq!(comment["version"], 0);
    assert_eq!(comment["postId"], post.as_str());
    assert_eq!(comment["userId"], user_id.as_str());
    assert_eq!(app.comments(&post).await, vec![comment.clone()]);
    let events = app.comment_events("comment.created", 1).await;
    assert_eq!(events.len(), 1);
    let event: CommentCreated = events[0].json();
    assert_eq!(
        event,
        CommentCreated {
            id: comment["id"].as_str().unwrap().to_owned(),
            version: 0,
            post_id: post,
            content: "First!".into(),
            status: CommentStatus::Pending,
            user_id,
        }
    );
}

#[tokio::test]
async fn comments_are_listed_per_post_oldest_first() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let (first_post, second_post) = (app.known_post().await, app.known_post().await);

    let a = app.create_comment(&cookie, &first_post, "a").await;
    let b = app.create_comment(&cookie, &first_post, "b").await;
    let c = app.create_comment(&cookie, &second_post, "c").await;

    assert_eq!(app.comments(&first_post).await, vec![a, b]);
    assert_eq!(app.comments(&second_post).await, vec![c]);
}

#[tokio::test]
async fn a_repeated_post_created_is_harmless() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let post = app.known_post().await;

    let event =
        common::events::PostCreated { id: post.clone(), version: 0, title: "Hello".into(), user_id: object_id_hex() };
    common::testing::publish_event(&app.bus, &event).await;
    app.wait_for_outcome("post.created", "ack", 2).await;

    app.create_comment(&cookie, &post, "still fine").await;
}
