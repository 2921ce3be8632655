//! The listener runtime: one durable pull consumer per (service, subject), shared by every
//! replica of the service, so each event is handled once per service.
//!
//! For each message:
//! - an undecodable payload goes straight to the dead-letter stream;
//! - the handler runs (with a timeout, and a panic is caught); on success the message is
//!   acked, which the handler only returns after its write committed;
//! - [`HandleError::OutOfOrder`] (a predecessor not applied yet) and [`HandleError::Transient`]
//!   (a database or broker outage) are redelivered after a growing delay (`Nak` with delay);
//! - [`HandleError::Poison`], or a retryable failure past `max_attempts` deliveries, goes to
//!   the dead-letter stream (original subject, headers and payload plus the reason), is
//!   logged and counted, and is terminated (`Term`) so it stops being redelivered.
//!
//! Nothing a message does ends the loop: only shutdown does, after the messages in flight
//! are finished.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{AckKind, Message};
use futures::{FutureExt, StreamExt};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Event, EventBus, MSG_ID_HEADER, StreamName};

/// How often a listener looks for a stream its publisher has not created yet.
const STREAM_WAIT: Duration = Duration::from_millis(250);

/// Why a handler did not apply an event. Both retryable kinds are redelivered with the
/// same growing delay; they differ in how long they may go on
/// ([`ListenerSettings`]).
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// The event came before one it depends on (a version gap, an order not yet seen);
    /// normal while consumers replay at different paces, so it is retried up to the large
    /// budget `max_gap_attempts` before it is dead-lettered.
    #[error("not applicable yet: {0}")]
    OutOfOrder(String),
    /// A dependency failed (database down, write conflict, a timeout); retried up to
    /// `max_attempts`, then dead-lettered.
    #[error("transient failure: {0:#}")]
    Transient(anyhow::Error),
    /// The event can never be applied; dead-letter it.
    #[error("poison: {0}")]
    Poison(String),
}

impl From<mongodb::error::Error> for HandleError {
    fn from(err: mongodb::error::Error) -> Self {
        Self::Transient(err.into())
    }
}

/// Facts about the delivery a handler may use.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event id (`Nats-Msg-Id`), when the publisher set one.
    pub event_id: Option<String>,
    /// 1 for the first delivery.
    pub attempt: i64,
    pub stream_sequence: u64,
}

/// Applies one kind of event.
pub trait Handler: Send + Sync + 'static {
    type Event: Event;

    fn handle(&self, event: Self::Event, delivery: &Delivery) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// Retry and concurrency policy of a listener.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    /// Deliveries before a failing event (a transient error that persists) is dead-lettered.
    pub max_attempts: i64,
    /// Deliveries before an event whose predecessor never arrives is dead-lettered. Larger:
    /// a missing predecessor is normal while consumers replay history at different paces
    /// (a rebuild), not a failure.
    pub max_gap_attempts: i64,
    /// Delay before the second delivery; doubles per attempt up to `max_retry_delay`.
    pub first_retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// Messages handled at once per consumer in one replica.
    pub concurrency: usize,
    /// Longest a handler may run before it counts as a transient failure.
    pub handler_timeout: Duration,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            max_gap_attempts: 120,
            first_retry_delay: Duration::from_millis(200),
            max_retry_delay: Duration::from_secs(10),
            concurrency: 16,
            handler_timeout: Duration::from_secs(20),
        }
    }
}

