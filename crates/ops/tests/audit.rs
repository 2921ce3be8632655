//! The audit on a real platform: tickets, orders, payments and query running together.

use std::time::Duration;

use common::events::{EventBus, NatsSettings};
use common::shutdown::CancellationToken;
use common::testing::{
    StopOnDrop, TestHttp, eventually, fresh_mongo, fresh_nats, object_id_hex, session_cookie, test_database,
    test_session_settings,
};
use serde_json::{Value, json};

struct Platform {
    tickets: TestHttp,
    orders: TestHttp,
    payments: TestHttp,
    query: TestHttp,
    dbs: ops::Databases,
    bus: EventBus,
    sessions: common::Sessions,
    _stop: StopOnDrop,
}

async fn platform() -> Platform {
    let nats: NatsSettings = fresh_nats();
    let session = test_session_settings();
    let stop = CancellationToken::new();
    let (tm, om, pm, qm) =
        (fresh_mongo("tickets"), fresh_mongo("orders"), fresh_mongo("payments"), fresh_mongo("query"));
    let dbs = ops::Databases {
        tickets: test_database(&tm.database).await,
        orders: test_database(&om.database).await,
        payments: test_database(&pm.database).await,
        query: test_database(&qm.database).await,
        blog: None,
    };
    let tickets = testkit::tickets(tm, &nats, &session, &stop).await.http;
    let orders = testkit::orders(om, &nats, &session, Duration::from_secs(900), &stop).await.http;
    let payments = testkit::payments(pm, &nats, &session, &stop).await.http;
    let query = testkit::query(qm, &nats, &session, &stop).await.http;
    let bus = EventBus::connect(&nats, "audit-test").await.unwrap();
    Platform { tickets, orders, payments, query, dbs, bus, sessions: session.sessions(), _stop: StopOnDrop(stop) }
}

