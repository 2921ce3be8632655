//! Test support (feature `test-support`): each test gets its own database on the shared
//! test server, and its own JWT key.
//!
//! The server is the one the test command started (`dev/test`): it exports `MONGO_URI`
//! (any database path; the test's own name replaces it).

use secrecy::SecretString;

use crate::config::{MongoSettings, with_database};

/// A name unique to this test: `prefix_` and 16 hex digits.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..16])
}

/// The base URI of the test MongoDB-wire server.
pub fn mongo_base_uri() -> String {
    std::env::var("MONGO_URI").unwrap_or_else(|_| {
        panic!("MONGO_URI is not set: run the tests with `dev/test`, which starts the test servers")
    })
}

/// Settings for a fresh, uniquely named database on the test server.
pub fn fresh_mongo(prefix: &str) -> MongoSettings {
    let database = unique_name(prefix);
    let uri = with_database(&mongo_base_uri(), &database);
    MongoSettings {
        uri: SecretString::from(uri),
        database,
        startup_timeout: std::time::Duration::from_secs(20),
        retry_writes: true,
        retention: crate::retention::RetentionSettings::default(),
        // On in tests: the audit test reads the counts.
        command_metrics: true,
    }
}

/// A random 64-character JWT key, different for every test.
pub fn random_jwt_key() -> SecretString {
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    SecretString::from(key)
}

/// Hosts and port of a MongoDB URI (`mongodb://[user@]host:port/...`).
pub fn mongo_authority(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or_default().to_owned()
}

/// Settings for a fresh database reached through `proxy` instead of directly.
pub fn fresh_mongo_via(proxy: &TcpProxy, prefix: &str) -> MongoSettings {
    let base = mongo_base_uri();
    let authority = mongo_authority(&base);
    let mut settings = fresh_mongo(prefix);
    let uri = secrecy::ExposeSecret::expose_secret(&settings.uri).replacen(&authority, &proxy.addr().to_string(), 1);
    settings.uri = SecretString::from(uri);
    settings
}

/// A TCP forwarder between an application and a server, so a test can make the server
/// unreachable for that application alone (`cut`) and bring it back (`restore`), without
/// touching the server the other tests share.
#[derive(Debug)]
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    /// Starts forwarding a local port to `target` (`host:port`).
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, _) = tokio::sync::watch::channel(true);
        let accept_up = up.clone();
        let target = target.to_owned();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = accept_up.subscribe();
                if !*watch.borrow() {
                    continue; // cut: refuse by closing at once
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Self { addr, up })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// A namespace unique to this test, so its streams and consumers are its own.
pub fn fresh_namespace() -> crate::events::Namespace {
    crate::events::Namespace::new(Some(&unique_name("t"))).expect("a generated namespace is valid")
}

/// The URL of the test NATS server (exported by `dev/test`), with the `harness` user's
/// credentials: test helpers and tools may do anything.
pub fn nats_url() -> String {
    std::env::var("NATS_URL")
        .unwrap_or_else(|_| panic!("NATS_URL is not set: run the tests with `dev/test`, which starts the test servers"))
}

/// The same settings, connecting as `service`'s own NATS user (password from
/// `NATS_PASSWORD_<SERVICE>`, which `dev/test` exports with the server it starts), so a
/// service under test has exactly the permissions it has in production
/// (`infra/nats_auth.py`). Without that variable (a server started by hand, without
/// authorization) the settings are returned unchanged.
pub fn as_service(nats: &crate::events::NatsSettings, service: &str) -> crate::events::NatsSettings {
    use secrecy::ExposeSecret;
    let Ok(password) = std::env::var(format!("NATS_PASSWORD_{}", service.to_uppercase())) else {
        return nats.clone();
    };
    let url = nats.url.expose_secret();
    let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    crate::events::NatsSettings { url: format!("{scheme}://{service}:{password}@{host}").into(), ..nats.clone() }
}

/// The same settings as the `harness` user (what `NATS_URL` says), for a test's own
/// connection beside the services it started.
pub fn as_harness(nats: &crate::events::NatsSettings) -> crate::events::NatsSettings {
    crate::events::NatsSettings { url: nats_url().into(), ..nats.clone() }
}