impl ListenerSettings {
    fn retry_delay(&self, attempt: i64) -> Duration {
        let exponent = u32::try_from(attempt.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        self.first_retry_delay.saturating_mul(1 << exponent).min(self.max_retry_delay)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConsumerLabels {
    consumer: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Consumer {
    consumer: String,
}

type Gauge = prometheus_client::metrics::gauge::Gauge;
type AgeHistograms = Family<
    Consumer,
    prometheus_client::metrics::histogram::Histogram,
    fn() -> prometheus_client::metrics::histogram::Histogram,
>;

fn age_histogram() -> prometheus_client::metrics::histogram::Histogram {
    // 1 ms .. ~9 min
    prometheus_client::metrics::histogram::Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.001, 2.0, 20,
    ))
}

/// Counters of the listener runtime, registered once per application.
#[derive(Clone, Debug)]
pub struct ListenerMetrics {
    handled: Family<ConsumerLabels, Counter>,
    dead_lettered: Family<ConsumerLabels, Counter>,
    /// Messages of each durable consumer not yet acknowledged (pending plus in flight).
    lag: Family<Consumer, Gauge>,
    /// From the event's publication to its handling.
    age: AgeHistograms,
    /// How long the handler ran, per delivery.
    handling: AgeHistograms,
}

impl Default for ListenerMetrics {
    fn default() -> Self {
        Self {
            handled: Family::default(),
            dead_lettered: Family::default(),
            lag: Family::default(),
            age: Family::new_with_constructor(age_histogram),
            handling: Family::new_with_constructor(age_histogram),
        }
    }
}

impl ListenerMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "event_consumer_lag",
            "Messages a durable consumer has not acknowledged yet (pending and in flight), every 15 s",
            metrics.lag.clone(),
        );
        registry.register(
            "event_age_seconds",
            "Time from an event's publication to its handling, by consumer",
            metrics.age.clone(),
        );
        registry.register(
            "event_handling_seconds",
            "How long a consumer's handler ran on a delivery (its database work, mostly)",
            metrics.handling.clone(),
        );
        registry.register(
            "events_handled",
            "Event deliveries handled, by consumer and outcome (ack, retry, dead_letter)",
            metrics.handled.clone(),
        );
        registry.register(
            "events_dead_lettered",
            "Events moved to the dead-letter stream, by consumer and reason",
            metrics.dead_lettered.clone(),
        );
        metrics
    }

    fn count(&self, consumer: &str, outcome: &str) {
        self.handled.get_or_create(&ConsumerLabels { consumer: consumer.into(), outcome: outcome.into() }).inc();
    }
}

/// What every listener of a service shares.
#[derive(Clone, Debug)]
pub struct ListenerContext {
    pub bus: EventBus,
    /// The listening service's name: consumers are `<service>-<subject>`.
    pub service: &'static str,
    pub settings: ListenerSettings,
    pub metrics: ListenerMetrics,
}

/// The id an event names, as an ObjectId; a malformed one can never match anything, so
/// the event is poison (dead-lettered at once, not retried). `what` names it in the reason.
pub fn object_id_or_poison(raw: &str, what: &str) -> Result<bson::oid::ObjectId, HandleError> {
    bson::oid::ObjectId::parse_str(raw)
        .map_err(|_| HandleError::Poison(format!("{what} id {raw:?} is not an ObjectId")))
}

/// The durable consumer of `service` on `subject`: `orders-ticket-created` (namespaced).
/// The NATS users of `infra/nats_auth.py` grant exactly these names.
pub fn durable_name(namespace: &super::Namespace, service: &str, subject: super::Subject) -> String {
    namespace.name(&format!("{service}-{}", subject.as_str().replace('.', "-")))
}

type ListenerTask = Box<dyn FnOnce(CancellationToken) -> futures::future::BoxFuture<'static, ()> + Send>;

/// A service's listeners, one per subject, before they run: each is one line,
/// `.listen(Handler { .. })`, and the set knows its subjects (what `query rebuild` resets).
pub struct Listeners {
    context: ListenerContext,
    listeners: Vec<(super::Subject, ListenerTask)>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("service", &self.context.service)
            .field("subjects", &self.subjects().collect::<Vec<_>>())
            .finish()
    }
}

impl Listeners {
    pub fn new(context: ListenerContext) -> Self {
        Self { context, listeners: Vec::new() }
    }

