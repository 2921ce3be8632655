//! The expiration worker's binary: telemetry, config, build, run until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main(expiration::Config::from_env, expiration::build).await
}
