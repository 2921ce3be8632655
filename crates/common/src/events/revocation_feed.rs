//! The revocation feed: every service that checks tokens learns bans and "sign out
//! everywhere" from the `USERS` stream, and keeps them in its [`Revocations`].
//!
//! No database is involved. At start-up, [`RevocationFeed::load`] reads the last
//! `JWT_TTL_SECONDS` of `user.>` (an ordered consumer from that start time: ephemeral,
//! one per replica, so every replica sees every event) until it has caught up, before the
//! service binds its port: a service started after a ban refuses the banned user's old
//! tokens from its first request. [`RevocationFeed::follow`] then applies new events as
//! they arrive and prunes expired entries every second.
//!
//! When NATS is unreachable, tokens are checked against what is known and `/readyz`
//! reports the feed as stale ([`FeedHealth`]); the ordered consumer is declared again
//! from the last sequence it applied once NATS is back, so nothing published meanwhile
//! is missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::{EventBus, StreamName, Subject, UserBanned, UserSessionsRevoked};
use crate::revocation::{Revocations, unix_now, unix_second};

/// Whether the feed is current: loaded, and following a connected server.
#[derive(Clone, Debug)]
pub struct FeedHealth {
    following: Arc<AtomicBool>,
    client: async_nats::Client,
}

impl FeedHealth {
    pub fn is_current(&self) -> bool {
        self.following.load(Ordering::Relaxed)
            && self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// Counters of the feed.
#[derive(Clone, Debug, Default)]
pub struct FeedMetrics {
    entries: Gauge,
    applied: Counter,
    undecodable: Counter,
}

impl FeedMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "session_revocations",
            "Users whose tokens issued before a revocation are refused (entries kept for one token lifetime)",
            metrics.entries.clone(),
        );
        registry.register(
            "session_revocation_events_applied",
            "Ban and sign-out-everywhere events applied from the USERS stream",
            metrics.applied.clone(),
        );
        registry.register(
            "session_revocation_events_undecodable",
            "Events on user.> that could not be read (logged and skipped)",
            metrics.undecodable.clone(),
        );
        metrics
    }
}

