//! MongoDB: connecting with retries at start-up, pinging, classifying driver errors, and
//! counting what the process asks of the server ([`CommandMetrics`]).

use std::time::Duration;

use bson::doc;
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::options::ClientOptions;
use mongodb::{Client, ClientSession, Database};
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
    if !settings.retry_writes {
        options.retry_writes = Some(false);
    }
    if settings.command_metrics {
        options.command_event_handler = Some(CommandMetrics::global().handler());
    }
    let client = Client::with_options(options)?;
    let db = client.database(&settings.database);

    crate::retry::until_timeout("MongoDB", settings.startup_timeout, || ping(&db))
        .await
        .map_err(|err| anyhow::Error::new(err).context("MongoDB unreachable at start-up"))?;
    Ok(db)
}

/// One round trip to the server.
pub async fn ping(db: &Database) -> mongodb::error::Result<()> {
    db.run_command(doc! { "ping": 1 }).await.map(drop)
}

/// Inserts `document` once: a second delivery of the same event finds it there (a unique
/// index or its `_id` refuses the copy), which is fine. True when this call inserted it.
pub async fn insert_once<T: serde::Serialize + Send + Sync>(
    collection: &mongodb::Collection<T>,
    document: &T,
) -> mongodb::error::Result<bool> {
    match collection.insert_one(document).await {
        Ok(_) => Ok(true),
        Err(err) if is_duplicate_key(&err) => Ok(false),
        Err(err) => Err(err),
    }
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

/// MongoDB's WriteConflict code: two transactions wrote the same document.
const WRITE_CONFLICT: i32 = 112;
/// How many times a transaction is attempted when it keeps meeting transient errors.
const TRANSACTION_ATTEMPTS: u32 = 10;

fn error_code(err: &Error) -> Option<i32> {
    match err.kind.as_ref() {
        ErrorKind::Command(e) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        _ => None,
    }
}

/// True when the whole transaction can be retried (a write conflict, a failover...).
pub fn is_transient_transaction_error(err: &Error) -> bool {
    err.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR) || error_code(err) == Some(WRITE_CONFLICT)
}

/// Runs `body` in a multi-document transaction and commits it, retrying the whole
/// transaction on transient errors (write conflicts between concurrent transactions) and
/// the commit alone when its outcome is unknown. An error from `body` aborts the
/// transaction; a value from `body` is committed, so a body that decides to change
/// nothing simply writes nothing.
///
/// `body` is an async closure (`async move |session| { ... }`): it may run several times
/// and must not have effects outside the session. Give it one clone of the store (`let
/// this = self.clone();`) and it reaches every collection through it.
pub async fn transaction<T, F>(client: &Client, mut body: F) -> mongodb::error::Result<T>
where
    F: AsyncFnMut(&mut ClientSession) -> mongodb::error::Result<T>,
{
    let mut session = client.start_session().await?;
    let mut attempt = 0;
    'transaction: loop {
        attempt += 1;
        session.start_transaction().await?;
        let value = match body(&mut session).await {
            Ok(value) => value,
            Err(err) => {
                drop(session.abort_transaction().await);
                if is_transient_transaction_error(&err) && attempt < TRANSACTION_ATTEMPTS {
                    transaction_backoff(attempt).await;
                    continue 'transaction;
                }
                return Err(err);
            }
        };
        let mut commit_attempt = 0;
        loop {
            commit_attempt += 1;
            match session.commit_transaction().await {
                Ok(()) => return Ok(value),
                Err(err)
                    if err.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
                        && commit_attempt < TRANSACTION_ATTEMPTS => {}
                Err(err) if is_transient_transaction_error(&err) && attempt < TRANSACTION_ATTEMPTS => {
                    transaction_backoff(attempt).await;
                    continue 'transaction;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// A short, jittered pause so that conflicting transactions stop colliding.
async fn transaction_backoff(attempt: u32) {
    CommandMetrics::global().transaction_retries.inc();
    let base = 5u64 << attempt.min(6);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % base.max(1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// The labels of `mongo_commands_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct CommandLabels {
    /// `find`, `insert`, `update`, `findAndModify`, `commitTransaction`...
    pub command: String,
    /// The collection the command names, empty for those naming none (a commit).
    pub collection: String,
}

/// What this process asks of the database, for operators and for profiling a workload:
/// `mongo_commands_total{command, collection}` (every round trip, counted as it starts;
/// only with `MONGO_COMMAND_METRICS=true`, as the driver's monitor costs CPU on every
/// command) and `mongo_transaction_retries_total` (transactions run again after a
/// transient error, mostly write conflicts: contention made visible; always). One per
/// process, because the driver is configured before a service's registry exists;
/// [`crate::service::Backbone`] registers it.
#[derive(Clone, Debug, Default)]
pub struct CommandMetrics {
    pub commands:
        prometheus_client::metrics::family::Family<CommandLabels, prometheus_client::metrics::counter::Counter>,
    pub transaction_retries: prometheus_client::metrics::counter::Counter,
}

impl CommandMetrics {
    pub fn global() -> &'static Self {
        static METRICS: std::sync::OnceLock<CommandMetrics> = std::sync::OnceLock::new();
        METRICS.get_or_init(Self::default)
    }

    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "mongo_commands",
            "Commands sent to MongoDB (round trips), by command and collection",
            self.commands.clone(),
        );
        registry.register(
            "mongo_transaction_retries",
            "Transactions run again after a transient error (a write conflict with a concurrent one)",
            self.transaction_retries.clone(),
        );
    }

    /// The driver's command monitor: counts each command as it starts.
    fn handler(&'static self) -> mongodb::event::EventHandler<mongodb::event::command::CommandEvent> {
        mongodb::event::EventHandler::callback(move |event| {
            if let mongodb::event::command::CommandEvent::Started(started) = event {
                let collection = started.command.get_str(&started.command_name).unwrap_or_default().to_owned();
                self.commands.get_or_create(&CommandLabels { command: started.command_name, collection }).inc();
            }
        })
    }
}
