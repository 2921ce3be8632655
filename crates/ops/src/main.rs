//! `audit`: the consistency audit (see the library docs).
//!
//! usage: `audit MONGO_BASE_URI NATS_URL [EVENT_NAMESPACE]`, where the service databases
//! are `tickets`, `orders`, `payments`, `query`, `posts`, `comments` and `moderation` on
//! the MongoDB base URI, or named by
//! `AUDIT_DB_PREFIX` (`<prefix>tickets`, ...). Prints JSON; exits 1 on any finding.

// The report is JSON on stdout.
#![allow(clippy::print_stdout)]

use common::events::{EventBus, Namespace, NatsSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mongo_base), Some(nats_url)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: audit MONGO_BASE_URI NATS_URL [EVENT_NAMESPACE]");
    };
    let prefix = std::env::var("AUDIT_DB_PREFIX").unwrap_or_default();
    let db = |name: &str| {
        let name = format!("{prefix}{name}");
        let uri = common::config::with_database(mongo_base, &name);
        async move { anyhow::Ok(mongodb::Client::with_uri_str(uri).await?.database(&name)) }
    };
    let dbs = ops::Databases {
        tickets: db("tickets").await?,
        orders: db("orders").await?,
        payments: db("payments").await?,
        query: db("query").await?,
        blog: Some(ops::blog::BlogDatabases {
            posts: db("posts").await?,
            comments: db("comments").await?,
            moderation: db("moderation").await?,
        }),
    };
    let nats = NatsSettings {
        url: nats_url.clone().into(),
        namespace: Namespace::new(args.get(2).map(String::as_str)).map_err(anyhow::Error::msg)?,
        startup_timeout: std::time::Duration::from_secs(10),
        limits: common::events::StreamLimits::default(),
    };
    let bus = EventBus::connect(&nats, "audit").await?;
    let report = ops::audit(&dbs, ops::dead_letter_count(&bus).await?).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !report.findings.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
