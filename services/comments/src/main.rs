//! The comments service's binary: telemetry, config, build, serve until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main(comments::Config::from_env, comments::build).await
}
