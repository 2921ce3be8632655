//! The live ticket feed: every replica's subscribers see every change, in order; a
//! reconnection resumes without loss.

use std::time::Duration;

use common::testing::{fresh_mongo, fresh_nats, object_id_hex};
use futures::StreamExt;
use serde_json::Value;

use crate::helpers::{History, WAIT, spawn, test_config};

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct SseEvent {
    id: Option<String>,
    event: String,
    data: Value,
}

/// A reader of an SSE response.
struct Subscriber {
    lines: std::pin::Pin<Box<dyn futures::Stream<Item = String> + Send>>,
}

impl Subscriber {
    async fn open(base: &str, query: &str, last_event_id: Option<&str>) -> Self {
        let mut request = reqwest::Client::new().get(format!("{base}/api/query/tickets/events?{query}"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("the feed answers");
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut buffer = String::new();
        let lines = response
            .bytes_stream()
            .map(move |chunk| {
                buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap_or_default()));
                let mut lines = Vec::new();
                while let Some(at) = buffer.find('\n') {
                    lines.push(buffer[..at].trim_end_matches('\r').to_owned());
                    buffer.drain(..=at);
                }
                futures::stream::iter(lines)
            })
            .flatten();
        Self { lines: Box::pin(lines) }
    }

    /// The next event (comments and heartbeats skipped).
    async fn next(&mut self) -> SseEvent {
        let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
        // One deadline for the event: heartbeats do not extend it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line =
                tokio::time::timeout_at(deadline, self.lines.next()).await.expect("an event in time").expect("open");
            if line.is_empty() {
                if !data.is_empty() {
                    return SseEvent { id, event, data: serde_json::from_str(&data).unwrap_or(Value::String(data)) };
                }
                continue;
            }
            if let Some(value) = line.strip_prefix("id:") {
                id = Some(value.trim().to_owned());
            } else if let Some(value) = line.strip_prefix("event:") {
                event = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data.push_str(value.trim_start());
            }
        }
    }

    /// The statuses of the next `n` events about `ticket`.
    async fn statuses(&mut self, ticket: &str, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        while seen.len() < n {
            // Heartbeats keep an idle stream busy: the deadline is for the whole wait.
            let event = tokio::time::timeout_at(deadline, self.next())
                .await
                .unwrap_or_else(|_| panic!("only {seen:?} of {n} changes of {ticket} arrived"));
            if event.event == "ticket" && event.data["id"] == ticket {
                seen.push(event.data["status"].as_str().unwrap().to_owned());
            }
        }
        seen
    }
}

#[tokio::test]
async fn two_replicas_deliver_a_reservation_a_cancellation_and_a_sale_in_order_to_their_subscribers() {
    let config = test_config(fresh_mongo("query"), fresh_nats());
    let first = spawn(config.clone()).await;
    let second = spawn(config).await;
    let history = History { bus: &first.bus };
    let ticket = object_id_hex();
    let mut on_first = Subscriber::open(&first.http.base, &format!("ids={ticket}"), None).await;
    let mut on_second = Subscriber::open(&second.http.base, &format!("ids={ticket}"), None).await;

    history.ticket_with_id(&ticket, "Feed test", 1000).await;
    // (An order projected before its ticket would make the ticket's first view `reserved`.)
    first.wait_for_ticket(&ticket, |t| t["status"] == "available").await;
    let reserved = history.order(&object_id_hex(), &ticket).await;
    first.wait_for_ticket(&ticket, |t| t["status"] == "reserved").await;
    history.cancel(&reserved, &ticket).await;
    first.wait_for_ticket(&ticket, |t| t["status"] == "available" && t.get("orderId").is_none()).await;
    let sold = history.order(&object_id_hex(), &ticket).await;
    first.wait_for_ticket(&ticket, |t| t["status"] == "reserved").await;
    history.complete(&sold, &ticket).await;

    let expected = ["available", "reserved", "available", "reserved", "sold"];
    assert_eq!(on_first.statuses(&ticket, 5).await, expected, "replica one");
    assert_eq!(on_second.statuses(&ticket, 5).await, expected, "replica two");
}

#[tokio::test]
async fn a_reconnection_with_last_event_id_resumes_without_loss() {
    let app = spawn(test_config(fresh_mongo("query"), fresh_nats())).await;
    let history = History { bus: &app.bus };
    let tickets: Vec<String> = (0..4).map(|_| object_id_hex()).collect();
    let mut subscriber = Subscriber::open(&app.http.base, "status=available", None).await;
    for (n, ticket) in tickets.iter().take(2).enumerate() {
        history.ticket_with_id(ticket, &format!("early {n}"), 500).await;
    }
    let first = subscriber.next().await;
    let second = subscriber.next().await;
    drop(subscriber); // the connection drops
    for (n, ticket) in tickets.iter().skip(2).enumerate() {
        history.ticket_with_id(ticket, &format!("late {n}"), 500).await;
    }
    app.wait_for_ticket(&tickets[3], |_| true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut resumed = Subscriber::open(&app.http.base, "status=available", second.id.as_deref()).await;

    let (third, fourth) = (resumed.next().await, resumed.next().await);
    let order: Vec<Value> = [&first, &second, &third, &fourth].iter().map(|e| e.data["id"].clone()).collect();
    let mut expected: Vec<Value> = tickets.iter().map(|t| Value::String(t.clone())).collect();
    expected.sort_by_key(|v| v.to_string());
    let mut got = order.clone();
    got.sort_by_key(|v| v.to_string());
    assert_eq!(got, expected, "each ticket exactly once across the reconnection");
    let ids: Vec<u64> =
        [&first, &second, &third, &fourth].iter().map(|e| e.id.as_ref().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");

    let mut ancient = Subscriber::open(&app.http.base, "", Some("999999999")).await;
    assert_eq!(ancient.next().await.event, "reload", "an id this feed never had: reload");
}

#[tokio::test]
async fn a_search_s_subscribers_get_the_tickets_whose_titles_match_and_no_internal_fields() {
    let app = spawn(test_config(fresh_mongo("query"), fresh_nats())).await;
    let history = History { bus: &app.bus };
    let mut subscriber = Subscriber::open(&app.http.base, "q=JAZZ", None).await;

    history.ticket("Opera gala", 500).await;
    let jazz = history.ticket("Late-night Jazz", 500).await;

    let event = subscriber.next().await;
    assert_eq!((event.event.as_str(), event.data["id"].as_str()), ("ticket", Some(jazz.as_str())));
    assert_eq!(event.data["title"], "Late-night Jazz");
    let fields: Vec<&str> = event.data.as_object().unwrap().keys().map(String::as_str).collect();
    assert!(fields.iter().all(|f| ["id", "title", "price", "status", "version", "orderId"].contains(f)), "{fields:?}");
}

#[tokio::test]
async fn bad_feed_parameters_are_a_400_in_the_envelope() {
    let app = spawn(test_config(fresh_mongo("query"), fresh_nats())).await;

    let response = app.http.get("/api/query/tickets/events?status=gone", None).await;

    assert_eq!(response.status(), 400);
    assert_eq!(common::testing::envelope(response).await[0].1.as_deref(), Some("status"));
}
