//! Durable schedules, one per order, in this worker's own database (`schedules`).
//!
//! Why a schedule in MongoDB rather than delayed JetStream redelivery: a schedule here is
//! an ordinary document, so it survives restarts of the worker and of NATS, can be
//! cancelled by `order.cancelled`/`order.completed` (even one that arrives before the
//! `order.created` it cancels), is visible to operators, and does not hold one unacked
//! message per pending order against the consumer's `max_ack_pending` for up to fifteen
//! minutes.
//!
//! Firing is one transaction: move the schedule from `pending` to `fired` with a
//! conditional update and stage `expiration.complete` in the outbox. With several
//! replicas polling, only one transaction can make that move for a given order, so each
//! order expires once.

use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use common::events::ExpirationComplete;
use common::events::outbox::{Outbox, Staged};
use futures::TryStreamExt;
use mongodb::options::UpdateOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Where a schedule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for `expiresAt`.
    Pending,
    /// `expiration.complete` was staged.
    Fired,
    /// The order was cancelled or completed first: nothing to do.
    Skipped,
}

impl State {
    /// The stored value, for filters.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Fired => "fired",
            Self::Skipped => "skipped",
        }
    }
}

/// The schedule of one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The order id.
    #[serde(rename = "_id")]
    pub order_id: String,
    #[serde(rename = "expiresAt", default)]
    pub expires_at: Option<bson::DateTime>,
    pub state: State,
}

/// What time it is for the scheduler: the system's, or one that moves only when told
/// ([`Clock::manual`]), with which tests pass a reservation's fifteen minutes at once.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<ManualTime>>);

#[derive(Debug)]
pub struct ManualTime {
    millis: std::sync::atomic::AtomicI64,
    moved: Notify,
}

impl Clock {
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock standing at `start` until [`Clock::advance`] moves it.
    pub fn manual(start: bson::DateTime) -> Self {
        Self(Some(Arc::new(ManualTime {
            millis: std::sync::atomic::AtomicI64::new(start.timestamp_millis()),
            moved: Notify::new(),
        })))
    }

    pub fn now(&self) -> bson::DateTime {
        match &self.0 {
            None => bson::DateTime::now(),
            Some(manual) => bson::DateTime::from_millis(manual.millis.load(std::sync::atomic::Ordering::SeqCst)),
        }
    }

    /// Moves a manual clock forward and wakes the schedulers reading it.
    ///
    /// # Panics
    /// On the system clock, which nobody moves.
    pub fn advance(&self, by: Duration) {
        let manual = self.0.as_ref().expect("only a manual clock moves");
        manual.millis.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), std::sync::atomic::Ordering::SeqCst);
        manual.moved.notify_waiters();
    }

    /// Wakes the schedulers reading a manual clock without moving it (a no-op on the
    /// system clock): a test waiting for a round need not wait out a sleep.
    pub fn nudge(&self) {
        if let Some(manual) = &self.0 {
            manual.moved.notify_waiters();
        }
    }

    /// Resolves when a manual clock moves; never for the system clock.
    async fn moved(&self) {
        match &self.0 {
            None => std::future::pending().await,
            Some(manual) => manual.moved.notified().await,
        }
    }
}

/// The schedules and the worker's outbox. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Schedules {
    client: Client,
    schedules: Collection<Schedule>,
    outbox: Outbox,
    wake: Arc<Notify>,
    clock: Clock,
    /// `expirations_fired_total`.
    fired: prometheus_client::metrics::counter::Counter,
    /// `expiration_scheduler_rounds_total`: the scheduler is alive (and tests know a
    /// round has passed).
    rounds: prometheus_client::metrics::counter::Counter,
}

impl Schedules {
    pub fn new(db: &Database, outbox: Outbox, clock: Clock) -> Self {
        Self {
            client: db.client().clone(),
            schedules: db.collection("schedules"),
            outbox,
            wake: Arc::new(Notify::new()),
            clock,
            fired: prometheus_client::metrics::counter::Counter::default(),
            rounds: prometheus_client::metrics::counter::Counter::default(),
        }
    }

