//! The live ticket feed: every change of a ticket's public view, as it happens, to every
//! open `GET /api/query/tickets/events` stream on every replica.
//!
//! **Fan-out.** The durable consumers that build the read model are shared by the
//! replicas, so each event is projected by one replica only. After projecting an event
//! that touches a ticket, that replica publishes the ticket's new view on the
//! `TICKETFEED` stream ([`FeedPublisher`]); every replica reads the whole stream with its
//! own ordered consumer ([`Feed::follow`]) and hands each change to its subscribers. A
//! failed publish fails the handler, so the event is redelivered and the view published
//! again (the projection itself is idempotent): no change is skipped.
//!
//! **Resuming.** A change's SSE id is its `TICKETFEED` sequence, the same on every replica.
//! Each replica keeps the last [`RING`] changes in memory (filled from the stream at
//! start-up), so a client reconnecting with `Last-Event-ID` gets what it missed, from any
//! replica; one too far behind gets a `reload` event instead.
//!
//! **Slow clients.** Subscribers share one bounded broadcast buffer; a subscriber that
//! falls [`LAG_LIMIT`] changes behind is sent `reload` and dropped, so a client that
//! stops reading costs a fixed amount of memory, never an unbounded queue.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream;
use common::events::EventBus;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, TicketView};

/// Changes kept in memory per replica for clients that reconnect.
pub const RING: usize = 10_000;
/// Changes a subscriber may fall behind before it is told to reload and dropped.
pub const LAG_LIMIT: usize = 1_024;
/// The feed stream's name and subject (under the event namespace).
pub const STREAM: &str = "TICKETFEED";
pub const SUBJECT: &str = "feed.ticket";

/// A ticket as clients get it (the listing's fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketChange {
    pub id: String,
    pub title: String,
    pub price: common::money::Price,
    pub status: crate::store::TicketStatus,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

/// A change as the replicas pass it on the `TICKETFEED` stream: the ticket as clients get
/// it, plus what the replicas need to filter and order changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedChange {
    #[serde(flatten)]
    pub ticket: TicketChange,
    /// Title words, for the `q` filter.
    #[serde(default)]
    pub words: Vec<String>,
    /// The view's status stamp ([`crate::store::TicketOrders::stamp`]): with the
    /// version, what tells an earlier view from a later one.
    #[serde(default)]
    pub status_stamp: i64,
}

impl FeedChange {
    /// True when this view is not newer than `other` in anything: both are reads of one
    /// ticket, whose version and status stamp only grow, so such a view is the same or
    /// an earlier one.
    fn not_newer_than(&self, other: &Self) -> bool {
        self.ticket.version <= other.ticket.version && self.status_stamp <= other.status_stamp
    }
}

impl TryFrom<TicketView> for FeedChange {
    type Error = common::money::PriceError;
    fn try_from(view: TicketView) -> Result<Self, Self::Error> {
        Ok(Self {
            ticket: TicketChange {
                price: view.price,
                id: view.id,
                title: view.title,
                status: view.status,
                version: view.version,
                order_id: view.order_id,
            },
            words: view.words,
            status_stamp: view.status_stamp,
        })
    }
}

/// One change with its sequence (its SSE id).
#[derive(Debug, Clone)]
pub struct Sequenced {
    pub seq: u64,
    pub change: Arc<FeedChange>,
}

fn stream_config(bus: &EventBus) -> stream::Config {
    stream::Config {
        name: bus.namespace().stream_name(STREAM),
        subjects: vec![bus.namespace().subject(SUBJECT)],
        storage: stream::StorageType::File,
        // Only recent changes matter: a client further behind reloads.
        max_messages: i64::try_from(RING * 4).unwrap_or(i64::MAX),
        max_age: Duration::from_secs(3600),
        num_replicas: bus.limits().replicas,
        ..Default::default()
    }
}

/// Publishes ticket views after the read model changed them.
#[derive(Clone, Debug)]
pub struct FeedPublisher {
    bus: EventBus,
    store: Store,
}

impl FeedPublisher {
    pub fn new(bus: EventBus, store: Store) -> Self {
        Self { bus, store }
    }

