//! The orders service's binary: telemetry, config, build, serve until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main(orders::Config::from_env, orders::build).await
}
