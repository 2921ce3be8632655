//! The service's NATS user (infra/nats_auth.py, which `dev/test` runs): what it may not
//! do is refused by the server, and the refusal is logged and counted, so a deployment
//! whose table and code disagree shows on `nats_permission_denied_total`.

use std::time::Duration;

use common::events::{EventBus, OrderCancelled, StreamName, TicketRef};
use common::testing::{as_service, eventually, fresh_nats};

#[tokio::test]
async fn publishing_another_services_event_is_refused_and_counted() {
    assert!(
        std::env::var("NATS_PASSWORD_TICKETS").is_ok(),
        "run with dev/test: it starts NATS with the users of infra/nats_auth.py"
    );
    let settings = as_service(&fresh_nats(), "tickets");
    let bus = EventBus::connect(&settings, "tickets").await.expect("tickets connects as itself");
    bus.ensure_stream(StreamName::Tickets).await.expect("tickets declares its own stream");

    // A forged cancellation: only orders may publish order events.
    let forged = OrderCancelled { id: "o1".into(), version: 1, ticket: TicketRef { id: "t1".into() } };
    let result = bus.publish("forged-1", &forged).await;

    assert!(result.is_err(), "the server never acknowledges a refused publish");
    let counted = eventually(Duration::from_secs(5), || async { (bus.permission_denied().get() == 1).then_some(()) });
    assert!(counted.await.is_some(), "the refusal is counted");
    // (Stream and consumer names are only checked exactly outside namespaces: see
    // infra/test_nats_permissions.py, which runs the production names.)
}

#[tokio::test]
async fn a_service_with_a_wrong_password_does_not_start() {
    let mut settings = as_service(&fresh_nats(), "tickets");
    let url = secrecy::ExposeSecret::expose_secret(&settings.url).to_owned();
    let (head, host) = url.rsplit_once('@').expect("credentials in the URL");
    let user = head.rsplit_once(':').expect("user:password").0;
    settings.url = format!("{user}:wrong@{host}").into();
    settings.startup_timeout = Duration::from_secs(1);

    let refused = EventBus::connect(&settings, "tickets").await;

    assert!(refused.is_err(), "wrong credentials are refused at start-up");
}
