//! Integration tests of the expiration worker with real MongoDB-wire and NATS servers, a
//! fresh database and event namespace per test. Run them with `dev/test`.

mod helpers;
mod schedules;
