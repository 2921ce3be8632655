//! Test support (feature `test-support`): each test gets its own database on the shared
//! test server, and its own JWT key.
//!
//! The server is the one the test command started (`dev/test`): it exports `MONGO_URI`
//! (any database path; the test's own name replaces it).

use secrecy::SecretString;

use crate::config::{MongoSettings, with_database};

/// A name unique to this test: `prefix_` and 16 hex digits.
pub fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..16])
}

/// The base URI of the test MongoDB-wire server.
pub fn mongo_base_uri() -> String {
    std::env::var("MONGO_URI").unwrap_or_else(|_| {
        panic!("MONGO_URI is not set: run the tests with `dev/test`, which starts the test servers")
    })
}

/// Settings for a fresh, uniquely named database on the test server.
pub fn fresh_mongo(prefix: &str) -> MongoSettings {
    let database = unique_name(prefix);
    let uri = with_database(&mongo_base_uri(), &database);
    MongoSettings { uri: SecretString::from(uri), database, startup_timeout: std::time::Duration::from_secs(20) }
}

/// A random 64-character JWT key, different for every test.
pub fn random_jwt_key() -> SecretString {
    let key = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    SecretString::from(key)
}

/// Hosts and port of a MongoDB URI (`mongodb://[user@]host:port/...`).
pub fn mongo_authority(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or_default().to_owned()
}

/// Settings for a fresh database reached through `proxy` instead of directly.
pub fn fresh_mongo_via(proxy: &TcpProxy, prefix: &str) -> MongoSettings {
    let base = mongo_base_uri();
    let authority = mongo_authority(&base);
    let mut settings = fresh_mongo(prefix);
    let uri = secrecy::ExposeSecret::expose_secret(&settings.uri).replacen(&authority, &proxy.addr().to_string(), 1);
    settings.uri = SecretString::from(uri);
    settings
}

/// A TCP forwarder between an application and a server, so a test can make the server
/// unreachable for that application alone (`cut`) and bring it back (`restore`), without
/// touching the server the other tests share.
#[derive(Debug)]
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    /// Starts forwarding a local port to `target` (`host:port`).
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (up, _) = tokio::sync::watch::channel(true);
        let accept_up = up.clone();
        let target = target.to_owned();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = accept_up.subscribe();
                if !*watch.borrow() {
                    continue; // cut: refuse by closing at once
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Ok(Self { addr, up })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}
