//! The blog's read model: posts with their comments and each comment's status, from
//! `post.created`, `comment.created` and `comment.updated` only, in any order; and rebuilt
//! from the streams to the same view.

use common::events::{CommentCreated, CommentStatus, CommentUpdated, EventBus, PostCreated};
use common::testing::{eventually, fresh_mongo, object_id_hex, publish_event};
use serde_json::{Value, json};

use crate::helpers::{TestApp, WAIT, spawn, spawn_app, test_config};

async fn post(bus: &EventBus, title: &str) -> String {
    let id = object_id_hex();
    let event = PostCreated { id: id.clone(), version: 0, title: title.into(), user_id: object_id_hex() };
    publish_event(bus, &event).await;
    id
}

fn created(post_id: &str, content: &str) -> CommentCreated {
    CommentCreated {
        id: object_id_hex(),
        version: 0,
        post_id: post_id.into(),
        content: content.into(),
        status: CommentStatus::Pending,
        user_id: object_id_hex(),
    }
}

fn moderated(comment: &CommentCreated, status: CommentStatus) -> CommentUpdated {
    CommentUpdated {
        id: comment.id.clone(),
        version: 1,
        post_id: comment.post_id.clone(),
        content: comment.content.clone(),
        status,
        user_id: comment.user_id.clone(),
    }
}

async fn posts(app: &TestApp) -> Vec<Value> {
    let response = app.http.get("/api/query/posts", None).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits until the blog view satisfies `check`, and returns it.
async fn wait_for_posts(app: &TestApp, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    eventually(WAIT, || async {
        let view = posts(app).await;
        check(&view).then_some(view)
    })
    .await
    .expect("the blog view never got there")
}

/// (content, status, version) of a post's comments.
fn comments_of(view: &[Value], post_id: &str) -> Vec<(String, String, i64)> {
    view.iter()
        .find(|p| p["id"] == post_id)
        .map(|p| {
            p["comments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["content"].as_str().unwrap().into(),
                        c["status"].as_str().unwrap().into(),
                        c["version"].as_i64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn posts_are_listed_with_their_comments_and_each_comments_status() {
    let app = spawn_app().await;
    let first = post(&app.bus, "First post").await;
    let second = post(&app.bus, "Second post").await;
    let (nice, orange, waiting) = (created(&first, "nice"), created(&first, "orange"), created(&second, "hmm"));

    for comment in [&nice, &orange, &waiting] {
        publish_event(&app.bus, comment).await;
    }
    publish_event(&app.bus, &moderated(&nice, CommentStatus::Approved)).await;
    publish_event(&app.bus, &moderated(&orange, CommentStatus::Rejected)).await;

    let view = wait_for_posts(&app, |v| {
        v.len() == 2
            && comments_of(v, &first).iter().all(|c| c.2 == 1)
            && comments_of(v, &first).len() == 2
            && comments_of(v, &second).len() == 1
    })
    .await;
    assert_eq!((view[0]["id"].as_str(), view[0]["title"].as_str()), (Some(first.as_str()), Some("First post")));
    assert_eq!(view[1]["id"], second.as_str());
    assert_eq!(
        comments_of(&view, &first),
        vec![("nice".into(), "approved".into(), 1), ("orange".into(), "rejected".into(), 1)]
    );
    assert_eq!(comments_of(&view, &second), vec![("hmm".into(), "pending".into(), 0)]);
    let comment = &view[0]["comments"][0];
    assert_eq!(comment["id"], nice.id.as_str());
    assert_eq!(comment["userId"], nice.user_id.as_str());
}

#[tokio::test]
async fn events_in_any_order_give_the_same_view() {
    let app = spawn_app().await;
    let post_id = object_id_hex();
    let comment = created(&post_id, "late post");

    // The update first, then the creation (stale), then the post.
    publish_event(&app.bus, &moderated(&comment, CommentStatus::Approved)).await;
    publish_event(&app.bus, &comment).await;
    publish_event(
        &app.bus,
        &PostCreated { id: post_id.clone(), version: 0, title: "t".into(), user_id: object_id_hex() },
    )
    .await;
    // And a redelivery of everything.
    publish_event(&app.bus, &comment).await;
    publish_event(&app.bus, &moderated(&comment, CommentStatus::Approved)).await;

    let view = wait_for_posts(&app, |v| v.len() == 1 && !comments_of(v, &post_id).is_empty()).await;
    app.http.wait_for_outcome("query-comment-created", "ack", 2).await;
    app.http.wait_for_outcome("query-comment-updated", "ack", 2).await;
    assert_eq!(comments_of(&view, &post_id), vec![("late post".into(), "approved".into(), 1)]);
    assert_eq!(comments_of(&posts(&app).await, &post_id), vec![("late post".into(), "approved".into(), 1)]);
}

#[tokio::test]
async fn a_rebuild_reproduces_the_blog_view() {
    let live = spawn_app().await;
    let mut expected_comments = 0;
    for n in 0..4 {
        let post_id = post(&live.bus, &format!("post {n}")).await;
        for m in 0..3 {
            let comment = created(&post_id, &format!("comment {n}.{m}"));
            publish_event(&live.bus, &comment).await;
            expected_comments += 1;
            if m > 0 {
                let status = if m == 1 { CommentStatus::Approved } else { CommentStatus::Rejected };
                publish_event(&live.bus, &moderated(&comment, status)).await;
            }
        }
    }
    let settled = |v: &[Value]| {
        let comments: Vec<&Value> = v.iter().flat_map(|p| p["comments"].as_array().unwrap()).collect();
        v.len() == 4
            && comments.len() == expected_comments
            && comments.iter().filter(|c| c["version"] == 1).count() == 8
    };
    let expected = wait_for_posts(&live, settled).await;

    let nats = live.config.nats.clone();
    drop(live);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let fresh = spawn(test_config(fresh_mongo("query"), nats)).await;
    let rebuilt = wait_for_posts(&fresh, |v| v == expected.as_slice()).await;
    assert_eq!(rebuilt, expected, "a fresh query service rebuilds the same blog");

    query::rebuild(&fresh.config).await.expect("rebuild");
    let again = wait_for_posts(&fresh, |v| v == expected.as_slice()).await;
    assert_eq!(again, expected, "rebuild drops and replays to the same blog");
    assert_eq!(json!(again[0]["comments"][2]["status"]), json!("rejected"));
}
