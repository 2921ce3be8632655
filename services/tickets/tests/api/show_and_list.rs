use serde_json::Value;

use crate::helpers::{errors, order_created, spawn_app};

#[tokio::test]
async fn an_unknown_or_malformed_id_is_a_404() {
    let app = spawn_app().await;

    for id in ["0123456789abcdef01234567", "not-an-id", "%7B%22%24gt%22%3A%22%22%7D"] {
        let response = app.get(&format!("/api/tickets/{id}")).await;
        assert_eq!(response.status(), 404, "{id}");
        assert_eq!(errors(response).await, vec![("Not Found".into(), None)]);
    }
}

#[tokio::test]
async fn a_ticket_is_shown_to_anyone() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let ticket = app.create_ticket(&cookie, "concert", 15.0).await;

    let shown = app.ticket(ticket["id"].as_str().unwrap()).await;

    assert_eq!(shown["title"], "concert");
    assert_eq!(shown["price"], 15);
}

#[tokio::test]
async fn the_list_holds_every_ticket_not_reserved() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();
    let first = app.create_ticket(&cookie, "one", 1.0).await;
    let second = app.create_ticket(&cookie, "two", 2.0).await;
    let third = app.create_ticket(&cookie, "three", 3.0).await;
    let reserved_id = second["id"].as_str().unwrap();
    app.publish(&order_created(&common::testing::object_id_hex(), reserved_id)).await;
    app.wait_for_version(reserved_id, 1).await;

    let list: Vec<Value> = app.get("/api/tickets").await.json().await.unwrap();

    let ids: Vec<&str> = list.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![first["id"].as_str().unwrap(), third["id"].as_str().unwrap()]);
}

#[tokio::test]
async fn the_service_serves_its_openapi_description() {
    let app = spawn_app().await;

    let response = app.get("/openapi.json").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["info"]["title"], "ticketing: tickets");
    let methods = |path: &str| {
        let mut methods: Vec<String> = doc["paths"][path].as_object().unwrap().keys().cloned().collect();
        methods.sort();
        methods
    };
    assert_eq!(methods("/api/tickets"), ["get", "post"]);
    assert_eq!(methods("/api/tickets/{id}"), ["get", "put"]);
    let create = &doc["paths"]["/api/tickets"]["post"];
    assert_eq!(
        create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Ticket"
    );
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TicketBody"
    );
    assert!(create["responses"]["default"].is_object(), "any other error is described");
    assert_eq!(doc["components"]["schemas"]["TicketBody"]["required"], serde_json::json!(["title", "price"]));
}
