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

use std::sync::Arc;

use axum::extract::FromRef;
use common::Sessions;
use common::events::StreamName;
use common::events::listener::ListenerSettings;
use common::events::outbox::Outbox;
use common::openapi::Api;
use common::ratelimit::RateLimiter;
use common::service::{Backbone, Service};
use common::shutdown::CancellationToken;

pub use crate::config::Config;
use crate::config::RefreshSettings;
use crate::password::Passwords;
use crate::sessions::SessionStore;
use crate::users::Users;

/// The name logs and connections use for this service.
pub const SERVICE: &str = "auth";

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// Everything a handler needs, behind one reference count: axum clones the state for every
/// request, and the profile of currentuser showed cloning and dropping each handle
/// (`bench/results/profile-currentuser.txt`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Handles>);

#[derive(Debug)]
pub struct Handles {
    pub users: Users,
    pub store: SessionStore,
    pub sessions: Sessions,
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

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

/// The auth service, bound to its port and ready to serve.
#[derive(Debug)]
pub struct Application {
    service: Service,
}

impl Application {
    /// Connects to MongoDB and NATS (waiting for both), ensures indexes, loads the recent
    /// revocations and binds the port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let mut backbone =
            Backbone::connect(SERVICE, &config.mongo, &config.nats, &[StreamName::Users], ListenerSettings::default())
                .await?;
        let users = Users::new(&backbone.db);
        users.ensure_indexes().await?;
        let store = SessionStore::new(
            &backbone.db,
            &users,
            Outbox::new(&backbone.db),
            config.refresh.ttl,
            config.refresh.reuse_grace,
        );
        store.ensure_indexes().await?;
        let sessions = backbone.sessions(&config.session).await?;
        let state = AppState(Arc::new(Handles {
            users,
            store: store.clone(),
            sessions,
            refresh: config.refresh.clone(),
            passwords: Passwords::new(config.hash_queue).await?,
            signin_limit: RateLimiter::new(config.signin_attempts_per_minute, MINUTE),
            signup_limit: RateLimiter::new(config.signup_attempts_per_minute, MINUTE),
            account_failures: RateLimiter::new(config.signin_failures_per_account, 15 * MINUTE),
            trusted_proxies: config.trusted_proxies.clone(),
        }));
        let prune = [
            state.signin_limit.pruner(MINUTE),
            state.signup_limit.pruner(MINUTE),
            state.account_failures.pruner(MINUTE),
        ];
        let api = Api::new(routes::routes(), state, SERVICE);
        let mut service = backbone.into_service(&config.http, api, Some(store.outbox())).await?;
        for pruner in prune {
            service = service.with_task("rate-limit-pruner", pruner);
        }
        Ok(Self { service })
    }

    /// The port actually bound (useful with `PORT=0`).
    pub fn port(&self) -> u16 {
        self.service.port()
    }

    /// Serves until `shutdown` is cancelled, then finishes in-flight requests.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.service.run_until_stopped(shutdown).await
    }
}