/// A feed that has loaded the recent history and is ready to follow.
pub struct RevocationFeed {
    bus: EventBus,
    revocations: Revocations,
    /// How far back the history matters: one token lifetime.
    window: Duration,
    /// The last stream sequence applied; the consumer resumes after it.
    last_sequence: Arc<AtomicU64>,
    following: Arc<AtomicBool>,
    metrics: FeedMetrics,
    messages: Option<pull::Ordered>,
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed")
            .field("entries", &self.revocations.len())
            .field("last_sequence", &self.last_sequence.load(Ordering::Relaxed))
            .field("following", &self.following.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How long one read may wait while catching up before the load gives up.
const LOAD_READ_TIMEOUT: Duration = Duration::from_secs(10);

impl RevocationFeed {
    /// Declares the `USERS` stream and applies its last `window` of events to
    /// `revocations`, returning once caught up (or failing after `timeout`).
    pub async fn load(
        bus: &EventBus,
        revocations: Revocations,
        window: Duration,
        metrics: FeedMetrics,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut feed = Self {
            bus: bus.clone(),
            revocations,
            window,
            last_sequence: Arc::default(),
            following: Arc::default(),
            metrics,
            messages: None,
        };
        tokio::time::timeout(timeout, feed.catch_up())
            .await
            .map_err(|_| anyhow::anyhow!("the revocation feed did not catch up within {timeout:?}"))??;
        feed.following.store(true, Ordering::Relaxed);
        Ok(feed)
    }

    pub fn health(&self) -> FeedHealth {
        FeedHealth { following: Arc::clone(&self.following), client: self.bus.client().clone() }
    }

    /// Opens the consumer (from the start of the window, or after the last applied event)
    /// and reads until nothing is pending.
    async fn catch_up(&mut self) -> anyhow::Result<()> {
        // Created here if auth never ran: the feed must load before the service is ready.
        self.bus.create_stream_if_missing(StreamName::Users).await?;
        let namespace = self.bus.namespace();
        let stream = self.bus.jetstream().get_stream(namespace.stream(StreamName::Users)).await?;
        let deliver_policy = match self.last_sequence.load(Ordering::Relaxed) {
            0 => {
                let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos()
                    - i128::try_from(self.window.as_nanos()).unwrap_or(i128::MAX);
                DeliverPolicy::ByStartTime {
                    start_time: time::OffsetDateTime::from_unix_timestamp_nanos(nanos.max(0))
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                }
            }
            last => DeliverPolicy::ByStartSequence { start_sequence: last + 1 },
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                name: Some(self.bus.ephemeral_name("revocations")),
                filter_subject: namespace.subject(StreamName::Users.subjects()[0]),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot declare the revocation consumer: {e}"))?;
        let mut pending = consumer.cached_info().num_pending;
        let mut messages = consumer.messages().await?;
        while pending > 0 {
            let message = tokio::time::timeout(LOAD_READ_TIMEOUT, messages.next())
                .await
                .map_err(|_| anyhow::anyhow!("no revocation event within {LOAD_READ_TIMEOUT:?} while catching up"))?
                .ok_or_else(|| anyhow::anyhow!("the revocation consumer ended while catching up"))?
                .map_err(|e| anyhow::anyhow!("reading revocations: {e}"))?;
            pending = message.info().map(|info| info.pending).unwrap_or(0);
            self.apply(&message);
        }
        tracing::debug!(entries = self.revocations.len(), "revocation feed caught up");
        self.messages = Some(messages);
        Ok(())
    }

    fn apply(&self, message: &async_nats::jetstream::Message) {
        if let Ok(info) = message.info() {
            self.last_sequence.fetch_max(info.stream_sequence, Ordering::Relaxed);
        }
        let subject = self.bus.namespace().strip(message.subject.as_str());
        let revoked = match Subject::parse(subject) {
            Some(Subject::UserBanned) => {
                serde_json::from_slice::<UserBanned>(&message.payload).ok().map(|e| (e.user_id, e.at))
            }
            Some(Subject::UserSessionsRevoked) => {
                serde_json::from_slice::<UserSessionsRevoked>(&message.payload).ok().map(|e| (e.user_id, e.at))
            }
            // An unban lets the user sign in again; tokens from before the ban stay refused.
            Some(Subject::UserUnbanned) => return,
            _ => None,
        };
        match revoked.and_then(|(user, at)| Some((user, unix_second(&at)?))) {
            Some((user, at)) => {
                self.revocations.revoke(&user, at, unix_now());
                self.metrics.applied.inc();
                self.metrics.entries.set(i64::try_from(self.revocations.len()).unwrap_or(i64::MAX));
            }
            None => {
                self.metrics.undecodable.inc();
                tracing::warn!(subject, "skipped an undecodable event on the revocation feed");
            }
        }
    }

    /// Applies new events until `shutdown`, pruning expired entries every second, and
    /// declares the consumer again after any interruption.
    pub async fn follow(mut self, shutdown: CancellationToken) {
        let mut prune = tokio::time::interval(Duration::from_secs(1));
        let mut backoff = crate::retry::Backoff::reconnect();
        while !shutdown.is_cancelled() {
            let Some(mut messages) = self.messages.take() else {
                self.following.store(false, Ordering::Relaxed);
                if !backoff.wait_after_failure(&shutdown).await {
                    break;
                }
                match self.catch_up().await {
                    Ok(()) => {
                        self.following.store(true, Ordering::Relaxed);
                        backoff.succeeded();
                    }
                    Err(err) => {
                        tracing::warn!(error = format!("{err:#}"), retry_in = ?backoff.peek(), "revocation feed is stale");
                    }
                }
                continue;
            };
            tokio::select! {
                message = messages.next() => match message {
                    Some(Ok(message)) => {
                        self.apply(&message);
                        self.messages = Some(messages);
                    }
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "revocation feed interrupted; resuming");
                    }
                    None => tracing::warn!("revocation feed ended; resuming"),
                },
                _ = prune.tick() => {
                    self.revocations.prune(unix_now());
                    self.metrics.entries.set(i64::try_from(self.revocations.len()).unwrap_or(i64::MAX));
                    self.messages = Some(messages);
                }
                () = shutdown.cancelled() => break,
            }
        }
        tracing::debug!("revocation feed stopped");
    }
}
