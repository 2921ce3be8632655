//! Events between services, over NATS JetStream: the single place every service gets its
//! subjects, streams, payloads, publishing, outbox and listener runtime from.
//!
//! - [`Subject`] names every event of the SPEC and the stream it belongs to; each payload
//!   type implements [`Event`] for its subject.
//! - [`EventBus`] connects to NATS, declares streams (idempotently, applying changed
//!   configuration) and publishes with `Nats-Msg-Id` set to the event id, awaiting the
//!   server's acknowledgement.
//! - [`outbox`] makes publishing atomic with the state change (transactional outbox and its
//!   relay); [`listener`] runs durable pull consumers with explicit acks, delayed retries
//!   and a dead-letter stream; [`versioning`] holds the optimistic-concurrency rules.
//!
//! A [`Namespace`] prefixes every stream and subject, so several isolated environments (or
//! tests) can share one NATS server. Production runs with the empty namespace, i.e. the
//! SPEC's names exactly.

pub mod listener;
pub mod outbox;
pub mod revocation_feed;
pub mod versioning;

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, Env};
use crate::money::Price;

/// The header JetStream deduplicates on; it carries the event's own id.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The streams, one per publishing service, plus the dead-letter stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamName {
    Tickets,
    Orders,
    Payments,
    Expiration,
    Users,
    /// The blog: posts, comments, moderation decisions (one publisher each).
    Posts,
    Comments,
    Moderation,
    DeadLetter,
}

impl StreamName {
    pub const ALL: [StreamName; 9] = [
        Self::Tickets,
        Self::Orders,
        Self::Payments,
        Self::Expiration,
        Self::Users,
        Self::Posts,
        Self::Comments,
        Self::Moderation,
        Self::DeadLetter,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tickets => "TICKETS",
            Self::Orders => "ORDERS",
            Self::Payments => "PAYMENTS",
            Self::Expiration => "EXPIRATION",
            Self::Users => "USERS",
            Self::Posts => "POSTS",
            Self::Comments => "COMMENTS",
            Self::Moderation => "MODERATION",
            Self::DeadLetter => "DEADLETTER",
        }
    }

    /// Whether `query rebuild` replays the stream from its start (so nothing may age out).
    pub const fn is_history(self) -> bool {
        matches!(self, Self::Tickets | Self::Orders | Self::Payments | Self::Posts | Self::Comments)
    }

    /// The service that publishes into the stream, and so the only one that creates and
    /// updates it (`None`: the dead-letter stream, which every listener writes to). The
    /// NATS users of `infra/nats_auth.py` grant exactly this.
    pub const fn owner(self) -> Option<&'static str> {
        match self {
            Self::Tickets => Some("tickets"),
            Self::Orders => Some("orders"),
            Self::Payments => Some("payments"),
            Self::Expiration => Some("expiration"),
            Self::Users => Some("auth"),
            Self::Posts => Some("posts"),
            Self::Comments => Some("comments"),
            Self::Moderation => Some("moderation"),
            Self::DeadLetter => None,
        }
    }

    /// The subject filters the stream captures, without namespace (`ticket.>`). The
    /// comment subjects have two publishers, so their two streams list their subjects
    /// exactly: `comment.moderated` is the moderation service's, the others the comments
    /// service's.
    pub const fn subjects(self) -> &'static [&'static str] {
        match self {
            Self::Tickets => &["ticket.>"],
            Self::Orders => &["order.>"],
            Self::Payments => &["payment.>"],
            Self::Expiration => &["expiration.>"],
            Self::Users => &["user.>"],
            Self::Posts => &["post.>"],
            Self::Comments => &["comment.created", "comment.updated"],
            Self::Moderation => &["comment.moderated"],
            Self::DeadLetter => &["deadletter.>"],
        }
    }
}

/// Every event subject of the SPEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    TicketCreated,
    TicketUpdated,
    OrderCreated,
    OrderCancelled,
    OrderCompleted,
    ExpirationComplete,
    PaymentCreated,
    UserBanned,
    UserUnbanned,
    UserSessionsRevoked,
    PostCreated,
    CommentCreated,
    CommentModerated,
    CommentUpdated,
}

