//! A minimal Server-Sent Events reader for the query service's live ticket feed.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Deserialize;

/// A `ticket` event of the feed, as far as the benchmarks read it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketChange {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub order_id: Option<String>,
}

/// Opens `GET {query_url}/api/query/tickets/events` and calls `seen` with every ticket
/// change and the moment it was read, until the stream ends or `stop` is cancelled.
/// Returns once the stream is open (after its response headers), with the reading task.
pub async fn follow(
    client: &reqwest::Client,
    query_url: &str,
    stop: tokio_util::sync::CancellationToken,
    mut seen: impl FnMut(TicketChange, Instant) + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let response = client
        .get(format!("{query_url}/api/query/tickets/events"))
        .header("Accept", "text/event-stream")
        // The stream stays open for the whole run: no overall timeout.
        .timeout(Duration::from_secs(24 * 3600))
        .send()
        .await?;
    anyhow::ensure!(response.status() == 200, "the feed answered {}", response.status());
    let mut body = response.bytes_stream();
    Ok(tokio::spawn(async move {
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::select! {
                chunk = body.next() => chunk,
                () = stop.cancelled() => return,
            };
            let Some(Ok(chunk)) = chunk else { return };
            let at = Instant::now();
            buffer.extend_from_slice(&chunk);
            // Events end with a blank line.
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buffer.drain(..end + 2).collect();
                if let Some(change) = parse(&event) {
                    seen(change, at);
                }
            }
        }
    }))
}

/// The change of one `event: ticket` block; `None` for comments, `reload` and anything else.
fn parse(event: &[u8]) -> Option<TicketChange> {
    let text = std::str::from_utf8(event).ok()?;
    let mut kind = None;
    let mut data = String::new();
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            kind = Some(value.trim());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        }
    }
    (kind == Some("ticket")).then(|| serde_json::from_str(&data).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_event_is_read_and_comments_and_reloads_are_not() {
        let change =
            parse(b"event: ticket\nid: 7\ndata: {\"id\":\"t1\",\"status\":\"reserved\",\"orderId\":\"o1\"}\n\n")
                .expect("a ticket change");
        assert_eq!((change.id.as_str(), change.status.as_str()), ("t1", "reserved"));
        assert_eq!(change.order_id.as_deref(), Some("o1"));
        assert!(parse(b": keep-alive\n\n").is_none());
        assert!(parse(b"event: reload\ndata: reload\n\n").is_none());
    }
}
