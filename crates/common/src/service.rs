//! A running service: the HTTP server plus its background tasks (outbox relay, listeners),
//! started together and stopped together by one cancellation token.
//!
//! On shutdown the server stops accepting, in-flight requests finish, every task is
//! cancelled and awaited (listeners finish the messages they hold), and the NATS
//! connection is drained. A task that ends on its own before shutdown is a bug or a fatal
//! condition: it is logged and stops the whole service, so the orchestrator restarts it
//! instead of leaving a half-working process.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::Router;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ConfigError, Env, HttpSettings};
use crate::events::EventBus;
use crate::events::listener::{ListenerContext, Listeners};

type Task = Box<dyn FnOnce(CancellationToken) -> BoxFuture<'static, ()> + Send>;

/// A service bound to its port, with the tasks it runs beside the HTTP server.
pub struct Service {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    tasks: Vec<(&'static str, Task)>,
    durables: Vec<(crate::events::Subject, String)>,
    bus: Option<EventBus>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("port", &self.port())
            .field("tasks", &self.tasks.iter().map(|(n, _)| *n).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Binds the configured host and port (port 0 picks a free one).
    pub async fn bind(name: &'static str, settings: &HttpSettings, router: Router) -> std::io::Result<Self> {
        let listener = crate::http::bind(settings).await?;
        Ok(Self { name, listener, router, tasks: Vec::new(), durables: Vec::new(), bus: None })
    }

    /// Adds a background task; it receives the token that tells it to stop.
    pub fn with_task<F, Fut>(mut self, name: &'static str, task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push((name, Box::new(move |token| Box::pin(task(token)))));
        self
    }

    /// Adds the service's listeners (see [`crate::events::listener`]).
    pub fn with_listeners(mut self, listeners: Listeners) -> Self {
        self.durables.extend(listeners.durables());
        self.tasks.extend(listeners.into_tasks());
        self
    }

    /// The durable consumers of the service's listeners, with each one's subject.
    pub fn durables(&self) -> &[(crate::events::Subject, String)] {
        &self.durables
    }

    /// The NATS connection to drain at shutdown.
    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or_default()
    }

    /// Runs until `shutdown` is cancelled (or a task dies), then stops everything in order.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let name = self.name;
        let tracker = TaskTracker::new();
        let failed = CancellationToken::new();
        for (task_name, task) in self.tasks {
            let (token, shutdown, failed) = (shutdown.child_token(), shutdown.clone(), failed.clone());
            tracker.spawn(async move {
                // A panic is a task ending too: caught here, or it would end only this
                // spawned future and leave the service serving (and ready) without it.
                let panicked = AssertUnwindSafe(task(token)).catch_unwind().await.is_err();
                if panicked || !shutdown.is_cancelled() {
                    tracing::error!(
                        service = name,
                        task = task_name,
                        panicked,
                        "background task stopped unexpectedly; stopping the service"
                    );
                    failed.cancel();
                    shutdown.cancel();
                }
            });
        }
        tracker.close();
        tracing::info!(service = name, port = self.listener.local_addr()?.port(), "listening");
        let served = crate::http::serve(self.listener, self.router, shutdown.clone()).await;
        shutdown.cancel();
        tracker.wait().await;
        if let Some(bus) = self.bus
            && let Err(err) = bus.client().drain().await
        {
            tracing::warn!(error = %err, "draining the NATS connection failed");
        }
        served?;
        if failed.is_cancelled() {
            anyhow::bail!("{name}: a background task stopped unexpectedly");
        }
        tracing::info!(service = name, "stopped");
        Ok(())
    }
}

/// The binary of a service: logs and metrics set up, the configuration read (a bad
/// variable is logged by name and ends the process), the service built, then served
/// until SIGTERM or SIGINT.
pub async fn main<C, F, Fut>(from_env: fn(&Env) -> Result<C, ConfigError>, build: F) -> anyhow::Result<()>
where
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<Service>>,
{
    let config = configure(from_env)?;
    build(config).await?.run_until_stopped(crate::shutdown::on_signals()).await
}

/// The first half of [`main`], for binaries that also take operator commands: logs and
/// metrics set up, then the configuration read from the process environment.
pub fn configure<C>(from_env: fn(&Env) -> Result<C, ConfigError>) -> anyhow::Result<C> {
    let env = Env::from_process();
    crate::telemetry::init(&env)?;
    Ok(from_env(&env).inspect_err(|err| tracing::error!(error = %err, "invalid configuration"))?)
}

