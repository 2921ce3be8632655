//! The auth service's binary: telemetry, config, build, serve until SIGTERM/SIGINT; or,
//! with arguments, an operator command (`auth grant-admin EMAIL`, see [`auth::admin`]).

use auth::admin::Command;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Command::parse(&std::env::args().skip(1).collect::<Vec<_>>()).map_err(anyhow::Error::msg)?;
    let config = common::service::configure(auth::Config::from_env)?;
    if let Some(command) = command {
        let message = auth::admin::run(&config, &command).await?;
        #[allow(clippy::print_stdout, reason = "the operator command's answer")]
        {
            println!("{message}");
        }
        return Ok(());
    }
    auth::build(config).await?.run_until_stopped(common::shutdown::on_signals()).await
}
