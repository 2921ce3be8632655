//! The refund task: refunds every charge whose order was cancelled, until the provider
//! confirms each one.
//!
//! A refund becomes due in the transaction that learns of the cancellation (or records a
//! charge that landed after it), so it cannot be forgotten by a crash; this task finds due
//! refunds, refunds them (the key is the payment id, so a retry cannot refund twice), and
//! after a failure tries again later with a growing pause, forever. `/metrics` shows how
//! many are due; the audit reports any left once the platform has converged.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::provider::Provider;
use crate::store::Store;

/// Timing of the refund task.
#[derive(Debug, Clone)]
pub struct RefundSettings {
    /// How often to look for due refunds nobody woke the task for.
    pub poll_interval: Duration,
    /// Pause after the first failed try; doubles per failure up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RefundSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl RefundSettings {
    pub fn backoff(&self, attempts: i64) -> Duration {
        let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        self.first_backoff.saturating_mul(1 << exponent).min(self.max_backoff)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// The task's metrics.
#[derive(Clone, Debug, Default)]
pub struct RefundMetrics {
    due: Gauge,
    tries: Family<Outcome, Counter>,
}

impl RefundMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register("payments_refunds_due", "Charges of cancelled orders not refunded yet", metrics.due.clone());
        registry.register("payments_refund_tries", "Refund calls to the provider, by outcome", metrics.tries.clone());
        metrics
    }
}

/// Refunds due charges until shutdown.
#[derive(Debug)]
pub struct RefundTask {
    pub store: Store,
    pub provider: Provider,
    pub settings: RefundSettings,
    pub metrics: RefundMetrics,
    /// Woken when a refund becomes due in this process.
    pub wake: Arc<Notify>,
}

impl RefundTask {
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(err) = self.round().await {
                tracing::warn!(error = %err, "refund round failed; retrying");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
                () = shutdown.cancelled() => break,
            }
        }
    }

    async fn round(&self) -> mongodb::error::Result<()> {
        for payment in self.store.refunds_due_now(50).await? {
            match self.store.refund(&payment, &self.provider, |n| self.settings.backoff(n)).await {
                Ok(_) => {
                    self.metrics.tries.get_or_create(&Outcome { outcome: "refunded" }).inc();
                }
                Err(err) => {
                    self.metrics.tries.get_or_create(&Outcome { outcome: "failed" }).inc();
                    tracing::warn!(
                        order_id = %payment.order_id,
                        payment_id = %payment.id,
                        attempts = payment.refund_attempts + 1,
                        error = %err,
                        "refund failed; it is tried again later"
                    );
                }
            }
        }
        let due = self.store.refunds_due().await?;
        self.metrics.due.set(i64::try_from(due).unwrap_or(i64::MAX));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_between_refund_tries_doubles_up_to_its_cap() {
        let settings = RefundSettings::default();
        assert_eq!(settings.backoff(1), Duration::from_secs(1));
        assert_eq!(settings.backoff(3), Duration::from_secs(4));
        assert_eq!(settings.backoff(40), Duration::from_secs(300));
    }
}