async fn quiet_audit(p: &Platform) -> ops::Report {
    // The system settles within a second; retry until the audit is stable and clean, or
    // return the last report.
    let mut last = None;
    for _ in 0..40 {
        let report = ops::audit(&p.dbs, ops::dead_letter_count(&p.bus).await.unwrap()).await.unwrap();
        if report.findings.is_empty() {
            return report;
        }
        last = Some(report);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    last.unwrap()
}

#[tokio::test]
async fn a_sale_a_cancellation_and_an_open_order_audit_clean_and_a_corruption_is_reported() {
    let p = platform().await;
    let seller = session_cookie(&p.sessions, &object_id_hex());
    let buyer = session_cookie(&p.sessions, &object_id_hex());
    let mut ticket_ids = Vec::new();
    for n in 0..3 {
        let t: Value = p
            .tickets
            .post("/api/tickets", Some(&seller), &json!({"title": format!("t{n}"), "price": 10}))
            .await
            .json()
            .await
            .unwrap();
        ticket_ids.push(t["id"].as_str().unwrap().to_owned());
    }
    let mut order_ids = Vec::new();
    for ticket in &ticket_ids {
        let order: Value = eventually(Duration::from_secs(15), || async {
            let r = p.orders.post("/api/orders", Some(&buyer), &json!({"ticketId": ticket})).await;
            (r.status() == 201).then_some(r.json().await.unwrap())
        })
        .await
        .unwrap();
        order_ids.push(order["id"].as_str().unwrap().to_owned());
    }
    let paid = eventually(Duration::from_secs(15), || async {
        let r = p
            .payments
            .post("/api/payments", Some(&buyer), &json!({"token": "tok_visa", "orderId": order_ids[0]}))
            .await;
        (r.status() == 201).then_some(())
    })
    .await;
    assert!(paid.is_some());
    assert_eq!(p.orders.delete(&format!("/api/orders/{}", order_ids[1]), Some(&buyer)).await.status(), 204);
    let sold = eventually(Duration::from_secs(15), || async {
        let t: Value = p.query.get(&format!("/api/query/tickets/{}", ticket_ids[0]), None).await.json().await.ok()?;
        (t["status"] == "sold").then_some(())
    })
    .await;
    assert!(sold.is_some());

    let clean = quiet_audit(&p).await;
    assert_eq!(clean.findings, vec![], "{clean:?}");
    assert_eq!((clean.tickets, clean.orders, clean.payments), (3, 3, 1));
    for service in [&p.tickets, &p.orders, &p.payments, &p.query] {
        assert_eq!(service.nats_permission_denials().await, 0, "{} stayed within its NATS user", service.base);
    }
    // What an operator watches: the sale's counters, each event's age, the outboxes.
    let (orders, payments, tickets) = (p.orders.metrics().await, p.payments.metrics().await, p.tickets.metrics().await);
    assert!(orders.lines().any(|l| l == "orders_reserved_total 3"), "{orders}");
    assert!(payments.lines().any(|l| l == r#"payments_charges_total{outcome="succeeded"} 1"#), "{payments}");
    let aged =
        tickets.lines().find(|l| l.starts_with("event_age_seconds_count{") && l.contains("tickets-order-created"));
    assert!(aged.is_some_and(|l| l.ends_with(" 3")), "every reservation's age observed once: {tickets}");
    assert!(tickets.lines().any(|l| l.starts_with("outbox_pending_events ")), "{tickets}");
    let handled =
        tickets.lines().find(|l| l.starts_with("event_handling_seconds_count{") && l.contains("tickets-order-created"));
    assert!(handled.is_some_and(|l| l.ends_with(" 3")), "every reservation's handling timed once: {tickets}");
    // Every round trip to the database is counted, by command and collection (per process:
    // the services of this test share one, so at least the three claims).
    let claims = tickets.lines().find(|l| {
        l.starts_with("mongo_commands_total{")
            && l.contains(r#"command="findAndModify""#)
            && l.contains(r#"collection="tickets""#)
    });
    let count = claims.and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(count.is_some_and(|n| n >= 3.0), "the claims counted: {tickets}");

    // Corrupt the tickets database by hand: the ticket of the open order loses its holder.
    let open_ticket = bson::oid::ObjectId::parse_str(&ticket_ids[2]).unwrap();
    p.dbs
        .tickets
        .collection::<bson::Document>("tickets")
        .update_one(bson::doc! {"_id": open_ticket}, bson::doc! {"$unset": {"orderId": ""}})
        .await
        .unwrap();
    let report = ops::audit(&p.dbs, 0).await.unwrap();
    let kinds: Vec<&str> = report.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec!["active_order_not_holding_ticket"], "{report:?}");

    // And a refund left due on the paid order's charge is reported as such.
    p.dbs
        .payments
        .collection::<bson::Document>("payments")
        .update_one(
            bson::doc! {"orderId": &order_ids[0]},
            bson::doc! {"$set": {"refundDue": true, "refundAttempts": 3_i64}},
        )
        .await
        .unwrap();
    let report = ops::audit(&p.dbs, 0).await.unwrap();
    assert!(report.findings.iter().any(|f| f.kind == "refund_due"), "{report:?}");
}

/// The names `text` uses that look like metrics: identifiers with an underscore, not
/// PromQL's functions, Grafana's variables or label names.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut token = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            token.push(c);
            continue;
        }
        let starts_with_letter = token.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if starts_with_letter
            && token.contains('_')
            && !["histogram_quantile", "label_values"].contains(&token.as_str())
        {
            names.insert(std::mem::take(&mut token));
        }
        token.clear();
    }
    names
}

/// The sample names a service exposes, from its `# TYPE` lines (a counter `x` is exposed
/// as `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`).
fn exposed(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .flat_map(|(name, kind)| match kind {
            "counter" => vec![format!("{name}_total")],
            "histogram" => ["bucket", "sum", "count"].iter().map(|s| format!("{name}_{s}")).collect(),
            _ => vec![name.to_owned()],
        })
        .collect()
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_read_is_exposed_by_a_service() {
    let p = platform().await;
    let stop = CancellationToken::new();
    let _stop = StopOnDrop(stop.clone());
    let expiration = testkit::expiration(fresh_mongo("expiration"), &fresh_nats(), &stop).await.http;
    // A family appears once it has a value: a sale, a payment and a dead letter give
    // every one of them a value...
    let (seller, buyer) =
        (session_cookie(&p.sessions, &object_id_hex()), session_cookie(&p.sessions, &object_id_hex()));
    let ticket: Value = p
        .tickets
        .post("/api/tickets", Some(&seller), &json!({"title": "Metered", "price": 5}))
        .await
        .json()
        .await
        .unwrap();
    let order: Value = eventually(Duration::from_secs(15), || async {
        let r = p.orders.post("/api/orders", Some(&buyer), &json!({"ticketId": ticket["id"]})).await;
        (r.status() == 201).then_some(r.json().await.unwrap())
    })
    .await
    .unwrap();
    let paid = eventually(Duration::from_secs(15), || async {
        let r =
            p.payments.post("/api/payments", Some(&buyer), &json!({"token": "tok_visa", "orderId": order["id"]})).await;
        (r.status() == 201).then_some(())
    });
    assert!(paid.await.is_some());
    p.bus.publish_raw("order.created", &object_id_hex(), b"{not json".as_slice().into()).await.unwrap();
    p.tickets.wait_for_outcome("tickets-order-created", "dead_letter", 1).await;
    // ...but one: the fill ratio is set only for streams with a size limit, which tests do
    // not give them (several tests share one server).
    let only_in_production = ["event_stream_fill_ratio"];
    let mut available: std::collections::BTreeSet<String> =
        only_in_production.iter().map(|s| (*s).to_owned()).collect();
    for service in [&p.tickets, &p.orders, &p.payments, &p.query, &expiration] {
        available.extend(exposed(&service.metrics().await));
    }
    let alerts: serde_json::Value =
        serde_norway::from_str(include_str!("../../../infra/observability/alerts.yaml")).unwrap();
    let dashboard: Value = serde_json::from_str(include_str!("../../../infra/observability/dashboard.json")).unwrap();
    let expressions = alerts["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .chain(
            dashboard["panels"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
                .map(|t| t["expr"].as_str().unwrap().to_owned()),
        );
    let used: std::collections::BTreeSet<String> = expressions.flat_map(|e| metric_names(&e)).collect();

    let missing: Vec<_> = used.difference(&available).collect();

    assert!(used.len() >= 10, "the files were read: {used:?}");
    assert!(missing.is_empty(), "read by infra/observability but exposed by no service: {missing:?}\n{available:?}");
}
