//! The auth service: sign-up, sign-in, sign-out and the current user.
//!
//! Users live in this service's own MongoDB database (`users`, email unique). A session
//! is an HS256 JWT in the `session` cookie (see [`common::session`]); other services
//! verify it with the shared key and never call this one.
//!
//! Run it with `MONGO_URI=mongodb://127.0.0.1:27017/auth JWT_KEY=<32+ bytes> cargo run -p auth`,
//! or the whole platform with `dev/up` (see the README).

pub mod config;
pub mod password;
pub mod routes;
pub mod users;

use std::sync::Arc;

use axum::extract::FromRef;
use common::Sessions;
use common::http::{Dependency, Platform, finish_router};
use common::openapi::Api;
use common::ratelimit::RateLimiter;
use common::service::Service;
use common::shutdown::CancellationToken;
use common::telemetry::Metrics;

pub use crate::config::Config;
use crate::password::Passwords;
use crate::users::Users;

/// Everything a handler needs, behind one reference count: axum clones the state for every
/// request, and the profile of currentuser showed cloning and dropping each handle
/// (`bench/results/profile-currentuser.txt`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Handles>);

#[derive(Debug)]
pub struct Handles {
    pub users: Users,
    pub sessions: Sessions,
    pub passwords: Passwords,
    pub signin_limit: RateLimiter,
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
    /// Connects to MongoDB (waiting for it), ensures indexes and binds the port.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = common::mongo::connect(&config.mongo, "auth").await?;
        let users = Users::new(&db);
        users.ensure_indexes().await?;
        let state = AppState(Arc::new(Handles {
            users,
            sessions: config.session.sessions(),
            passwords: Passwords::new().await?,
            signin_limit: RateLimiter::new(config.signin_attempts_per_minute, std::time::Duration::from_secs(60)),
        }));
        let platform = Platform {
            settings: config.http.clone(),
            metrics: Metrics::builder().build(),
            dependencies: vec![Dependency::Mongo(db)],
        };
        let router = finish_router(Api::new(routes::routes(), state, "auth"), &platform);
        Ok(Self { service: Service::bind("auth", &config.http, router).await? })
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
