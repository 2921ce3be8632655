//! Typed configuration read once at start-up from a snapshot of the environment.
//!
//! Nothing below start-up reads `std::env`: a service builds its config from an [`Env`]
//! (the process environment in `main`, a literal map in tests) and fails fast, naming the
//! variable that is missing or malformed.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

/// The smallest accepted `JWT_KEY`, in bytes (256 bits for HS256).
pub const MIN_JWT_KEY_BYTES: usize = 32;

/// A configuration variable that is missing or malformed. The message names it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("invalid environment variable {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A snapshot of environment variables.
#[derive(Clone, Default)]
pub struct Env(HashMap<String, String>);

impl std::fmt::Debug for Env {
    // Values may be secrets; only the names are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Env {
    /// The current process environment (non-UTF-8 entries are ignored).
    pub fn from_process() -> Self {
        Self(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    /// Parses a variable, or returns `default` when it is unset.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string() }),
        }
    }

    /// A boolean: `true/false`, `1/0`, `yes/no`, `on/off`.
    pub fn bool_or(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(_) => Err(ConfigError::Invalid { name, reason: "expected true or false".into() }),
        }
    }

    /// Whole seconds, at least one.
    pub fn seconds_or(&self, name: &'static str, default: u64) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse_or(name, default)?;
        if secs == 0 {
            return Err(ConfigError::Invalid { name, reason: "must be at least 1".into() });
        }
        Ok(Duration::from_secs(secs))
    }
}

/// Where a service's MongoDB database lives: `MONGO_URI` with the database name in its
/// path, e.g. `mongodb://mongo:27017/auth?directConnection=true`.
#[derive(Clone, Debug)]
pub struct MongoSettings {
    /// The full URI. Kept secret because it may carry credentials.
    pub uri: SecretString,
    pub database: String,
    /// How long start-up waits for the server (`STARTUP_TIMEOUT_SECONDS`, default 60).
    pub startup_timeout: Duration,
    /// Whether the driver retries a write once after a network error (MongoDB's retryable
    /// writes). On by default; a service whose writes are all idempotent and redelivered
    /// by its listeners turns it off (see `query`).
    pub retry_writes: bool,
    /// How long finished bookkeeping (sent outbox records, marks, locks) is kept.
    pub retention: crate::retention::RetentionSettings,
    /// Count every command sent (`MONGO_COMMAND_METRICS`, off by default): the driver then
    /// copies and parses each command and reply for its monitor, tens of microseconds of
    /// CPU per round trip, so it is for profiling a workload ([`crate::mongo::CommandMetrics`]).
    pub command_metrics: bool,
}

impl MongoSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const NAME: &str = "MONGO_URI";
        let uri = env.required(NAME)?;
        let database = database_from_uri(uri).map_err(|reason| ConfigError::Invalid { name: NAME, reason })?;
        Ok(Self {
            uri: SecretString::from(uri.to_owned()),
            database,
            startup_timeout: env.seconds_or("STARTUP_TIMEOUT_SECONDS", 60)?,
            retry_writes: true,
            retention: crate::retention::RetentionSettings::from_env(env)?,
            command_metrics: env.bool_or("MONGO_COMMAND_METRICS", false)?,
        })
    }
}

/// Extracts the database name from a MongoDB connection string.
pub fn database_from_uri(uri: &str) -> Result<String, String> {
    let rest = uri
        .strip_prefix("mongodb://")
        .or_else(|| uri.strip_prefix("mongodb+srv://"))
        .ok_or_else(|| "must start with mongodb:// or mongodb+srv://".to_owned())?;
    let path = rest.split_once('/').map(|(_, path)| path).unwrap_or_default();
    let database = path.split('?').next().unwrap_or_default();
    if database.is_empty() {
        return Err("must name the database, e.g. mongodb://host:27017/tickets".into());
    }
    if database.contains(['/', '\\', '.', ' ', '"', '$']) {
        return Err(format!("{database:?} is not a valid database name"));
    }
    Ok(database.to_owned())
}

/// Replaces (or adds) the database path of a MongoDB URI, keeping hosts and options.
pub fn with_database(uri: &str, database: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("mongodb", uri));
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    match query {
        Some(query) => format!("{scheme}://{authority}/{database}?{query}"),
        None => format!("{scheme}://{authority}/{database}"),
    }
}

/// Session settings every service shares: the JWT key and lifetime and the cookie flag.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    pub jwt_key: SecretString,
    pub jwt_ttl: Duration,
    pub cookie_secure: bool,
}

impl SessionSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let jwt_key = env.required("JWT_KEY")?;
        if jwt_key.len() < MIN_JWT_KEY_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_KEY",
                reason: format!("must be at least {MIN_JWT_KEY_BYTES} bytes"),
            });
        }
        Ok(Self {
            jwt_key: SecretString::from(jwt_key.to_owned()),
            jwt_ttl: env.seconds_or("JWT_TTL_SECONDS", 900)?,
            cookie_secure: env.bool_or("COOKIE_SECURE", false)?,
        })
    }

    pub fn sessions(&self) -> crate::session::Sessions {
        crate::session::Sessions::new(&self.jwt_key, self.jwt_ttl, self.cookie_secure)
    }
}

