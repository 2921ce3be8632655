//! The blog end to end, through the gateway and the real Ingress table: auth, posts,
//! comments, moderation and query on one NATS namespace, called as a browser would; and
//! the services together while moderation stops and starts again.

use std::collections::HashMap;
use std::time::Duration;

use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, eventually, fresh_mongo, fresh_nats, test_session_settings};
use serde_json::Value;

mod support;

use support::{CourseClient, start};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_post_with_an_approved_and_a_rejected_comment_shows_in_the_joined_view() {
    let stop = CancellationToken::new();
    let _stop_services = StopOnDrop(stop.clone());
    let (nats, session) = (fresh_nats(), test_session_settings());
    let auth = testkit::auth(fresh_mongo("auth"), &nats, &session, &stop).await;
    let posts = testkit::posts(fresh_mongo("posts"), &nats, &session, &stop).await;
    let comments = testkit::comments(fresh_mongo("comments"), &nats, &session, &stop).await;
    let moderation = testkit::moderation(fresh_mongo("moderation"), &nats, &stop).await;
    let query = testkit::query(fresh_mongo("query"), &nats, &session, &stop).await;
    let mut backends = HashMap::new();
    for (name, started) in [("auth", &auth), ("posts", &posts), ("comments", &comments), ("query", &query)] {
        backends.insert(name.to_owned(), started.http.base.trim_start_matches("http://").to_owned());
    }
    let (base, _stop_gateway) = start(backends).await;
    let browser = CourseClient::new(base.clone());

    // Signed out, nothing can be written.
    let (status, _) = browser.call("POST", "/api/posts", Some(r#"{"title":"Hello"}"#)).await;
    assert_eq!(status, 401);

    let (status, _) = browser
        .call("POST", "/api/users/signup", Some(r#"{"email":"blogger@example.com","password":"password"}"#))
        .await;
    assert_eq!(status, 201);
    let (status, post) = browser.call("POST", "/api/posts", Some(r#"{"title":"Hello blog"}"#)).await;
    assert_eq!(status, 201, "{post}");
    let post_id = post["id"].as_str().unwrap().to_owned();
    let (status, shown) = browser.call("GET", &format!("/api/posts/{post_id}"), None).await;
    assert_eq!((status, &shown), (200, &post));

    // The comments service learns of the post from post.created, a moment later.
    let comments_path = format!("/api/posts/{post_id}/comments");
    let approved = eventually(WAIT, || async {
        let (status, comment) = browser.call("POST", &comments_path, Some(r#"{"content":"Nice post"}"#)).await;
        (status == 201).then_some(comment)
    })
    .await
    .expect("the comment is accepted once comments knows the post");
    assert_eq!((approved["status"].as_str(), approved["version"].as_i64()), (Some("pending"), Some(0)));
    let (status, rejected) = browser.call("POST", &comments_path, Some(r#"{"content":"I prefer an Orange."}"#)).await;
    assert_eq!(status, 201, "{rejected}");
    assert_eq!(rejected["status"], "pending");

    // Moderation decides, comments applies it, query joins it all.
    let view = eventually(WAIT, || async {
        let (status, view) = browser.call("GET", "/api/query/posts", None).await;
        let done = status == 200
            && view[0]["comments"].as_array().is_some_and(|c| c.len() == 2 && c.iter().all(|c| c["version"] == 1));
        done.then_some(view)
    })
    .await
    .expect("the joined view shows both comments moderated");
    let items = view.as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!((items[0]["id"].as_str(), items[0]["title"].as_str()), (Some(post_id.as_str()), Some("Hello blog")));
    let shown: Vec<(&str, &str)> = items[0]["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["content"].as_str().unwrap(), c["status"].as_str().unwrap()))
        .collect();
    assert_eq!(shown, vec![("Nice post", "approved"), ("I prefer an Orange.", "rejected")]);
    assert_eq!(items[0]["comments"][0]["id"], approved["id"]);

    // The owner agrees with the read model.
    let (status, owned) = browser.call("GET", &comments_path, None).await;
    assert_eq!(status, 200);
    let owned: Vec<(Value, Value)> =
        owned.as_array().unwrap().iter().map(|c| (c["id"].clone(), c["status"].clone())).collect();
    assert_eq!(owned, vec![(approved["id"].clone(), "approved".into()), (rejected["id"].clone(), "rejected".into())]);

    // Nothing any service did was refused by NATS.
    for started in [&posts, &comments, &moderation, &query] {
        assert_eq!(started.http.nats_permission_denials().await, 0, "{}", started.http.base);
    }
}

#[tokio::test]
async fn comments_made_while_moderation_is_stopped_are_each_moderated_exactly_once_after_it_starts() {
    use common::events::{CommentModerated, CommentUpdated, EventBus, StreamName};
    use common::testing::{object_id_hex, read_stream, session_cookie};

    let stop = CancellationToken::new();
    let _stop_services = StopOnDrop(stop.clone());
    let (nats, session) = (fresh_nats(), test_session_settings());
    let posts = testkit::posts(fresh_mongo("posts"), &nats, &session, &stop).await;
    let comments = testkit::comments(fresh_mongo("comments"), &nats, &session, &stop).await;
    let query = testkit::query(fresh_mongo("query"), &nats, &session, &stop).await;
    let moderation_db = fresh_mongo("moderation");
    let first_run = CancellationToken::new();
    let moderation = testkit::moderation(moderation_db.clone(), &nats, &first_run).await;
    let bus = EventBus::connect(&nats, "blog-test").await.expect("a NATS connection");
    let cookie = session_cookie(&session.sessions(), &object_id_hex());
    let created = posts.http.post("/api/posts", Some(&cookie), &serde_json::json!({"title": "t"})).await;
    assert_eq!(created.status(), 201);
    let post_id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/posts/{post_id}/comments");
    let comment = |content: String| {
        let (comments, path, cookie) = (&comments, &path, &cookie);
        async move {
            eventually(WAIT, || async {
                let response = comments.http.post(path, Some(cookie), &serde_json::json!({"content": content})).await;
                (response.status() == 201).then_some(())
            })
            .await
            .expect("a comment is accepted");
        }
    };
    let moderated = || async {
        let mut ids: Vec<String> = read_stream(&bus, StreamName::Moderation, "comment.moderated")
            .await
            .iter()
            .map(|m| m.json::<CommentModerated>().id)
            .collect();
        ids.sort();
        ids
    };

    // Moderation runs for the first five comments, then stops.
    for n in 0..5 {
        comment(format!("early {n}")).await;
    }
    assert!(eventually(WAIT, || async { (moderated().await.len() == 5).then_some(()) }).await.is_some());
    first_run.cancel();
    moderation.task.await.expect("the moderation task").expect("a clean stop");

    // Twenty more arrive while it is stopped: they stay pending.
    for n in 0..20 {
        comment(if n % 4 == 0 { format!("orange {n}") } else { format!("late {n}") }).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(moderated().await.len(), 5, "nothing decided while moderation is stopped");
    let pending = comments.http.get(&path, None).await.json::<Vec<Value>>().await.unwrap();
    assert_eq!(pending.iter().filter(|c| c["status"] == "pending").count(), 20);

    // Started again (two replicas at once, on the same database): every comment decided once.
    let _a = testkit::moderation(moderation_db.clone(), &nats, &stop).await;
    let _b = testkit::moderation(moderation_db, &nats, &stop).await;
    let view = eventually(WAIT, || async {
        let view: Vec<Value> = query.http.get("/api/query/posts", None).await.json().await.ok()?;
        let all = view.first()?["comments"].as_array()?.clone();
        (all.len() == 25 && all.iter().all(|c| c["version"] == 1)).then_some(all)
    })
    .await
    .expect("all 25 comments moderated in the joined view");
    let rejected: Vec<&str> =
        view.iter().filter(|c| c["status"] == "rejected").map(|c| c["content"].as_str().unwrap()).collect();
    assert_eq!(rejected, ["orange 0", "orange 4", "orange 8", "orange 12", "orange 16"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let decisions = moderated().await;
    let mut unique = decisions.clone();
    unique.dedup();
    assert_eq!((decisions.len(), unique.len()), (25, 25), "one comment.moderated per comment");
    let mut updated: Vec<String> = read_stream(&bus, StreamName::Comments, "comment.updated")
        .await
        .iter()
        .map(|m| m.json::<CommentUpdated>().id)
        .collect();
    updated.sort();
    updated.dedup();
    assert_eq!(updated.len(), 25, "one comment.updated per comment");
    assert_eq!(read_stream(&bus, StreamName::Comments, "comment.updated").await.len(), 25);
    let owned = comments.http.get(&path, None).await.json::<Vec<Value>>().await.unwrap();
    assert!(owned.iter().all(|c| c["version"] == 1 && c["status"] != "pending"), "{owned:?}");
}
