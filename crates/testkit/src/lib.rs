//! Starts real services beside the one under test, for end-to-end tests: each on a free
//! port, with the fast test listener policy, stopped by `stop`. Used as a dev-dependency
//! only.

use std::time::Duration;

use common::config::{MongoSettings, SessionSettings};
use common::events::NatsSettings;
use common::shutdown::CancellationToken;
use common::testing::{TestHttp, service_config};
use tokio::task::JoinHandle;

/// A started service: its HTTP client and the task serving it (it ends after `stop`).
#[derive(Debug)]
pub struct Started {
    pub http: TestHttp,
    pub task: JoinHandle<anyhow::Result<()>>,
}

async fn start(
    service: impl Future<Output = anyhow::Result<common::service::Service>>,
    stop: &CancellationToken,
) -> Started {
    let service = service.await.expect("the service builds");
    let http = TestHttp::new(service.port());
    Started { http, task: tokio::spawn(service.run_until_stopped(stop.clone())) }
}

/// Auth with generous limits (tests sign many users up from one address).
pub fn auth_settings(session: &SessionSettings) -> auth::Settings {
    auth::Settings {
        session: session.clone(),
        refresh: auth::config::RefreshSettings { ttl: Duration::from_secs(3600), reuse_grace: Duration::from_secs(10) },
        signin_attempts_per_minute: 100,
        signup_attempts_per_minute: 100,
        signin_failures_per_account: 100,
        hash_queue: 64,
        trusted_proxies: common::ratelimit::TrustedProxies::default(),
    }
}

pub async fn auth(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    start(Box::pin(auth::build(service_config("auth", mongo, nats, auth_settings(session)))), stop).await
}

pub async fn tickets(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    start(Box::pin(tickets::build(service_config("tickets", mongo, nats, session.clone()))), stop).await
}

pub async fn orders(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    expiration_window: Duration,
    stop: &CancellationToken,
) -> Started {
    let own = orders::Settings { session: session.clone(), expiration_window, max_active_per_user: 5 };
    start(Box::pin(orders::build(service_config("orders", mongo, nats, own))), stop).await
}

/// Payments with the built-in test provider and a quick refund task.
pub async fn payments(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    let own = payments::Settings {
        session: session.clone(),
        provider: payments::config::ProviderSettings::Test,
        refunds: payments::refunds::RefundSettings {
            poll_interval: Duration::from_millis(200),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
        },
    };
    start(Box::pin(payments::build(service_config("payments", mongo, nats, own))), stop).await
}

pub async fn query(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    let own = query::Settings { session: session.clone(), live_feed: true };
    start(Box::pin(query::build(service_config("query", mongo, nats, own))), stop).await
}

pub async fn expiration(mongo: MongoSettings, nats: &NatsSettings, stop: &CancellationToken) -> Started {
    start(Box::pin(expiration::build(service_config("expiration", mongo, nats, ()))), stop).await
}

pub async fn posts(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    start(Box::pin(posts::build(service_config("posts", mongo, nats, session.clone()))), stop).await
}

pub async fn comments(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    start(Box::pin(comments::build(service_config("comments", mongo, nats, session.clone()))), stop).await
}

/// Moderation banning the course's example word, `orange`.
pub async fn moderation(mongo: MongoSettings, nats: &NatsSettings, stop: &CancellationToken) -> Started {
    let banned = moderation::BannedWords::parse(moderation::rules::DEFAULT_BANNED).expect("the default list");
    let own = moderation::Settings { banned };
    start(Box::pin(moderation::build(service_config("moderation", mongo, nats, own))), stop).await
}
