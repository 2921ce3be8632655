//! The transactional outbox: publishing atomic with the state change.
//!
//! A service writes its change and the outgoing event ([`Outbox::stage`]) in one MongoDB
//! transaction. The [`Relay`] publishes pending records in creation order with
//! `Nats-Msg-Id` = the event id, waits for the stream's acknowledgement, then marks them
//! sent. So:
//!
//! - no event is published before its write commits (the record does not exist before);
//! - none is lost if the process dies between commit and publish (the record stays
//!   pending and the next relay run publishes it);
//! - a crash between publish and "mark sent" republishes the record, and JetStream drops
//!   the copy by its `Nats-Msg-Id` (within the stream's deduplication window; consumers
//!   are idempotent beyond it).
//!
//! Several replicas may run relays on the same outbox; they may publish a record twice,
//! which deduplication absorbs. The relay wakes immediately after a local commit
//! ([`Outbox::notify`]) and polls otherwise, so records written by another replica or
//! left by a crash are picked up too.

use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use futures::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Event, EventBus, new_event_id};

/// The collection holding outgoing events.
pub const OUTBOX_COLLECTION: &str = "outbox";

/// One outgoing event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The event id (UUIDv7, so `_id` order is creation order).
    #[serde(rename = "_id")]
    pub id: String,
    /// The logical subject, without namespace.
    pub subject: String,
    /// The JSON payload as published.
    pub payload: String,
    #[serde(rename = "createdAt")]
    pub created_at: bson::DateTime,
    #[serde(rename = "sentAt", default)]
    pub sent_at: Option<bson::DateTime>,
    /// The trace of the span that staged it (W3C `traceparent`), published as a header
    /// so the listeners continue that trace ([`crate::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// A service's outbox. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    collection: Collection<OutboxRecord>,
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(db: &Database) -> Self {
        Self { collection: db.collection(OUTBOX_COLLECTION), wake: Arc::new(Notify::new()) }
    }

    /// The index the relay's "pending, oldest first" query uses.
    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let index = IndexModel::builder()
            .keys(doc! { "sentAt": 1, "_id": 1 })
            .options(IndexOptions::builder().name("pending".to_owned()).build())
            .build();
        self.collection.create_index(index).await.map(drop)
    }

    /// Records `event` inside the caller's transaction and returns its id. Call
    /// [`Outbox::notify`] after the transaction commits.
    pub async fn stage<E: Event>(&self, session: &mut ClientSession, event: &E) -> mongodb::error::Result<String> {
        let record = OutboxRecord {
            id: new_event_id(),
            subject: E::SUBJECT.as_str().to_owned(),
            payload: serde_json::to_string(event).map_err(|e| mongodb::error::Error::custom(Arc::new(e)))?,
            created_at: bson::DateTime::now(),
            sent_at: None,
            traceparent: crate::trace::current_traceparent(),
        };
        self.collection.insert_one(&record).session(session).await?;
        Ok(record.id)
    }

    /// Wakes the relay: something was committed.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Records not yet published, oldest first.
    pub async fn pending(&self, limit: i64) -> mongodb::error::Result<Vec<OutboxRecord>> {
        self.collection.find(doc! { "sentAt": null }).sort(doc! { "_id": 1 }).limit(limit).await?.try_collect().await
    }

    async fn mark_sent(&self, ids: &[String]) -> mongodb::error::Result<()> {
        self.collection
            .update_many(doc! { "_id": { "$in": ids } }, doc! { "$set": { "sentAt": bson::DateTime::now() } })
            .await
            .map(drop)
    }

    /// A relay publishing this outbox's records on `bus`.
    pub fn relay(&self, bus: EventBus) -> Relay {
        Relay { outbox: self.clone(), bus, settings: RelaySettings::default() }
    }
}

/// Timing of the relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Records published per round.
    pub batch: i64,
    /// How often to look for records nobody notified about (other replicas, crashes).
    pub poll_interval: Duration,
    /// First pause after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 256,
            poll_interval: Duration::from_millis(500),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Publishes pending outbox records until cancelled.
#[derive(Debug)]
pub struct Relay {
    outbox: Outbox,
    bus: EventBus,
    settings: RelaySettings,
}

impl Relay {
    /// Runs until `shutdown` is cancelled; the round in progress finishes first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = self.settings.min_backoff;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.publish_round().await {
                Ok(published) if published == self.settings.batch as usize => {
                    backoff = self.settings.min_backoff;
                    continue; // more may be waiting
                }
                Ok(_) => {
                    backoff = self.settings.min_backoff;
                    tokio::select! {
                        () = self.outbox.wake.notified() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                        () = shutdown.cancelled() => break,
                    }
                }
                Err(err) => {
                    tracing::warn!(error = format!("{err:#}"), retry_in = ?backoff, "outbox relay round failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                }
            }
        }
        tracing::debug!("outbox relay stopped");
    }

    /// Publishes one batch of pending records and marks the acknowledged ones sent.
    /// Returns how many were published.
    pub async fn publish_round(&self) -> anyhow::Result<usize> {
        let records = self.outbox.pending(self.settings.batch).await?;
        if records.is_empty() {
            return Ok(0);
        }
        // Publish in order; stop at the first failure so a later record is never marked
        // sent while an earlier one is still pending.
        let mut sent = Vec::with_capacity(records.len());
        let mut failure = None;
        for record in &records {
            let published = self.bus.publish_traced(
                &record.subject,
                &record.id,
                record.traceparent.as_deref(),
                record.payload.clone(),
            );
            match published.await {
                Ok(duplicate) => {
                    if duplicate {
                        tracing::debug!(event_id = %record.id, "the stream already had this event");
                    }
                    sent.push(record.id.clone());
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        if !sent.is_empty() {
            self.outbox.mark_sent(&sent).await?;
        }
        match failure {
            Some(err) => Err(err.context(format!("published {} of {} pending events", sent.len(), records.len()))),
            None => Ok(sent.len()),
        }
    }
}

/// The outbox's backlog for operators: `outbox_pending_events` (records not yet
/// published) and `outbox_oldest_pending_age_seconds` (how long the oldest has waited;
/// 0 when none), refreshed every 10 s. A backlog that grows, or an age past a minute,
/// means the relay cannot publish (NATS down, a stream refusing events).
#[derive(Clone, Debug, Default)]
pub struct OutboxMetrics {
    pending: prometheus_client::metrics::gauge::Gauge,
    oldest_age: prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl OutboxMetrics {
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let metrics = Self::default();
        registry.register("outbox_pending_events", "Outbox records not yet published", metrics.pending.clone());
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "How long the oldest unpublished outbox record has waited (0 when none)",
            metrics.oldest_age.clone(),
        );
        metrics
    }

    /// Refreshes the gauges from `outbox` every 10 s until `shutdown`.
    pub async fn watch(self, outbox: Outbox, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(err) = self.refresh(&outbox).await {
                tracing::debug!(error = %err, "cannot read the outbox backlog");
            }
        }
    }

    async fn refresh(&self, outbox: &Outbox) -> mongodb::error::Result<()> {
        let pending = outbox.collection.count_documents(doc! { "sentAt": null }).await?;
        let oldest = outbox.collection.find_one(doc! { "sentAt": null }).sort(doc! { "_id": 1 }).await?;
        let age = oldest.map_or(0.0, |record| {
            (bson::DateTime::now().timestamp_millis() - record.created_at.timestamp_millis()).max(0) as f64 / 1000.0
        });
        self.pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.oldest_age.set(age);
        Ok(())
    }
}