    /// Publishes the current view of `ticket_id` (nothing if the read model does not have
    /// the ticket yet: its creation will publish it).
    pub async fn changed(&self, ticket_id: &str) -> anyhow::Result<()> {
        let Some(view) = self.store.ticket(ticket_id).await? else { return Ok(()) };
        let change = FeedChange::try_from(view)?;
        let payload = serde_json::to_vec(&change)?;
        let subject = self.bus.namespace().subject(SUBJECT);
        self.bus.jetstream().publish(subject, payload.into()).await?.await?;
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Ring {
    changes: VecDeque<Sequenced>,
    /// The latest change of each ticket in `changes`.
    latest: HashMap<String, Sequenced>,
}

/// What a new subscriber gets first.
#[derive(Debug)]
pub enum Start {
    /// The changes after the client's last one, then live ones.
    Resume(Vec<Sequenced>),
    /// The client is further behind than this replica remembers: reload the page.
    Reload,
}

/// This replica's view of the feed. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Feed {
    ring: Arc<Mutex<Ring>>,
    sender: broadcast::Sender<Sequenced>,
}

impl Default for Feed {
    fn default() -> Self {
        Self { ring: Arc::default(), sender: broadcast::channel(LAG_LIMIT).0 }
    }
}

impl Feed {
    /// Subscribes, resuming after `last_seen` when given. The ring is read and the
    /// subscription made under one lock, so no change falls between them.
    pub fn subscribe(&self, last_seen: Option<u64>) -> (Start, broadcast::Receiver<Sequenced>) {
        let ring = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let receiver = self.sender.subscribe();
        let start = match last_seen {
            None => Start::Resume(Vec::new()),
            Some(last) => {
                let oldest = ring.changes.front().map(|c| c.seq);
                let newest = ring.changes.back().map(|c| c.seq);
                match (oldest, newest) {
                    (Some(oldest), _) if last + 1 < oldest => Start::Reload,
                    (_, Some(newest)) if last > newest => Start::Reload,
                    _ => Start::Resume(ring.changes.iter().filter(|c| c.seq > last).cloned().collect()),
                }
            }
        };
        (start, receiver)
    }

    fn push(&self, change: Sequenced) {
        let mut ring = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ring.changes.back().is_some_and(|last| last.seq >= change.seq) {
            return; // a redelivery after the consumer was declared again
        }
        // Two handlers of one ticket's events each read its view and publish it, in either
        // order: an earlier view published last is dropped, so clients end on the latest.
        // Every replica reads the stream in the same order, so all drop the same ones.
        let ticket = &change.change.ticket.id;
        if ring.latest.get(ticket).is_some_and(|latest| change.change.not_newer_than(&latest.change)) {
            return;
        }
        if ring.changes.len() == RING
            && let Some(oldest) = ring.changes.pop_front()
            && ring.latest.get(&oldest.change.ticket.id).is_some_and(|latest| latest.seq == oldest.seq)
        {
            ring.latest.remove(&oldest.change.ticket.id);
        }
        ring.latest.insert(ticket.clone(), change.clone());
        ring.changes.push_back(change.clone());
        // Sent under the lock, so a subscriber's backlog and its live changes meet exactly.
        drop(self.sender.send(change));
    }

    /// How many subscribers are connected on this replica.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Reads the feed stream until `shutdown`: the last [`RING`] changes first, then new
    /// ones; after any interruption it resumes after the last change it has.
    pub async fn follow(self, bus: EventBus, shutdown: CancellationToken) {
        let mut backoff = common::retry::Backoff::reconnect();
        while !shutdown.is_cancelled() {
            match self.read(&bus, &shutdown).await {
                Ok(()) => backoff.succeeded(),
                Err(err) => {
                    tracing::warn!(error = format!("{err:#}"), retry_in = ?backoff.peek(), "the ticket feed is interrupted");
                    backoff.wait_after_failure(&shutdown).await;
                }
            }
        }
    }

