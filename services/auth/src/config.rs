//! The auth service's configuration, read once from the environment at start-up.

use common::config::{ConfigError, Env, HttpSettings, MongoSettings, SessionSettings};

/// Default port when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 3000;

#[derive(Clone, Debug)]
pub struct Config {
    pub http: HttpSettings,
    pub mongo: MongoSettings,
    pub session: SessionSettings,
    /// Sign-in attempts a client may make per minute (`SIGNIN_ATTEMPTS_PER_MINUTE`,
    /// default 10), all at once or spread out.
    pub signin_attempts_per_minute: u32,
}

impl Config {
    /// Reads `PORT`, `MONGO_URI`, `JWT_KEY`, `JWT_TTL_SECONDS`, `COOKIE_SECURE` (and the
    /// optional tuning variables of [`HttpSettings`]), naming the first bad one.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            session: SessionSettings::from_env(env)?,
            mongo: MongoSettings::from_env(env)?,
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            signin_attempts_per_minute: env.parse_or("SIGNIN_ATTEMPTS_PER_MINUTE", 10)?,
        })
    }
}
