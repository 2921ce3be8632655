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