    /// Registers `expirations_fired_total`, the reservations that ran out.
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "expirations_fired",
            "Reservations that ran out (expiration.complete staged)",
            self.fired.clone(),
        );
        registry.register(
            "expiration_scheduler_rounds",
            "Rounds of the scheduler (each fires what is due, then sleeps)",
            self.rounds.clone(),
        );
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.schedules.create_index(IndexModel::builder().keys(doc! { "state": 1, "expiresAt": 1 }).build()).await?;
        self.outbox.ensure_indexes().await
    }

    pub async fn find(&self, order_id: &str) -> mongodb::error::Result<Option<Schedule>> {
        self.schedules.find_one(doc! { "_id": order_id }).await
    }

    /// `order.created`: schedules the order's expiration, unless it is known already (a
    /// redelivery, or an order cancelled before its creation arrived).
    pub async fn schedule(&self, order_id: &str, expires_at: bson::DateTime) -> mongodb::error::Result<()> {
        self.schedules
            .update_one(
                doc! { "_id": order_id },
                doc! { "$setOnInsert": { "expiresAt": expires_at, "state": State::Pending.as_str() } },
            )
            .with_options(UpdateOptions::builder().upsert(true).build())
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// `order.cancelled` / `order.completed`: the schedule will not fire. A schedule that
    /// fired already stays fired (orders ignores the expiration of a finished order).
    pub async fn skip(&self, order_id: &str) -> mongodb::error::Result<()> {
        let result = self
            .schedules
            .update_one(
                doc! { "_id": order_id, "state": { "$ne": State::Fired.as_str() } },
                doc! { "$set": { "state": State::Skipped.as_str() } },
            )
            .with_options(UpdateOptions::builder().upsert(true).build())
            .await;
        match result {
            // The upsert collided with an existing, fired schedule: nothing to do.
            Err(err) if common::mongo::is_duplicate_key(&err) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Fires every schedule due at `now` (up to `limit`); returns how many this call fired.
    pub async fn fire_due(&self, now: bson::DateTime, limit: i64) -> mongodb::error::Result<usize> {
        let due: Vec<Schedule> = self
            .schedules
            .find(doc! { "state": State::Pending.as_str(), "expiresAt": { "$lte": now } })
            .sort(doc! { "expiresAt": 1 })
            .limit(limit)
            .await?
            .try_collect()
            .await?;
        let mut fired = 0;
        for schedule in due {
            if let Some(staged) = self.fire(&schedule.order_id).await? {
                self.outbox.committed([staged]);
                fired += 1;
            }
        }
        if fired > 0 {
            self.fired.inc_by(fired as u64);
        }
        Ok(fired)
    }

    /// Moves one schedule from pending to fired and stages its event; `None` if another
    /// replica (or a cancellation) got there first.
    async fn fire(&self, order_id: &str) -> mongodb::error::Result<Option<Staged>> {
        let (this, order_id) = (self.clone(), order_id.to_owned());
        common::mongo::transaction(&self.client, async move |session| {
            let moved = this
                .schedules
                .update_one(
                    doc! { "_id": &order_id, "state": State::Pending.as_str() },
                    doc! { "$set": { "state": State::Fired.as_str(), "firedAt": bson::DateTime::now() } },
                )
                .session(&mut *session)
                .await?;
            if moved.modified_count == 0 {
                return Ok(None);
            }
            this.outbox.stage(session, &ExpirationComplete { order_id: order_id.clone() }).await.map(Some)
        })
        .await
    }

    /// When the next pending schedule is due.
    pub async fn next_due(&self) -> mongodb::error::Result<Option<bson::DateTime>> {
        let next =
            self.schedules.find_one(doc! { "state": State::Pending.as_str() }).sort(doc! { "expiresAt": 1 }).await?;
        Ok(next.and_then(|s| s.expires_at))
    }

    /// The scheduler loop: fire what is due, then sleep until the next schedule is due, a
    /// new schedule arrives, or `max_sleep` passes (the bound covers schedules written by
    /// other replicas).
    pub async fn run(self, max_sleep: Duration, shutdown: CancellationToken) {
        let mut backoff = common::retry::Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            let round = async {
                self.fire_due(self.clock.now(), 256).await?;
                self.next_due().await
            };
            let outcome = round.await;
            self.rounds.inc();
            let sleep = match outcome {
                Ok(next) => {
                    backoff.succeeded();
                    let until_next = next.map_or(max_sleep, |at| {
                        let millis = at.timestamp_millis() - self.clock.now().timestamp_millis();
                        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
                    });
                    until_next.min(max_sleep)
                }
                Err(err) => {
                    let pause = backoff.failed();
                    tracing::warn!(error = %err, retry_in = ?pause, "expiration round failed");
                    pause
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = self.wake.notified() => {}
                () = self.clock.moved() => {}
                () = shutdown.cancelled() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::State;

    #[test]
    fn filters_use_the_stored_names_of_the_states() {
        for state in [State::Pending, State::Fired, State::Skipped] {
            assert_eq!(bson::serialize_to_bson(&state).unwrap(), bson::Bson::String(state.as_str().to_owned()));
        }
    }
}
