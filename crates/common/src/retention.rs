//! Collections that would otherwise grow forever are pruned after a retention period.
//!
//! Each rule names a collection and the date field that says when a document stopped
//! mattering: the outbox's `sentAt` (a pending record has none and is never pruned) and
//! the tickets service's `order_marks` by `updatedAt`. A
//! background task deletes documents older than `PRUNE_AFTER_SECONDS` (7 days by default)
//! every few minutes and counts what it deleted in `/metrics`.
//!
//! Why 7 days is safe for each: a sent outbox record is only kept to be republished if
//! "mark sent" failed, which is retried within seconds; a mark only matters while the
//! other event of the same order can still be delivered, which the listeners give up on
//! within minutes (then it is dead-lettered).

use std::time::Duration;

use bson::{Document, doc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Env};

/// How long documents are kept and how often the task looks.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// `PRUNE_AFTER_SECONDS` (default 604,800: 7 days).
    pub keep: Duration,
    /// How often the pruner runs (`PRUNE_INTERVAL_SECONDS`, default 600).
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { keep: Duration::from_secs(7 * 24 * 3600), interval: Duration::from_secs(600) }
    }
}

impl RetentionSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            keep: env.seconds_or("PRUNE_AFTER_SECONDS", 7 * 24 * 3600)?,
            interval: env.seconds_or("PRUNE_INTERVAL_SECONDS", 600)?,
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollectionLabel {
    collection: String,
}

/// Deletes what is older than the retention period, rule by rule.
#[derive(Debug, Clone)]
pub struct Pruner {
    rules: Vec<(mongodb::Collection<Document>, &'static str)>,
    settings: RetentionSettings,
    pruned: Family<CollectionLabel, Counter>,
}

impl Pruner {
    pub fn new(settings: RetentionSettings, registry: &mut Registry) -> Self {
        let pruned = Family::<CollectionLabel, Counter>::default();
        registry.register(
            "documents_pruned",
            "Documents deleted after the retention period, by collection",
            pruned.clone(),
        );
        Self { rules: Vec::new(), settings, pruned }
    }

    /// Prunes documents of `collection` whose date `field` is older than the retention.
    pub fn rule(&mut self, collection: mongodb::Collection<Document>, field: &'static str) {
        self.rules.push((collection, field));
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// One pass over every rule, as of `now`; returns how many documents went.
    pub async fn prune_once(&self, now: bson::DateTime) -> mongodb::error::Result<u64> {
        let keep = i64::try_from(self.settings.keep.as_millis()).unwrap_or(i64::MAX);
        let cutoff = bson::DateTime::from_millis(now.timestamp_millis().saturating_sub(keep));
        let mut total = 0;
        for (collection, field) in &self.rules {
            let deleted = collection.delete_many(doc! { *field: { "$lt": cutoff } }).await?.deleted_count;
            self.pruned.get_or_create(&CollectionLabel { collection: collection.name().to_owned() }).inc_by(deleted);
            total += deleted;
        }
        Ok(total)
    }

    /// Prunes every interval until `shutdown`; a failed pass is logged and retried.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            match self.prune_once(bson::DateTime::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "pruned documents past their retention"),
                Err(err) => tracing::warn!(error = %err, "pruning failed; it runs again later"),
            }
        }
    }
}
