//! The auth service's binary: telemetry, config, build, serve until SIGTERM/SIGINT; or,
//! with arguments, an operator command (`auth grant-admin EMAIL`, see [`auth::admin`]).

use auth::admin::Command;
use auth::{Application, Config};
use common::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    common::telemetry::init(&env)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = Command::parse(&args).map_err(anyhow::Error::msg)?;
    let config = Config::from_env(&env).inspect_err(|err| tracing::error!(error = %err, "invalid configuration"))?;
    if let Some(command) = command {
        let message = auth::admin::run(&config, &command).await?;
        #[allow(clippy::print_stdout, reason = "the operator command's answer")]
        {
            println!("{message}");
        }
        return Ok(());
    }
    let application = Application::build(config).await?;
    application.run_until_stopped(common::shutdown::on_signals()).await
}
