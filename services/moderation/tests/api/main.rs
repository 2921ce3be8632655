//! Integration tests of the moderation worker: real MongoDB-wire and NATS servers, a fresh
//! database and event namespace per test, comments published as the comments service
//! would. Run them with `dev/test -p moderation`.

mod decisions;
