//! The payments service's configuration, read once from the environment at start-up.

use common::config::{ConfigError, Env, ServiceConfig, SessionSettings};
use secrecy::SecretString;

/// Stripe's API.
pub const STRIPE_API: &str = "https://api.stripe.com";

/// Which payment provider to use (`PAYMENTS_PROVIDER`, required: no silent fallback).
#[derive(Clone, Debug)]
pub enum ProviderSettings {
    /// `stripe`: Stripe at `STRIPE_API_BASE` (default [`STRIPE_API`]) with `STRIPE_KEY`
    /// (required then).
    Stripe { key: SecretString, base_url: String, timeout: std::time::Duration },
    /// `test`: the built-in test provider; charges nothing.
    Test,
}

/// The platform's settings plus the payments service's own.
pub type Config = ServiceConfig<Settings>;

#[derive(Clone, Debug)]
pub struct Settings {
    pub session: SessionSettings,
    pub provider: ProviderSettings,
    /// Timing of the refund task (defaults; tests shorten it).
    pub refunds: crate::refunds::RefundSettings,
}

impl common::config::Settings for Settings {
    /// Reads the session's variables, `PAYMENTS_PROVIDER`, `STRIPE_KEY`,
    /// `STRIPE_API_BASE`, `STRIPE_TIMEOUT_SECONDS`.
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let provider = match env.required("PAYMENTS_PROVIDER")?.trim() {
            "stripe" => ProviderSettings::Stripe {
                key: SecretString::from(env.required("STRIPE_KEY")?.to_owned()),
                base_url: env.get("STRIPE_API_BASE").unwrap_or(STRIPE_API).to_owned(),
                timeout: env.seconds_or("STRIPE_TIMEOUT_SECONDS", 10)?,
            },
            "test" => ProviderSettings::Test,
            other => {
                return Err(ConfigError::Invalid {
                    name: "PAYMENTS_PROVIDER",
                    reason: format!("{other:?} is not stripe or test"),
                });
            }
        };
        Ok(Self {
            session: SessionSettings::from_env(env)?,
            provider,
            refunds: crate::refunds::RefundSettings::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut all = vec![
            ("JWT_KEY".to_owned(), "k".repeat(32)),
            ("MONGO_URI".to_owned(), "mongodb://h/payments".to_owned()),
            ("NATS_URL".to_owned(), "nats://h".to_owned()),
        ];
        all.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Env::from_pairs(all)
    }

    #[test]
    fn the_provider_must_be_chosen_and_stripe_needs_its_key() {
        assert!(matches!(Config::from_env(&env(&[])), Err(ConfigError::Missing("PAYMENTS_PROVIDER"))));
        assert!(matches!(
            Config::from_env(&env(&[("PAYMENTS_PROVIDER", "stripe")])),
            Err(ConfigError::Missing("STRIPE_KEY"))
        ));
        assert!(matches!(
            Config::from_env(&env(&[("PAYMENTS_PROVIDER", "paypal")])),
            Err(ConfigError::Invalid { name: "PAYMENTS_PROVIDER", .. })
        ));
        let test = Config::from_env(&env(&[("PAYMENTS_PROVIDER", "test"), ("STRIPE_KEY", "sk_test_x")])).unwrap();
        assert!(matches!(test.own.provider, ProviderSettings::Test), "a key alone does not pick Stripe");
        let stripe = Config::from_env(&env(&[("PAYMENTS_PROVIDER", "stripe"), ("STRIPE_KEY", "sk_test_x")])).unwrap();
        assert!(matches!(stripe.own.provider, ProviderSettings::Stripe { .. }));
    }
}
