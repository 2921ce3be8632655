//! Integration tests of the orders service, with real MongoDB-wire and NATS servers and
//! a fresh database and event namespace per test; `end_to_end` runs tickets, orders and
//! expiration together. Run them with `dev/test`.

mod cancel;
mod create;
mod double_booking;
mod end_to_end;
mod helpers;
mod listeners;
mod show_and_list;
