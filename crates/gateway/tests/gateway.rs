//! The gateway with the real Ingress manifest in front of a local echo backend.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, envelope};
use gateway::{Config, RouteTable};

mod support;

use support::{CourseClient, INGRESS, start};

/// A backend that answers with its name, the method, path and query it received, and two
/// cookies.
async fn echo_backend(name: &'static str) -> SocketAddr {
    let app = Router::new().fallback(move |request: Request| async move {
        let body = serde_json::json!({
            "backend": name,
            "method": request.method().as_str(),
            "uri": request.uri().to_string(),
            "forwardedFor": request.headers().get("x-forwarded-for").map(|v| v.to_str().unwrap().to_owned()),
        });
        (axum::response::AppendHeaders([("set-cookie", "a=1"), ("set-cookie", "b=2")]), axum::Json(body))
            .into_response()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn every_ingress_path_reaches_its_service_with_method_query_and_cookies_intact() {
    let mut backends = HashMap::new();
    for name in ["auth", "tickets", "orders", "payments", "query", "posts", "comments", "client"] {
        backends.insert(name.to_owned(), echo_backend(name).await.to_string());
    }
    let (base, _stop) = start(backends).await;
    let client = reqwest::Client::new();

    for (path, backend) in [
        ("/api/users/signup", "auth"),
        ("/api/tickets", "tickets"),
        ("/api/tickets/123?x=1", "tickets"),
        ("/api/orders/abc", "orders"),
        ("/api/payments", "payments"),
        ("/api/query/tickets?status=sold&q=rock", "query"),
        ("/api/query/posts", "query"),
        ("/api/posts", "posts"),
        ("/api/posts/65f1c0c0b4d3e2f1a0b9c901", "posts"),
        ("/api/posts/65f1c0c0b4d3e2f1a0b9c901/comments", "comments"),
        ("/api/posts/65f1c0c0b4d3e2f1a0b9c901/comments/", "comments"),
        ("/posts", "client"),
        ("/", "client"),
        ("/tickets/123/edit?x=1", "client"),
        ("/api/nope", "client"),
        ("/apis", "client"),
    ] {
        let response = client.post(format!("{base}{path}")).body("{}").send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let cookies: Vec<_> =
            response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(cookies, vec!["a=1", "b=2"], "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["backend"], backend, "{path}");
        assert_eq!(body["method"], "POST");
        assert_eq!(body["uri"], path);
        assert_eq!(body["forwardedFor"], "127.0.0.1");
    }
}

#[tokio::test]
async fn a_path_the_ingress_does_not_route_is_a_json_404() {
    // The real Ingress sends every path somewhere (the web client takes the rest); an
    // Ingress without a catch-all leaves paths unrouted.
    let api_only = INGRESS.replace("/?(.*)\n", "/web-only-path\n");
    assert_ne!(api_only, INGRESS, "the catch-all path was replaced");
    let config = Config {
        port: 0,
        host: "127.0.0.1".into(),
        routes: RouteTable::from_manifest(&api_only).unwrap(),
        backends: HashMap::new(),
    };
    let (base, _stop) = support::start_with(config).await;

    for path in ["/", "/api", "/api/nope", "/healthz"] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(envelope(response).await, vec![("Not Found".to_owned(), None)]);
    }
}

#[tokio::test]
async fn an_unreachable_backend_is_a_503_in_the_envelope() {
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let (base, _stop) = start(HashMap::from([("auth".to_owned(), closed)])).await;

    let down = reqwest::get(format!("{base}/api/users/currentuser")).await.unwrap();
    let unmapped = reqwest::get(format!("{base}/api/tickets")).await.unwrap();

    assert_eq!(down.status(), 503);
    assert_eq!(envelope(down).await, vec![("Service unavailable".to_owned(), None)]);
    assert_eq!(unmapped.status(), 503);
}

/// The description each real service serves, as `Api::new` finishes it.
fn description(service: &str) -> serde_json::Value {
    let doc = match service {
        "auth" => auth::routes::routes().split_for_parts().1,
        "tickets" => tickets::routes::routes().split_for_parts().1,
        "orders" => orders::routes::routes().split_for_parts().1,
        "payments" => payments::routes::routes().split_for_parts().1,
        "query" => query::routes::routes().split_for_parts().1,
        "posts" => posts::routes::routes().split_for_parts().1,
        "comments" => comments::routes::routes().split_for_parts().1,
        other => panic!("no service {other}"),
    };
    serde_json::from_str(&common::openapi::finish(doc, service).to_json().unwrap()).unwrap()
}

/// A backend that serves `doc` at `/openapi.json`.
async fn description_backend(doc: serde_json::Value) -> String {
    let app = Router::new().route(common::openapi::PATH, axum::routing::get(move || async move { axum::Json(doc) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr.to_string()
}

const API_SERVICES: [&str; 7] = ["auth", "tickets", "orders", "payments", "query", "posts", "comments"];

#[tokio::test]
async fn the_merged_description_holds_every_route_of_every_service_without_clashes() {
    let mut backends = HashMap::new();
    let mut expected = Vec::new();
    for name in API_SERVICES {
        let doc = description(name);
        expected.extend(doc["paths"].as_object().unwrap().keys().cloned());
        backends.insert(name.to_owned(), description_backend(doc).await);
    }
    let (base, _stop) = start(backends).await;

    let response = reqwest::get(format!("{base}/-/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    let merged: serde_json::Value = response.json().await.unwrap();

    let mut paths: Vec<String> = merged["paths"].as_object().unwrap().keys().cloned().collect();
    expected.sort();
    paths.sort();
    assert_eq!(paths, expected);
    assert_eq!(paths.len(), 21, "the SPEC's 16 public paths, the live ticket feed and the blog's 4: {paths:?}");
    for path in paths.iter().filter(|p| p.starts_with("/api/")) {
        assert!(
            RouteTable::from_manifest(INGRESS).unwrap().route(path).is_some(),
            "{path} is described but the Ingress does not route it"
        );
    }
    let schemas = merged["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorEnvelope",
        "Ticket",
        "Order",
        "TicketPage",
        "OrderItem",
        "User",
        "Payment",
        "Price",
        "Post",
        "Comment",
        "CommentStatus",
        "QueryPost",
    ] {
        assert!(schemas.contains_key(name), "{name} missing from {:?}", schemas.keys().collect::<Vec<_>>());
    }
    let operation_ids: Vec<&str> = merged["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let mut unique = operation_ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), operation_ids.len(), "operation ids are unique: {operation_ids:?}");
}

#[tokio::test]
async fn the_merged_description_is_a_503_when_a_service_does_not_answer() {
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().to_string()
    };
    let mut backends = HashMap::from([("auth".to_owned(), closed)]);
    for name in ["tickets", "orders", "payments", "query"] {
        backends.insert(name.to_owned(), description_backend(description(name)).await);
    }
    let (base, _stop) = start(backends).await;

    let response = reqwest::get(format!("{base}/-/openapi.json")).await.unwrap();

    assert_eq!(response.status(), 503);
    assert_eq!(envelope(response).await, vec![("Service unavailable".to_owned(), None)]);
}

#[tokio::test]
async fn two_services_describing_one_schema_differently_is_a_500_without_details() {
    let mut backends = HashMap::new();
    for name in API_SERVICES {
        let mut doc = description(name);
        if name == "query" {
            doc["components"]["schemas"]["Price"] = serde_json::json!({"type": "string"});
        }
        backends.insert(name.to_owned(), description_backend(doc).await);
    }
    let (base, _stop) = start(backends).await;

    let response = reqwest::get(format!("{base}/-/openapi.json")).await.unwrap();

    assert_eq!(response.status(), 500);
    assert_eq!(envelope(response).await, vec![("Something went wrong".to_owned(), None)]);
}

/// The course's Next.js client, replayed request by request against the real services
/// behind the gateway: its headers (axios' JSON content type with a charset, cookies
/// only) and its bodies (the price as the text of its input, `{}` to sign out).
#[tokio::test]
async fn the_course_clients_requests_work_unchanged_through_the_gateway() {
    use common::testing::{fresh_mongo, fresh_nats, test_session_settings};

    let stop = CancellationToken::new();
    let _stop_services = StopOnDrop(stop.clone());
    let (nats, session) = (fresh_nats(), test_session_settings());
    let auth = testkit::auth(fresh_mongo("auth"), &nats, &session, &stop).await;
    let tickets = testkit::tickets(fresh_mongo("tickets"), &nats, &session, &stop).await;
    let orders = testkit::orders(fresh_mongo("orders"), &nats, &session, Duration::from_secs(900), &stop).await;
    let mut backends = HashMap::new();
    for (name, started) in [("auth", &auth), ("tickets", &tickets), ("orders", &orders)] {
        backends.insert(name.to_owned(), started.http.base.trim_start_matches("http://").to_owned());
    }
    let (base, _stop_gateway) = start(backends).await;
    let browser = CourseClient::new(base);

    // Landing page, signed out.
    let (status, body) = browser.call("GET", "/api/users/currentuser", None).await;
    assert_eq!((status, body), (200, serde_json::json!({"currentUser": null})));

    // Sign up.
    let (status, user) = browser
        .call("POST", "/api/users/signup", Some(r#"{"email":"course@example.com","password":"password"}"#))
        .await;
    assert_eq!(status, 201, "{user}");
    let (_, current) = browser.call("GET", "/api/users/currentuser", None).await;
    assert_eq!(current["currentUser"]["id"], user["id"]);

    // Sell a ticket: the price is the text of the input, formatted to two decimals.
    let (status, ticket) = browser.call("POST", "/api/tickets", Some(r#"{"title":"Concert","price":"25.00"}"#)).await;
    assert_eq!(status, 201, "{ticket}");
    assert_eq!(ticket["price"], 25);

    // The landing page lists it.
    let (status, list) = browser.call("GET", "/api/tickets", None).await;
    assert_eq!(status, 200);
    assert!(list.as_array().unwrap().iter().any(|t| t["id"] == ticket["id"]), "{list}");

    // "Purchase" reserves it (as a second user: nobody buys their own ticket). Orders
    // learns of the ticket from its event, a moment after it was listed.
    browser.call("POST", "/api/users/signout", Some("{}")).await;
    let (status, _) =
        browser.call("POST", "/api/users/signup", Some(r#"{"email":"buyer@example.com","password":"password"}"#)).await;
    assert_eq!(status, 201);
    let reserve = format!(r#"{{"ticketId":"{}"}}"#, ticket["id"].as_str().unwrap());
    let order = common::testing::eventually(Duration::from_secs(15), || async {
        let (status, order) = browser.call("POST", "/api/orders", Some(&reserve)).await;
        (status == 201).then_some(order)
    })
    .await
    .expect("the reservation succeeds once orders knows the ticket");
    assert_eq!(order["status"], "created");
    assert_eq!(order["ticket"]["price"], 25);

    // The order page, with its countdown from expiresAt.
    let (status, shown) = browser.call("GET", &format!("/api/orders/{}", order["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 200);
    assert_eq!((shown["id"].clone(), shown["ticket"]["title"].clone()), (order["id"].clone(), "Concert".into()));
    assert!(shown["expiresAt"].as_str().is_some_and(|at| at.ends_with('Z')), "{shown}");

    // My orders.
    let (status, mine) = browser.call("GET", "/api/orders", None).await;
    assert_eq!(status, 200);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["ticket"]["title"], "Concert");

    // Sign out.
    let (status, body) = browser.call("POST", "/api/users/signout", Some("{}")).await;
    assert_eq!((status, body), (200, serde_json::json!({})));
    let (_, current) = browser.call("GET", "/api/users/currentuser", None).await;
    assert_eq!(current, serde_json::json!({"currentUser": null}));
}
