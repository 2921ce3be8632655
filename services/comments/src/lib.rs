//! The comments service: comments on blog posts, owned here.
//!
//! `POST /api/posts/{id}/comments` and `GET /api/posts/{id}/comments`. Which posts exist
//! it learns from `post.created` (its own copy, `posts`), so an unknown post is a 404
//! without asking the posts service. A comment starts `pending` at version 0 and is
//! written with its `comment.created` in one transaction; `comment.moderated` sets its
//! status once (version 0 -> 1) and emits `comment.updated`. Both events go through the
//! outbox to the `COMMENTS` stream.
//!
//! Run it with `MONGO_URI=… NATS_URL=… JWT_KEY=… cargo run -p comments`, or the whole
//! platform with `dev/up` (see the README).

pub mod listeners;
pub mod routes;
pub mod store;

use common::config::{ServiceConfig, SessionSettings};
use common::events::outbox::Outbox;
use common::openapi::Api;
use common::service::{Backbone, Service};

use crate::listeners::{CommentModeratedHandler, PostCreatedHandler};
use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "comments";

/// The platform's settings plus the sessions it checks (`JWT_KEY`, ...).
pub type Config = ServiceConfig<SessionSettings>;

/// What the handlers use, besides the session verifier.
#[derive(Debug)]
pub struct Handles {
    pub store: Store,
}

pub type AppState = common::AppState<Handles>;

/// Connects to MongoDB and NATS (waiting for both), declares the stream and indexes, and
/// binds the port: the service, with its relay and listeners ready to start.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let store = Store::new(&backbone.db, Outbox::new(&backbone.db));
    store.ensure_indexes().await?;
    let listeners = backbone
        .listeners()
        .listen(PostCreatedHandler { store: store.clone() })
        .listen(CommentModeratedHandler { store: store.clone() });
    let state = AppState::new(Handles { store: store.clone() }, backbone.sessions(&config.own).await?);
    let api = Api::new(routes::routes(), state, SERVICE);
    Ok(backbone.into_service(&config.http, api, Some(store.outbox())).await?.with_listeners(listeners))
}
