//! Growing pauses between the attempts of something that fails for a while (a server
//! starting, a consumer whose stream is being recreated): the one retry policy of every
//! loop in the platform.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Pauses that double after each failure, up to a ceiling, and start over after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first }
    }

    /// 200 ms, doubling up to 5 s: reconnecting loops.
    pub const fn reconnect() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// The pause to wait after a failure; the one after it is twice as long.
    pub fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// After a success: the next failure waits the first pause again.
    pub fn succeeded(&mut self) {
        self.next = self.first;
    }

    /// The pause the next failure will wait.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Waits the pause of a failure, or until `shutdown`; false when `shutdown` came first.
    pub async fn wait_after_failure(&mut self, shutdown: &CancellationToken) -> bool {
        let pause = self.failed();
        tokio::select! {
            () = tokio::time::sleep(pause) => true,
            () = shutdown.cancelled() => false,
        }
    }
}

/// Tries `attempt` until it succeeds, with [`Backoff::reconnect`] pauses, for at most
/// `timeout`: start-up waits for a server this way. Each failure is logged with `what`.
pub async fn until_timeout<T, E, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = Backoff::reconnect();
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if tokio::time::Instant::now() + backoff.peek() < deadline => {
                let pause = backoff.failed();
                tracing::warn!(error = %err, retry_in = ?pause, "{what} not reachable yet");
                tokio::time::sleep(pause).await;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_ceiling_and_start_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let pauses: Vec<_> = (0..5).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(pauses, vec![100, 200, 400, 500, 500]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_keeps_failing_gives_up_at_the_timeout() {
        let started = tokio::time::Instant::now();
        let mut attempts = 0;
        let result: Result<(), &str> = until_timeout("a server", Duration::from_secs(3), || {
            attempts += 1;
            async { Err("refused") }
        })
        .await;
        assert_eq!(result, Err("refused"));
        // 0.2 + 0.4 + 0.8 s, then the next 1.6 s pause would pass the 3 s deadline.
        assert_eq!(attempts, 4);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_succeeds_later_is_returned() {
        let mut attempts = 0;
        let result: Result<u32, &str> = until_timeout("a server", Duration::from_secs(60), || {
            attempts += 1;
            let n = attempts;
            async move { if n < 3 { Err("not yet") } else { Ok(n) } }
        })
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_ends_the_wait() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let mut backoff = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        assert!(!backoff.wait_after_failure(&shutdown).await);
    }
}
