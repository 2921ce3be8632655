//! SPEC section 7 end to end, through the gateway in front of every real service: a ban
//! ends the user's sessions everywhere, a service started after the ban refuses the old
//! token before it serves anything, the banned user's reservation is cancelled, and an
//! unban lets new sessions in while old tokens stay refused.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use common::shutdown::CancellationToken;
use common::testing::{StopOnDrop, eventually, fresh_mongo, fresh_nats, test_database, test_session_settings};
use serde_json::{Value, json};
use support::{CourseClient, start};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_ban_is_honoured_by_every_service_and_an_unban_only_by_new_sessions() {
    let stop = CancellationToken::new();
    let _stop_services = StopOnDrop(stop.clone());
    let (nats, session) = (fresh_nats(), test_session_settings());
    let auth_db = fresh_mongo("auth");
    let auth_db_name = auth_db.database.clone();
    let services = [
        ("auth", testkit::auth(auth_db, &nats, &session, &stop).await),
        ("tickets", testkit::tickets(fresh_mongo("tickets"), &nats, &session, &stop).await),
        ("orders", testkit::orders(fresh_mongo("orders"), &nats, &session, Duration::from_secs(900), &stop).await),
        ("payments", testkit::payments(fresh_mongo("payments"), &nats, &session, &stop).await),
        ("query", testkit::query(fresh_mongo("query"), &nats, &session, &stop).await),
    ];
    let backends: HashMap<String, String> = services
        .iter()
        .map(|(name, started)| ((*name).to_owned(), started.http.base.trim_start_matches("http://").to_owned()))
        .collect();
    let (base, _stop_gateway) = start(backends).await;

    // An admin (made so as `auth grant-admin` does), a seller and a buyer.
    let admin = CourseClient::new(base.clone());
    admin.call("POST", "/api/users/signup", Some(r#"{"email":"admin@test.com","password":"password"}"#)).await;
    test_database(&auth_db_name)
        .await
        .collection::<bson::Document>("users")
        .update_one(bson::doc! {"email": "admin@test.com"}, bson::doc! {"$set": {"admin": true}})
        .await
        .unwrap();
    let (status, _) = admin.call("POST", "/api/users/refresh", None).await;
    assert_eq!(status, 200, "a refresh picks up the new role");
    let seller = CourseClient::new(base.clone());
    seller.call("POST", "/api/users/signup", Some(r#"{"email":"seller@test.com","password":"password"}"#)).await;
    let (_, ticket) = seller.call("POST", "/api/tickets", Some(r#"{"title":"Gig","price":"30.00"}"#)).await;
    let buyer = CourseClient::new(base.clone());
    let (_, user) =
        buyer.call("POST", "/api/users/signup", Some(r#"{"email":"buyer@test.com","password":"password"}"#)).await;
    let reserve = json!({"ticketId": ticket["id"]}).to_string();
    let order = eventually(WAIT, || async {
        let (status, order) = buyer.call("POST", "/api/orders", Some(&reserve)).await;
        (status == 201).then_some(order)
    })
    .await
    .expect("the buyer reserves the ticket");
    let stolen = buyer.copy();
    let pay = json!({"token": "tok_visa", "orderId": order["id"]}).to_string();

    // The ban.
    let (status, banned) = admin
        .call("POST", &format!("/api/users/{}/ban", user["id"].as_str().unwrap()), Some(r#"{"reason":"fraud"}"#))
        .await;
    assert_eq!((status, banned["banned"].as_bool()), (200, Some(true)), "{banned}");

    // Every service refuses the token issued before it, as soon as it has the event.
    for (method, path, body) in [
        ("GET", "/api/users/currentuser".to_owned(), None),
        ("POST", "/api/tickets".to_owned(), Some(r#"{"title":"Mine now","price":1}"#.to_owned())),
        ("GET", "/api/orders".to_owned(), None),
        ("GET", format!("/api/orders/{}", order["id"].as_str().unwrap()), None),
        ("POST", "/api/payments".to_owned(), Some(pay.clone())),
        ("GET", "/api/query/orders".to_owned(), None),
    ] {
        let refused = eventually(WAIT, || async {
            let (status, body) = stolen.call(method, &path, body.as_deref()).await;
            (status == 401).then_some(body)
        })
        .await;
        assert_eq!(refused, Some(json!({"errors": [{"message": "Not authorized"}]})), "{method} {path}");
    }
    let (status, _) = stolen.call("POST", "/api/users/refresh", None).await;
    assert_eq!(status, 401, "the refresh token is revoked too");
    let (status, body) = CourseClient::new(base.clone())
        .call("POST", "/api/users/signin", Some(r#"{"email":"buyer@test.com","password":"password"}"#))
        .await;
    assert_eq!((status, body), (403, json!({"errors": [{"message": "Account suspended"}]})));

    // A service started after the ban refuses the old token from its first request.
    let late = testkit::tickets(fresh_mongo("tickets"), &nats, &session, &stop).await;
    let cookie = stolen.cookie_header();
    let late_answer = late.http.post("/api/tickets", Some(&cookie), &json!({"title": "Late", "price": 1})).await;
    assert_eq!(late_answer.status(), 401);
    let late_ready: Value = late.http.get("/readyz", None).await.json().await.unwrap();
    assert_eq!(late_ready["checks"]["revocations"], "ok");

    // The banned buyer's reservation is cancelled: the ticket is for sale again.
    let (_, shown) = seller.call("GET", &format!("/api/tickets/{}", ticket["id"].as_str().unwrap()), None).await;
    let released = eventually(WAIT, || async {
        let (_, shown) = seller.call("GET", &format!("/api/tickets/{}", ticket["id"].as_str().unwrap()), None).await;
        shown.get("orderId").is_none().then_some(shown)
    })
    .await;
    assert!(released.is_some(), "the ticket was released (it was {shown})");
    let (_, listed) = seller.call("GET", &format!("/api/query/tickets/{}", ticket["id"].as_str().unwrap()), None).await;
    let available = eventually(WAIT, || async {
        let (_, listed) =
            seller.call("GET", &format!("/api/query/tickets/{}", ticket["id"].as_str().unwrap()), None).await;
        (listed["status"] == "available").then_some(())
    })
    .await;
    assert!(available.is_some(), "the listing shows it available again (it was {listed})");

    // Unban: the user signs in again; the old token stays refused everywhere.
    let (status, _) = admin.call("DELETE", &format!("/api/users/{}/ban", user["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 200);
    let returning = CourseClient::new(base.clone());
    let (status, _) =
        returning.call("POST", "/api/users/signin", Some(r#"{"email":"buyer@test.com","password":"password"}"#)).await;
    assert_eq!(status, 200);
    let (status, _) = returning.call("POST", "/api/tickets", Some(r#"{"title":"Fresh start","price":2}"#)).await;
    assert_eq!(status, 201, "a token issued after the unban works");
    let (status, _) = stolen.call("GET", "/api/orders", None).await;
    assert_eq!(status, 401, "a token from before the ban stays refused");

    // All of it within each service's NATS permissions (infra/nats_auth.py).
    for (name, started) in services.iter().map(|(n, s)| (*n, s)).chain([("tickets (late)", &late)]) {
        assert_eq!(started.http.nats_permission_denials().await, 0, "{name}");
    }
}
