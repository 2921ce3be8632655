//! Integration tests of the comments service: the real application on a free port, real
//! MongoDB-wire and NATS servers, a fresh database and event namespace per test. Posts
//! and moderation decisions are published as their services would. Run them with
//! `dev/test -p comments`.

mod comments;
mod helpers;
mod moderation;
