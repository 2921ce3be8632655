//! The query service's binary.
//!
//! `query` serves until SIGTERM/SIGINT; `query rebuild` drops the read model and resets
//! the consumers, so every running replica rebuilds it from the streams.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = common::service::configure(query::Config::from_env)?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => query::build(config).await?.run_until_stopped(common::shutdown::on_signals()).await,
        Some("rebuild") => {
            query::rebuild(&config).await?;
            tracing::info!("read model dropped; the query service rebuilds it from the streams");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}: use `query` or `query rebuild`"),
    }
}
