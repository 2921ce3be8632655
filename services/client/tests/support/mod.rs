//! What the client's test binaries share: the whole platform (every real service, the
//! gateway routing like the Ingress, and the client behind it) on free ports with a fresh
//! event namespace and fresh databases, and a headless Chromium over WebDriver.

#![allow(dead_code, reason = "each test binary uses its own part")]

use std::collections::HashMap;
use std::time::Duration;

use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, fresh_mongo, fresh_nats, test_http_settings, test_session_settings};

/// A running platform; everything stops when it is dropped.
pub struct Platform {
    /// The gateway: the one address browsers and API calls use.
    pub url: String,
    pub http: reqwest::Client,
    pub session: common::config::SessionSettings,
    pub nats: common::events::NatsSettings,
    pub auth_db: String,
    _stop: StopOnDrop,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts every service with reservations lasting `window`.
pub async fn platform(window: Duration) -> Platform {
    platform_with(window, None).await
}

/// As [`platform`], with a Stripe publishable key for the client (Stripe mode).
pub async fn platform_with(window: Duration, stripe_key: Option<&str>) -> Platform {
    let stop = CancellationToken::new();
    let (nats, session) = (fresh_nats(), test_session_settings());
    let auth_mongo = fresh_mongo("auth");
    let auth_db = auth_mongo.database.clone();
    // Boxed: six services' start-up futures side by side are large.
    let (auth, tickets, orders, payments, query, expiration) = Box::pin(async {
        tokio::join!(
            testkit::auth(auth_mongo, &nats, &session, &stop),
            testkit::tickets(fresh_mongo("tickets"), &nats, &session, &stop),
            testkit::orders(fresh_mongo("orders"), &nats, &session, window, &stop),
            testkit::payments(fresh_mongo("payments"), &nats, &session, &stop),
            testkit::query(fresh_mongo("query"), &nats, &session, &stop),
            testkit::expiration(fresh_mongo("expiration"), &nats, &stop),
        )
    })
    .await;
    drop(expiration); // it keeps running until `stop`, like the others
    let mut backends = HashMap::new();
    for (name, started) in
        [("auth", &auth), ("tickets", &tickets), ("orders", &orders), ("payments", &payments), ("query", &query)]
    {
        backends.insert(name.to_owned(), started.http.base.trim_start_matches("http://").to_owned());
    }
    serve(backends, stripe_key, stop, session, nats, auth_db).await
}

/// The blog's platform: auth, posts, comments, moderation and query, with the client
/// and the gateway in front.
pub async fn blog_platform() -> Platform {
    let stop = CancellationToken::new();
    let (nats, session) = (fresh_nats(), test_session_settings());
    let auth_mongo = fresh_mongo("auth");
    let auth_db = auth_mongo.database.clone();
    let (auth, posts, comments, moderation, query) = Box::pin(async {
        tokio::join!(
            testkit::auth(auth_mongo, &nats, &session, &stop),
            testkit::posts(fresh_mongo("posts"), &nats, &session, &stop),
            testkit::comments(fresh_mongo("comments"), &nats, &session, &stop),
            testkit::moderation(fresh_mongo("moderation"), &nats, &stop),
            testkit::query(fresh_mongo("query"), &nats, &session, &stop),
        )
    })
    .await;
    drop(moderation); // it keeps running until `stop`, like the others
    let mut backends = HashMap::new();
    for (name, started) in [("auth", &auth), ("posts", &posts), ("comments", &comments), ("query", &query)] {
        backends.insert(name.to_owned(), started.http.base.trim_start_matches("http://").to_owned());
    }
    serve(backends, None, stop, session, nats, auth_db).await
}

/// Starts the client and the gateway in front of `backends` (and the client).
async fn serve(
    mut backends: HashMap<String, String>,
    stripe_key: Option<&str>,
    stop: CancellationToken,
    session: common::config::SessionSettings,
    nats: common::events::NatsSettings,
    auth_db: String,
) -> Platform {
    let gateway_port = free_port();
    let url = format!("http://127.0.0.1:{gateway_port}");
    let client = Box::pin(client::build(client::Config {
        http: test_http_settings(),
        api: client::config::ApiSettings { base_url: url.clone(), host: None, timeout: Duration::from_secs(5) },
        stripe_publishable_key: stripe_key.map(str::to_owned),
        cookie_secure: false,
    }))
    .await
    .expect("the client builds");
    let client_address = format!("127.0.0.1:{}", client.port());
    tokio::spawn(client.run_until_stopped(stop.clone()));
    backends.insert("client".to_owned(), client_address);
    let ingress = include_str!("../../../../infra/k8s/base/ingress.yaml");
    let config = gateway::Config {
        port: gateway_port,
        host: "127.0.0.1".into(),
        routes: gateway::RouteTable::from_manifest(ingress).unwrap(),
        backends,
    };
    tokio::spawn(gateway::serve(config, stop.clone()));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for _ in 0..200 {
        if http.get(format!("{url}/-/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Platform { url, http, session, nats, auth_db, _stop: StopOnDrop(stop) }
}

impl Platform {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Signs a user up through the API and returns their `Cookie` header (session and
    /// refresh).
    pub async fn user(&self, email: &str) -> String {
        let response = self
            .http
            .post(self.url("/api/users/signup"))
            .json(&serde_json::json!({"email": email, "password": "supersecret"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        cookies_of(&response)
    }

    /// Lists a ticket through the API as `cookie`'s user; returns its id.
    pub async fn ticket(&self, cookie: &str, title: &str, price: f64) -> String {
        let response = self
            .http
            .post(self.url("/api/tickets"))
            .header("cookie", cookie)
            .json(&serde_json::json!({"title": title, "price": price}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// Waits until the read model shows the ticket with `status`.
    pub async fn wait_for_status(&self, ticket: &str, status: &str) {
        let found = common::testing::eventually(Duration::from_secs(15), || async {
            let response = self.http.get(self.url(&format!("/api/query/tickets/{ticket}"))).send().await.ok()?;
            let body: serde_json::Value = response.json().await.ok()?;
            (body["status"] == status).then_some(())
        })
        .await;
        assert!(found.is_some(), "ticket {ticket} never became {status}");
    }

    /// Waits until orders knows the ticket (it can be reserved).
    pub async fn wait_until_reservable(&self, ticket: &str) {
        self.wait_for_status(ticket, "available").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The `Cookie` header a browser would send back after `response`.
pub fn cookies_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .filter(|pair| pair.split_once('=').is_some_and(|(_, value)| !value.is_empty()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// ChromeDriver, started for one test and stopped with it.
pub struct Driver {
    process: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// How a browser session is set up.
#[derive(Clone, Copy)]
pub struct Browser {
    pub javascript: bool,
    pub width: u32,
    pub height: u32,
}

impl Default for Browser {
    fn default() -> Self {
        Self { javascript: true, width: 1440, height: 1000 }
    }
}

impl Driver {
    /// Starts `chromedriver` (`CHROMEDRIVER`, default from `PATH`). `dev/test` installs
    /// Chromium and ChromeDriver when they are missing; run elsewhere, this fails with the
    /// command that installs them instead of skipping.
    pub async fn start() -> Self {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let process = std::process::Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {binary} ({e}): the browser tests need Chromium and ChromeDriver; \
                     dev/test installs them, or: apt-get install chromium chromium-driver"
                )
            });
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self { process, url }
    }

    /// A new browser session (its own profile, so its own cookies).
    pub async fn browser(&self, options: Browser) -> fantoccini::Client {
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            format!("--window-size={},{}", options.width, options.height),
        ];
        if let Ok(extra) = std::env::var("CHROMIUM_FLAGS") {
            args.extend(extra.split_whitespace().map(str::to_owned));
        }
        let mut chrome = serde_json::json!({ "args": args });
        if let Ok(binary) = std::env::var("CHROMIUM") {
            chrome["binary"] = binary.into();
        }
        if !options.javascript {
            chrome["prefs"] = serde_json::json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert("goog:chromeOptions".into(), chrome);
        // Plain HTTP to the local driver: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        client.set_window_size(options.width, options.height).await.expect("a window size");
        client
    }
}
