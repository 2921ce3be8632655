//! `spawn_app()`: the comments application on port 0 with its own database, event
//! namespace and JWT key, plus a direct NATS connection to observe and inject events.

use std::time::Duration;

use common::Sessions;
use common::events::{CommentModerated, CommentStatus, EventBus, PostCreated, StreamName};
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, StoredMessage, TestHttp, fresh_mongo, fresh_nats, object_id_hex, publish_event, service_config,
    session_cookie, wait_for_messages,
};
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(15);

pub struct TestApp {
    pub http: TestHttp,
    pub sessions: Sessions,
    pub bus: EventBus,
    _stop: StopOnDrop,
}

pub async fn spawn_app() -> TestApp {
    let config =
        service_config("comments", fresh_mongo("comments"), &fresh_nats(), common::testing::test_session_settings());
    let sessions = config.own.sessions();
    let bus = EventBus::connect(&common::testing::as_harness(&config.nats), "comments-test").await.expect("NATS");
    let application = comments::build(config).await.expect("the application builds");
    let http = TestHttp::new(application.port());
    let stop = CancellationToken::new();
    tokio::spawn(application.run_until_stopped(stop.clone()));
    TestApp { http, sessions, bus, _stop: StopOnDrop(stop) }
}

impl TestApp {
    /// A signed-in user: their id and `Cookie` header.
    pub fn user(&self) -> (String, String) {
        let id = object_id_hex();
        let cookie = session_cookie(&self.sessions, &id);
        (id, cookie)
    }

    /// Publishes `post.created` for a new post and waits until the service knows it.
    pub async fn known_post(&self) -> String {
        let id = object_id_hex();
        let event = PostCreated { id: id.clone(), version: 0, title: "Hello".into(), user_id: object_id_hex() };
        publish_event(&self.bus, &event).await;
        let known = common::testing::eventually(WAIT, || async {
            (self.http.get(&format!("/api/posts/{id}/comments"), None).await.status() == 200).then_some(())
        })
        .await;
        assert!(known.is_some(), "post {id} never became known");
        id
    }

    pub async fn comment(&self, cookie: Option<&str>, post_id: &str, body: &Value) -> reqwest::Response {
        self.http.post(&format!("/api/posts/{post_id}/comments"), cookie, body).await
    }

    /// Creates a comment and returns its JSON.
    pub async fn create_comment(&self, cookie: &str, post_id: &str, content: &str) -> Value {
        let response = self.comment(Some(cookie), post_id, &json!({"content": content})).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn comments(&self, post_id: &str) -> Vec<Value> {
        let response = self.http.get(&format!("/api/posts/{post_id}/comments"), None).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Publishes a decision as the moderation service would.
    pub async fn moderate(&self, comment: &Value, status: CommentStatus) {
        let event = CommentModerated {
            id: comment["id"].as_str().unwrap().to_owned(),
            version: comment["version"].as_i64().unwrap(),
            post_id: comment["postId"].as_str().unwrap().to_owned(),
            status,
        };
        publish_event(&self.bus, &event).await;
    }

    /// Waits until `count` messages are stored under `subject` in the COMMENTS stream.
    pub async fn comment_events(&self, subject: &str, count: usize) -> Vec<StoredMessage> {
        wait_for_messages(&self.bus, StreamName::Comments, subject, count, WAIT).await
    }

    /// Waits until the comment (of `post_id`) reaches `version`.
    pub async fn wait_for_version(&self, post_id: &str, id: &str, version: i64) -> Value {
        common::testing::eventually(WAIT, || async {
            self.comments(post_id).await.into_iter().find(|c| c["id"] == id && c["version"] == version)
        })
        .await
        .unwrap_or_else(|| panic!("comment {id} never reached version {version}"))
    }

    /// Waits until the consumer for `subject` has handled `count` deliveries with `outcome`.
    pub async fn wait_for_outcome(&self, subject: &str, outcome: &str, count: u64) {
        let consumer = format!("comments-{}", subject.replace('.', "-"));
        self.http.wait_for_outcome(&consumer, outcome, count).await;
    }
}
