//! The orders service's configuration, read once from the environment at start-up.

use std::time::Duration;

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
    /// How long a reservation lasts (`EXPIRATION_WINDOW_SECONDS`, default 900).
    pub expiration_window: Duration,
    /// Reservations one buyer may hold at once (`ORDERS_MAX_ACTIVE_PER_USER`, default 5).
    pub max_active_per_user: u64,
    /// Retry policy of the listeners (defaults; tests shorten it).
    pub listener: ListenerSettings,
}

impl Config {
    /// Reads `PORT`, `MONGO_URI`, `NATS_URL`, `EVENT_NAMESPACE`, `JWT_KEY`,
    /// `JWT_TTL_SECONDS`, `COOKIE_SECURE`, `EXPIRATION_WINDOW_SECONDS`,
    /// `ORDERS_MAX_ACTIVE_PER_USER`, naming the first
    /// bad one.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            session: SessionSettings::from_env(env)?,
            mongo: MongoSettings::from_env(env)?,
            nats: NatsSettings::from_env(env)?,
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            expiration_window: env.seconds_or("EXPIRATION_WINDOW_SECONDS", 900)?,
            max_active_per_user: env.parse_or("ORDERS_MAX_ACTIVE_PER_USER", 5)?,
            listener: ListenerSettings::default(),
        })
    }
}