    /// Adds the listener of `H`'s subject.
    ///
    /// # Panics
    /// When the service already listens to that subject (two handlers would share one
    /// durable consumer, each getting half the events).
    pub fn listen<H: Handler>(mut self, handler: H) -> Self {
        let subject = H::Event::SUBJECT;
        assert!(self.subjects().all(|s| s != subject), "{} listens to {subject:?} twice", self.context.service);
        let context = self.context.clone();
        self.listeners.push((subject, Box::new(move |token| Box::pin(run(context, handler, token)))));
        self
    }

    /// The subjects listened to, in the order added.
    pub fn subjects(&self) -> impl Iterator<Item = super::Subject> + '_ {
        self.listeners.iter().map(|(subject, _)| *subject)
    }

    /// The durable consumer names, with each one's subject.
    pub fn durables(&self) -> Vec<(super::Subject, String)> {
        let namespace = self.context.bus.namespace();
        self.subjects().map(|subject| (subject, durable_name(namespace, self.context.service, subject))).collect()
    }

    /// The listeners as tasks, named by their subjects, and the task that reports their
    /// consumers' lag.
    pub(crate) fn into_tasks(self) -> impl Iterator<Item = (&'static str, ListenerTask)> {
        let durables = self.durables();
        let context = self.context.clone();
        let lag: ListenerTask = Box::new(move |token| Box::pin(watch_lag(context, durables, token)));
        let watcher = (!self.listeners.is_empty()).then_some(("consumer-lag", lag));
        self.listeners.into_iter().map(|(subject, task)| (subject.as_str(), task)).chain(watcher)
    }
}

/// Every 15 s, each durable consumer's unacknowledged messages into
/// `event_consumer_lag{consumer}` (a consumer not created yet is skipped).
async fn watch_lag(context: ListenerContext, durables: Vec<(super::Subject, String)>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for (subject, name) in &durables {
            let Ok(Some(stream)) = context.bus.existing_stream(subject.stream()).await else { continue };
            if let Ok(info) = stream.consumer_info(name).await {
                let lag = info.num_pending.saturating_add(info.num_ack_pending as u64);
                context
                    .metrics
                    .lag
                    .get_or_create(&Consumer { consumer: name.clone() })
                    .set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
        }
    }
}

/// Declares the dead-letter stream and the durable consumer for `H`'s subject, then
/// handles messages until `shutdown`. Returns once in-flight messages are finished.
pub async fn run<H: Handler>(context: ListenerContext, handler: H, shutdown: CancellationToken) {
    let ListenerContext { bus, service, settings, metrics } = context;
    let subject = H::Event::SUBJECT;
    let durable = durable_name(bus.namespace(), service, subject);
    let worker = Arc::new(Worker { bus, service, durable, handler, settings, metrics });
    let mut backoff = crate::retry::Backoff::reconnect();
    while !shutdown.is_cancelled() {
        match worker.consume(&shutdown).await {
            Ok(()) => backoff.succeeded(),
            Err(err) => {
                tracing::warn!(consumer = %worker.durable, error = format!("{err:#}"), retry_in = ?backoff.peek(), "listener cannot consume; retrying");
                backoff.wait_after_failure(&shutdown).await;
            }
        }
    }
    tracing::debug!(consumer = %worker.durable, "listener stopped");
}

struct Worker<H> {
    bus: EventBus,
    service: &'static str,
    durable: String,
    handler: H,
    settings: ListenerSettings,
    metrics: ListenerMetrics,
}

