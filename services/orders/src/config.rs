//! The orders service's own settings, read once from the environment at start-up.

use std::time::Duration;

use common::config::{ConfigError, Env, ServiceConfig, SessionSettings};

/// The platform's settings plus the orders service's own.
pub type Config = ServiceConfig<Settings>;

#[derive(Clone, Debug)]
pub struct Settings {
    pub session: SessionSettings,
    /// How long a reservation lasts (`EXPIRATION_WINDOW_SECONDS`, default 900).
    pub expiration_window: Duration,
    /// Reservations one buyer may hold at once (`ORDERS_MAX_ACTIVE_PER_USER`, default 5).
    pub max_active_per_user: u64,
}

impl common::config::Settings for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            session: SessionSettings::from_env(env)?,
            expiration_window: env.seconds_or("EXPIRATION_WINDOW_SECONDS", 900)?,
            max_active_per_user: env.parse_or("ORDERS_MAX_ACTIVE_PER_USER", 5)?,
        })
    }
}
