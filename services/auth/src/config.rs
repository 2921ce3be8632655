//! The auth service's own settings, read once from the environment at start-up.

use std::time::Duration;

use common::config::{ConfigError, Env, ServiceConfig, SessionSettings};

/// The platform's settings plus the auth service's own. (NATS: auth publishes bans and
/// revocations on `USERS`, and reads them back like every service.)
pub type Config = ServiceConfig<Settings>;

#[derive(Clone, Debug)]
pub struct Settings {
    pub session: SessionSettings,
    pub refresh: RefreshSettings,
    /// Sign-in attempts a client may make per minute (`SIGNIN_ATTEMPTS_PER_MINUTE`,
    /// default 10), all at once or spread out.
    pub signin_attempts_per_minute: u32,
    /// Sign-ups a client may make per minute (`SIGNUP_ATTEMPTS_PER_MINUTE`, default 5).
    pub signup_attempts_per_minute: u32,
    /// Failed sign-ins an account tolerates per 15 minutes, from any client, before it is
    /// refused for a while (`SIGNIN_FAILURES_PER_ACCOUNT`, default 10).
    pub signin_failures_per_account: u32,
    /// Password jobs that may wait for a hashing thread (`HASH_QUEUE`, default 16), in
    /// each of the two queues (sign-ins, taken first, and sign-ups); more are refused at
    /// once with 503.
    pub hash_queue: usize,
    /// Whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
    pub trusted_proxies: common::ratelimit::TrustedProxies,
}

/// Refresh tokens.
#[derive(Clone, Debug)]
pub struct RefreshSettings {
    /// How long a refresh token is valid after it is issued (`REFRESH_TTL_SECONDS`,
    /// default 1,209,600: two weeks). Each refresh issues a new one, so a session used at
    /// least that often never ends on its own.
    pub ttl: Duration,
    /// How long a rotated token may still be presented, e.g. by a second tab refreshing at
    /// the same moment (`REFRESH_REUSE_GRACE_SECONDS`, default 10). Presented later, it
    /// revokes its whole family: it was copied.
    pub reuse_grace: Duration,
}

impl RefreshSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            ttl: env.seconds_or("REFRESH_TTL_SECONDS", 1_209_600)?,
            reuse_grace: Duration::from_secs(env.parse_or("REFRESH_REUSE_GRACE_SECONDS", 10)?),
        })
    }
}

impl common::config::Settings for Settings {
    /// Reads the session's variables, `REFRESH_TTL_SECONDS`, `REFRESH_REUSE_GRACE_SECONDS`,
    /// `SIGNIN_ATTEMPTS_PER_MINUTE`, `SIGNUP_ATTEMPTS_PER_MINUTE`,
    /// `SIGNIN_FAILURES_PER_ACCOUNT`, `HASH_QUEUE`, `TRUSTED_PROXIES`, naming the first
    /// bad one.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            session: SessionSettings::from_env(env)?,
            refresh: RefreshSettings::from_env(env)?,
            signin_attempts_per_minute: env.parse_or("SIGNIN_ATTEMPTS_PER_MINUTE", 10)?,
            signup_attempts_per_minute: env.parse_or("SIGNUP_ATTEMPTS_PER_MINUTE", 5)?,
            signin_failures_per_account: env.parse_or("SIGNIN_FAILURES_PER_ACCOUNT", 10)?,
            hash_queue: env.parse_or("HASH_QUEUE", 16)?,
            trusted_proxies: common::ratelimit::TrustedProxies::from_env(env)?,
        })
    }
}
