//! The query service's binary.
//!
//! `query` serves until SIGTERM/SIGINT; `query rebuild` drops the read model and resets
//! the consumers, so every running replica rebuilds it from the streams.

use common::config::Env;
use query::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    common::telemetry::init(&env)?;
    let config = Config::from_env(&env).inspect_err(|err| tracing::error!(error = %err, "invalid configuration"))?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            Application::build(config).await?.run_until_stopped(common::shutdown::on_signals()).await
        }
        Some("rebuild") => {
            query::rebuild(&config).await?;
            tracing::info!("read model dropped; the query service rebuilds it from the streams");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}: use `query` or `query rebuild`"),
    }
}
