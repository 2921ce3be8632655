//! Shared building blocks of the ticketing services.
//!
//! Every service uses this crate, and nothing here names a service: errors and their
//! envelope ([`error`]), request extractors ([`extract`]), sessions and JWTs
//! ([`session`]), typed configuration ([`config`]), logs and metrics ([`telemetry`]), the
//! HTTP middleware stack and operational routes ([`http`]), the OpenAPI description
//! every service serves ([`openapi`]), MongoDB helpers ([`mongo`])
//! and graceful shutdown ([`shutdown`]), prices ([`money`]), and the event plumbing:
//! subjects, payloads, outbox, listener runtime and versioning rules ([`events`]). With the `test-support` feature, [`testing`]
//! gives integration tests isolated databases.

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
pub mod revocation;
pub mod service;
pub mod session;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;

pub use error::{ApiError, ErrorEnvelope, ErrorItem};
pub use extract::ValidatedJson;
pub use session::{AdminUser, Claims, CurrentUser, MaybeUser, Sessions};
