//! The client's configuration, read once from the environment at start-up.

use std::time::Duration;

use common::config::{ConfigError, Env, HttpSettings};

/// Default port when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 3000;

#[derive(Clone, Debug)]
pub struct Config {
    pub http: HttpSettings,
    pub api: ApiSettings,
    /// `STRIPE_PUBLISHABLE_KEY`: with it, the payment form mounts Stripe's card field;
    /// without it, the platform's payments run on the built-in test provider and the form
    /// offers its test cards.
    pub stripe_publishable_key: Option<String>,
    /// `COOKIE_SECURE`: the client's own cookies (CSRF, notices) carry `Secure`.
    pub cookie_secure: bool,
}

/// Where the public API is.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// `API_BASE_URL`, e.g. `http://127.0.0.1:8080` (the local gateway) or the Ingress
    /// controller's in-cluster address.
    pub base_url: String,
    /// `API_HOST`: the `Host` to send, when the base URL is an Ingress controller that routes
    /// by host (`ticketing.dev`).
    pub host: Option<String>,
    /// `API_TIMEOUT_SECONDS` (default 5): longest wait for one API call.
    pub timeout: Duration,
}

impl Config {
    /// Reads `PORT`, `API_BASE_URL`, `API_HOST`, `API_TIMEOUT_SECONDS`,
    /// `STRIPE_PUBLISHABLE_KEY`, `COOKIE_SECURE` (and the optional tuning variables of
    /// [`HttpSettings`]), naming the first bad one.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_url = env.required("API_BASE_URL")?.trim().trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                name: "API_BASE_URL",
                reason: "must be an http:// or https:// URL".into(),
            });
        }
        let stripe_publishable_key = env.get("STRIPE_PUBLISHABLE_KEY").map(str::to_owned);
        if let Some(key) = &stripe_publishable_key
            && !key.starts_with("pk_")
        {
            return Err(ConfigError::Invalid {
                name: "STRIPE_PUBLISHABLE_KEY",
                reason: "must be a publishable key (pk_...), never a secret one".into(),
            });
        }
        Ok(Self {
            http: HttpSettings::from_env(env, DEFAULT_PORT)?,
            api: ApiSettings {
                base_url,
                host: env.get("API_HOST").map(str::to_owned),
                timeout: env.seconds_or("API_TIMEOUT_SECONDS", 5)?,
            },
            stripe_publishable_key,
            cookie_secure: env.bool_or("COOKIE_SECURE", false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_url_is_required_and_checked() {
        assert_eq!(Config::from_env(&Env::default()).unwrap_err(), ConfigError::Missing("API_BASE_URL"));
        let bad = Env::from_pairs([("API_BASE_URL", "localhost:8080")]);
        assert!(matches!(Config::from_env(&bad), Err(ConfigError::Invalid { name: "API_BASE_URL", .. })));
        let good = Config::from_env(&Env::from_pairs([("API_BASE_URL", "http://127.0.0.1:8080/")])).unwrap();
        assert_eq!(good.api.base_url, "http://127.0.0.1:8080");
        assert!(good.stripe_publishable_key.is_none());
    }

    #[test]
    fn a_secret_stripe_key_is_refused_as_the_publishable_one() {
        let env = Env::from_pairs([("API_BASE_URL", "http://a"), ("STRIPE_PUBLISHABLE_KEY", "sk_live_oops")]);
        assert!(matches!(Config::from_env(&env), Err(ConfigError::Invalid { name: "STRIPE_PUBLISHABLE_KEY", .. })));
    }
}
