//! `spawn_app()`: the query service on port 0 with its own database and namespace, and a
//! `History` that publishes events as tickets, orders and payments would.

use std::time::Duration;

use common::Sessions;
use common::config::MongoSettings;
use common::events::{
    EventBus, NatsSettings, OrderCancelled, OrderCompleted, OrderCreated, OrderStatus, OrderTicket, PaymentCreated,
    TicketCreated, TicketRef, TicketUpdated,
};
use common::money::Price;
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, TestHttp, eventually, fresh_mongo, fresh_nats, object_id_hex, publish_event, service_config,
    session_cookie, test_session_settings,
};
use query::Config;
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestApp {
    pub http: TestHttp,
    pub sessions: Sessions,
    pub bus: EventBus,
    pub config: Config,
    _stop: StopOnDrop,
}

pub fn test_config(mongo: MongoSettings, nats: NatsSettings) -> Config {
    service_config("query", mongo, &nats, query::Settings { session: test_session_settings(), live_feed: true })
}

pub async fn spawn_app() -> TestApp {
    spawn(test_config(fresh_mongo("query"), fresh_nats())).await
}

pub async fn spawn(config: Config) -> TestApp {
    let sessions = config.own.session.sessions();
    let bus =
        EventBus::connect(&common::testing::as_harness(&config.nats), "query-test").await.expect("a NATS connection");
    let application = query::build(config.clone()).await.expect("the application builds");
    let http = TestHttp::new(application.port());
    let shutdown = CancellationToken::new();
    tokio::spawn(application.run_until_stopped(shutdown.clone()));
    TestApp { http, sessions, bus, config, _stop: StopOnDrop(shutdown) }
}

impl TestApp {
    pub fn cookie(&self, user_id: &str) -> String {
        session_cookie(&self.sessions, user_id)
    }

    pub async fn ticket(&self, id: &str) -> Option<Value> {
        let response = self.http.get(&format!("/api/query/tickets/{id}"), None).await;
        (response.status() == 200).then_some(response.json().await.unwrap())
    }

    /// Waits until the ticket view satisfies `check`.
    pub async fn wait_for_ticket(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(WAIT, || async { self.ticket(id).await.filter(|t| check(t)) })
            .await
            .unwrap_or_else(|| panic!("ticket {id} never got there"))
    }

    pub async fn orders_of(&self, user_id: &str) -> Vec<Value> {
        self.http.get("/api/query/orders", Some(&self.cookie(user_id))).await.json().await.unwrap()
    }

    /// Waits until the user's order satisfies `check`.
    pub async fn wait_for_order(&self, user_id: &str, order_id: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(WAIT, || async {
            self.orders_of(user_id).await.into_iter().find(|o| o["id"] == order_id && check(o))
        })
        .await
        .unwrap_or_else(|| panic!("order {order_id} never got there"))
    }

    /// Every ticket through the paginated API, in order.
    pub async fn all_tickets(&self, query: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/query/tickets?limit=100&cursor={c}{query}"),
                None => format!("/api/query/tickets?limit=100{query}"),
            };
            let page: Value = self.http.get(&path, None).await.json().await.unwrap();
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }
}

/// Publishes events in the owners' names.
pub struct History<'a> {
    pub bus: &'a EventBus,
}

impl History<'_> {
    pub async fn ticket(&self, title: &str, cents: i64) -> String {
        let id = object_id_hex();
        self.ticket_with_id(&id, title, cents).await;
        id
    }

    /// The `ticket.created` of ticket `id` (again, for a redelivery; late, for a ticket
    /// whose orders or updates came first).
    pub async fn ticket_with_id(&self, id: &str, title: &str, cents: i64) {
        let event = TicketCreated {
            id: id.into(),
            version: 0,
            title: title.into(),
            price: Price::from_cents(cents).unwrap(),
            user_id: object_id_hex(),
        };
        publish_event(self.bus, &event).await;
    }

    pub async fn ticket_updated(&self, id: &str, version: i64, title: &str) {
        let event = TicketUpdated {
            id: id.into(),
            version,
            title: title.into(),
            price: Price::from_cents(999).unwrap(),
            user_id: object_id_hex(),
            order_id: None,
        };
        publish_event(self.bus, &event).await;
    }

    pub async fn order(&self, user_id: &str, ticket_id: &str) -> String {
        let id = object_id_hex();
        self.order_with_id(&id, user_id, ticket_id).await;
        id
    }

    pub async fn order_with_id(&self, id: &str, user_id: &str, ticket_id: &str) {
        let event = OrderCreated {
            id: id.into(),
            version: 0,
            status: OrderStatus::Created,
            user_id: user_id.into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
            ticket: OrderTicket { id: ticket_id.into(), price: Price::from_cents(100).unwrap() },
        };
        publish_event(self.bus, &event).await;
    }

    pub async fn cancel(&self, order_id: &str, ticket_id: &str) {
        publish_event(
            self.bus,
            &OrderCancelled { id: order_id.into(), version: 1, ticket: TicketRef { id: ticket_id.into() } },
        )
        .await;
    }

    pub async fn complete(&self, order_id: &str, ticket_id: &str) {
        publish_event(
            self.bus,
            &OrderCompleted { id: order_id.into(), version: 1, ticket: TicketRef { id: ticket_id.into() } },
        )
        .await;
    }

    pub async fn pay(&self, order_id: &str) -> String {
        let id = object_id_hex();
        publish_event(
            self.bus,
            &PaymentCreated { id: id.clone(), order_id: order_id.into(), charge_id: format!("ch_{id}") },
        )
        .await;
        id
    }
}
