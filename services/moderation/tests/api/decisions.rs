use std::collections::HashMap;
use std::time::Duration;

use common::config::MongoSettings;
use common::events::{CommentCreated, CommentModerated, CommentStatus, EventBus, NatsSettings, StreamName};
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, TestHttp, fresh_mongo, fresh_nats, object_id_hex, publish_event, read_stream, service_config,
};
use moderation::{BannedWords, Settings};

const WAIT: Duration = Duration::from_secs(20);

struct Worker {
    http: TestHttp,
    stop: StopOnDrop,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Worker {
    /// Stops the worker and waits until it has shut down.
    async fn stop(self) {
        self.stop.0.cancel();
        self.handle.await.expect("the worker task").expect("a clean shutdown");
    }
}

async fn start(mongo: &MongoSettings, nats: &NatsSettings, banned: &str) -> Worker {
    let own = Settings { banned: BannedWords::parse(banned).unwrap() };
    let application = moderation::build(service_config("moderation", mongo.clone(), nats, own)).await.expect("builds");
    let http = TestHttp::new(application.port());
    let stop = CancellationToken::new();
    let handle = tokio::spawn(application.run_until_stopped(stop.clone()));
    Worker { http, stop: StopOnDrop(stop), handle }
}

async fn bus(nats: &NatsSettings) -> EventBus {
    EventBus::connect(nats, "moderation-test").await.expect("a NATS connection")
}

fn comment(content: &str) -> CommentCreated {
    CommentCreated {
        id: object_id_hex(),
        version: 0,
        post_id: object_id_hex(),
        content: content.to_owned(),
        status: CommentStatus::Pending,
        user_id: object_id_hex(),
    }
}

async fn decisions(bus: &EventBus) -> Vec<CommentModerated> {
    read_stream(bus, StreamName::Moderation, "comment.moderated").await.iter().map(|m| m.json()).collect()
}

/// Waits until `count` decisions are published (or the wait runs out), and returns them.
async fn wait_for_decisions(bus: &EventBus, count: usize) -> Vec<CommentModerated> {
    common::testing::eventually(WAIT, || async {
        let found = decisions(bus).await;
        (found.len() >= count).then_some(found)
    })
    .await
    .unwrap_or_else(|| panic!("fewer than {count} decisions"))
}

#[tokio::test]
async fn a_comment_with_a_banned_word_is_rejected_and_the_others_approved() {
    let (mongo, nats) = (fresh_mongo("moderation"), fresh_nats());
    let _worker = start(&mongo, &nats, "orange").await;
    let bus = bus(&nats).await;
    let (fine, banned, near) = (comment("I like apples"), comment("I like ORANGE!"), comment("oranges are fine"));

    for event in [&fine, &banned, &near] {
        publish_event(&bus, event).await;
    }

    let found: HashMap<String, CommentModerated> =
        wait_for_decisions(&bus, 3).await.into_iter().map(|d| (d.id.clone(), d)).collect();
    assert_eq!(found[&fine.id].status, CommentStatus::Approved);
    assert_eq!(found[&banned.id].status, CommentStatus::Rejected);
    assert_eq!(found[&near.id].status, CommentStatus::Approved, "whole words only");
    let decision = &found[&banned.id];
    assert_eq!((decision.version, decision.post_id.as_str()), (0, banned.post_id.as_str()));
}

#[tokio::test]
async fn the_banned_words_are_configurable() {
    let (mongo, nats) = (fresh_mongo("moderation"), fresh_nats());
    let _worker = start(&mongo, &nats, "kiwi, mango").await;
    let bus = bus(&nats).await;
    let (orange, mango) = (comment("orange"), comment("a Mango"));

    publish_event(&bus, &orange).await;
    publish_event(&bus, &mango).await;

    let found: HashMap<String, CommentStatus> =
        wait_for_decisions(&bus, 2).await.into_iter().map(|d| (d.id, d.status)).collect();
    assert_eq!(found[&orange.id], CommentStatus::Approved);
    assert_eq!(found[&mango.id], CommentStatus::Rejected);
}

#[tokio::test]
async fn a_redelivered_comment_is_decided_once() {
    let (mongo, nats) = (fresh_mongo("moderation"), fresh_nats());
    let worker = start(&mongo, &nats, "orange").await;
    let bus = bus(&nats).await;
    let event = comment("hello");

    // Three copies with different event ids: past JetStream's deduplication, as a
    // redelivery after the deduplication window would be.
    for _ in 0..3 {
        publish_event(&bus, &event).await;
    }
    worker.http.wait_for_outcome("moderation-comment-created", "ack", 3).await;

    assert_eq!(wait_for_decisions(&bus, 1).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(decisions(&bus).await.len(), 1, "one decision for three deliveries");
    assert!(worker.http.metrics().await.contains("comments_moderated_total{status=\"approved\"} 1"));
}

#[tokio::test]
async fn comments_arriving_while_moderation_is_stopped_are_each_moderated_exactly_once_when_it_starts() {
    let (mongo, nats) = (fresh_mongo("moderation"), fresh_nats());
    let bus = bus(&nats).await;
    // Running, then stopped: its durable consumer stays, and the backlog grows behind it.
    let first = start(&mongo, &nats, "orange").await;
    let early = comment("early orange");
    publish_event(&bus, &early).await;
    wait_for_decisions(&bus, 1).await;
    first.stop().await;

    let mut comments = Vec::new();
    for n in 0..30 {
        let event = comment(if n % 3 == 0 { "orange juice" } else { "apple juice" });
        publish_event(&bus, &event).await;
        comments.push(event);
    }
    // Some of them delivered twice (a comments service that republished them).
    for event in comments.iter().take(5) {
        publish_event(&bus, event).await;
    }
    assert_eq!(decisions(&bus).await.len(), 1, "nothing is decided while moderation is stopped");

    // Two replicas start at once and share the backlog.
    let (_a, _b) = tokio::join!(start(&mongo, &nats, "orange"), start(&mongo, &nats, "orange"));

    let found = wait_for_decisions(&bus, 31).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found_after = decisions(&bus).await;
    assert_eq!(found_after.len(), found.len(), "no late duplicates");
    let mut per_comment: HashMap<&str, Vec<CommentStatus>> = HashMap::new();
    for decision in &found_after {
        per_comment.entry(decision.id.as_str()).or_default().push(decision.status);
    }
    assert_eq!(per_comment.len(), 31);
    assert!(per_comment.values().all(|d| d.len() == 1), "each comment decided once: {per_comment:?}");
    assert_eq!(per_comment[early.id.as_str()], vec![CommentStatus::Rejected]);
    for (n, event) in comments.iter().enumerate() {
        let want = if n % 3 == 0 { CommentStatus::Rejected } else { CommentStatus::Approved };
        assert_eq!(per_comment[event.id.as_str()], vec![want], "{}", event.content);
    }
}

#[tokio::test]
async fn the_worker_serves_the_platform_endpoints_only() {
    let (mongo, nats) = (fresh_mongo("moderation"), fresh_nats());
    let worker = start(&mongo, &nats, "orange").await;

    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(worker.http.get(path, None).await.status(), 200, "{path}");
    }
    assert_eq!(worker.http.get("/api/posts", None).await.status(), 404);
    assert_eq!(worker.http.nats_permission_denials().await, 0);
}
