//! `spawn_app()`: the auth application on port 0 with its own database and JWT key.

use std::time::Duration;

use auth::Config;
use auth::config::RefreshSettings;
use common::Sessions;
use common::config::{HttpSettings, MongoSettings, SessionSettings};
use common::shutdown::CancellationToken;
use common::testing::{fresh_mongo, random_jwt_key};
use serde_json::{Value, json};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: mongodb::Database,
    pub sessions: Sessions,
    /// A direct connection in the app's event namespace.
    pub bus: common::events::EventBus,
    _stop: common::testing::StopOnDrop,
}

pub fn test_config(mongo: MongoSettings) -> Config {
    let own = auth::Settings {
        session: SessionSettings { jwt_key: random_jwt_key(), jwt_ttl: Duration::from_secs(900), cookie_secure: false },
        refresh: RefreshSettings { ttl: Duration::from_secs(3600), reuse_grace: Duration::from_secs(10) },
        signin_attempts_per_minute: 1000,
        signup_attempts_per_minute: 1000,
        signin_failures_per_account: 1000,
        hash_queue: 64,
        trusted_proxies: common::ratelimit::TrustedProxies::default(),
    };
    let mut config = common::testing::service_config("auth", mongo, &common::testing::fresh_nats(), own);
    config.http = HttpSettings {
        port: 0,
        host: "127.0.0.1".into(),
        request_timeout: Duration::from_secs(10),
        body_limit: 16 * 1024,
    };
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config(fresh_mongo("auth"))).await
}

pub async fn spawn_app_with(config: Config) -> TestApp {
    let sessions = config.own.session.sessions();
    let bus = common::events::EventBus::connect(&common::testing::as_harness(&config.nats), "auth-test")
        .await
        .expect("a NATS connection");
    let db = mongodb::Client::with_uri_str(secrecy::ExposeSecret::expose_secret(&fresh_uri(&config)))
        .await
        .expect("a client for the test database")
        .database(&config.mongo.database);
    let application = auth::build(config).await.expect("the application builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let shutdown = CancellationToken::new();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestApp {
        address,
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        db,
        sessions,
        bus,
        _stop: common::testing::StopOnDrop(shutdown),
    }
}

/// The direct URI to the test server (the app may be connected through a proxy).
fn fresh_uri(config: &Config) -> secrecy::SecretString {
    let base = common::testing::mongo_base_uri();
    secrecy::SecretString::from(common::config::with_database(&base, &config.mongo.database))
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    pub async fn signup(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json("/api/users/signup", &json!({"email": email, "password": password})).await
    }

    pub async fn signin(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json("/api/users/signin", &json!({"email": email, "password": password})).await
    }

    /// Signs a new user up and returns the `Cookie` header value of the session.
    pub async fn signed_up_cookie(&self, email: &str) -> String {
        let response = self.signup(email, PASSWORD).await;
        assert_eq!(response.status(), 201);
        cookie_header(&response).expect("a session cookie")
    }

    pub async fn current_user(&self, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url("/api/users/currentuser"));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send().await.expect("request sent")
    }

    /// `POST /api/users/refresh` with a `Cookie` header (e.g. `refresh=...`).
    pub async fn refresh(&self, cookie: Option<&str>) -> reqwest::Response {
        self.post_with_cookie("/api/users/refresh", cookie).await
    }

    /// A POST without a body, with a `Cookie` header.
    pub async fn post_with_cookie(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send().await.expect("request sent")
    }

    /// Signs a user up and returns their id and both cookies.
    pub async fn signed_up(&self, email: &str) -> Browser {
        let response = self.signup(email, PASSWORD).await;
        assert_eq!(response.status(), 201);
        let mut browser = Browser::default();
        browser.take(&response);
        let body: Value = response.json().await.unwrap();
        browser.id = body["id"].as_str().unwrap().to_owned();
        browser
    }

    /// Makes the user an administrator, as `auth grant-admin` does, and signs them in
    /// again so their token says so.
    pub async fn admin(&self, email: &str) -> Browser {
        let mut browser = self.signed_up(email).await;
        self.db
            .collection::<bson::Document>("users")
            .update_one(bson::doc! {"email": email}, bson::doc! {"$set": {"admin": true}})
            .await
            .unwrap();
        let response = self.signin(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        browser.take(&response);
        browser
    }

    pub async fn user_count(&self) -> u64 {
        self.db.collection::<bson::Document>("users").count_documents(bson::doc! {}).await.unwrap()
    }
}

/// The raw `Set-Cookie` header for the session cookie, if any.
pub fn set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("session="))
        .map(str::to_owned)
}

/// The `Cookie` header a browser would send back (`session=<value>`).
pub fn cookie_header(response: &reqwest::Response) -> Option<String> {
    set_cookie(response).map(|c| c.split(';').next().unwrap_or_default().to_owned()).filter(|c| c != "session=")
}

/// The envelope's entries as (message, field) pairs.
pub async fn errors(response: reqwest::Response) -> Vec<(String, Option<String>)> {
    let body: Value = response.json().await.expect("an error body in JSON");
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("not an error envelope: {body}"))
        .iter()
        .map(|e| (e["message"].as_str().unwrap().to_owned(), e["field"].as_str().map(str::to_owned)))
        .collect()
}

/// The named cookie of a response as a browser sends it back (`name=value`), if set to a
/// non-empty value.
pub fn cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .find(|pair| pair.len() > name.len() + 1)
}

/// The raw `Set-Cookie` header of the named cookie.
pub fn raw_set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// A user's cookies, as a browser keeps them.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    pub id: String,
    pub session: Option<String>,
    pub refresh: Option<String>,
}

impl Browser {
    /// Keeps the cookies a response sets (an emptied one is dropped).
    pub fn take(&mut self, response: &reqwest::Response) {
        if raw_set_cookie(response, "session").is_some() {
            self.session = cookie(response, "session");
        }
        if raw_set_cookie(response, "refresh").is_some() {
            self.refresh = cookie(response, "refresh");
        }
    }

    /// The `Cookie` header with every cookie held.
    pub fn header(&self) -> String {
        [self.session.clone(), self.refresh.clone()].into_iter().flatten().collect::<Vec<_>>().join("; ")
    }

    pub fn session(&self) -> &str {
        self.session.as_deref().expect("a session cookie")
    }

    pub fn refresh(&self) -> &str {
        self.refresh.as_deref().expect("a refresh cookie")
    }
}
