//! Integration tests of the query service with real MongoDB-wire and NATS servers. Events
//! are published as the owning services would; `end_to_end` runs the owners too. Run
//! them with `dev/test`.

mod access;
mod blog;
mod end_to_end;
mod events;
mod feed;
mod helpers;
mod pagination;
mod rebuild;