/// The HTTP server's settings.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// `PORT`; 0 picks a free port (tests).
    pub port: u16,
    /// Host to bind, `0.0.0.0` by default (`BIND_HOST`).
    pub host: String,
    /// Longest time a request may take before it is answered with 503.
    pub request_timeout: Duration,
    /// Largest accepted request body.
    pub body_limit: usize,
}

impl HttpSettings {
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, ConfigError> {
        Ok(Self {
            port: env.parse_or("PORT", default_port)?,
            host: env.get("BIND_HOST").unwrap_or("0.0.0.0").to_owned(),
            request_timeout: env.seconds_or("REQUEST_TIMEOUT_SECONDS", 10)?,
            body_limit: env.parse_or("BODY_LIMIT_BYTES", 64 * 1024)?,
        })
    }
}

/// The port every service listens on when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 3000;

/// A service's own settings, read from the same environment as the platform's.
pub trait Settings: Sized + Clone + std::fmt::Debug {
    fn from_env(env: &Env) -> Result<Self, ConfigError>;

    /// The retry and concurrency policy of the service's listeners.
    fn listener_settings() -> crate::events::listener::ListenerSettings {
        crate::events::listener::ListenerSettings::default()
    }
}

/// A service with no settings of its own.
impl Settings for () {
    fn from_env(_: &Env) -> Result<Self, ConfigError> {
        Ok(())
    }
}

/// The configuration of a service on the backbone: its HTTP server (`PORT`, `BIND_HOST`,
/// ...), its database (`MONGO_URI`), NATS (`NATS_URL`, ...), its listeners' retry policy
/// (defaults; tests shorten it), and `own`, what is the service's alone.
#[derive(Clone, Debug)]
pub struct ServiceConfig<S> {
    pub http: HttpSettings,
    pub mongo: MongoSettings,
    pub nats: crate::events::NatsSettings,
    pub listener: crate::events::listener::ListenerSettings,
    pub own: S,
}

impl<S: Settings> ServiceConfig<S> {
    /// Reads every variable, naming the first one missing or malformed.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            own: S::from_env(env)?,
            mongo: MongoSettings::from_env(env)?,
            nats: crate::events::NatsSettings::from_env(env)?,
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            listener: {
                let mut listener = S::listener_settings();
                listener.concurrency = env.parse_or("LISTENER_CONCURRENCY", listener.concurrency)?.max(1);
                listener
            },
        })
    }
}

/// The settings of a service that only checks sessions (`JWT_KEY`, ...).
impl Settings for SessionSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        SessionSettings::from_env(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_comes_from_the_uri_path() {
        assert_eq!(database_from_uri("mongodb://h:1/auth?directConnection=true").unwrap(), "auth");
        assert_eq!(database_from_uri("mongodb+srv://u:p@cluster/tickets").unwrap(), "tickets");
        assert!(database_from_uri("mongodb://h:1/").is_err());
        assert!(database_from_uri("mongodb://h:1").is_err());
        assert!(database_from_uri("postgres://h/db").is_err());
    }

    #[test]
    fn a_database_can_be_put_into_a_uri() {
        assert_eq!(
            with_database("mongodb://h:1/?directConnection=true", "t1"),
            "mongodb://h:1/t1?directConnection=true"
        );
        assert_eq!(with_database("mongodb://u:p@h:1/old", "t2"), "mongodb://u:p@h:1/t2");
        assert_eq!(with_database("mongodb://h:1", "t3"), "mongodb://h:1/t3");
    }

    #[test]
    fn a_missing_jwt_key_is_named() {
        let err = SessionSettings::from_env(&Env::default()).unwrap_err();
        assert_eq!(err, ConfigError::Missing("JWT_KEY"));
        assert!(err.to_string().contains("JWT_KEY"));
    }

    #[test]
    fn a_short_jwt_key_is_refused() {
        let err = SessionSettings::from_env(&Env::from_pairs([("JWT_KEY", "short")])).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { name: "JWT_KEY", .. }));
    }

    #[test]
    fn malformed_numbers_and_booleans_name_their_variable() {
        let env = Env::from_pairs([("PORT", "eighty"), ("COOKIE_SECURE", "maybe")]);
        assert!(matches!(HttpSettings::from_env(&env, 3000), Err(ConfigError::Invalid { name: "PORT", .. })));
        assert!(matches!(env.bool_or("COOKIE_SECURE", false), Err(ConfigError::Invalid { name: "COOKIE_SECURE", .. })));
        assert!(matches!(env.seconds_or("X", 0), Err(ConfigError::Invalid { name: "X", .. })));
    }

    #[test]
    fn defaults_apply_when_unset() {
        let env = Env::from_pairs([("JWT_KEY", "k".repeat(32))]);
        let session = SessionSettings::from_env(&env).unwrap();
        assert_eq!(session.jwt_ttl, Duration::from_secs(900));
        assert!(!session.cookie_secure);
        assert_eq!(HttpSettings::from_env(&env, 3000).unwrap().port, 3000);
        assert!(!format!("{session:?}").contains("kkkk"), "secrets must not show in Debug");
    }
}
