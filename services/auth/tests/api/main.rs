//! Integration tests of the auth service: the real application on a free port, a real
//! MongoDB-wire server, a fresh database per test. Run them with `dev/test`.

mod abuse;
mod current_user;
mod helpers;
mod hostile_input;
mod operations;
mod refresh;
mod revocation;
mod signin;
mod signout;
mod signup;