    async fn read(&self, bus: &EventBus, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let mut stream = bus.jetstream().get_or_create_stream(stream_config(bus)).await?;
        let last_kept =
            self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner).changes.back().map(|c| c.seq);
        let start_sequence = match last_kept {
            Some(seq) => seq + 1,
            None => stream.info().await?.state.last_sequence.saturating_sub(RING as u64 - 1).max(1),
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                name: Some(bus.ephemeral_name("feed")),
                filter_subject: bus.namespace().subject(SUBJECT),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        loop {
            tokio::select! {
                message = messages.next() => {
                    let message = message.ok_or_else(|| anyhow::anyhow!("the feed consumer ended"))??;
                    let seq = message.info().map_err(|e| anyhow::anyhow!("{e}"))?.stream_sequence;
                    match serde_json::from_slice::<FeedChange>(&message.payload) {
                        Ok(change) => self.push(Sequenced { seq, change: Arc::new(change) }),
                        Err(err) => tracing::warn!(seq, error = %err, "skipped an undecodable feed message"),
                    }
                }
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Item {
    Change(Sequenced),
    /// Reload the page: the subscriber was too far behind or too slow; the stream ends.
    Reload,
}

impl Feed {
    /// A subscriber's stream: what it missed since `last_seen` (or `Reload`), then live
    /// changes that match `filter`, until it falls [`LAG_LIMIT`] behind (then `Reload`
    /// and the end) or the feed closes.
    pub fn items(
        &self,
        filter: FeedFilter,
        last_seen: Option<u64>,
    ) -> impl futures::Stream<Item = Item> + Send + use<> {
        let (start, receiver) = self.subscribe(last_seen);
        let (first, done) = match start {
            Start::Resume(backlog) => {
                (backlog.into_iter().filter(|c| filter.matches(&c.change)).map(Item::Change).collect(), false)
            }
            Start::Reload => (vec![Item::Reload], true),
        };
        let live = futures::stream::unfold((receiver, filter, done), |(mut receiver, filter, done)| async move {
            if done {
                return None;
            }
            loop {
                match receiver.recv().await {
                    Ok(change) if filter.matches(&change.change) => {
                        return Some((Item::Change(change), (receiver, filter, false)));
                    }
                    Ok(_) => {}
                    // Too slow: told to reload, then dropped, rather than buffered without end.
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a slow feed subscriber was dropped");
                        return Some((Item::Reload, (receiver, filter, true)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        futures::stream::iter(first).chain(live)
    }
}

/// What a subscriber asked to see.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub status: Option<crate::store::TicketStatus>,
    pub words: Vec<String>,
    pub ids: Option<Vec<String>>,
}

impl FeedFilter {
    /// A change is sent when it is about one of the ids asked for (whatever its status:
    /// the page must learn that a ticket it shows was reserved), or, without ids, when the
    /// ticket now matches the status and words asked for.
    pub fn matches(&self, change: &FeedChange) -> bool {
        if let Some(ids) = &self.ids {
            return ids.contains(&change.ticket.id);
        }
        self.status.is_none_or(|status| status == change.ticket.status)
            && self.words.iter().all(|word| change.words.contains(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: &str, seq: u64) -> Sequenced {
        Sequenced {
            seq,
            change: Arc::new(FeedChange {
                ticket: TicketChange {
                    id: id.into(),
                    title: "Jazz night".into(),
                    price: common::money::Price::from_cents(100).unwrap(),
                    status: crate::store::TicketStatus::Available,
                    version: 0,
                    order_id: None,
                },
                words: vec!["jazz".into(), "night".into()],
                // Each a later view of its ticket.
                status_stamp: i64::try_from(seq).unwrap(),
            }),
        }
    }

    #[test]
    fn an_earlier_view_published_after_a_later_one_is_dropped() {
        let feed = Feed::default();
        let later = change("t", 1);
        let mut earlier = later.change.as_ref().clone();
        earlier.status_stamp -= 1;
        earlier.ticket.status = crate::store::TicketStatus::Reserved;
        let mut renamed = later.change.as_ref().clone();
        renamed.ticket.version += 1;

        feed.push(later);
        feed.push(Sequenced { seq: 2, change: Arc::new(earlier) });
        feed.push(change("other", 3));
        feed.push(Sequenced { seq: 4, change: Arc::new(renamed) });

        let ring = feed.ring.lock().unwrap();
        assert_eq!(ring.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1, 3, 4]);
    }

    #[test]
    fn a_subscriber_resumes_after_its_last_change_or_is_told_to_reload() {
        let feed = Feed::default();
        for seq in 10..20 {
            feed.push(change("t", seq));
        }

        let Start::Resume(missed) = feed.subscribe(Some(15)).0 else { panic!("expected a resume") };
        assert_eq!(missed.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![16, 17, 18, 19]);
        assert!(matches!(feed.subscribe(Some(19)).0, Start::Resume(v) if v.is_empty()));
        assert!(matches!(feed.subscribe(Some(9)).0, Start::Resume(v) if v.len() == 10), "exactly at the edge");
        assert!(matches!(feed.subscribe(Some(3)).0, Start::Reload), "too far behind");
        assert!(matches!(feed.subscribe(Some(99)).0, Start::Reload), "from another feed's future");
    }

    #[test]
    fn the_ring_keeps_only_the_most_recent_changes_and_ignores_repeats() {
        let feed = Feed::default();
        for seq in 1..=(RING as u64 + 5) {
            feed.push(change("t", seq));
        }
        feed.push(change("t", 3));
        let ring = feed.ring.lock().unwrap();
        assert_eq!(ring.changes.len(), RING);
        assert_eq!(ring.changes.front().unwrap().seq, 6);
    }

    #[tokio::test]
    async fn a_subscriber_that_stops_reading_is_told_to_reload_and_dropped() {
        let feed = Feed::default();
        let items = feed.items(FeedFilter::default(), None);
        futures::pin_mut!(items);
        feed.push(change("t", 1));
        assert!(matches!(items.next().await, Some(Item::Change(c)) if c.seq == 1));

        // It stops reading while the sale goes on.
        for seq in 2..(LAG_LIMIT as u64 + 50) {
            feed.push(change("t", seq));
        }

        assert!(matches!(items.next().await, Some(Item::Reload)), "told to reload");
        assert!(items.next().await.is_none(), "and dropped");
        assert_eq!(feed.subscribers(), 0, "nothing is kept for it");
    }

    #[test]
    fn filters_follow_ids_whatever_the_status_or_else_status_and_words() {
        let mut reserved = change("a", 1).change.as_ref().clone();
        reserved.ticket.status = crate::store::TicketStatus::Reserved;
        let by_ids = FeedFilter {
            ids: Some(vec!["a".into()]),
            status: Some(crate::store::TicketStatus::Available),
            ..Default::default()
        };
        let by_status = FeedFilter { status: Some(crate::store::TicketStatus::Available), ..Default::default() };
        let by_words = FeedFilter { words: vec!["jazz".into()], ..Default::default() };

        assert!(by_ids.matches(&reserved), "a shown ticket's reservation is sent");
        assert!(!by_status.matches(&reserved));
        assert!(by_words.matches(&reserved));
        assert!(!FeedFilter { words: vec!["opera".into()], ..Default::default() }.matches(&reserved));
    }
}