impl Subject {
    pub const ALL: [Subject; 14] = [
        Self::TicketCreated,
        Self::TicketUpdated,
        Self::OrderCreated,
        Self::OrderCancelled,
        Self::OrderCompleted,
        Self::ExpirationComplete,
        Self::PaymentCreated,
        Self::UserBanned,
        Self::UserUnbanned,
        Self::UserSessionsRevoked,
        Self::PostCreated,
        Self::CommentCreated,
        Self::CommentModerated,
        Self::CommentUpdated,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TicketCreated => "ticket.created",
            Self::TicketUpdated => "ticket.updated",
            Self::OrderCreated => "order.created",
            Self::OrderCancelled => "order.cancelled",
            Self::OrderCompleted => "order.completed",
            Self::ExpirationComplete => "expiration.complete",
            Self::PaymentCreated => "payment.created",
            Self::UserBanned => "user.banned",
            Self::UserUnbanned => "user.unbanned",
            Self::UserSessionsRevoked => "user.sessions.revoked",
            Self::PostCreated => "post.created",
            Self::CommentCreated => "comment.created",
            Self::CommentModerated => "comment.moderated",
            Self::CommentUpdated => "comment.updated",
        }
    }

    pub const fn stream(self) -> StreamName {
        match self {
            Self::TicketCreated | Self::TicketUpdated => StreamName::Tickets,
            Self::OrderCreated | Self::OrderCancelled | Self::OrderCompleted => StreamName::Orders,
            Self::ExpirationComplete => StreamName::Expiration,
            Self::PaymentCreated => StreamName::Payments,
            Self::UserBanned | Self::UserUnbanned | Self::UserSessionsRevoked => StreamName::Users,
            Self::PostCreated => StreamName::Posts,
            Self::CommentCreated | Self::CommentUpdated => StreamName::Comments,
            Self::CommentModerated => StreamName::Moderation,
        }
    }

    pub fn parse(subject: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == subject)
    }
}

/// A typed event payload bound to its subject.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    const SUBJECT: Subject;
}

/// `ticket.created`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketCreated {
    pub id: String,
    pub version: i64,
    pub title: String,
    pub price: Price,
    pub user_id: String,
}

/// `ticket.updated`; `orderId` is present while the ticket is reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketUpdated {
    pub id: String,
    pub version: i64,
    pub title: String,
    pub price: Price,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

/// The statuses of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum OrderStatus {
    /// Reserved, waiting for payment until it expires.
    #[serde(rename = "created")]
    Created,
    /// Cancelled by the user or expired; the ticket is released.
    #[serde(rename = "cancelled")]
    Cancelled,
    /// Reserved in the SPEC, unused.
    #[serde(rename = "awaiting:payment")]
    AwaitingPayment,
    /// Paid; final.
    #[serde(rename = "complete")]
    Complete,
}

impl OrderStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Cancelled => "cancelled",
            Self::AwaitingPayment => "awaiting:payment",
            Self::Complete => "complete",
        }
    }
}

/// The ticket as `order.created` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTicket {
    pub id: String,
    pub price: Price,
}

/// A reference to a ticket by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRef {
    pub id: String,
}

/// `order.created`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCreated {
    pub id: String,
    pub version: i64,
    pub status: OrderStatus,
    pub user_id: String,
    /// RFC 3339.
    pub expires_at: String,
    pub ticket: OrderTicket,
}

/// `order.cancelled`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub id: String,
    pub version: i64,
    pub ticket: TicketRef,
}

/// `order.completed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCompleted {
    pub id: String,
    pub version: i64,
    pub ticket: TicketRef,
}

/// `expiration.complete`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirationComplete {
    pub order_id: String,
}

/// `payment.created`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCreated {
    pub id: String,
    pub order_id: String,
    pub charge_id: String,
}

