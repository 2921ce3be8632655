//! The consistency audit: reads every service's database (as an operator tool) and the
//! dead-letter stream, and reports each way the platform's promises could be broken.
//!
//! - a ticket reserved (in tickets) by an order that is not active (in orders);
//! - an active order (created or complete) whose ticket is not reserved by it;
//! - two active orders for one ticket (double booking);
//! - a successful charge whose order is neither complete nor cancelled-and-refunded;
//! - a charge for a cancelled order without a refund;
//! - a refund still due, or a charge attempt whose outcome is still unknown;
//! - the query view disagreeing with the owners (ticket status and holder, order status);
//! - the blog's comments, decisions and query view disagreeing ([`blog`]);
//! - any message in the dead-letter stream.
//!
//! Run it when the system is quiet: in-flight events make a busy system look inconsistent
//! for a few milliseconds. `audit` prints the findings as JSON and exits 1 if any.

pub mod blog;

use std::collections::{HashMap, HashSet};

use bson::{Document, doc};
use futures::TryStreamExt;
use serde::Serialize;

/// Where each service keeps its data.
#[derive(Debug, Clone)]
pub struct Databases {
    pub tickets: mongodb::Database,
    pub orders: mongodb::Database,
    pub payments: mongodb::Database,
    pub query: mongodb::Database,
    /// The blog's databases, when it is audited too.
    pub blog: Option<blog::BlogDatabases>,
}

/// One inconsistency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: &'static str,
    pub detail: String,
}

/// Counts of what was read, and what was wrong.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub tickets: usize,
    pub orders: usize,
    pub payments: usize,
    pub posts: usize,
    pub comments: usize,
    pub dead_letters: u64,
    pub findings: Vec<Finding>,
}

async fn all(db: &mongodb::Database, collection: &str) -> mongodb::error::Result<Vec<Document>> {
    db.collection::<Document>(collection).find(doc! {}).await?.try_collect().await
}

