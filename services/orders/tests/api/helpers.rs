//! `spawn_app()`: the orders application on port 0 with its own database, event namespace
//! and JWT key, plus a direct NATS connection to observe and inject events.

use std::time::Duration;

use common::Sessions;
use common::events::{Event, EventBus, ExpirationComplete, NatsSettings, PaymentCreated, StreamName, TicketCreated};
use common::money::Price;
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, StoredMessage, TestHttp, eventually, fresh_mongo, fresh_nats, object_id_hex, publish_event,
    service_config, session_cookie, test_session_settings, wait_for_messages,
};
use orders::Config;
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(15);

pub struct TestApp {
    pub http: TestHttp,
    pub sessions: Sessions,
    pub bus: EventBus,
    pub db: mongodb::Database,
    _stop: StopOnDrop,
}

pub fn test_config(nats: NatsSettings) -> Config {
    let own = orders::Settings {
        session: test_session_settings(),
        expiration_window: Duration::from_secs(900),
        max_active_per_user: 5,
    };
    service_config("orders", fresh_mongo("orders"), &nats, own)
}

pub async fn spawn_app() -> TestApp {
    spawn(test_config(fresh_nats())).await
}

pub async fn spawn(config: Config) -> TestApp {
    let sessions = config.own.session.sessions();
    let bus =
        EventBus::connect(&common::testing::as_harness(&config.nats), "orders-test").await.expect("a NATS connection");
    let db = common::testing::test_database(&config.mongo.database).await;
    let application = orders::build(config).await.expect("the application builds");
    let http = TestHttp::new(application.port());
    let shutdown = CancellationToken::new();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestApp { http, sessions, bus, db, _stop: StopOnDrop(shutdown) }
}

impl TestApp {
    /// A signed-in user: their id and `Cookie` header.
    pub fn user(&self) -> (String, String) {
        let id = object_id_hex();
        (id.clone(), session_cookie(&self.sessions, &id))
    }

    pub async fn publish<E: Event>(&self, event: &E) {
        publish_event(&self.bus, event).await;
    }

    /// Publishes `ticket.created` for a new ticket and waits until the replica has it.
    pub async fn ticket(&self, title: &str, cents: i64) -> String {
        let id = object_id_hex();
        let event = TicketCreated {
            id: id.clone(),
            version: 0,
            title: title.to_owned(),
            price: Price::from_cents(cents).unwrap(),
            user_id: object_id_hex(),
        };
        self.publish(&event).await;
        self.wait_for_replica(&id, 0).await;
        id
    }

    /// Waits until the replica of `ticket_id` is at `version`; returns it.
    pub async fn wait_for_replica(&self, ticket_id: &str, version: i64) -> bson::Document {
        let oid = bson::oid::ObjectId::parse_str(ticket_id).unwrap();
        eventually(WAIT, || async {
            let replica: Option<bson::Document> =
                self.db.collection("tickets").find_one(bson::doc! {"_id": oid}).await.unwrap();
            replica.filter(|r| r.get_i64("version").ok() == Some(version))
        })
        .await
        .unwrap_or_else(|| panic!("the replica of {ticket_id} never reached version {version}"))
    }

    pub async fn post_order(&self, cookie: &str, ticket_id: &str) -> reqwest::Response {
        self.http.post("/api/orders", Some(cookie), &json!({"ticketId": ticket_id})).await
    }

    /// Reserves `ticket_id` as `cookie`'s user; returns the order JSON.
    pub async fn order(&self, cookie: &str, ticket_id: &str) -> Value {
        let response = self.post_order(cookie, ticket_id).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    pub async fn get_order(&self, cookie: &str, order_id: &str) -> Value {
        let response = self.http.get(&format!("/api/orders/{order_id}"), Some(cookie)).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Waits until the order has `status`; returns it.
    pub async fn wait_for_status(&self, cookie: &str, order_id: &str, status: &str) -> Value {
        eventually(WAIT, || async {
            let order = self.get_order(cookie, order_id).await;
            (order["status"] == status).then_some(order)
        })
        .await
        .unwrap_or_else(|| panic!("order {order_id} never became {status}"))
    }

    /// Messages under `subject` in the ORDERS stream, once at least `count` are there.
    pub async fn order_events(&self, subject: &str, count: usize) -> Vec<StoredMessage> {
        wait_for_messages(&self.bus, StreamName::Orders, subject, count, WAIT).await
    }

    pub async fn expire(&self, order_id: &str) {
        self.publish(&ExpirationComplete { order_id: order_id.to_owned() }).await;
    }

    pub async fn pay(&self, order_id: &str) {
        let payment =
            PaymentCreated { id: object_id_hex(), order_id: order_id.to_owned(), charge_id: "ch_test".into() };
        self.publish(&payment).await;
    }

    pub async fn wait_for_outcome(&self, subject: &str, outcome: &str, count: u64) {
        let consumer = format!("orders-{}", subject.replace('.', "-"));
        self.http.wait_for_outcome(&consumer, outcome, count).await;
    }
}

pub use common::testing::envelope as errors;
