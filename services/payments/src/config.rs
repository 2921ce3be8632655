//! The payments service's configuration, read once from the environment at start-up.

use common::config::{ConfigError, Env, HttpSettings, MongoSettings, SessionSettings};
use common::events::NatsSettings;
use common::events::listener::ListenerSettings;
use secrecy::SecretString;

/// Default port when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 3000;
/// Stripe's API.
pub const STRIPE_API: &str = "https://api.stripe.com";

/// Which payment provider to use.
#[derive(Clone, Debug)]
pub enum ProviderSettings {
    /// `STRIPE_KEY` is set: Stripe at `STRIPE_API_BASE` (default [`STRIPE_API`]).
    Stripe { key: SecretString, base_url: String },
    /// No key: the built-in test provider.
    Test,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub http: HttpSettings,
    pub mongo: MongoSettings,
    pub nats: NatsSettings,
    pub session: SessionSettings,
    pub provider: ProviderSettings,
    /// Retry policy of the listeners (defaults; tests shorten it).
    pub listener: ListenerSettings,
}

impl Config {
    /// Reads `PORT`, `MONGO_URI`, `NATS_URL`, `EVENT_NAMESPACE`, `JWT_KEY`,
    /// `JWT_TTL_SECONDS`, `COOKIE_SECURE`, `STRIPE_KEY`, `STRIPE_API_BASE`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let provider = match env.get("STRIPE_KEY") {
            Some(key) => ProviderSettings::Stripe {
                key: SecretString::from(key.to_owned()),
                base_url: env.get("STRIPE_API_BASE").unwrap_or(STRIPE_API).to_owned(),
            },
            None => ProviderSettings::Test,
        };
        Ok(Self {
            session: SessionSettings::from_env(env)?,
            mongo: MongoSettings::from_env(env)?,
            nats: NatsSettings::from_env(env)?,
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            provider,
            listener: ListenerSettings::default(),
        })
    }
}
