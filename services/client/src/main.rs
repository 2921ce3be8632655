//! The web client's binary: telemetry, config, build, serve until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main(client::Config::from_env, client::build).await
}