/// The same settings (credentials included) reaching the server through a new proxy the
/// test can cut.
pub async fn nats_behind_proxy(nats: &crate::events::NatsSettings) -> (crate::events::NatsSettings, TcpProxy) {
    use secrecy::ExposeSecret;
    let url = nats.url.expose_secret();
    let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
    let (userinfo, host) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => (format!("{userinfo}@"), host),
        None => (String::new(), rest),
    };
    let proxy = TcpProxy::start(host.trim_end_matches('/')).await.expect("a proxy");
    let url = format!("{scheme}://{userinfo}{}", proxy.addr());
    (crate::events::NatsSettings { url: url.into(), ..nats.clone() }, proxy)
}

/// Settings for the test NATS server under a fresh namespace (as the `harness` user; a
/// service under test connects through [`as_service`]).
pub fn fresh_nats() -> crate::events::NatsSettings {
    crate::events::NatsSettings {
        url: nats_url().into(),
        namespace: fresh_namespace(),
        startup_timeout: std::time::Duration::from_secs(20),
        // Every test declares its own streams on one server, which would reserve each one's
        // size limit: tests run without one (-1, the server's "unlimited").
        limits: crate::events::StreamLimits { history_max_bytes: -1, ..Default::default() },
    }
}

/// A service's configuration for a test: a free port, `mongo`, NATS as `service`'s own
/// user, the fast listener policy, and the service's `own` settings.
pub fn service_config<S>(
    service: &str,
    mongo: crate::config::MongoSettings,
    nats: &crate::events::NatsSettings,
    own: S,
) -> crate::config::ServiceConfig<S> {
    crate::config::ServiceConfig {
        http: test_http_settings(),
        mongo,
        nats: as_service(nats, service),
        listener: fast_listener_settings(),
        own,
    }
}

/// Listener settings that retry quickly and give up after a few attempts, for tests.
pub fn fast_listener_settings() -> crate::events::listener::ListenerSettings {
    crate::events::listener::ListenerSettings {
        max_attempts: 4,
        max_gap_attempts: 4,
        first_retry_delay: std::time::Duration::from_millis(50),
        max_retry_delay: std::time::Duration::from_millis(200),
        ..Default::default()
    }
}

/// A message read back from a stream.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub subject: String,
    pub headers: async_nats::HeaderMap,
    pub payload: bytes::Bytes,
}

impl StoredMessage {
    pub fn msg_id(&self) -> Option<String> {
        self.headers.get(crate::events::MSG_ID_HEADER).map(|v| v.as_str().to_owned())
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.payload).expect("the payload decodes")
    }
}

/// Every message currently stored in `stream` under the (logical) `subject` filter,
/// oldest first. Uses a throwaway consumer, so it never disturbs the services' own.
pub async fn read_stream(
    bus: &crate::events::EventBus,
    stream: crate::events::StreamName,
    subject: &str,
) -> Vec<StoredMessage> {
    use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    use futures::StreamExt;

    let ns = bus.namespace();
    let Ok(stream) = bus.jetstream().get_stream(ns.stream(stream)).await else { return Vec::new() };
    let pending = stream.cached_info().state.messages;
    if pending == 0 {
        return Vec::new();
    }
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: ns.subject(subject),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: std::time::Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("a throwaway consumer");
    let mut out = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(std::time::Duration::from_millis(300))
            .messages()
            .await
            .expect("a fetch");
        let mut got = 0;
        while let Some(Ok(message)) = batch.next().await {
            got += 1;
            out.push(StoredMessage {
                subject: ns.strip(message.subject.as_str()).to_owned(),
                headers: message.headers.clone().unwrap_or_default(),
                payload: message.payload.clone(),
            });
        }
        if got == 0 {
            return out;
        }
    }
}

