//! MongoDB: connecting with retries at start-up, pinging, and classifying driver errors.

use std::time::Duration;

use bson::doc;
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use secrecy::ExposeSecret;

use crate::config::MongoSettings;
use crate::error::ApiError;

/// MongoDB's error code for a unique-index violation.
pub const DUPLICATE_KEY: i32 = 11000;

/// How long a request waits for a reachable server before failing with 503.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to the settings' database and waits, with growing pauses, until the server
/// answers a ping or the settings' start-up timeout has passed.
pub async fn connect(settings: &MongoSettings, app_name: &str) -> anyhow::Result<Database> {
    let mut options = ClientOptions::parse(settings.uri.expose_secret()).await?;
    options.app_name = Some(app_name.to_owned());
    options.server_selection_timeout.get_or_insert(SERVER_SELECTION_TIMEOUT);
    let client = Client::with_options(options)?;
    let db = client.database(&settings.database);

    let deadline = tokio::time::Instant::now() + settings.startup_timeout;
    let mut pause = Duration::from_millis(200);
    loop {
        match ping(&db).await {
            Ok(()) => return Ok(db),
            Err(err) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %err, retry_in = ?pause, "MongoDB not reachable yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(err) => return Err(anyhow::Error::new(err).context("MongoDB unreachable at start-up")),
        }
    }
}

/// One round trip to the server.
pub async fn ping(db: &Database) -> mongodb::error::Result<()> {
    db.run_command(doc! { "ping": 1 }).await.map(drop)
}

/// True when the error is a unique-index violation (code 11000).
pub fn is_duplicate_key(err: &Error) -> bool {
    match err.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(e) => e.write_errors.iter().flatten().any(|w| w.code == DUPLICATE_KEY),
        _ => false,
    }
}

/// True when the error means the server could not be reached, rather than that it refused
/// the operation.
pub fn is_unavailable(err: &Error) -> bool {
    matches!(
        err.kind.as_ref(),
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown
    )
}

impl From<Error> for ApiError {
    /// Outages become 503, everything else 500. Errors that mean a user mistake (a
    /// duplicate key) must be mapped next to the call, before this conversion.
    fn from(err: Error) -> Self {
        if is_unavailable(&err) { ApiError::unavailable(err) } else { ApiError::internal(err) }
    }
}