impl<H: Handler> Worker<H> {
    /// One consumer session: declare, then pull until shutdown or a broken stream.
    async fn consume(self: &Arc<Self>, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let subject = H::Event::SUBJECT;
        let namespace = self.bus.namespace();
        self.bus.ensure_stream(StreamName::DeadLetter).await?;
        // The publisher owns its stream and creates it when it starts; until then, wait.
        let mut waiting = false;
        let stream = loop {
            if let Some(stream) = self.bus.existing_stream(subject.stream()).await? {
                break stream;
            }
            if !std::mem::replace(&mut waiting, true) {
                tracing::info!(consumer = %self.durable, stream = %namespace.stream(subject.stream()), "waiting for the publisher to create its stream");
            }
            tokio::select! {
                () = tokio::time::sleep(STREAM_WAIT) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        };
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(self.durable.clone()),
                filter_subject: namespace.subject(subject.as_str()),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.settings.handler_timeout + Duration::from_secs(10),
                max_deliver: -1,
                max_ack_pending: 1024,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("cannot declare consumer {}: {e}", self.durable))?;
        let messages = consumer.messages().await?;
        tracing::info!(consumer = %self.durable, subject = subject.as_str(), "listening");
        // Any pull error (the connection dropped, heartbeats missed, the consumer deleted by
        // a rebuild) ends this session; the caller declares the consumer again and resumes.
        let durable = self.durable.clone();
        messages
            .take_until(shutdown.cancelled())
            .take_while(move |message| {
                if let Err(err) = message {
                    tracing::warn!(consumer = %durable, error = %err, "pull failed; reconnecting");
                }
                futures::future::ready(message.is_ok())
            })
            .filter_map(|message| futures::future::ready(message.ok()))
            .for_each_concurrent(self.settings.concurrency, |message| {
                let worker = Arc::clone(self);
                async move { worker.process(message).await }
            })
            .await;
        if shutdown.is_cancelled() { Ok(()) } else { Err(anyhow::anyhow!("the message stream ended")) }
    }

    /// Handles one message inside an `event` span that continues the trace the message
    /// carries (its `traceparent` header), so what the handler logs and stages is part of
    /// the trace of the request that caused the event.
    async fn process(&self, message: Message) {
        let span = tracing::info_span!(
            "event",
            service = self.service,
            consumer = %self.durable,
            subject = H::Event::SUBJECT.as_str(),
            trace_id = tracing::field::Empty,
        );
        let traceparent = message.headers.as_ref().and_then(|h| h.get(crate::trace::TRACEPARENT)).map(|v| v.as_str());
        crate::trace::continue_trace(&span, traceparent);
        self.handle_in_span(message).instrument(span).await;
    }