/// A service's handler state: its own handles `T` and the session verifier its
/// extractors use, behind one reference count (axum clones the state for every request;
/// the profile of currentuser showed cloning and dropping each handle:
/// `bench/results/profile-currentuser.txt`). Handlers reach `T`'s fields through it.
pub struct AppState<T>(Arc<(T, crate::Sessions)>);

impl<T> AppState<T> {
    pub fn new(handles: T, sessions: crate::Sessions) -> Self {
        Self(Arc::new((handles, sessions)))
    }

    pub fn sessions(&self) -> &crate::Sessions {
        &self.0.1
    }
}

impl<T> Clone for AppState<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> std::ops::Deref for AppState<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0.0
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for AppState<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AppState").field(&self.0.0).finish_non_exhaustive()
    }
}

impl<T> axum::extract::FromRef<AppState<T>> for crate::Sessions {
    fn from_ref(state: &AppState<T>) -> Self {
        state.sessions().clone()
    }
}

/// What every event-driven service connects to at start-up, and the shared steps that
/// turn its API into a running [`Service`]: MongoDB and NATS (waited for), its streams
/// declared, the listener context (with its metrics registered), then the platform
/// stack, readiness on both dependencies, and the outbox relay.
#[derive(Debug)]
pub struct Backbone {
    pub name: &'static str,
    pub db: mongodb::Database,
    pub bus: EventBus,
    metrics: crate::telemetry::MetricsBuilder,
    listeners: ListenerContext,
    startup_timeout: std::time::Duration,
    revocation_feed: Option<crate::events::revocation_feed::RevocationFeed>,
    pruner: crate::retention::Pruner,
    streams: Vec<crate::events::StreamName>,
}

impl Backbone {
    /// Connects (waiting for both servers) and declares the streams the service owns
    /// ([`crate::events::StreamName::owner`]) before it can report ready; the others are
    /// their publishers' (listeners wait for them), DEADLETTER its listeners'.
    pub async fn connect<S>(name: &'static str, config: &crate::config::ServiceConfig<S>) -> anyhow::Result<Self> {
        let streams: Vec<_> =
            crate::events::StreamName::ALL.into_iter().filter(|stream| stream.owner() == Some(name)).collect();
        let streams = streams.as_slice();
        let (mongo, nats) = (&config.mongo, &config.nats);
        let db = crate::mongo::connect(mongo, name).await?;
        let bus = EventBus::connect(nats, name).await?;
        bus.declare_streams(name, streams).await?;
        let mut metrics = crate::telemetry::Metrics::builder();
        metrics.registry().register(
            "nats_permission_denied",
            "Operations the NATS server refused this service for lack of permission (a deployment error)",
            bus.permission_denied().clone(),
        );
        let listeners = ListenerContext {
            bus: bus.clone(),
            service: name,
            settings: config.listener.clone(),
            metrics: crate::events::listener::ListenerMetrics::register(metrics.registry()),
        };
        let startup_timeout = mongo.startup_timeout.max(nats.startup_timeout);
        let pruner = crate::retention::Pruner::new(mongo.retention.clone(), metrics.registry());
        crate::mongo::CommandMetrics::global().register(metrics.registry());
        Ok(Self {
            name,
            db,
            bus,
            metrics,
            listeners,
            startup_timeout,
            revocation_feed: None,
            pruner,
            streams: streams.to_vec(),
        })
    }

    /// Prunes `collection`'s documents whose date `field` is older than the retention
    /// period (see [`crate::retention`]). The outbox's sent records are pruned without
    /// asking.
    pub fn prune(&mut self, collection: &str, field: &'static str) {
        self.pruner.rule(self.db.collection(collection), field);
    }

    /// The token verifier for the service's extractors, refusing the tokens of users whose
    /// sessions were revoked. Loads the last token lifetime of `user.>` before returning
    /// (so before the service reports ready), then keeps following it beside the server.
    pub async fn sessions(&mut self, settings: &crate::config::SessionSettings) -> anyhow::Result<crate::Sessions> {
        use crate::events::revocation_feed::{FeedMetrics, RevocationFeed};
        let sessions = settings.sessions();
        let metrics = FeedMetrics::register(self.metrics.registry());
        let feed = RevocationFeed::load(
            &self.bus,
            sessions.revocations().clone(),
            settings.jwt_ttl,
            metrics,
            self.startup_timeout,
        )
        .await?;
        self.revocation_feed = Some(feed);
        Ok(sessions)
    }

