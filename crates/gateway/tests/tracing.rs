//! One purchase is one trace across six services: through the gateway, a buyer's sign-in,
//! reservation and payment carry one `traceparent`; every service's JSON log lines for
//! the work it caused (requests, and the events they staged, handled elsewhere) carry
//! that `trace_id`, and the spans exported over OTLP to a receiver here form one tree.
//! (Its own test binary: the log subscriber and the exporter are global to a process.)

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use common::config::Env;
use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, eventually, fresh_mongo, fresh_nats, test_session_settings};
use serde_json::{Value, json};
use support::{CourseClient, start};

const WAIT: Duration = Duration::from_secs(20);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// Log lines, as the services write them.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn parsed(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
            .collect()
    }
}

/// An OTLP/HTTP receiver: the JSON bodies posted to `/v1/traces`.
async fn otlp_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let store = Arc::clone(&store);
            async move {
                store.lock().unwrap().push(serde_json::from_slice::<Value>(&body).expect("OTLP/JSON"));
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// The exported spans: (trace id, span id, parent span id, name, `service` attribute).
fn spans(bodies: &[Value]) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    for body in bodies {
        for resource in body["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let service = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["key"] == "service")
                        .and_then(|a| a["value"]["stringValue"].as_str())
                        .unwrap_or_default();
                    let text = |key: &str| span[key].as_str().unwrap_or_default().to_lowercase();
                    out.push((text("traceId"), text("spanId"), text("parentSpanId"), text("name"), service.to_owned()));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_purchase_is_one_trace_in_every_services_logs_and_one_span_tree() {
    let (otlp, received) = otlp_receiver().await;
    let lines = Lines::default();
    let writer = lines.clone();
    let env = Env::from_pairs([
        ("LOG_FORMAT", "json"),
        // Everything of ours at debug (the dependencies' chatter at info): no secret may
        // appear in any of it.
        ("RUST_LOG", "debug,h2=info,hyper=info,hyper_util=info,mongodb=info,async_nats=info,rustls=info,reqwest=info"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_SERVICE_NAME", "platform-under-test"),
    ]);
    common::telemetry::init_with_writer(&env, move || writer.clone()).unwrap();

    let stop = CancellationToken::new();
    let _stop_services = StopOnDrop(stop.clone());
    let (nats, session) = (fresh_nats(), test_session_settings());
    let services = [
        ("auth", testkit::auth(fresh_mongo("auth"), &nats, &session, &stop).await),
        ("tickets", testkit::tickets(fresh_mongo("tickets"), &nats, &session, &stop).await),
        ("orders", testkit::orders(fresh_mongo("orders"), &nats, &session, Duration::from_secs(900), &stop).await),
        ("payments", testkit::payments(fresh_mongo("payments"), &nats, &session, &stop).await),
        ("query", testkit::query(fresh_mongo("query"), &nats, &session, &stop).await),
    ];
    let _expiration = testkit::expiration(fresh_mongo("expiration"), &nats, &stop).await;
    let backends: HashMap<String, String> = services
        .iter()
        .map(|(name, started)| ((*name).to_owned(), started.http.base.trim_start_matches("http://").to_owned()))
        .collect();
    let (base, _stop_gateway) = start(backends).await;

    let seller = CourseClient::new(base.clone());
    seller.call("POST", "/api/users/signup", Some(r#"{"email":"seller@test.com","password":"password"}"#)).await;
    let (_, ticket) = seller.call("POST", "/api/tickets", Some(r#"{"title":"Traced","price":"12.00"}"#)).await;
    let setup = CourseClient::new(base.clone());
    setup
        .call("POST", "/api/users/signup", Some(r#"{"email":"buyer@test.com","password":"Tr4ced-purchase-pw"}"#))
        .await;

    // The purchase: sign in, reserve, pay, under one trace.
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let buyer = CourseClient::new(base.clone()).with_header("traceparent", &traceparent);
    let (status, _) = buyer
        .call("POST", "/api/users/signin", Some(r#"{"email":"buyer@test.com","password":"Tr4ced-purchase-pw"}"#))
        .await;
    assert_eq!(status, 200);
    let reserve = json!({"ticketId": ticket["id"]}).to_string();
    let order = eventually(WAIT, || async {
        let (status, order) = buyer.call("POST", "/api/orders", Some(&reserve)).await;
        (status == 201).then_some(order)
    })
    .await
    .expect("the buyer reserves the ticket");
    let pay = json!({"token": "tok_visa", "orderId": order["id"]}).to_string();
    let paid =
        eventually(WAIT, || async { (buyer.call("POST", "/api/payments", Some(&pay)).await.0 == 201).then_some(()) });
    assert!(paid.await.is_some(), "the buyer pays");
    let sold = eventually(WAIT, || async {
        let (_, shown) =
            buyer.call("GET", &format!("/api/query/tickets/{}", ticket["id"].as_str().unwrap()), None).await;
        (shown["status"] == "sold").then_some(())
    });
    assert!(sold.await.is_some(), "the query model shows it sold");

    // Every service logged its part under the purchase's trace id...
    let expected: HashSet<&str> = ["auth", "orders", "tickets", "expiration", "payments", "query"].into();
    let logged = eventually(WAIT, || async {
        let traced: HashSet<String> = lines
            .parsed()
            .iter()
            .filter(|line| line["trace_id"] == TRACE_ID)
            .filter_map(|line| line["service"].as_str().map(str::to_owned))
            .collect();
        expected.iter().all(|s| traced.contains(*s)).then_some(traced)
    })
    .await;
    assert!(
        logged.is_some(),
        "services logging under the trace: {:?}; the last lines: {:#?}",
        {
            let all = lines.parsed();
            all.iter().filter(|l| l["trace_id"] == TRACE_ID).map(|l| l["service"].clone()).collect::<HashSet<_>>()
        },
        lines.parsed().iter().rev().take(5).collect::<Vec<_>>()
    );
    // ...in one shape.
    for line in lines.parsed() {
        for key in ["timestamp", "level", "service", "target", "message"] {
            assert!(line.get(key).is_some(), "{key} missing from {line}");
        }
    }

    // No secret in any line: the password, the session (cookie and the JWT inside) and
    // the refresh token.
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let cookies = buyer.cookie_header();
    let mut secrets = vec!["Tr4ced-purchase-pw".to_owned()];
    for pair in cookies.split("; ") {
        let (name, value) = pair.split_once('=').unwrap();
        secrets.push(value.to_owned());
        if name == "session" {
            secrets.push(common::session::decode_session_cookie(value).unwrap());
        }
    }
    assert!(secrets.len() >= 4, "a password, a session cookie, its JWT and a refresh token: {cookies}");
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the logs: {secret}");
    }

    // And the exported spans of the trace are one tree under the client's span.
    common::telemetry::flush_traces().await;
    let tree = eventually(WAIT, || async {
        common::telemetry::flush_traces().await;
        let spans: Vec<_> = spans(&received.lock().unwrap()).into_iter().filter(|s| s.0 == TRACE_ID).collect();
        let services: HashSet<&str> = spans.iter().map(|s| s.4.as_str()).collect();
        expected.iter().all(|s| services.contains(s)).then_some(spans)
    })
    .await
    .expect("spans of every service exported");
    let ids: HashSet<&str> = tree.iter().map(|s| s.1.as_str()).collect();
    for (_, id, parent, name, service) in &tree {
        assert!(
            parent == CLIENT_SPAN || ids.contains(parent.as_str()),
            "span {name} {id} of {service} hangs off an unknown parent {parent}"
        );
    }
    assert!(tree.iter().any(|s| s.2 == CLIENT_SPAN), "the tree starts at the client's span");
}
