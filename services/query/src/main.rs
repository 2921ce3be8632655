//! The query service's binary.
//!
//! `query` serves until SIGTERM/SIGINT; `query rebuild` drops the read model and resets
//! the consumers, so every running replica rebuilds it from the streams, then shows the
//! replay's progress until it has caught up (a bar on a terminal, a line every few seconds
//! otherwise; `--no-wait` returns at once).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = common::service::configure(query::Config::from_env)?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => query::build(config).await?.run_until_stopped(common::shutdown::on_signals()).await,
        Some("rebuild") => {
            query::rebuild(&config).await?;
            tracing::info!("read model dropped; the query service rebuilds it from the streams");
            if args.iter().any(|a| a == "--no-wait") {
                return Ok(());
            }
            let progress = progress::Progress::new("query rebuild", "events", 0);
            progress.note("waiting for a query replica to start the replay");
            query::follow_replay(&config, |applied, total| {
                progress.set_total(total.max(1));
                progress.set(applied);
                progress.note(format!("{} left", total - applied));
            })
            .await?;
            progress.finish("caught up: the read model is whole");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}: use `query`, `query rebuild [--no-wait]`"),
    }
}
