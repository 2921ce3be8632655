//! The transactional outbox: publishing atomic with the state change.
//!
//! A service writes its change and the outgoing event ([`Outbox::stage`]) in one MongoDB
//! transaction, then hands the staged record to the [`Relay`] once the transaction has
//! committed ([`Outbox::committed`]). The relay publishes with `Nats-Msg-Id` = the event
//! id, waits for the stream's acknowledgement, then marks the records sent. So:
//!
//! - no event is published before its write commits (the relay only publishes what was
//!   handed to it after a commit, or what it reads back from the collection);
//! - none is lost if the process dies between commit and publish (the record stays
//!   pending, and the relay's poll, here or in another replica, publishes it);
//! - a crash between publish and "mark sent" republishes the record, and JetStream drops
//!   the copy by its `Nats-Msg-Id` (within the stream's deduplication window; consumers
//!   are idempotent beyond it).
//!
//! What it costs the database: the record's insert inside the transaction, and its share
//! of one `update_many` marking a batch sent ([`RelaySettings::mark_delay`]). The relay does
//! not read back what it was handed (it is in memory already); it reads the collection
//! only at start, every [`RelaySettings::poll_interval`], when its handed queue
//! overflows ([`Outbox::MAX_HANDED`]) and after a failure, to find records nobody handed to it: written by another
//! replica, left by a crash, or whose publish failed. Several replicas may run relays on
//! the same outbox; they may publish a record twice, which deduplication absorbs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bson::doc;
use futures::TryStreamExt;
use mongodb::options::IndexOptions;
use mongodb::{ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
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

/// A record staged inside a transaction. Hand it to [`Outbox::committed`] once the
/// transaction has committed; drop it if the transaction did not (a retried attempt's
/// record was never written).
#[derive(Debug, Clone, PartialEq)]
#[must_use = "hand the staged record to Outbox::committed once its transaction commits"]
pub struct Staged(OutboxRecord);

impl Staged {
    /// The event id.
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

/// A service's outbox. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    collection: Collection<OutboxRecord>,
    shared: Arc<Shared>,
}

/// What the service's writers share with its relay.
#[derive(Debug, Default)]
struct Shared {
    wake: Notify,
    /// Records whose transactions committed, not yet taken by the relay.
    handed: Mutex<Vec<OutboxRecord>>,
    /// The handed queue overflowed and was dropped: read the collection.
    poll_requested: std::sync::atomic::AtomicBool,
}

impl Outbox {
    pub fn new(db: &Database) -> Self {
        Self { collection: db.collection(OUTBOX_COLLECTION), shared: Arc::default() }
    }

    /// The index the relay's "pending, oldest first" query uses.
    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let index = IndexModel::builder()
            .keys(doc! { "sentAt": 1, "_id": 1 })
            .options(IndexOptions::builder().name("pending".to_owned()).build())
            .build();
        self.collection.create_index(index).await.map(drop)
    }

    /// Records `event` inside the caller's transaction. Hand the result to
    /// [`Outbox::committed`] after the transaction commits.
    pub async fn stage<E: Event>(&self, session: &mut ClientSession, event: &E) -> mongodb::error::Result<Staged> {
        let record = OutboxRecord {
            id: new_event_id(),
            subject: E::SUBJECT.as_str().to_owned(),
            payload: serde_json::to_string(event).map_err(|e| mongodb::error::Error::custom(Arc::new(e)))?,
            created_at: bson::DateTime::now(),
            sent_at: None,
            traceparent: crate::trace::current_traceparent(),
        };
        self.collection.insert_one(&record).session(session).await?;
        Ok(Staged(record))
    }

    /// The most records waiting to be taken by the relay. Past it (the relay is stuck: NATS
    /// is down) the queue is dropped and the relay reads the collection instead, where every
    /// one of them is, so memory stays bounded and nothing is lost.
    pub const MAX_HANDED: usize = 4096;

    /// The transaction that staged `records` committed: the relay publishes them now,
    /// without reading them back.
    pub fn committed(&self, records: impl IntoIterator<Item = Staged>) {
        let mut handed = self.shared.handed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = handed.len();
        handed.extend(records.into_iter().map(|staged| staged.0));
        let added = handed.len() > before;
        if handed.len() > Self::MAX_HANDED {
            handed.clear();
            self.shared.poll_requested.store(true, std::sync::atomic::Ordering::Release);
        }
        drop(handed);
        if added {
            self.shared.wake.notify_one();
        }
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

    /// Takes up to `limit` of the records handed over, oldest first.
    fn take_handed(&self, limit: usize) -> Vec<OutboxRecord> {
        let mut handed = self.shared.handed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let take = handed.len().min(limit);
        let mut records: Vec<OutboxRecord> = handed.drain(..take).collect();
        drop(handed);
        records.sort_by(|a, b| a.id.cmp(&b.id));
        records
    }

    /// Drops what was handed over: the relay reads the collection instead, where all of it
    /// is (it was committed before it was handed).
    fn forget_handed(&self) {
        self.shared.handed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    fn take_poll_request(&self) -> bool {
        self.shared.poll_requested.swap(false, std::sync::atomic::Ordering::AcqRel)
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
    /// How often to read the collection for records nobody handed over (other replicas,
    /// crashes, failed publishes).
    pub poll_interval: Duration,
    /// Longest a published record waits to be marked sent, so that marks are written in
    /// batches. A crash meanwhile only republishes it (deduplicated).
    pub mark_delay: Duration,
    /// First pause after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 256,
            poll_interval: Duration::from_secs(1),
            mark_delay: Duration::from_millis(200),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// Publishes outbox records until cancelled.
#[derive(Debug)]
pub struct Relay {
    outbox: Outbox,
    bus: EventBus,
    settings: RelaySettings,
}

impl Relay {
    /// Runs until `shutdown` is cancelled; the round in progress finishes first, and what
    /// was published is marked sent.
    pub async fn run(self, shutdown: CancellationToken) {
        let batch = usize::try_from(self.settings.batch).unwrap_or(256).max(1);
        let mut backoff = self.settings.min_backoff;
        let mut next_poll = Instant::now(); // at start: whatever an earlier run left
        let mut unmarked = Unmarked::default();
        while !shutdown.is_cancelled() {
            let poll = self.outbox.take_poll_request() | (Instant::now() >= next_poll);
            let records = if poll {
                // Marks first, so that the read does not find what was just published.
                if let Err(err) = self.flush(&mut unmarked).await {
                    self.pause(&mut backoff, &err, &shutdown).await;
                    next_poll = Instant::now();
                    continue;
                }
                next_poll = Instant::now() + self.settings.poll_interval;
                // What was handed over is committed, so the read finds it: publishing it
                // from memory as well would only publish it twice.
                self.outbox.forget_handed();
                match self.outbox.pending(self.settings.batch).await {
                    Ok(records) => {
                        if records.len() == batch {
                            next_poll = Instant::now(); // more are waiting
                        }
                        records
                    }
                    Err(err) => {
                        self.outbox.forget_handed();
                        self.pause(&mut backoff, &anyhow::Error::new(err), &shutdown).await;
                        next_poll = Instant::now();
                        continue;
                    }
                }
            } else {
                self.outbox.take_handed(batch)
            };
            if records.is_empty() {
                if unmarked.due() {
                    if let Err(err) = self.flush(&mut unmarked).await {
                        self.pause(&mut backoff, &err, &shutdown).await;
                        next_poll = Instant::now();
                    }
                    continue;
                }
                let until = unmarked.deadline.map_or(next_poll, |deadline| deadline.min(next_poll));
                tokio::select! {
                    () = self.outbox.shared.wake.notified() => {}
                    () = tokio::time::sleep_until(until) => {}
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let (sent, failure) = self.publish(&records).await;
            unmarked.add(sent, self.settings.mark_delay);
            let marked =
                if unmarked.ids.len() >= batch || failure.is_some() { self.flush(&mut unmarked).await } else { Ok(()) };
            match failure.map_or(marked, Err) {
                Ok(()) => backoff = self.settings.min_backoff,
                Err(err) => {
                    // What was not published stays pending in the collection, and so does
                    // everything handed over meanwhile: from now on the relay reads it
                    // from there, after a pause.
                    self.outbox.forget_handed();
                    self.pause(&mut backoff, &err, &shutdown).await;
                    next_poll = Instant::now();
                }
            }
        }
        if let Err(err) = self.flush(&mut unmarked).await {
            tracing::warn!(
                error = format!("{err:#}"),
                "could not mark the last published events sent; they will be published again"
            );
        }
        tracing::debug!("outbox relay stopped");
    }

    async fn pause(&self, backoff: &mut Duration, err: &anyhow::Error, shutdown: &CancellationToken) {
        tracing::warn!(error = format!("{err:#}"), retry_in = ?*backoff, "outbox relay round failed");
        tokio::select! {
            () = tokio::time::sleep(*backoff) => {}
            () = shutdown.cancelled() => {}
        }
        *backoff = (*backoff * 2).min(self.settings.max_backoff);
    }

    /// Marks the published records sent. On failure they stay pending and are published
    /// again (and deduplicated) by a later read; the caller pauses before that.
    async fn flush(&self, unmarked: &mut Unmarked) -> anyhow::Result<()> {
        if unmarked.ids.is_empty() {
            return Ok(());
        }
        let count = unmarked.ids.len();
        let marked = self.outbox.mark_sent(&unmarked.ids).await;
        *unmarked = Unmarked::default();
        marked.map_err(|err| anyhow::Error::new(err).context(format!("could not mark {count} published events sent")))
    }

    /// Publishes one batch of pending records (read from the collection) and marks the
    /// acknowledged ones sent. Returns how many were published.
    pub async fn publish_round(&self) -> anyhow::Result<usize> {
        let records = self.outbox.pending(self.settings.batch).await?;
        let (sent, failure) = self.publish(&records).await;
        if !sent.is_empty() {
            self.outbox.mark_sent(&sent).await?;
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(sent.len()),
        }
    }

    /// Publishes `records` in order and returns the ids acknowledged; stops at the first
    /// failure, so a later record is never reported sent while an earlier one is not.
    async fn publish(&self, records: &[OutboxRecord]) -> (Vec<String>, Option<anyhow::Error>) {
        let mut sent = Vec::with_capacity(records.len());
        for record in records {
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
                    let context = format!("published {} of {} events", sent.len(), records.len());
                    return (sent, Some(err.context(context)));
                }
            }
        }
        (sent, None)
    }
}

/// Published records not yet marked sent, and when they must be at the latest.
#[derive(Debug, Default)]
struct Unmarked {
    ids: Vec<String>,
    deadline: Option<Instant>,
}

impl Unmarked {
    fn add(&mut self, ids: Vec<String>, delay: Duration) {
        if !ids.is_empty() && self.deadline.is_none() {
            self.deadline = Some(Instant::now() + delay);
        }
        self.ids.extend(ids);
    }

    fn due(&self) -> bool {
        self.deadline.is_some_and(|deadline| Instant::now() >= deadline)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(n: usize) -> Staged {
        Staged(OutboxRecord {
            id: format!("{n:08}"),
            subject: "ticket.created".into(),
            payload: "{}".into(),
            created_at: bson::DateTime::now(),
            sent_at: None,
            traceparent: None,
        })
    }

    async fn outbox() -> Outbox {
        // Never contacted: the driver connects on first use.
        let client = mongodb::Client::with_uri_str("mongodb://127.0.0.1:9/?directConnection=true").await.unwrap();
        Outbox::new(&client.database("unused"))
    }

    #[tokio::test]
    async fn handed_records_are_taken_oldest_first_in_batches() {
        let outbox = outbox().await;
        outbox.committed([staged(3), staged(1)]);
        outbox.committed([staged(2)]);
        let ids = |records: Vec<OutboxRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(outbox.take_handed(2)), ["00000001", "00000003"]);
        assert_eq!(ids(outbox.take_handed(2)), ["00000002"]);
        assert!(outbox.take_handed(2).is_empty());
        assert!(!outbox.take_poll_request(), "handing over needs no read of the collection");
    }

    #[tokio::test]
    async fn a_relay_that_cannot_keep_up_reads_the_collection_instead_of_holding_everything() {
        let outbox = outbox().await;
        outbox.committed((0..=Outbox::MAX_HANDED).map(staged));
        assert!(outbox.take_handed(usize::MAX).is_empty(), "the queue was dropped, memory stays bounded");
        assert!(outbox.take_poll_request(), "and the relay reads the collection, where every record is");
        assert!(!outbox.take_poll_request(), "once");
    }
}