/// `user.banned`: the user may no longer sign in, and every token issued up to `at` is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserBanned {
    pub user_id: String,
    /// RFC 3339. Tokens whose `iat` is at or before this second are refused.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `user.unbanned`: the user may sign in again; tokens from before the ban stay refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserUnbanned {
    pub user_id: String,
    /// RFC 3339.
    pub at: String,
}

/// `user.sessions.revoked` (sign out everywhere): every token issued up to `at` is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSessionsRevoked {
    pub user_id: String,
    /// RFC 3339. Tokens whose `iat` is at or before this second are refused.
    pub at: String,
}

/// `post.created`: a blog post (posts never change, so it is the only post event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostCreated {
    pub id: String,
    pub version: i64,
    pub title: String,
    pub user_id: String,
}

/// Where a comment stands with moderation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommentStatus {
    /// Not moderated yet.
    Pending,
    Approved,
    Rejected,
}

impl CommentStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

/// `comment.created`: a new comment, `pending` at version 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentCreated {
    pub id: String,
    pub version: i64,
    pub post_id: String,
    pub content: String,
    pub status: CommentStatus,
    pub user_id: String,
}

/// `comment.moderated`: the moderation service's decision about the comment at `version`
/// (the version it read in `comment.created`); `status` is `approved` or `rejected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentModerated {
    pub id: String,
    pub version: i64,
    pub post_id: String,
    pub status: CommentStatus,
}

/// `comment.updated`: the comment after a change (moderation), at its new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentUpdated {
    pub id: String,
    pub version: i64,
    pub post_id: String,
    pub content: String,
    pub status: CommentStatus,
    pub user_id: String,
}

macro_rules! bind_subjects {
    ($($ty:ty => $subject:ident),* $(,)?) => {
        $(impl Event for $ty { const SUBJECT: Subject = Subject::$subject; })*
    };
}

bind_subjects! {
    TicketCreated => TicketCreated,
    TicketUpdated => TicketUpdated,
    OrderCreated => OrderCreated,
    OrderCancelled => OrderCancelled,
    OrderCompleted => OrderCompleted,
    ExpirationComplete => ExpirationComplete,
    PaymentCreated => PaymentCreated,
    UserBanned => UserBanned,
    UserUnbanned => UserUnbanned,
    UserSessionsRevoked => UserSessionsRevoked,
    PostCreated => PostCreated,
    CommentCreated => CommentCreated,
    CommentModerated => CommentModerated,
    CommentUpdated => CommentUpdated,
}

/// A new event id: a UUIDv7, so ids sort in creation order.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A prefix for every stream and subject; empty in production.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(Option<String>);

impl Namespace {
    /// `name` must be a valid NATS token and stream-name part (letters, digits, `_`, `-`).
    pub fn new(name: Option<&str>) -> Result<Self, String> {
        match name {
            None | Some("") => Ok(Self(None)),
            Some(n) if n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
                Ok(Self(Some(n.to_owned())))
            }
            Some(n) => Err(format!("{n:?} may only contain letters, digits, '_' and '-'")),
        }
    }

    pub fn subject(&self, subject: &str) -> String {
        match &self.0 {
            Some(ns) => format!("{ns}.{subject}"),
            None => subject.to_owned(),
        }
    }

    pub fn stream(&self, stream: StreamName) -> String {
        self.stream_name(stream.as_str())
    }

    /// A stream of a service's own (not one of the event streams), namespaced alike.
    pub fn stream_name(&self, name: &str) -> String {
        match &self.0 {
            Some(ns) => format!("{}_{name}", ns.to_uppercase()),
            None => name.to_owned(),
        }
    }

    /// A consumer or other name unique within the namespace.
    pub fn name(&self, name: &str) -> String {
        match &self.0 {
            Some(ns) => format!("{ns}-{name}"),
            None => name.to_owned(),
        }
    }

    /// The logical subject of a namespaced one (`t1.ticket.created` -> `ticket.created`).
    pub fn strip<'a>(&self, subject: &'a str) -> &'a str {
        match &self.0 {
            Some(ns) => subject.strip_prefix(ns.as_str()).and_then(|s| s.strip_prefix('.')).unwrap_or(subject),
            None => subject,
        }
    }
}

