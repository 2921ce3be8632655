//! The payments service's binary: telemetry, config, build, serve until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main(payments::Config::from_env, payments::build).await
}
