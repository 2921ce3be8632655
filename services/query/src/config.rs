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

    /// The defaults (16 messages in flight per consumer: the read model's writes are
    /// single-document and never conflict), with a larger budget for missing
    /// predecessors: during a replay each consumer reads its own subject at its own pace,
    /// so an `order.cancelled` can come long before its `order.created`; 720 deliveries at
    /// the 10 s retry cap is two hours.
    fn listener_settings() -> ListenerSettings {
        ListenerSettings { max_gap_attempts: 720, ..ListenerSettings::default() }
    }
}
