//! The posts service's binary: telemetry, config, build, serve until SIGTERM/SIGINT.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::service::main(posts::Config::from_env, posts::build).await
}
