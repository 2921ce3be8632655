//! The live feed (`GET /api/query/tickets/events`): how long after a ticket changes every
//! open stream hears of it, and what an open stream costs the query service in memory
//! (`bench-tool feed-latency CONFIG_JSON`).
//!
//! Opens `streams` streams, waits, reads the query service's RSS (the memory the idle
//! streams hold), then reserves `changes` tickets one after the other at `rate` per second
//! (each a `POST /api/orders` by its own buyer). The delay of one delivery is the time from
//! the reservation's 201 to the stream's event saying the ticket is reserved by that order;
//! every stream's every delivery counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::oid::ObjectId;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::summary;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub tickets_url: String,
    pub orders_url: String,
    pub query_url: String,
    pub jwt_key: String,
    /// The query service's process, for its memory.
    pub query_pid: u32,
    pub streams: usize,
    pub changes: usize,
    #[serde(default = "default_rate")]
    pub rate: f64,
}

fn default_rate() -> f64 {
    10.0
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let sessions =
        common::Sessions::new(&secrecy::SecretString::from(config.jwt_key.clone()), Duration::from_secs(3600), false);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    // One connection per stream, as many browsers would have.
    let stream_client = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let (seller, _) = sessions.issue(&ObjectId::new().to_hex(), "seller@feed.test")?;

    // Tickets to reserve, known to orders before the clock starts.
    let mut tickets = Vec::with_capacity(config.changes);
    for n in 0..config.changes {
        let response = client
            .post(format!("{}/api/tickets", config.tickets_url))
            .bearer_auth(&seller)
            .json(&json!({"title": format!("Feed test {n}"), "price": 10}))
            .send()
            .await?;
        anyhow::ensure!(response.status() == 201, "listing answered {}", response.status());
        let body: serde_json::Value = response.json().await?;
        tickets.push(body["id"].as_str().unwrap_or_default().to_owned());
    }
    let last = tickets.last().cloned().unwrap_or_default();
    let known = Instant::now() + Duration::from_secs(60);
    while client.get(format!("{}/api/query/tickets/{last}", config.query_url)).send().await?.status() != 200 {
        anyhow::ensure!(Instant::now() < known, "query never learnt of the tickets");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // orders' replica, the last ticket.updated

    let rss_before = rss_kib(config.query_pid)?;
    let stop = CancellationToken::new();
    let progress =
        progress::Progress::new(&format!("feed, {} streams", config.streams), "streams open", config.streams as u64);
    let seen: Vec<Arc<Mutex<HashMap<String, Instant>>>> = (0..config.streams).map(|_| Arc::default()).collect();
    let mut tasks = Vec::with_capacity(config.streams);
    let opening = futures::stream::iter(seen.iter().cloned().map(|seen| {
        let (client, url, stop) = (stream_client.clone(), config.query_url.clone(), stop.clone());
        async move {
            crate::sse::follow(&client, &url, stop, move |change, at| {
                if change.status == "reserved"
                    && let Some(order) = change.order_id
                {
                    seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(order).or_insert(at);
                }
            })
            .await
        }
    }))
    .buffer_unordered(50);
    futures::pin_mut!(opening);
    while let Some(task) = opening.next().await {
        tasks.push(task?);
        progress.inc(1);
    }
    progress.finish("");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = rss_kib(config.query_pid)?;

    // The changes, one buyer each, at a steady rate.
    let mut reserved_at: HashMap<String, Instant> = HashMap::new();
    let mut errors = 0;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / config.rate));
    for ticket in &tickets {
        tick.tick().await;
        let (buyer, _) = sessions.issue(&ObjectId::new().to_hex(), "buyer@feed.test")?;
        let give_up = Instant::now() + Duration::from_secs(5);
        let (response, at) = loop {
            let response = client
                .post(format!("{}/api/orders", config.orders_url))
                .bearer_auth(&buyer)
                .json(&json!({ "ticketId": ticket }))
                .send()
                .await?;
            // 404: the orders replica has not heard of the ticket yet.
            if response.status() != 404 || Instant::now() > give_up {
                break (response, Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if response.status() == 201 {
            let body: serde_json::Value = response.json().await?;
            reserved_at.insert(body["id"].as_str().unwrap_or_default().to_owned(), at);
        } else {
            errors += 1;
        }
    }
    // Every stream hears of every change, or 10 s pass.
    let deadline = Instant::now() + Duration::from_secs(10);
    let expected = reserved_at.len() * config.streams;
    loop {
        let delivered: usize = seen.iter().map(|s| s.lock().map(|s| s.len()).unwrap_or(0)).sum();
        if delivered >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_after = rss_kib(config.query_pid)?;
    stop.cancel();
    for task in tasks {
        drop(task.await);
    }
    let mut delays = Vec::with_capacity(expected);
    let mut missed = 0;
    for stream in &seen {
        let stream = stream.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (order, at) in &reserved_at {
            match stream.get(order) {
                Some(seen) => delays.push(seen.saturating_duration_since(*at).as_secs_f64() * 1e3),
                None => missed += 1,
            }
        }
    }
    let mut out = summary(delays.clone());
    out["percentiles_ms"] = crate::percentiles(delays);
    out["streams"] = json!(config.streams);
    out["changes"] = json!(reserved_at.len());
    out["reservation_errors"] = json!(errors);
    out["missed"] = json!(missed);
    out["rss_before_kib"] = json!(rss_before);
    out["rss_open_kib"] = json!(rss_open);
    out["rss_after_kib"] = json!(rss_after);
    out["kib_per_idle_stream"] = json!((rss_open as f64 - rss_before as f64) / config.streams.max(1) as f64);
    println!("{out}");
    Ok(())
}
