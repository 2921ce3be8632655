//! The query service's own settings, read once from the environment at start-up.

use common::config::{ConfigError, Env, ServiceConfig, SessionSettings};
use common::events::listener::ListenerSettings;

/// The platform's settings plus the query service's own.
pub type Config = ServiceConfig<Settings>;

#[derive(Clone, Debug)]
pub struct Settings {
    pub session: SessionSettings,
    /// Publish ticket changes on the live feed (`GET /api/query/tickets/events`); off only
    /// for tools that replay history and serve nobody.
    pub live_feed: bool,
}

impl common::config::Settings for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self { session: SessionSettings::from_env(env)?, live_feed: true })
    }

    /// The defaults, with
    /// - fewer messages in flight per consumer (4, not 16): the read model's transactions
    ///   all touch the ticket's status, and during a replay the six consumers reach the
    ///   same tickets at once; with 96 in flight they mostly conflicted and retried (12,000
    ///   events: 57 events/s at 16, 162 events/s at 4; see BENCHMARKS.md);
    /// - a larger budget for missing predecessors: during a replay each consumer reads its
    ///   own subject at its own pace, so an `order.cancelled` can come long before its
    ///   `order.created`; 720 deliveries at the 10 s retry cap is two hours.
    fn listener_settings() -> ListenerSettings {
        ListenerSettings { concurrency: 4, max_gap_attempts: 720, ..ListenerSettings::default() }
    }
}