/// Polls `read_stream` until at least `count` messages are there or `timeout` passes.
pub async fn wait_for_messages(
    bus: &crate::events::EventBus,
    stream: crate::events::StreamName,
    subject: &str,
    count: usize,
    timeout: std::time::Duration,
) -> Vec<StoredMessage> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let messages = read_stream(bus, stream, subject).await;
        if messages.len() >= count || tokio::time::Instant::now() >= deadline {
            return messages;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: std::time::Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Cancels its token when dropped, so a test's application stops with the test.
#[derive(Debug)]
pub struct StopOnDrop(pub tokio_util::sync::CancellationToken);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A fresh 24-hex id, e.g. for a user that exists only as a token.
pub fn object_id_hex() -> String {
    bson::oid::ObjectId::new().to_hex()
}

/// The `Cookie` header value carrying a session token for `user_id`.
pub fn session_cookie(sessions: &crate::Sessions, user_id: &str) -> String {
    let (token, _) = sessions.issue(user_id, &format!("{user_id}@test.com")).expect("a token");
    format!("{}={}", crate::session::SESSION_COOKIE, crate::session::encode_session_cookie(&token))
}

/// An HTTP client for one test application, with the session cookie as an argument.
#[derive(Debug, Clone)]
pub struct TestHttp {
    pub base: String,
    pub client: reqwest::Client,
}

impl TestHttp {
    pub fn new(port: u16) -> Self {
        Self { base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn with_cookie(request: reqwest::RequestBuilder, cookie: Option<&str>) -> reqwest::RequestBuilder {
        match cookie {
            Some(cookie) => request.header("Cookie", cookie),
            None => request,
        }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        Self::with_cookie(self.client.get(self.url(path)), cookie).send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>, body: &serde_json::Value) -> reqwest::Response {
        Self::with_cookie(self.client.post(self.url(path)).json(body), cookie).send().await.expect("request sent")
    }

    pub async fn put(&self, path: &str, cookie: Option<&str>, body: &serde_json::Value) -> reqwest::Response {
        Self::with_cookie(self.client.put(self.url(path)).json(body), cookie).send().await.expect("request sent")
    }

    pub async fn delete(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        Self::with_cookie(self.client.delete(self.url(path)), cookie).send().await.expect("request sent")
    }

    /// The application's `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.get("/metrics", None).await.text().await.expect("metrics text")
    }

    /// `nats_permission_denied_total`: the operations NATS refused the service (with the
    /// users of `infra/nats_auth.py`, which `dev/test` runs, anything but 0 means the
    /// table and the code disagree).
    pub async fn nats_permission_denials(&self) -> u64 {
        let metrics = self.metrics().await;
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("nats_permission_denied_total ")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no nats_permission_denied_total in:\n{metrics}"))
    }

    /// Waits until the listener `consumer` (`<service>-<subject-with-dashes>`) has handled
    /// at least `count` deliveries with `outcome` (`ack`, `retry`, `dead_letter`).
    pub async fn wait_for_outcome(&self, consumer: &str, outcome: &str, count: u64) {
        let outcome_label = format!("outcome=\"{outcome}\"");
        let found = eventually(std::time::Duration::from_secs(15), || async {
            self.metrics()
                .await
                .lines()
                .filter(|l| {
                    l.starts_with("events_handled_total{") && l.contains(consumer) && l.contains(&outcome_label)
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .find(|n| *n >= count)
        })
        .await;
        assert!(found.is_some(), "{consumer} never reached {count} x {outcome}:\n{}", self.metrics().await);
    }
}

/// The envelope's entries as (message, field) pairs; panics if the body is not one.
pub async fn envelope(response: reqwest::Response) -> Vec<(String, Option<String>)> {
    let body: serde_json::Value = response.json().await.expect("an error body in JSON");
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("not an error envelope: {body}"))
        .iter()
        .map(|e| (e["message"].as_str().unwrap_or_default().to_owned(), e["field"].as_str().map(str::to_owned)))
        .collect()
}

/// A client for a test database by name, connected directly to the test server.
pub async fn test_database(name: &str) -> mongodb::Database {
    mongodb::Client::with_uri_str(crate::config::with_database(&mongo_base_uri(), name))
        .await
        .expect("a MongoDB client")
        .database(name)
}

/// Publishes `event` as its owning service would (stream declared, fresh event id) and
/// returns the event id.
pub async fn publish_event<E: crate::events::Event>(bus: &crate::events::EventBus, event: &E) -> String {
    bus.ensure_stream(E::SUBJECT.stream()).await.expect("the publisher's stream");
    let id = crate::events::new_event_id();
    bus.publish(&id, event).await.expect("published");
    id
}

/// Settings for the HTTP server of a test application.
pub fn test_http_settings() -> crate::config::HttpSettings {
    crate::config::HttpSettings {
        port: 0,
        host: "127.0.0.1".into(),
        request_timeout: std::time::Duration::from_secs(10),
        body_limit: 16 * 1024,
    }
}

/// Session settings with a fresh random key.
pub fn test_session_settings() -> crate::config::SessionSettings {
    crate::config::SessionSettings {
        jwt_key: random_jwt_key(),
        jwt_ttl: std::time::Duration::from_secs(900),
        cookie_secure: false,
    }
}
