//! The moderation worker: decides each new comment once, `approved` or `rejected`, and
//! publishes `comment.moderated`.
//!
//! No public API besides `/healthz`, `/readyz` and `/metrics`. On `comment.created` it
//! judges the content against a list of banned words ([`rules`]), records the decision in
//! its own MongoDB database and stages the event in the same transaction ([`decisions`]),
//! so a comment is decided once however often its event is delivered.
//!
//! Run it with `MONGO_URI=… NATS_URL=… cargo run -p moderation`, or the whole platform
//! with `dev/up` (see the README).

pub mod decisions;
pub mod rules;

use common::config::{ConfigError, Env, ServiceConfig};
use common::events::listener::{Delivery, HandleError, Handler};
use common::events::outbox::Outbox;
use common::events::{CommentCreated, CommentStatus};
use common::service::{Backbone, Service};

use crate::decisions::Decisions;
pub use crate::rules::BannedWords;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "moderation";

/// The platform's settings plus the banned words (it serves no user routes, so it needs
/// no `JWT_KEY`).
pub type Config = ServiceConfig<Settings>;

#[derive(Clone, Debug)]
pub struct Settings {
    /// `MODERATION_BANNED_WORDS`: comma-separated, case-insensitive whole words (default
    /// `orange`, the course's example).
    pub banned: BannedWords,
}

impl common::config::Settings for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let raw = env.get("MODERATION_BANNED_WORDS").unwrap_or(rules::DEFAULT_BANNED);
        let banned = BannedWords::parse(raw)
            .map_err(|reason| ConfigError::Invalid { name: "MODERATION_BANNED_WORDS", reason })?;
        Ok(Self { banned })
    }
}

/// `comment.created`: the comment is judged and the decision published, once.
#[derive(Clone, Debug)]
pub struct CommentCreatedHandler {
    pub decisions: Decisions,
    pub banned: BannedWords,
}

impl Handler for CommentCreatedHandler {
    type Event = CommentCreated;

    async fn handle(&self, event: CommentCreated, _: &Delivery) -> Result<(), HandleError> {
        if event.status != CommentStatus::Pending {
            return Ok(()); // nothing to decide
        }
        let status = self.banned.judge(&event.content);
        if self.decisions.decide(&event, status).await? {
            tracing::info!(comment_id = %event.id, status = status.as_str(), "comment moderated");
        }
        Ok(())
    }
}

/// Connects to MongoDB and NATS (waiting for both), declares the stream and indexes: the
/// worker, with its relay and listener ready to start.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let db = backbone.db.clone();
    let decisions = Decisions::new(&db, Outbox::new(&db), backbone.metrics());
    decisions.outbox().ensure_indexes().await?;
    let listeners =
        backbone.listeners().listen(CommentCreatedHandler { decisions: decisions.clone(), banned: config.own.banned });
    Ok(backbone
        .into_service(&config.http, axum::Router::new(), Some(decisions.outbox()))
        .await?
        .with_listeners(listeners))
}
