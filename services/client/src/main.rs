//! The web client's binary: telemetry, config, build, serve until SIGTERM/SIGINT.

use client::{Application, Config};
use common::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    common::telemetry::init(&env)?;
    let config = Config::from_env(&env).inspect_err(|err| tracing::error!(error = %err, "invalid configuration"))?;
    let application = Application::build(config).await?;
    application.run_until_stopped(common::shutdown::on_signals()).await
}