    async fn handle_in_span(&self, message: Message) {
        let consumer = Consumer { consumer: self.durable.clone() };
        let (attempt, stream_sequence) = match message.info() {
            Ok(info) => {
                if info.delivered == 1 {
                    let age = time::OffsetDateTime::now_utc() - info.published;
                    self.metrics.age.get_or_create(&consumer).observe(age.as_seconds_f64().max(0.0));
                }
                (info.delivered, info.stream_sequence)
            }
            Err(_) => (1, 0),
        };
        let event_id = message.headers.as_ref().and_then(|h| h.get(MSG_ID_HEADER)).map(|v| v.as_str().to_owned());
        let delivery = Delivery { event_id, attempt, stream_sequence };

        let event: H::Event = match serde_json::from_slice(&message.payload) {
            Ok(event) => event,
            Err(err) => return self.dead_letter(&message, &delivery, "undecodable", &err.to_string()).await,
        };
        let started = std::time::Instant::now();
        let outcome = AssertUnwindSafe(tokio::time::timeout(
            self.settings.handler_timeout,
            self.handler.handle(event, &delivery),
        ))
        .catch_unwind()
        .await;
        self.metrics.handling.get_or_create(&consumer).observe(started.elapsed().as_secs_f64());
        let result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(HandleError::Transient(anyhow::anyhow!("handler timed out"))),
            Err(_panic) => Err(HandleError::Transient(anyhow::anyhow!("handler panicked"))),
        };
        tracing::debug!(attempt, outcome = ?result.as_ref().map_err(ToString::to_string), "event handled");
        match result {
            Ok(()) => {
                self.metrics.count(&self.durable, "ack");
                if let Err(err) = message.ack().await {
                    tracing::warn!(consumer = %self.durable, error = %err, "ack failed; the event will be redelivered");
                }
            }
            Err(HandleError::Poison(reason)) => self.dead_letter(&message, &delivery, "poison", &reason).await,
            Err(err @ HandleError::OutOfOrder(_)) if delivery.attempt >= self.settings.max_gap_attempts => {
                self.dead_letter(&message, &delivery, "attempts_exhausted", &err.to_string()).await;
            }
            Err(err @ HandleError::Transient(_)) if delivery.attempt >= self.settings.max_attempts => {
                self.dead_letter(&message, &delivery, "attempts_exhausted", &err.to_string()).await;
            }
            Err(err) => {
                let delay = self.settings.retry_delay(delivery.attempt);
                tracing::debug!(consumer = %self.durable, attempt = delivery.attempt, ?delay, error = %err, "event retried later");
                self.metrics.count(&self.durable, "retry");
                if let Err(err) = message.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(consumer = %self.durable, error = %err, "nak failed; the event comes back after ack_wait");
                }
            }
        }
    }

    /// Copies the message to the dead-letter stream, then terminates it. If the copy cannot
    /// be stored, the message is retried instead: it is never dropped silently.
    async fn dead_letter(&self, message: &Message, delivery: &Delivery, reason: &str, detail: &str) {
        let namespace = self.bus.namespace();
        let original = namespace.strip(message.subject.as_str()).to_owned();
        let mut headers = message.headers.clone().unwrap_or_default();
        let dead_letter_id = format!("{}:{}", self.durable, delivery.stream_sequence);
        headers.insert(MSG_ID_HEADER, dead_letter_id.as_str());
        headers.insert("Dead-Letter-Reason", reason);
        headers.insert("Dead-Letter-Detail", truncate(detail, 512).as_str());
        headers.insert("Dead-Letter-Consumer", self.durable.as_str());
        headers.insert("Original-Subject", message.subject.as_str());
        headers.insert("Original-Stream-Sequence", delivery.stream_sequence.to_string().as_str());
        headers.insert("Original-Attempts", delivery.attempt.to_string().as_str());
        if let Some(id) = &delivery.event_id {
            headers.insert("Original-Msg-Id", id.as_str());
        }
        let subject = namespace.subject(&format!("deadletter.{}.{original}", self.service));
        match self.bus.publish_with_headers(&subject, headers, message.payload.clone()).await {
            Ok(_) => {
                tracing::error!(
                    consumer = %self.durable,
                    subject = %original,
                    reason,
                    detail = truncate(detail, 512),
                    stream_sequence = delivery.stream_sequence,
                    "event moved to the dead-letter stream"
                );
                self.metrics.count(&self.durable, "dead_letter");
                self.metrics
                    .dead_lettered
                    .get_or_create(&ConsumerLabels { consumer: self.durable.clone(), outcome: reason.to_owned() })
                    .inc();
                if let Err(err) = message.ack_with(AckKind::Term).await {
                    tracing::warn!(consumer = %self.durable, error = %err, "term failed; a redelivery will be dead-lettered again (deduplicated)");
                }
            }
            Err(err) => {
                tracing::warn!(consumer = %self.durable, error = format!("{err:#}"), "cannot dead-letter; retrying the event");
                drop(message.ack_with(AckKind::Nak(Some(self.settings.max_retry_delay))).await);
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Headers of a dead-lettered message, for tools and tests.
pub fn dead_letter_reason(headers: &HeaderMap) -> Option<String> {
    headers.get("Dead-Letter-Reason").map(|v| v.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let settings = ListenerSettings::default();
        assert_eq!(settings.retry_delay(1), Duration::from_millis(200));
        assert_eq!(settings.retry_delay(2), Duration::from_millis(400));
        assert_eq!(settings.retry_delay(4), Duration::from_millis(1600));
        assert_eq!(settings.retry_delay(60), Duration::from_secs(10));
    }

    #[test]
    fn long_details_are_truncated_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("short", 10), "short");
    }
}
