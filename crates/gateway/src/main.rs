//! The gateway's binary: telemetry, config, serve until SIGTERM/SIGINT.

use common::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    common::telemetry::init(&env)?;
    let config = gateway::Config::from_env(&env)?;
    gateway::serve(config, common::shutdown::on_signals()).await
}
