//! The tickets service's binary: telemetry, config, build, serve until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main(tickets::Config::from_env, tickets::build).await
}
