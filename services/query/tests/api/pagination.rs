use std::collections::HashSet;

use common::testing::{envelope, eventually, object_id_hex};
use query::store::{TicketFilter, TicketStatus, TicketView};
use serde_json::Value;

use crate::helpers::{History, WAIT, spawn_app};

#[tokio::test]
async fn paging_while_tickets_are_added_neither_skips_nor_repeats_an_item() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let mut existing = HashSet::new();
    for n in 0..25 {
        existing.insert(history.ticket(&format!("ticket {n}"), 100).await);
    }
    eventually(WAIT, || async { (app.all_tickets("").await.len() == 25).then_some(()) }).await.expect("25 tickets");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/query/tickets?limit=7&cursor={c}"),
            None => "/api/query/tickets?limit=7".to_owned(),
        };
        let page: Value = app.http.get(&path, None).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        seen.extend(items.iter().map(|t| t["id"].as_str().unwrap().to_owned()));
        // New tickets keep arriving between pages.
        history.ticket(&format!("new {added}"), 100).await;
        added += 1;
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(added < 50, "pagination must end");
    }

    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no item repeated");
    assert!(existing.iter().all(|id| unique.contains(id)), "every ticket that existed was listed");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "a stable order");
}

#[tokio::test]
async fn tickets_filter_by_status_and_by_title_words_ignoring_case() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let rock = history.ticket("Rock Concert", 100).await;
    let jazz = history.ticket("Jazz concert", 100).await;
    let opera = history.ticket("Opera night", 100).await;
    history.order(&object_id_hex(), &jazz).await;
    app.wait_for_ticket(&jazz, |t| t["status"] == "reserved").await;
    app.wait_for_ticket(&rock, |_| true).await;
    app.wait_for_ticket(&opera, |_| true).await;

    let ids = |items: Vec<Value>| items.iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(app.all_tickets("&q=CONCERT").await), vec![rock.clone(), jazz.clone()]);
    assert_eq!(ids(app.all_tickets("&q=rock%20concert").await), vec![rock.clone()]);
    assert_eq!(ids(app.all_tickets("&status=reserved").await), vec![jazz.clone()]);
    assert_eq!(ids(app.all_tickets("&status=available&q=concert").await), vec![rock]);
    assert!(app.all_tickets("&status=sold").await.is_empty());
}

#[tokio::test]
async fn concurrent_requests_for_one_page_share_one_read_and_a_later_one_reads_again() {
    let app = spawn_app().await;
    let history = History { bus: &app.bus };
    let tickets = [history.ticket("One", 100).await, history.ticket("Two", 100).await];
    for id in &tickets {
        app.wait_for_ticket(id, |_| true).await;
    }
    let db = common::mongo::connect(&app.config.mongo, "query-test").await.expect("the read model's database");
    let store = query::store::Store::new(&db);
    let page = TicketFilter { status: Some(TicketStatus::Available), limit: 21, ..TicketFilter::default() };

    // A current-thread runtime: every request below is made before the first read runs.
    let answers = futures::future::join_all((0..32).map(|_| store.tickets(&page))).await;
    let ids = |page: &Vec<TicketView>| page.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    let first = ids(answers[0].as_ref().expect("the page"));
    assert_eq!(first, tickets.to_vec());
    assert!(answers.iter().all(|answer| ids(answer.as_ref().expect("the page")) == first), "one answer for all");
    assert_eq!(store.shared_reads().started(), 1, "32 requests, one read");
    assert_eq!(store.shared_reads().in_flight(), 0, "a finished read is not reused");

    // Once that read is over, the next request reads again and sees what changed since.
    history.order(&object_id_hex(), &tickets[0]).await;
    app.wait_for_ticket(&tickets[0], |t| t["status"] == "reserved").await;
    assert_eq!(ids(&store.tickets(&page).await.expect("the page")), vec![tickets[1].clone()]);
    assert_eq!(store.shared_reads().started(), 2);

    // Different pages are different reads.
    let other = TicketFilter { status: Some(TicketStatus::Reserved), ..page.clone() };
    let (available, reserved) = tokio::join!(store.tickets(&page), store.tickets(&other));
    assert_eq!(ids(&available.expect("available")), vec![tickets[1].clone()]);
    assert_eq!(ids(&reserved.expect("reserved")), vec![tickets[0].clone()]);
    assert_eq!(store.shared_reads().started(), 4);
}

#[tokio::test]
async fn bad_list_parameters_are_400s_naming_them() {
    let app = spawn_app().await;

    for (query, field) in [
        ("status=gone", "status"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%25%25", "cursor"),
        ("cursor=A", "cursor"),
        ("status=", "status"),
        (&format!("q={}", "word%20".repeat(67)), "q"),
    ] {
        let response = app.http.get(&format!("/api/query/tickets?{query}"), None).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(envelope(response).await[0].1.as_deref(), Some(field), "{query}");
    }
    let injected = app.http.get("/api/query/tickets?q[$gt]=&status[$ne]=x", None).await;
    assert_eq!(injected.status(), 200, "operator-looking keys are just unknown parameters");
}
