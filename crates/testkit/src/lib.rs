//! Starts real services beside the one under test, for end-to-end tests: each on a free
//! port, with the fast test listener policy, stopped by `stop`. Used as a dev-dependency
//! only.

use std::time::Duration;

use common::config::{MongoSettings, SessionSettings};
use common::events::NatsSettings;
use common::shutdown::CancellationToken;
use common::testing::{TestHttp, fast_listener_settings, test_http_settings};
use tokio::task::JoinHandle;

/// A started service: its HTTP client and the task serving it (it ends after `stop`).
#[derive(Debug)]
pub struct Started {
    pub http: TestHttp,
    pub task: JoinHandle<anyhow::Result<()>>,
}

macro_rules! start {
    ($application:expr, $stop:expr) => {{
        let application = $application.await.expect("the service builds");
        let http = TestHttp::new(application.port());
        Started { http, task: tokio::spawn(application.run_until_stopped($stop.clone())) }
    }};
}

pub async fn auth(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    start!(
        auth::Application::build(auth::Config {
            http: test_http_settings(),
            mongo,
            nats: common::testing::as_service(nats, "auth"),
            session: session.clone(),
            refresh: auth::config::RefreshSettings {
                ttl: Duration::from_secs(3600),
                reuse_grace: Duration::from_secs(10),
            },
            signin_attempts_per_minute: 100,
            signup_attempts_per_minute: 100,
            signin_failures_per_account: 100,
            hash_queue: 64,
            trusted_proxies: common::ratelimit::TrustedProxies::default(),
        }),
        stop
    )
}

pub async fn tickets(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    start!(
        tickets::Application::build(tickets::Config {
            http: test_http_settings(),
            mongo,
            nats: common::testing::as_service(nats, "tickets"),
            session: session.clone(),
            listener: fast_listener_settings(),
        }),
        stop
    )
}

pub async fn orders(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    expiration_window: Duration,
    stop: &CancellationToken,
) -> Started {
    start!(
        orders::Application::build(orders::Config {
            http: test_http_settings(),
            mongo,
            nats: common::testing::as_service(nats, "orders"),
            session: session.clone(),
            expiration_window,
            max_active_per_user: 5,
            listener: fast_listener_settings(),
        }),
        stop
    )
}

/// Payments with the built-in test provider.
pub async fn payments(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    start!(
        payments::Application::build(payments::Config {
            http: test_http_settings(),
            mongo,
            nats: common::testing::as_service(nats, "payments"),
            session: session.clone(),
            provider: payments::config::ProviderSettings::Test,
            listener: fast_listener_settings(),
            refunds: payments::refunds::RefundSettings {
                poll_interval: Duration::from_millis(200),
                first_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(500),
            },
        }),
        stop
    )
}

pub async fn query(
    mongo: MongoSettings,
    nats: &NatsSettings,
    session: &SessionSettings,
    stop: &CancellationToken,
) -> Started {
    start!(
        query::Application::build(query::Config {
            http: test_http_settings(),
            mongo,
            nats: common::testing::as_service(nats, "query"),
            session: session.clone(),
            listener: fast_listener_settings(),
            live_feed: true,
        }),
        stop
    )
}

pub async fn expiration(mongo: MongoSettings, nats: &NatsSettings, stop: &CancellationToken) -> Started {
    start!(
        expiration::Application::build(expiration::Config {
            http: test_http_settings(),
            mongo,
            nats: common::testing::as_service(nats, "expiration"),
            listener: fast_listener_settings(),
        }),
        stop
    )
}
