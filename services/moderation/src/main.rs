//! The moderation worker's binary: telemetry, config, build, run until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main(moderation::Config::from_env, moderation::build).await
}
