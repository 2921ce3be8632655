//! `spawn_app()`: the tickets application on port 0 with its own database, event
//! namespace and JWT key, plus a direct NATS connection to observe and inject events.

use std::time::Duration;

use common::Sessions;
use common::events::{Event, EventBus, OrderCancelled, OrderCreated, OrderTicket, StreamName, TicketRef};
use common::money::Price;
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, StoredMessage, TcpProxy, fresh_mongo, fresh_nats, object_id_hex, service_config, session_cookie,
    wait_for_messages,
};
use serde_json::{Value, json};
use tickets::Config;

pub const WAIT: Duration = Duration::from_secs(15);

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub http: common::testing::TestHttp,
    pub sessions: Sessions,
    /// A direct connection in the app's namespace.
    pub bus: EventBus,
    pub db: mongodb::Database,
    /// Between the app and NATS, when spawned with `spawn_app_behind_nats_proxy`.
    pub nats_proxy: Option<TcpProxy>,
    _stop: StopOnDrop,
}

pub fn test_config() -> Config {
    service_config("tickets", fresh_mongo("tickets"), &fresh_nats(), common::testing::test_session_settings())
}

pub async fn spawn_app() -> TestApp {
    spawn(test_config(), None).await
}

/// The app reaches NATS through a proxy the test can cut.
pub async fn spawn_app_behind_nats_proxy() -> TestApp {
    spawn_app_behind_nats_proxy_with(test_config()).await
}

/// As [`spawn_app_behind_nats_proxy`], with `config`.
pub async fn spawn_app_behind_nats_proxy_with(mut config: Config) -> TestApp {
    let (nats, proxy) = common::testing::nats_behind_proxy(&config.nats).await;
    config.nats = nats;
    spawn(config, Some(proxy)).await
}

pub async fn spawn(config: Config, nats_proxy: Option<TcpProxy>) -> TestApp {
    let sessions = config.own.sessions();
    let direct = common::testing::as_harness(&config.nats);
    let bus = EventBus::connect(&direct, "tickets-test").await.expect("a NATS connection");
    let db = common::testing::test_database(&config.mongo.database).await;
    let application = tickets::build(config).await.expect("the application builds");
    let http = common::testing::TestHttp::new(application.port());
    let address = http.base.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestApp {
        address,
        client: reqwest::Client::new(),
        http,
        sessions,
        bus,
        db,
        nats_proxy,
        _stop: StopOnDrop(shutdown),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A signed-in user: their id and `Cookie` header.
    pub fn user(&self) -> (String, String) {
        let id = object_id_hex();
        let cookie = session_cookie(&self.sessions, &id);
        (id, cookie)
    }

    pub async fn post_ticket(&self, cookie: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.client.post(self.url("/api/tickets")).json(body);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send().await.expect("request sent")
    }

    pub async fn put_ticket(&self, cookie: Option<&str>, id: &str, body: &Value) -> reqwest::Response {
        let mut request = self.client.put(self.url(&format!("/api/tickets/{id}"))).json(body);
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    /// Creates a ticket as `cookie`'s user and returns its JSON.
    pub async fn create_ticket(&self, cookie: &str, title: &str, price: f64) -> Value {
        let response = self.post_ticket(Some(cookie), &json!({"title": title, "price": price})).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn ticket(&self, id: &str) -> Value {
        let response = self.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Publishes an event as another service would, with a fresh event id.
    pub async fn publish<E: Event>(&self, event: &E) {
        common::testing::publish_event(&self.bus, event).await;
    }

    /// Waits until `count` messages are stored under `subject` in the TICKETS stream.
    pub async fn ticket_events(&self, subject: &str, count: usize) -> Vec<StoredMessage> {
        wait_for_messages(&self.bus, StreamName::Tickets, subject, count, WAIT).await
    }

    /// Waits until the ticket reaches `version` (through the API).
    pub async fn wait_for_version(&self, id: &str, version: i64) -> Value {
        common::testing::eventually(WAIT, || async {
            let ticket = self.ticket(id).await;
            (ticket["version"] == version).then_some(ticket)
        })
        .await
        .unwrap_or_else(|| panic!("ticket {id} never reached version {version}"))
    }

    /// Waits until the consumer for `subject` has handled `count` deliveries with `outcome`.
    pub async fn wait_for_outcome(&self, subject: &str, outcome: &str, count: u64) {
        let consumer = format!("tickets-{}", subject.replace('.', "-"));
        self.http.wait_for_outcome(&consumer, outcome, count).await;
    }

    pub async fn metrics(&self) -> String {
        self.http.metrics().await
    }
}

pub fn order_created(order_id: &str, ticket_id: &str) -> OrderCreated {
    OrderCreated {
        id: order_id.to_owned(),
        version: 0,
        status: common::events::OrderStatus::Created,
        user_id: object_id_hex(),
        expires_at: "2030-01-01T00:00:00Z".into(),
        ticket: OrderTicket { id: ticket_id.to_owned(), price: Price::from_cents(1000).unwrap() },
    }
}

pub fn order_cancelled(order_id: &str, ticket_id: &str) -> OrderCancelled {
    OrderCancelled { id: order_id.to_owned(), version: 1, ticket: TicketRef { id: ticket_id.to_owned() } }
}

pub use common::testing::envelope as errors;
