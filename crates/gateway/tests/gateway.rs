//! The gateway with the real Ingress manifest in front of a local echo backend.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, envelope};
use gateway::{Config, RouteTable};

const INGRESS: &str = include_str!("../../../infra/k8s/base/ingress.yaml");

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

async fn start(backends: HashMap<String, String>) -> (String, StopOnDrop) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let config =
        Config { port, host: "127.0.0.1".into(), routes: RouteTable::from_manifest(INGRESS).unwrap(), backends };
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

#[tokio::test]
async fn every_ingress_path_reaches_its_service_with_method_query_and_cookies_intact() {
    let mut backends = HashMap::new();
    for name in ["auth", "tickets", "orders", "payments", "query"] {
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
    let (base, _stop) = start(HashMap::new()).await;

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

const API_SERVICES: [&str; 5] = ["auth", "tickets", "orders", "payments", "query"];

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
    assert_eq!(paths.len(), 13, "the SPEC's 13 public paths: {paths:?}");
    for path in paths.iter().filter(|p| p.starts_with("/api/")) {
        assert!(
            RouteTable::from_manifest(INGRESS).unwrap().route(path).is_some(),
            "{path} is described but the Ingress does not route it"
        );
    }
    let schemas = merged["components"]["schemas"].as_object().unwrap();
    for name in ["ErrorEnvelope", "Ticket", "Order", "TicketPage", "OrderItem", "User", "Payment", "Price"] {
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
