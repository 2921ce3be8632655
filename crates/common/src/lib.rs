//! Shared building blocks of the ticketing services.
//!
//! Every service uses this crate, and nothing here names a service:
//!
//! - a service's shape: its configuration ([`config::ServiceConfig`], named variables read
//!   once), its start-up and supervision ([`service`]: the [`service::Backbone`] every
//!   event-driven service connects through, [`service::main`], handler state
//!   [`AppState`]) and graceful shutdown ([`shutdown`]);
//! - HTTP: the middleware stack and operational routes ([`http`]), errors and their
//!   envelope ([`error`]), request extractors ([`extract`]), the OpenAPI description every
//!   service serves ([`openapi`]), rate limits ([`ratelimit`]);
//! - sessions: JWTs and cookies ([`session`]) and the revoked users every service refuses
//!   ([`revocation`]);
//! - storage: MongoDB helpers and transactions ([`mongo`]), pruning of finished
//!   bookkeeping ([`retention`]), prices ([`money`]);
//! - events: subjects, payloads, streams, the outbox, the listener runtime, the
//!   revocation feed and the versioning rules ([`events`]);
//! - logs and metrics ([`telemetry`]), and the one retry policy ([`retry`]).
//!
//! With the `test-support` feature, [`testing`] gives integration tests isolated
//! databases, namespaces and NATS users.

pub mod config;
pub mod error;
pub mod events;
pub mod extract;
pub mod http;
pub mod money;
pub mod mongo;
pub mod openapi;
pub mod ratelimit;
pub mod retention;
pub mod retry;
pub mod revocation;
pub mod service;
pub mod session;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod trace;

pub use error::{ApiError, ErrorEnvelope, ErrorItem};
pub use extract::ValidatedJson;
pub use service::AppState;
pub use session::{AdminUser, Claims, CurrentUser, MaybeUser, Sessions};
