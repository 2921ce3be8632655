use std::time::Duration;

use common::Sessions;
use common::events::{EventBus, PostCreated, StreamName};
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, TestHttp, envelope, fresh_mongo, fresh_nats, object_id_hex, service_config, session_cookie,
    wait_for_messages,
};
use serde_json::{Value, json};

struct TestApp {
    http: TestHttp,
    sessions: Sessions,
    bus: EventBus,
    _stop: StopOnDrop,
}

async fn spawn_app() -> TestApp {
    let config = service_config("posts", fresh_mongo("posts"), &fresh_nats(), common::testing::test_session_settings());
    let sessions = config.own.sessions();
    let bus = EventBus::connect(&common::testing::as_harness(&config.nats), "posts-test").await.expect("NATS");
    let application = posts::build(config).await.expect("the application builds");
    let http = TestHttp::new(application.port());
    let stop = CancellationToken::new();
    tokio::spawn(application.run_until_stopped(stop.clone()));
    TestApp { http, sessions, bus, _stop: StopOnDrop(stop) }
}

impl TestApp {
    fn cookie(&self) -> (String, String) {
        let id = object_id_hex();
        let cookie = session_cookie(&self.sessions, &id);
        (id, cookie)
    }
}

#[tokio::test]
async fn creating_a_post_requires_a_session() {
    let app = spawn_app().await;

    let response = app.http.post("/api/posts", None, &json!({"title": "Hello"})).await;

    assert_eq!(response.status(), 401);
    assert_eq!(envelope(response).await, vec![("Not authorized".into(), None)]);
}

#[tokio::test]
async fn an_invalid_title_is_a_400_naming_title() {
    let app = spawn_app().await;
    let (_, cookie) = app.cookie();

    for body in [
        json!({}),
        json!({"title": ""}),
        json!({"title": "  "}),
        json!({"title": "t".repeat(201)}),
        json!({"title": 7}),
    ] {
        let response = app.http.post("/api/posts", Some(&cookie), &body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(envelope(response).await[0].1.as_deref(), Some("title"), "{body}");
    }
}

#[tokio::test]
async fn a_post_is_created_shown_and_published_as_post_created() {
    let app = spawn_app().await;
    let (user_id, cookie) = app.cookie();

    let response = app.http.post("/api/posts", Some(&cookie), &json!({"title": "  Hello blog  "})).await;

    assert_eq!(response.status(), 201);
    let post: Value = response.json().await.unwrap();
    assert_eq!(
        (post["title"].as_str(), post["userId"].as_str(), post["version"].as_i64()),
        (Some("Hello blog"), Some(user_id.as_str()), Some(0))
    );
    let id = post["id"].as_str().unwrap();
    let shown = app.http.get(&format!("/api/posts/{id}"), None).await;
    assert_eq!(shown.status(), 200);
    assert_eq!(shown.json::<Value>().await.unwrap(), post);
    let events = wait_for_messages(&app.bus, StreamName::Posts, "post.created", 1, Duration::from_secs(15)).await;
    assert_eq!(events.len(), 1);
    let event: PostCreated = events[0].json();
    assert_eq!(event, PostCreated { id: id.to_owned(), version: 0, title: "Hello blog".into(), user_id });
    assert!(events[0].msg_id().is_some(), "published with its event id");
}

#[tokio::test]
async fn an_unknown_or_malformed_post_id_is_a_404() {
    let app = spawn_app().await;

    for id in [object_id_hex(), "not-an-id".to_owned()] {
        let response = app.http.get(&format!("/api/posts/{id}"), None).await;
        assert_eq!(response.status(), 404, "{id}");
        assert_eq!(envelope(response).await, vec![("Not Found".into(), None)]);
    }
}

#[tokio::test]
async fn the_service_describes_its_routes_and_serves_the_platform_endpoints() {
    let app = spawn_app().await;

    let doc: Value = app.http.get("/openapi.json", None).await.json().await.unwrap();
    assert!(doc["paths"]["/api/posts"]["post"].is_object(), "{doc}");
    assert!(doc["paths"]["/api/posts/{id}"]["get"].is_object(), "{doc}");
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(app.http.get(path, None).await.status(), 200, "{path}");
    }
    assert_eq!(app.http.nats_permission_denials().await, 0);
}
