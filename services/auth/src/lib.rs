//! The auth service: sign-up, sign-in, sign-out, the current user, refresh tokens,
//! sign-out everywhere, admins and bans.
//!
//! Users live in this service's own MongoDB database (`users`, email unique), with their
//! refresh-token families ([`sessions`]). A session is a short HS256 JWT in the `session`
//! cookie (see [`common::session`]) that other services verify with the shared key and
//! never call this one for; the `refresh` cookie renews it here. Bans and "sign out
//! everywhere" are published on the `USERS` stream through the outbox, and every service
//! (this one included) refuses the user's older tokens as soon as it has the event.
//!
//! Run it with `MONGO_URI=mongodb://127.0.0.1:27017/auth NATS_URL=nats://127.0.0.1:4222
//! JWT_KEY=<32+ bytes> cargo run -p auth`, or the whole platform with `dev/up` (see the
//! README). `auth grant-admin EMAIL` makes a user an administrator ([`admin`]).

pub mod admin;
pub mod config;
pub mod password;
pub mod routes;
pub mod sessions;
pub mod users;

use common::events::outbox::Outbox;
use common::openapi::Api;
use common::ratelimit::RateLimiter;
use common::service::{Backbone, Service};

use crate::config::RefreshSettings;
pub use crate::config::{Config, Settings};
use crate::password::Passwords;
use crate::sessions::SessionStore;
use crate::users::Users;

/// The name logs and connections use for this service.
pub const SERVICE: &str = "auth";

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// What the handlers use, besides the session verifier.
#[derive(Debug)]
pub struct Handles {
    pub users: Users,
    pub store: SessionStore,
    pub refresh: RefreshSettings,
    pub passwords: Passwords,
    /// Sign-in attempts per client.
    pub signin_limit: RateLimiter,
    /// Sign-ups per client.
    pub signup_limit: RateLimiter,
    /// Failed sign-ins per account (email), from any client.
    pub account_failures: RateLimiter,
    pub trusted_proxies: common::ratelimit::TrustedProxies,
}

pub type AppState = common::AppState<Handles>;

/// Connects to MongoDB and NATS (waiting for both), ensures indexes, loads the recent
/// revocations and binds the port.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let own = &config.own;
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let users = Users::new(&backbone.db);
    users.ensure_indexes().await?;
    let store =
        SessionStore::new(&backbone.db, &users, Outbox::new(&backbone.db), own.refresh.ttl, own.refresh.reuse_grace);
    store.ensure_indexes().await?;
    let handles = Handles {
        users,
        store: store.clone(),
        refresh: own.refresh.clone(),
        passwords: Passwords::new(own.hash_queue).await?,
        signin_limit: RateLimiter::new(own.signin_attempts_per_minute, MINUTE),
        signup_limit: RateLimiter::new(own.signup_attempts_per_minute, MINUTE),
        account_failures: RateLimiter::new(own.signin_failures_per_account, 15 * MINUTE),
        trusted_proxies: own.trusted_proxies.clone(),
    };
    let prune = [
        handles.signin_limit.pruner(MINUTE),
        handles.signup_limit.pruner(MINUTE),
        handles.account_failures.pruner(MINUTE),
    ];
    let state = AppState::new(handles, backbone.sessions(&own.session).await?);
    let api = Api::new(routes::routes(), state, SERVICE);
    let mut service = backbone.into_service(&config.http, api, Some(store.outbox())).await?;
    for pruner in prune {
        service = service.with_task("rate-limit-pruner", pruner);
    }
    Ok(service)
}
