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
            listener: ListenerSettings::default(),
        })
    }
}