    /// The metrics registry, for the service's own families (registered before it runs).
    pub fn metrics(&mut self) -> &mut prometheus_client::registry::Registry {
        self.metrics.registry()
    }

    /// The service's listener set, empty: add each with [`Listeners::listen`].
    pub fn listeners(&self) -> Listeners {
        Listeners::new(self.listeners.clone())
    }

    /// Wraps `api` in the platform stack (readiness on MongoDB and NATS), binds the port,
    /// and runs the relay of `outbox` beside it when the service publishes.
    pub async fn into_service(
        mut self,
        http: &HttpSettings,
        api: impl Into<crate::openapi::Api>,
        outbox: Option<&crate::events::outbox::Outbox>,
    ) -> anyhow::Result<Service> {
        let mut dependencies = vec![
            crate::http::Dependency::Mongo(self.db.clone()),
            crate::http::Dependency::Nats(self.bus.client().clone()),
        ];
        if let Some(feed) = &self.revocation_feed {
            dependencies.push(crate::http::Dependency::Revocations(feed.health()));
        }
        let fill = crate::events::StreamFill::register(self.metrics.registry());
        let outbox_metrics = outbox.map(|_| crate::events::outbox::OutboxMetrics::register(self.metrics.registry()));
        let platform = crate::http::Platform {
            service: self.name,
            settings: http.clone(),
            metrics: self.metrics.build(),
            dependencies,
            errors: crate::http::ErrorStyle::Envelope,
        };
        let router = crate::http::finish_router(api, &platform);
        let mut service = Service::bind(self.name, http, router).await?.with_bus(self.bus.clone());
        if let Some(feed) = self.revocation_feed {
            service = service.with_task("revocation-feed", move |token| feed.follow(token));
        }
        let (bus, streams) = (self.bus.clone(), self.streams.clone());
        service = service.with_task("stream-fill", move |token| fill.watch(bus, streams, token));
        let mut pruner = self.pruner;
        if let Some(outbox) = outbox {
            let backlog = outbox_metrics.expect("registered with the outbox");
            let watched = outbox.clone();
            service = service.with_task("outbox-backlog", move |token| backlog.watch(watched, token));
            pruner.rule(self.db.collection(crate::events::outbox::OUTBOX_COLLECTION), "sentAt");
            let relay = outbox.relay(self.bus);
            service = service.with_task("outbox-relay", move |token| relay.run(token));
        }
        if !pruner.is_empty() {
            service = service.with_task("pruner", move |token| pruner.run(token));
        }
        Ok(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HttpSettings {
        HttpSettings {
            port: 0,
            host: "127.0.0.1".into(),
            request_timeout: std::time::Duration::from_secs(5),
            body_limit: 1024,
        }
    }

    async fn service_with(task: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let service = Service::bind("test", &settings(), Router::new()).await.unwrap().with_task("doomed", |_| task);
        tokio::time::timeout(std::time::Duration::from_secs(5), service.run_until_stopped(CancellationToken::new()))
            .await
            .expect("the service stops by itself")
    }

    #[tokio::test]
    async fn a_background_task_that_panics_stops_the_service_with_an_error() {
        let stopped = service_with(async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            panic!("a bug in a listener");
        })
        .await;

        let err = stopped.expect_err("a panicked task fails the service");
        assert!(err.to_string().contains("background task stopped unexpectedly"), "{err}");
    }

    #[tokio::test]
    async fn a_background_task_that_returns_early_stops_the_service_with_an_error() {
        let stopped = service_with(async {}).await;

        assert!(stopped.is_err());
    }

    #[tokio::test]
    async fn a_shutdown_stops_the_service_cleanly() {
        let shutdown = CancellationToken::new();
        let service = Service::bind("test", &settings(), Router::new())
            .await
            .unwrap()
            .with_task("steady", |token: CancellationToken| async move { token.cancelled().await });
        let running = tokio::spawn(service.run_until_stopped(shutdown.clone()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;

        shutdown.cancel();

        running.await.unwrap().expect("a requested stop is not a failure");
    }
}