/// Where NATS is and who this service is there: `NATS_URL` (with the service's own user
/// and password in production, `nats://orders:<password>@nats:4222`), the optional
/// `EVENT_NAMESPACE`, and how many copies the cluster keeps of the streams this service
/// owns (`NATS_STREAM_REPLICAS`, default 1; 3 on the production cluster).
#[derive(Clone)]
pub struct NatsSettings {
    /// Kept secret: it carries the password.
    pub url: SecretString,
    pub namespace: Namespace,
    /// How long start-up waits for the server (`STARTUP_TIMEOUT_SECONDS`, default 60).
    pub startup_timeout: Duration,
    pub limits: StreamLimits,
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSettings")
            .field("url", &redact_url(self.url.expose_secret()))
            .field("namespace", &self.namespace)
            .field("startup_timeout", &self.startup_timeout)
            .field("limits", &self.limits)
            .finish()
    }
}

/// A user and its password.
type Credentials = (String, String);

/// The servers of `NATS_URL` (one URL, or several separated by commas: the nodes of a
/// cluster, tried in turn) and the user and password they carry. The client does not read
/// credentials from a URL by itself.
fn parse_nats_url(url: &str) -> anyhow::Result<(Vec<async_nats::ServerAddr>, Option<Credentials>)> {
    let servers = url
        .split(',')
        .map(|part| part.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("NATS_URL {} is not a NATS URL: {e}", redact_url(url)))?;
    let credentials = servers
        .iter()
        .find(|s| s.has_user_pass())
        .map(|s| (s.username().unwrap_or_default().to_owned(), s.password().unwrap_or_default().to_owned()));
    Ok((servers, credentials))
}

/// A URL with its password (if any) replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

/// How big the streams may grow (see [`EventBus::stream_config`]).
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// The history streams (`TICKETS`, `ORDERS`, `PAYMENTS`, `POSTS`, `COMMENTS`), which
    /// `query rebuild` replays from the start: kept whole up to this size, then new events
    /// are refused (the outboxes hold them) rather than old ones dropped
    /// (`STREAM_HISTORY_MAX_BYTES`, default 512 MiB, about two million events each). The
    /// server reserves this much per stream: the five must fit its storage.
    pub history_max_bytes: i64,
    /// The other streams (`EXPIRATION`, `USERS`, `MODERATION`, `DEADLETTER`) keep this long
    /// (`STREAM_MAX_AGE_SECONDS`, default 30 days): nobody replays them from the start.
    pub max_age: Duration,
    /// How many servers of the cluster keep a copy of each stream the service owns
    /// (`NATS_STREAM_REPLICAS`, 1 to 5, default 1).
    pub replicas: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self { history_max_bytes: 512 * 1024 * 1024, max_age: Duration::from_secs(30 * 24 * 3600), replicas: 1 }
    }
}

impl NatsSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let namespace = Namespace::new(env.get("EVENT_NAMESPACE"))
            .map_err(|reason| ConfigError::Invalid { name: "EVENT_NAMESPACE", reason })?;
        let defaults = StreamLimits::default();
        let replicas = env.parse_or("NATS_STREAM_REPLICAS", defaults.replicas)?;
        if !(1..=5).contains(&replicas) {
            return Err(ConfigError::Invalid { name: "NATS_STREAM_REPLICAS", reason: "must be 1 to 5".into() });
        }
        Ok(Self {
            url: SecretString::from(env.required("NATS_URL")?.to_owned()),
            namespace,
            startup_timeout: env.seconds_or("STARTUP_TIMEOUT_SECONDS", 60)?,
            limits: StreamLimits {
                history_max_bytes: env.parse_or("STREAM_HISTORY_MAX_BYTES", defaults.history_max_bytes)?,
                max_age: env.seconds_or("STREAM_MAX_AGE_SECONDS", defaults.max_age.as_secs())?,
                replicas,
            },
        })
    }
}

