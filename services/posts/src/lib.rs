//! The posts service: the blog's posts, owned here.
//!
//! `POST /api/posts` and `GET /api/posts/{id}`. A post is written together with its
//! `post.created` in one MongoDB transaction; the outbox relay publishes it to the `POSTS`
//! stream. Posts never change, so there is no other event. The comments service learns
//! which posts exist from `post.created`; the query service joins posts and comments.
//!
//! Run it with `MONGO_URI=… NATS_URL=… JWT_KEY=… cargo run -p posts`, or the whole
//! platform with `dev/up` (see the README).

pub mod routes;
pub mod store;

use common::config::{ServiceConfig, SessionSettings};
use common::events::outbox::Outbox;
use common::openapi::Api;
use common::service::{Backbone, Service};

use crate::store::Store;

/// The name consumers and logs use for this service.
pub const SERVICE: &str = "posts";

/// The platform's settings plus the sessions it checks (`JWT_KEY`, ...).
pub type Config = ServiceConfig<SessionSettings>;

/// What the handlers use, besides the session verifier.
#[derive(Debug)]
pub struct Handles {
    pub store: Store,
}

pub type AppState = common::AppState<Handles>;

/// Connects to MongoDB and NATS (waiting for both), declares the stream and indexes, and
/// binds the port: the service, with its relay ready to start.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let mut backbone = Backbone::connect(SERVICE, &config).await?;
    let store = Store::new(&backbone.db, Outbox::new(&backbone.db));
    store.outbox().ensure_indexes().await?;
    let state = AppState::new(Handles { store: store.clone() }, backbone.sessions(&config.own).await?);
    let api = Api::new(routes::routes(), state, SERVICE);
    backbone.into_service(&config.http, api, Some(store.outbox())).await
}
