//! `spawn_app()`: payments on port 0 with its own database and namespace; orders are fed
//! to it as events; Stripe can be a wiremock server.

use std::time::Duration;

use common::Sessions;
use common::events::{
    EventBus, OrderCancelled, OrderCompleted, OrderCreated, OrderStatus, OrderTicket, StreamName, TicketRef,
};
use common::money::Price;
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, StoredMessage, TestHttp, eventually, fresh_mongo, fresh_nats, object_id_hex, publish_event,
    service_config, session_cookie, test_session_settings, wait_for_messages,
};
use payments::Config;
use payments::config::ProviderSettings;
use serde_json::json;

pub const WAIT: Duration = Duration::from_secs(15);
pub const STRIPE_KEY: &str = "sk_test_mock_key";

pub struct TestApp {
    pub http: TestHttp,
    pub sessions: Sessions,
    pub bus: EventBus,
    pub db: mongodb::Database,
    _stop: StopOnDrop,
}

pub fn test_config(provider: ProviderSettings) -> Config {
    let own = payments::Settings {
        session: test_session_settings(),
        provider,
        refunds: payments::refunds::RefundSettings {
            poll_interval: Duration::from_millis(100),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
        },
    };
    service_config("payments", fresh_mongo("payments"), &fresh_nats(), own)
}

/// With the built-in test provider.
pub async fn spawn_app() -> TestApp {
    spawn(test_config(ProviderSettings::Test)).await
}

/// With Stripe at `base_url` (a mock server).
pub async fn spawn_app_with_stripe(base_url: &str) -> TestApp {
    let key = secrecy::SecretString::from(STRIPE_KEY.to_owned());
    let timeout = Duration::from_secs(2);
    spawn(test_config(ProviderSettings::Stripe { key, base_url: base_url.to_owned(), timeout })).await
}

pub async fn spawn(config: Config) -> TestApp {
    let sessions = config.own.session.sessions();
    let bus = EventBus::connect(&common::testing::as_harness(&config.nats), "payments-test")
        .await
        .expect("a NATS connection");
    let db = common::testing::test_database(&config.mongo.database).await;
    let application = payments::build(config).await.expect("the application builds");
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

    /// Publishes `order.created` for a new order of `user_id` and waits for the replica.
    pub async fn order_for(&self, user_id: &str, cents: i64) -> String {
        self.order_expiring(user_id, cents, "2030-01-01T00:00:00Z").await
    }

    /// As [`Self::order_for`], with the reservation lapsing at `expires_at` (RFC 3339).
    pub async fn order_expiring(&self, user_id: &str, cents: i64, expires_at: &str) -> String {
        let id = object_id_hex();
        let event = OrderCreated {
            id: id.clone(),
            version: 0,
            status: OrderStatus::Created,
            user_id: user_id.to_owned(),
            expires_at: expires_at.into(),
            ticket: OrderTicket { id: object_id_hex(), price: Price::from_cents(cents).unwrap() },
        };
        publish_event(&self.bus, &event).await;
        self.wait_for_replica(&id, |_| true).await;
        id
    }

    pub async fn cancel_order(&self, order_id: &str) {
        let event = OrderCancelled { id: order_id.to_owned(), version: 1, ticket: TicketRef { id: object_id_hex() } };
        publish_event(&self.bus, &event).await;
    }

    pub async fn complete_order(&self, order_id: &str) {
        let event = OrderCompleted { id: order_id.to_owned(), version: 1, ticket: TicketRef { id: object_id_hex() } };
        publish_event(&self.bus, &event).await;
    }

    /// Waits until the order replica exists and satisfies `check`.
    pub async fn wait_for_replica(&self, order_id: &str, check: impl Fn(&bson::Document) -> bool) -> bson::Document {
        let oid = bson::oid::ObjectId::parse_str(order_id).unwrap();
        eventually(WAIT, || async {
            let replica: Option<bson::Document> =
                self.db.collection("orders").find_one(bson::doc! {"_id": oid}).await.unwrap();
            replica.filter(|r| check(r))
        })
        .await
        .unwrap_or_else(|| panic!("the replica of order {order_id} never got there"))
    }

    pub async fn pay(&self, cookie: &str, order_id: &str, token: &str) -> reqwest::Response {
        self.http.post("/api/payments", Some(cookie), &json!({"token": token, "orderId": order_id})).await
    }

    pub async fn payment_of(&self, order_id: &str) -> Option<bson::Document> {
        self.db.collection("payments").find_one(bson::doc! {"orderId": order_id}).await.unwrap()
    }

    pub async fn payment_count(&self) -> u64 {
        self.db.collection::<bson::Document>("payments").count_documents(bson::doc! {}).await.unwrap()
    }

    pub async fn payment_events(&self, count: usize) -> Vec<StoredMessage> {
        wait_for_messages(&self.bus, StreamName::Payments, "payment.created", count, WAIT).await
    }
}

pub use common::testing::envelope as errors;

/// Form fields of a request the mock received.
pub fn form(request: &wiremock::Request) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

/// Stripe's answer for a successful PaymentIntent.
pub fn intent_succeeded(n: usize) -> serde_json::Value {
    json!({"id": format!("pi_mock_{n}"), "object": "payment_intent", "status": "succeeded", "latest_charge": format!("ch_mock_{n}")})
}

/// Stripe's answer for a declined card.
pub fn card_declined() -> serde_json::Value {
    json!({"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}})
}
