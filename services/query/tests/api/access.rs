use common::testing::{envelope, object_id_hex};

use crate::helpers::{History, spawn_app};

#[tokio::test]
async fn a_user_sees_only_their_own_orders() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let (alice, bob) = (object_id_hex(), object_id_hex());
    let ticket = history.ticket("t", 100).await;
    let other = history.ticket("u", 100).await;
    let alices = history.order(&alice, &ticket).await;
    let bobs = history.order(&bob, &other).await;
    app.wait_for_order(&alice, &alices, |_| true).await;
    app.wait_for_order(&bob, &bobs, |_| true).await;

    let listed = app.orders_of(&alice).await;
    let foreign = app.http.get(&format!("/api/query/orders/{bobs}"), Some(&app.cookie(&alice))).await;
    let own = app.http.get(&format!("/api/query/orders/{alices}"), Some(&app.cookie(&alice))).await;
    let anonymous = app.http.get("/api/query/orders", None).await;
    let unknown = app.http.get(&format!("/api/query/orders/{}", object_id_hex()), Some(&app.cookie(&alice))).await;

    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], alices.as_str());
    assert_eq!(foreign.status(), 403);
    assert_eq!(envelope(foreign).await, vec![("Forbidden".into(), None)]);
    assert_eq!(own.status(), 200);
    assert_eq!(anonymous.status(), 401);
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn an_unknown_ticket_is_a_404() {
    let app = spawn_app().await;

    for id in [object_id_hex().as_str(), "not-an-id"] {
        let response = app.http.get(&format!("/api/query/tickets/{id}"), None).await;
        assert_eq!(response.status(), 404);
    }
}
