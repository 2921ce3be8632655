//! Integration tests of the payments service with real MongoDB-wire and NATS servers, and
//! Stripe replaced by a local mock HTTP server (wiremock). Run them with `dev/test`.

mod end_to_end;
mod helpers;
mod listeners;
mod money;
mod pay;
mod stripe;