/// A NATS connection with its JetStream context and namespace. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    namespace: Namespace,
    limits: StreamLimits,
    permission_denied: Counter,
    /// Who connected (the service's NATS user); names its inbox and ephemeral consumers.
    name: String,
}

type Counter = prometheus_client::metrics::counter::Counter;

/// How long a publish waits for the server's acknowledgement.
const PUBLISH_ACK_TIMEOUT: Duration = Duration::from_secs(5);

impl EventBus {
    /// Connects as `name`, retrying with growing pauses until the server answers or the
    /// start-up timeout passes. Once connected the client reconnects on its own, forever.
    ///
    /// Replies (requests, pulled messages) come back on `_INBOX_<name>.>`, the only
    /// subjects a service's NATS user may subscribe to; an operation the server refuses
    /// (`Permissions Violation`) is logged and counted ([`EventBus::permission_denied`]).
    pub async fn connect(settings: &NatsSettings, name: &str) -> anyhow::Result<Self> {
        let permission_denied = Counter::default();
        let (servers, credentials) = parse_nats_url(settings.url.expose_secret())?;
        let connect = || {
            let denied = permission_denied.clone();
            let mut options = async_nats::ConnectOptions::new();
            if let Some((user, password)) = &credentials {
                options = options.user_and_password(user.clone(), password.clone());
            }
            options
                .name(name)
                .custom_inbox_prefix(format!("_INBOX_{name}"))
                .max_reconnects(None)
                .connection_timeout(Duration::from_secs(2))
                .event_callback(move |event| {
                    let denied = denied.clone();
                    async move { on_event(&event, &denied) }
                })
                .connect(servers.clone())
        };
        let client = crate::retry::until_timeout("NATS", settings.startup_timeout, connect)
            .await
            .map_err(|err| anyhow::Error::new(err).context("NATS unreachable at start-up"))?;
        let mut bus = Self::new(client, settings.namespace.clone());
        bus.limits = settings.limits.clone();
        bus.permission_denied = permission_denied;
        bus.name = name.to_owned();
        Ok(bus)
    }

    pub fn new(client: async_nats::Client, namespace: Namespace) -> Self {
        let jetstream = jetstream::ContextBuilder::new().timeout(PUBLISH_ACK_TIMEOUT).build(client.clone());
        Self {
            client,
            jetstream,
            namespace,
            limits: StreamLimits::default(),
            permission_denied: Counter::default(),
            name: "client".to_owned(),
        }
    }

    /// A fresh name for an ephemeral (ordered) consumer: `<service>-<purpose>-<unique>`,
    /// one token, namespaced. Ordered consumers are created under a name because the
    /// server's permissions can only see names in the API subject: the nameless create
    /// request is refused to services (see `infra/nats_auth.py`).
    pub fn ephemeral_name(&self, purpose: &str) -> String {
        self.namespace.name(&format!("{}-{purpose}-{}", self.name, uuid::Uuid::now_v7().simple()))
    }

    pub fn limits(&self) -> &StreamLimits {
        &self.limits
    }