fn id(d: &Document) -> String {
    match d.get("_id") {
        Some(bson::Bson::ObjectId(oid)) => oid.to_hex(),
        Some(bson::Bson::String(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn ticket_of(order: &Document) -> Option<String> {
    order.get_object_id("ticketId").ok().map(|t| t.to_hex())
}

fn s<'a>(d: &'a Document, key: &str) -> Option<&'a str> {
    d.get_str(key).ok()
}

/// Runs every check against the databases; `dead_letters` is the DEADLETTER stream's
/// message count.
pub async fn audit(dbs: &Databases, dead_letters: u64) -> anyhow::Result<Report> {
    let tickets = all(&dbs.tickets, "tickets").await?;
    let orders = all(&dbs.orders, "orders").await?;
    let payments = all(&dbs.payments, "payments").await?;
    let query_tickets = all(&dbs.query, "tickets").await?;
    let query_orders = all(&dbs.query, "orders").await?;
    let mut findings = Vec::new();
    let mut find = |kind: &'static str, detail: String| findings.push(Finding { kind, detail });

    let order_by_id: HashMap<String, &Document> = orders.iter().map(|o| (id(o), o)).collect();
    let ticket_by_id: HashMap<String, &Document> = tickets.iter().map(|t| (id(t), t)).collect();
    let active = |o: &Document| matches!(s(o, "status"), Some("created" | "complete"));

    for ticket in &tickets {
        if let Some(holder) = s(ticket, "orderId") {
            match order_by_id.get(holder) {
                Some(order) if active(order) => {}
                Some(order) => find(
                    "ticket_held_by_inactive_order",
                    format!(
                        "ticket {} held by order {holder} which is {}",
                        id(ticket),
                        s(order, "status").unwrap_or("?")
                    ),
                ),
                None => find(
                    "ticket_held_by_unknown_order",
                    format!("ticket {} held by unknown order {holder}", id(ticket)),
                ),
            }
        }
    }
    let mut active_by_ticket: HashMap<String, Vec<String>> = HashMap::new();
    for order in orders.iter().filter(|o| active(o)) {
        let Some(ticket_id) = ticket_of(order) else { continue };
        active_by_ticket.entry(ticket_id.clone()).or_default().push(id(order));
        let held_by = ticket_by_id.get(&ticket_id).and_then(|t| s(t, "orderId"));
        if held_by != Some(id(order).as_str()) {
            find(
                "active_order_not_holding_ticket",
                format!(
                    "order {} ({}) but ticket {ticket_id} is held by {held_by:?}",
                    id(order),
                    s(order, "status").unwrap_or("?")
                ),
            );
        }
    }
    for (ticket, holders) in &active_by_ticket {
        if holders.len() > 1 {
            find("double_booking", format!("ticket {ticket} has active orders {holders:?}"));
        }
    }
    for payment in &payments {
        let order_id = s(payment, "orderId").unwrap_or_default();
        if payment.get_bool("refundDue").unwrap_or(false) {
            let attempts = payment.get_i64("refundAttempts").unwrap_or(0);
            find("refund_due", format!("order {order_id}: a refund is still due after {attempts} failed tries"));
        }
        if s(payment, "state") == Some("unknown") {
            find("charge_outcome_unknown", format!("order {order_id}: a charge attempt's outcome is still unknown"));
        }
    }
    for payment in payments.iter().filter(|p| s(p, "state") == Some("succeeded")) {
        let order_id = s(payment, "orderId").unwrap_or_default();
        let refunded = payment.get_str("refundId").is_ok();
        match order_by_id.get(order_id).and_then(|o| s(o, "status")) {
            Some("complete") if !refunded => {}
            Some("cancelled") if refunded => {}
            Some("cancelled") => {
                find("charge_kept_for_cancelled_order", format!("order {order_id} cancelled, charge not refunded"));
            }
            status => find(
                "paid_order_not_complete",
                format!("order {order_id} charged but {status:?} (refunded: {refunded})"),
            ),
        }
    }

    // What query should say of a ticket, from the owners: sold once an order for it is
    // complete, reserved while one is created.
    let expected_status = |ticket_id: &str| -> (&'static str, Option<String>) {
        let holders: Vec<&Document> =
            orders.iter().filter(|o| active(o) && ticket_of(o).as_deref() == Some(ticket_id)).collect();
        if let Some(sold) = holders.iter().find(|o| s(o, "status") == Some("complete")) {
            return ("sold", Some(id(sold)));
        }
        match holders.first() {
            Some(order) => ("reserved", Some(id(order))),
            None => ("available", None),
        }
    };
    let query_tickets_by_id: HashMap<String, &Document> = query_tickets.iter().map(|t| (id(t), t)).collect();
    for ticket in &tickets {
        let ticket_id = id(ticket);
        let Some(view) = query_tickets_by_id.get(&ticket_id) else {
            find("query_missing_ticket", format!("ticket {ticket_id} is not in the query view"));
            continue;
        };
        let (status, holder) = expected_status(&ticket_id);
        if s(view, "status") != Some(status) || s(view, "orderId").map(str::to_owned) != holder {
            find(
                "query_ticket_disagrees",
                format!(
                    "ticket {ticket_id}: query says {:?}/{:?}, owners say {status}/{holder:?}",
                    s(view, "status"),
                    s(view, "orderId")
                ),
            );
        }
        if view.get_str("title").ok() != ticket.get_str("title").ok() {
            find("query_ticket_disagrees", format!("ticket {ticket_id}: title differs"));
        }
    }
    let query_order_status: HashMap<String, Option<&str>> =
        query_orders.iter().map(|o| (id(o), s(o, "status"))).collect();
    let known_orders: HashSet<&String> = order_by_id.keys().collect();
    for (order_id, order) in &order_by_id {
        match query_order_status.get(order_id) {
            Some(status) if *status == s(order, "status") => {}
            Some(status) => find(
                "query_order_disagrees",
                format!("order {order_id}: query says {status:?}, orders says {:?}", s(order, "status")),
            ),
            None => find("query_missing_order", format!("order {order_id} is not in the query view")),
        }
    }
    for order_id in query_order_status.keys().filter(|id| !known_orders.contains(id)) {
        find("query_unknown_order", format!("order {order_id} is in the query view only"));
    }
    if dead_letters > 0 {
        find("dead_letters", format!("{dead_letters} message(s) in the dead-letter stream"));
    }
    let blog = match &dbs.blog {
        Some(blog_dbs) => blog::audit(blog_dbs, &dbs.query).await?,
        None => blog::BlogAudit::default(),
    };
    findings.extend(blog.findings);
    Ok(Report {
        tickets: tickets.len(),
        orders: orders.len(),
        payments: payments.len(),
        posts: blog.posts,
        comments: blog.comments,
        dead_letters,
        findings,
    })
}

/// The number of messages in the dead-letter stream (0 when it does not exist).
pub async fn dead_letter_count(bus: &common::events::EventBus) -> anyhow::Result<u64> {
    let name = bus.namespace().stream(common::events::StreamName::DeadLetter);
    match bus.jetstream().get_stream(&name).await {
        Ok(mut stream) => Ok(stream.info().await?.state.messages),
        Err(_) => Ok(0),
    }
}
