//! The query service's configuration, read once from the environment at start-up.

use common::config::{ConfigError, Env, HttpSettings, MongoSettings, SessionSettings};
use common::events::NatsSettings;
use common::events::listener::ListenerSettings;

/// Default port when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 3000;

#[derive(Clone, Debug)]
pub struct Config {
    pub http: HttpSettings,
    pub mongo: MongoSettings,
    pub nats: NatsSettings,
    pub session: SessionSettings,
    /// Retry policy of the listeners (defaults; tests shorten it).
    pub listener: ListenerSettings,
    /// Publish ticket changes on the live feed (`GET /api/query/tickets/events`); off only
    /// for tools that replay history and serve nobody.
    pub live_feed: bool,
}

impl Config {
    /// Reads `PORT`, `MONGO_URI`, `NATS_URL`, `EVENT_NAMESPACE`, `JWT_KEY`,
    /// `JWT_TTL_SECONDS`, `COOKIE_SECURE`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            session: SessionSettings::from_env(env)?,
            mongo: MongoSettings::from_env(env)?,
            nats: NatsSettings::from_env(env)?,
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            listener: listener_settings(),
            live_feed: true,
        })
    }
}

/// The listeners' policy: the defaults, with
/// - fewer messages in flight per consumer (4, not 16): the read model's transactions all
///   touch the ticket's status, and during a replay the six consumers reach the same
///   tickets at once; with 96 in flight they mostly conflicted and retried (12,000 events:
///   57 events/s at 16, 162 events/s at 4; see BENCHMARKS.md);
/// - a larger budget for missing predecessors: during a replay each consumer reads its own
///   subject at its own pace, so an `order.cancelled` can come long before its
///   `order.created`; 720 deliveries at the 10 s retry cap is two hours.
pub fn listener_settings() -> ListenerSettings {
    ListenerSettings { concurrency: 4, max_gap_attempts: 720, ..ListenerSettings::default() }
}
