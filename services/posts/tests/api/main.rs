//! Integration tests of the posts service: the real application on a free port, real
//! MongoDB-wire and NATS servers, a fresh database and event namespace per test. Run them
//! with `dev/test -p posts`.

mod posts;
