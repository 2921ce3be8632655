//! The read model is a function of the streams: a fresh instance rebuilt from the full
//! history equals the one built live, and `rebuild` gets there again.

use common::testing::{eventually, fresh_mongo, object_id_hex};
use serde_json::Value;

use crate::helpers::{History, TestApp, WAIT, spawn, test_config};

/// The observable read model: every ticket, and every order of the given users.
async fn snapshot(app: &TestApp, users: &[String]) -> (Vec<Value>, Vec<Vec<Value>>) {
    let tickets = app.all_tickets("").await;
    let mut orders = Vec::new();
    for user in users {
        orders.push(app.orders_of(user).await);
    }
    (tickets, orders)
}

/// Waits until `app` shows the `expected` snapshot.
async fn converges(app: &TestApp, users: &[String], expected: &(Vec<Value>, Vec<Vec<Value>>)) -> bool {
    eventually(WAIT, || async { (snapshot(app, users).await == *expected).then_some(()) }).await.is_some()
}

#[tokio::test]
async fn a_fresh_query_service_rebuilds_the_same_read_model_from_the_streams() {
    let live = crate::helpers::spawn_app().await;
    let history = History { bus: &live.bus };
    let users: Vec<String> = (0..3).map(|_| object_id_hex()).collect();
    let mut tickets = Vec::new();
    for n in 0..12 {
        tickets.push(history.ticket(&format!("show {n}"), 100 + n).await);
    }
    for (n, ticket) in tickets.iter().enumerate().take(9) {
        let user = &users[n % 3];
        let order = history.order(user, ticket).await;
        match n % 3 {
            0 => history.cancel(&order, ticket).await,
            1 => {
                history.pay(&order).await;
                history.complete(&order, ticket).await;
            }
            _ => {}
        }
    }
    history.ticket_updated(&tickets[11], 1, "renamed").await;
    let expected = eventually(WAIT, || async {
        let shot = snapshot(&live, &users).await;
        let sold = shot.0.iter().filter(|t| t["status"] == "sold").count();
        let reserved = shot.0.iter().filter(|t| t["status"] == "reserved").count();
        let renamed = shot.0.iter().any(|t| t["title"] == "renamed");
        (shot.0.len() == 12 && sold == 3 && reserved == 3 && renamed).then_some(shot)
    })
    .await
    .expect("the live model settles");

    // Replicas of one deployment share their durable consumers, so the live instance stops
    // before a fresh one, with an empty database, takes its place.
    let nats = live.config.nats.clone();
    drop(live);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let fresh = spawn(test_config(fresh_mongo("query"), nats)).await;
    assert!(converges(&fresh, &users, &expected).await, "the rebuilt model equals the live one");

    query::rebuild(&fresh.config).await.expect("rebuild");
    let mut looks = Vec::new();
    tokio::time::timeout(WAIT, query::follow_replay(&fresh.config, |applied, total| looks.push((applied, total))))
        .await
        .expect("the replay catches up")
        .expect("followed");
    // Caught up means every event handled: the model is whole at once, not eventually.
    assert_eq!(snapshot(&fresh, &users).await, expected, "rebuild drops and replays to the same model");
    let &(applied, total) = looks.last().expect("at least one look");
    assert_eq!(applied, total, "the last look counts every event applied: {looks:?}");
}
