//! What the gateway's test binaries share: the gateway on a free port with the real
//! Ingress table, and a browser-like HTTP client.

#![allow(dead_code, reason = "each test binary uses its own part")]

use std::collections::HashMap;

use common::shutdown::CancellationToken;
use common::testing::StopOnDrop;
use gateway::{Config, RouteTable};

pub const INGRESS: &str = include_str!("../../../../infra/k8s/base/ingress.yaml");

/// Starts the gateway in front of `backends` (Ingress service name -> `host:port`).
pub async fn start(backends: HashMap<String, String>) -> (String, StopOnDrop) {
    let config =
        Config { port: 0, host: "127.0.0.1".into(), routes: RouteTable::from_manifest(INGRESS).unwrap(), backends };
    start_with(config).await
}

/// Starts the gateway with `config` on a free port (its `port` is ignored).
pub async fn start_with(mut config: Config) -> (String, StopOnDrop) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    config.port = port;
    let stop = CancellationToken::new();
    tokio::spawn(gateway::serve(config, stop.clone()));
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/-/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (base, StopOnDrop(stop))
}

/// The course client's HTTP habits: axios' headers, a cookie jar, nothing else.
pub struct CourseClient {
    base: String,
    client: reqwest::Client,
    cookies: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
    /// Sent with every request (e.g. a `traceparent`).
    headers: Vec<(String, String)>,
}

impl CourseClient {
    /// Another browser holding a copy of this one's cookies as they are now (e.g. a stolen
    /// token, or a tab that keeps the old session).
    pub fn copy(&self) -> Self {
        let copy = Self::new(self.base.clone());
        *copy.cookies.lock().unwrap() = self.cookies.lock().unwrap().clone();
        copy
    }

    pub fn new(base: String) -> Self {
        Self { base, client: reqwest::Client::new(), cookies: std::sync::Mutex::default(), headers: Vec::new() }
    }

    /// This client, sending `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The `Cookie` header this browser sends.
    pub fn cookie_header(&self) -> String {
        self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json, text/plain, */*");
        if let Some(body) = body {
            request = request.header("Content-Type", "application/json;charset=utf-8").body(body.to_owned());
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let cookies: Vec<String> = self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !cookies.is_empty() {
            request = request.header("Cookie", cookies.join("; "));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        let text = response.text().await.unwrap();
        (status, if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text).unwrap() })
    }
}
