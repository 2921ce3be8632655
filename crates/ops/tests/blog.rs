//! The blog's audit on real services: posts, comments, moderation and query together.

use std::time::Duration;

use common::events::EventBus;
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, eventually, fresh_mongo, fresh_nats, object_id_hex, session_cookie, test_database,
    test_session_settings,
};
use serde_json::{Value, json};

fn kinds(report: &ops::Report) -> Vec<&'static str> {
    let mut kinds: Vec<_> = report.findings.iter().map(|f| f.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

#[tokio::test]
async fn a_moderated_blog_audits_clean_and_a_corruption_is_reported() {
    let (nats, session) = (fresh_nats(), test_session_settings());
    let stop = CancellationToken::new();
    let _stop = StopOnDrop(stop.clone());
    let mongo = |name: &str| fresh_mongo(name);
    let (tm, om, pm, qm) = (mongo("tickets"), mongo("orders"), mongo("payments"), mongo("query"));
    let (posts_m, comments_m, moderation_m) = (mongo("posts"), mongo("comments"), mongo("moderation"));
    let dbs = ops::Databases {
        tickets: test_database(&tm.database).await,
        orders: test_database(&om.database).await,
        payments: test_database(&pm.database).await,
        query: test_database(&qm.database).await,
        blog: Some(ops::blog::BlogDatabases {
            posts: test_database(&posts_m.database).await,
            comments: test_database(&comments_m.database).await,
            moderation: test_database(&moderation_m.database).await,
        }),
    };
    let posts = testkit::posts(posts_m, &nats, &session, &stop).await.http;
    let comments = testkit::comments(comments_m, &nats, &session, &stop).await.http;
    let _moderation = testkit::moderation(moderation_m, &nats, &stop).await;
    let query = testkit::query(qm, &nats, &session, &stop).await.http;
    let bus = EventBus::connect(&nats, "audit-blog-test").await.unwrap();
    let cookie = session_cookie(&session.sessions(), &object_id_hex());
    let post: Value = posts.post("/api/posts", Some(&cookie), &json!({"title": "Audited"})).await.json().await.unwrap();
    let path = format!("/api/posts/{}/comments", post["id"].as_str().unwrap());
    let mut created = Vec::new();
    for content in ["fine", "orange"] {
        let comment: Value = eventually(Duration::from_secs(15), || async {
            let r = comments.post(&path, Some(&cookie), &json!({"content": content})).await;
            (r.status() == 201).then_some(r.json().await.unwrap())
        })
        .await
        .expect("comments knows the post");
        created.push(comment);
    }
    let settled = eventually(Duration::from_secs(15), || async {
        let view: Vec<Value> = query.get("/api/query/posts", None).await.json().await.ok()?;
        let all = view.first()?["comments"].as_array()?.clone();
        (all.len() == 2 && all.iter().all(|c| c["version"] == 1)).then_some(())
    });
    assert!(settled.await.is_some(), "both comments moderated in the view");

    let clean = ops::audit(&dbs, ops::dead_letter_count(&bus).await.unwrap()).await.unwrap();
    assert!(clean.findings.is_empty(), "{:?}", clean.findings);
    assert_eq!((clean.posts, clean.comments), (1, 2));

    // The rejected comment approved behind moderation's back, and a post lost by query.
    let rejected = bson::oid::ObjectId::parse_str(created[1]["id"].as_str().unwrap()).unwrap();
    dbs.blog
        .as_ref()
        .unwrap()
        .comments
        .collection::<bson::Document>("comments")
        .update_one(bson::doc! {"_id": rejected}, bson::doc! {"$set": {"status": "approved"}})
        .await
        .unwrap();
    dbs.query.collection::<bson::Document>("posts").delete_many(bson::doc! {}).await.unwrap();

    let corrupted = ops::audit(&dbs, 0).await.unwrap();
    assert_eq!(
        kinds(&corrupted),
        vec!["comment_status_disagrees_with_decision", "query_comment_disagrees", "query_missing_post"]
    );
}
