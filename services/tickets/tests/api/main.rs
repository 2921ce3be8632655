//! Integration tests of the tickets service: the real application on a free port, real
//! MongoDB-wire and NATS servers, a fresh database and event namespace per test. Run them
//! with `dev/test`.

mod create;
mod helpers;
mod listeners;
mod outbox;
mod permissions;
mod price_text;
mod revocations;
mod show_and_list;
mod update;