    /// How many operations the server refused for lack of permission since connecting
    /// (`nats_permission_denied_total` once [`crate::service::Backbone`] registers it).
    /// Anything above zero is a deployment error: a service doing what its NATS user
    /// does not allow (see `infra/nats_auth.py`).
    pub fn permission_denied(&self) -> &Counter {
        &self.permission_denied
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The stream's configuration: file storage, a ten-minute deduplication window for
    /// `Nats-Msg-Id`, and its limits: a history stream (which `query rebuild` replays) is
    /// kept whole up to its size limit, and then refuses new events rather than dropping
    /// old ones; the others age out ([`StreamLimits`]).
    pub fn stream_config(&self, stream: StreamName) -> stream::Config {
        let mut config = stream::Config {
            name: self.namespace.stream(stream),
            subjects: stream.subjects().iter().map(|s| self.namespace.subject(s)).collect(),
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(600),
            allow_direct: true,
            num_replicas: self.limits.replicas,
            ..Default::default()
        };
        if stream.is_history() {
            config.max_bytes = self.limits.history_max_bytes;
            if config.max_bytes > 0 {
                config.discard = stream::DiscardPolicy::New;
            }
        } else {
            config.max_age = self.limits.max_age;
        }
        config
    }

    /// Creates the stream, or applies the configuration to an existing one. Only the
    /// stream's owner ([`StreamName::owner`]) may (and the dead-letter stream, any listener).
    pub async fn ensure_stream(&self, stream: StreamName) -> anyhow::Result<()> {
        self.jetstream
            .create_or_update_stream(self.stream_config(stream))
            .await
            .map_err(|e| anyhow::anyhow!("cannot declare stream {}: {e}", self.namespace.stream(stream)))?;
        Ok(())
    }

    /// Creates the stream if it does not exist yet, and leaves an existing one exactly as
    /// it is (its owner decides its configuration).
    pub async fn create_stream_if_missing(&self, stream: StreamName) -> anyhow::Result<()> {
        use jetstream::context::CreateStreamErrorKind;
        match self.jetstream.create_stream(self.stream_config(stream)).await {
            Ok(_) => Ok(()),
            Err(err)
                if matches!(err.kind(), CreateStreamErrorKind::JetStream(ref e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NAME_EXIST) =>
            {
                Ok(())
            }
            Err(err) => Err(anyhow::anyhow!("cannot create stream {}: {err}", self.namespace.stream(stream))),
        }
    }

    /// Declares what `service` needs of `streams` before it starts: its own stream and
    /// the dead-letter stream are created or updated; `USERS`, which every service's
    /// revocation feed reads before it may report ready, is created if missing; a stream
    /// of another publisher is left to it (the listeners on it wait until it exists).
    pub async fn declare_streams(&self, service: &str, streams: &[StreamName]) -> anyhow::Result<()> {
        for &stream in streams {
            match stream.owner() {
                Some(owner) if owner == service => self.ensure_stream(stream).await?,
                None => self.ensure_stream(stream).await?,
                Some(_) if stream == StreamName::Users => self.create_stream_if_missing(stream).await?,
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The stream, or `None` when it does not exist (yet).
    pub async fn existing_stream(&self, stream: StreamName) -> anyhow::Result<Option<jetstream::stream::Stream>> {
        use jetstream::context::GetStreamErrorKind;
        match self.jetstream.get_stream(self.namespace.stream(stream)).await {
            Ok(handle) => Ok(Some(handle)),
            Err(err)
                if matches!(err.kind(), GetStreamErrorKind::JetStream(ref e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                Ok(None)
            }
            Err(err) => Err(anyhow::anyhow!("cannot read stream {}: {err}", self.namespace.stream(stream))),
        }
    }

    /// Publishes a payload on a (logical) subject with the event id as `Nats-Msg-Id`, and
    /// waits for the stream's acknowledgement. Returns whether the server dropped it as a
    /// duplicate.
    pub async fn publish_raw(&self, subject: &str, event_id: &str, payload: Bytes) -> anyhow::Result<bool> {
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID_HEADER, event_id);
        self.publish_with_headers(&self.namespace.subject(subject), headers, payload).await
    }

    /// [`EventBus::publish_raw`] with the trace it belongs to (a `traceparent` header).
    pub async fn publish_traced(
        &self,
        subject: &str,
        event_id: &str,
        traceparent: Option<&str>,
        payload: impl Into<Bytes>,
    ) -> anyhow::Result<bool> {
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID_HEADER, event_id);
        if let Some(traceparent) = traceparent {
            headers.insert(crate::trace::TRACEPARENT, traceparent);
        }
        self.publish_with_headers(&self.namespace.subject(subject), headers, payload.into()).await
    }

    /// Publishes on an exact (already namespaced) subject and awaits the acknowledgement.
    pub async fn publish_with_headers(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: Bytes,
    ) -> anyhow::Result<bool> {
        let ack = self.jetstream.publish_with_headers(subject.to_owned(), headers, payload).await?.await?;
        Ok(ack.duplicate)
    }

    /// Serialises and publishes a typed event directly (without the outbox). Services
    /// publish through the outbox; this is for tools and tests.
    pub async fn publish<E: Event>(&self, event_id: &str, event: &E) -> anyhow::Result<bool> {
        let payload = serde_json::to_vec(event)?;
        self.publish_raw(E::SUBJECT.as_str(), event_id, payload.into()).await
    }
}

/// Logs what the server tells the client beyond messages, and counts refused operations.
fn on_event(event: &async_nats::Event, permission_denied: &Counter) {
    use async_nats::{Event, ServerError};
    match event {
        Event::ServerError(ServerError::Other(message))
            if message.to_ascii_lowercase().contains("permissions violation") =>
        {
            permission_denied.inc();
            tracing::error!(error = %message, "NATS refused an operation: this service's user lacks the permission");
        }
        Event::ServerError(ServerError::AuthorizationViolation) => {
            tracing::error!("NATS refused the credentials in NATS_URL");
        }
        Event::Connected => tracing::info!("NATS connected"),
        Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting"),
        Event::LameDuckMode => tracing::info!("NATS server entering lame duck mode; moving to another node"),
        other => tracing::warn!(event = %other, "NATS"),
    }
}

/// How full the history streams are (`event_stream_fill_ratio{stream}`, bytes over the
/// size limit): an alert fires well before a stream refuses events.
#[derive(Clone, Debug, Default)]
pub struct StreamFill {
    ratio: prometheus_client::metrics::family::Family<
        StreamLabel,
        prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    >,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct StreamLabel {
    stream: &'static str,
}

impl StreamFill {
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let fill = Self::default();
        registry.register(
            "event_stream_fill_ratio",
            "Bytes stored over the size limit, per history stream this service declares",
            fill.ratio.clone(),
        );
        fill
    }

    /// Updates the ratios every 30 s until `shutdown`.
    pub async fn watch(self, bus: EventBus, streams: Vec<StreamName>, shutdown: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            for stream in streams.iter().copied().filter(|s| s.is_history()) {
                let Ok(mut handle) = bus.jetstream.get_stream(bus.namespace.stream(stream)).await else { continue };
                if let Ok(info) = handle.info().await
                    && info.config.max_bytes > 0
                {
                    let ratio = info.state.bytes as f64 / info.config.max_bytes as f64;
                    self.ratio.get_or_create(&StreamLabel { stream: stream.as_str() }).set(ratio);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn history_streams_keep_everything_up_to_their_size_and_the_others_age_out() {
        // A client that never connected is enough to build configurations.
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1")
            .await
            .expect("a lazy client");
        let mut bus = EventBus::new(client, Namespace::default());
        bus.limits = StreamLimits { history_max_bytes: 1_000_000, max_age: Duration::from_secs(3600), replicas: 3 };

        let tickets = bus.stream_config(StreamName::Tickets);
        let users = bus.stream_config(StreamName::Users);

        assert_eq!((tickets.max_bytes, tickets.discard), (1_000_000, stream::DiscardPolicy::New));
        assert_eq!(tickets.max_age, Duration::ZERO, "history never ages out");
        assert_eq!((tickets.num_replicas, users.num_replicas), (3, 3));
        assert_eq!(users.max_age, Duration::from_secs(3600));
        assert!(StreamName::Orders.is_history() && StreamName::Payments.is_history());
        assert!(!StreamName::Expiration.is_history() && !StreamName::DeadLetter.is_history());
    }

    #[test]
    fn the_settings_never_show_the_password() {
        let env = Env::from_pairs([("NATS_URL", "nats://orders:s3cret-pw@nats:4222"), ("NATS_STREAM_REPLICAS", "3")]);
        let settings = NatsSettings::from_env(&env).unwrap();
        let shown = format!("{settings:?}");
        assert!(shown.contains("nats://orders:***@nats:4222") && !shown.contains("s3cret"), "{shown}");
        assert_eq!(settings.limits.replicas, 3);
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact_url("nats://a:b@h:1/x?y=@z"), "nats://a:***@h:1/x?y=@z");
        let bad = Env::from_pairs([("NATS_URL", "nats://n:4222"), ("NATS_STREAM_REPLICAS", "0")]);
        assert!(matches!(NatsSettings::from_env(&bad), Err(ConfigError::Invalid { name: "NATS_STREAM_REPLICAS", .. })));
    }

    #[test]
    fn a_cluster_url_lists_every_node_and_the_credentials_come_from_it() {
        let (servers, credentials) =
            parse_nats_url("nats://query:pw@127.0.0.1:4222,nats://query:pw@127.0.0.1:4223").unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!(credentials, Some(("query".to_owned(), "pw".to_owned())));
        assert_eq!(parse_nats_url("nats://127.0.0.1:4222").unwrap().1, None);
        let err = parse_nats_url("nats://u:secret@[bad").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn each_stream_has_one_owner_the_publisher_of_its_subjects() {
        use std::collections::HashMap;
        let owners: HashMap<_, _> = [
            (Subject::TicketCreated, "tickets"),
            (Subject::OrderCreated, "orders"),
            (Subject::PaymentCreated, "payments"),
            (Subject::ExpirationComplete, "expiration"),
            (Subject::UserBanned, "auth"),
            (Subject::PostCreated, "posts"),
            (Subject::CommentCreated, "comments"),
            (Subject::CommentUpdated, "comments"),
            (Subject::CommentModerated, "moderation"),
        ]
        .into_iter()
        .collect();
        for (subject, owner) in owners {
            assert_eq!(subject.stream().owner(), Some(owner), "{subject:?}");
        }
        assert_eq!(StreamName::DeadLetter.owner(), None);
    }

    #[test]
    fn payloads_use_the_spec_camel_case_names() {
        let event = OrderCreated {
            id: "o1".into(),
            version: 0,
            status: OrderStatus::Created,
            user_id: "u1".into(),
            expires_at: "2026-01-01T00:00:00Z".into(),
            ticket: OrderTicket { id: "t1".into(), price: Price::from_cents(2050).unwrap() },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id":"o1","version":0,"status":"created","userId":"u1",
                "expiresAt":"2026-01-01T00:00:00Z","ticket":{"id":"t1","price":20.5}})
        );
        let updated = TicketUpdated {
            id: "t".into(),
            version: 1,
            title: "x".into(),
            price: Price::from_cents(100).unwrap(),
            user_id: "u".into(),
            order_id: None,
        };
        assert!(serde_json::to_value(&updated).unwrap().get("orderId").is_none());
    }

    #[test]
    fn every_subject_belongs_to_its_publishers_stream() {
        let captures = |filter: &str, subject: &str| match filter.strip_suffix('>') {
            Some(prefix) => subject.starts_with(prefix),
            None => filter == subject,
        };
        for subject in Subject::ALL {
            let captured_by: Vec<_> = StreamName::ALL
                .into_iter()
                .filter(|stream| stream.subjects().iter().any(|filter| captures(filter, subject.as_str())))
                .collect();
            assert_eq!(captured_by, vec![subject.stream()], "{subject:?} is captured by exactly its stream");
            assert_eq!(Subject::parse(subject.as_str()), Some(subject));
        }
    }

    #[test]
    fn a_namespace_prefixes_streams_subjects_and_names() {
        let ns = Namespace::new(Some("t1a")).unwrap();
        assert_eq!(ns.stream(StreamName::Tickets), "T1A_TICKETS");
        assert_eq!(ns.subject("ticket.created"), "t1a.ticket.created");
        assert_eq!(ns.strip("t1a.ticket.created"), "ticket.created");
        assert_eq!(Namespace::default().stream(StreamName::Orders), "ORDERS");
        assert!(Namespace::new(Some("a.b")).is_err());
    }
}
