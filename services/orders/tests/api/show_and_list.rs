use serde_json::Value;

use crate::helpers::{errors, spawn_app};

#[tokio::test]
async fn the_list_holds_only_the_callers_orders_with_their_tickets() {
    let app = spawn_app().await;
    let (_, alice) = app.user();
    let (_, bob) = app.user();
    let (t1, t2, t3) = (app.ticket("one", 100).await, app.ticket("two", 200).await, app.ticket("three", 300).await);
    let a1 = app.order(&alice, &t1).await;
    app.order(&bob, &t2).await;
    let a2 = app.order(&alice, &t3).await;

    let response = app.http.get("/api/orders", Some(&alice)).await;

    assert_eq!(response.status(), 200);
    let orders: Vec<Value> = response.json().await.unwrap();
    let ids: Vec<&str> = orders.iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![a1["id"].as_str().unwrap(), a2["id"].as_str().unwrap()]);
    assert_eq!(orders[0]["ticket"]["title"], "one");
    assert_eq!(orders[1]["ticket"]["price"], 3);
    assert_eq!(app.http.get("/api/orders", None).await.status(), 401);
}

#[tokio::test]
async fn an_order_is_shown_to_its_owner_only() {
    let app = spawn_app().await;
    let (_, owner) = app.user();
    let (_, other) = app.user();
    let ticket = app.ticket("concert", 1000).await;
    let order = app.order(&owner, &ticket).await;
    let path = format!("/api/orders/{}", order["id"].as_str().unwrap());

    let mine = app.http.get(&path, Some(&owner)).await;
    let theirs = app.http.get(&path, Some(&other)).await;
    let anonymous = app.http.get(&path, None).await;

    assert_eq!(mine.status(), 200);
    assert_eq!(mine.json::<Value>().await.unwrap(), order);
    assert_eq!(theirs.status(), 403);
    assert_eq!(errors(theirs).await, vec![("Forbidden".into(), None)]);
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn an_unknown_or_malformed_order_id_is_a_404() {
    let app = spawn_app().await;
    let (_, cookie) = app.user();

    for id in ["0123456789abcdef01234567", "bad-id"] {
        let response = app.http.get(&format!("/api/orders/{id}"), Some(&cookie)).await;
        assert_eq!(response.status(), 404, "{id}");
    }
}
