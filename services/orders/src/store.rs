//! The orders database: `orders` (owned here), `tickets` (a replica fed by ticket events,
//! plus the reservation slot this service owns), and the outbox.
//!
//! Reservation is one transaction: claim the replica's empty `reservedBy` slot with a
//! conditional write, insert the order, stage `order.created`. Concurrent claims on one
//! ticket conflict, so exactly one order gets it. Cancelling frees the slot in the same
//! transaction that cancels the order; completing keeps it (the ticket is sold).

use bson::doc;
use bson::oid::ObjectId;
use common::events::outbox::Outbox;
use common::events::versioning::{ReplicaOutcome, apply_to_replica, owner_filter};
use common::events::{
    OrderCancelled, OrderCompleted, OrderCreated, OrderStatus, OrderTicket, TicketCreated, TicketRef, TicketUpdated,
};
use common::money::Price;
use futures::TryStreamExt;
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// The local copy of a ticket, and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketReplica {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub title: String,
    #[serde(rename = "priceCents", with = "common::money::cents")]
    pub price: Price,
    pub version: i64,
    /// The order holding the ticket (created or complete), if any.
    #[serde(rename = "reservedBy", default, skip_serializing_if = "Option::is_none")]
    pub reserved_by: Option<String>,
    /// The seller (from the ticket's events), so nobody buys their own ticket.
    #[serde(rename = "userId", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// The outcome of a reservation.
#[derive(Debug, Clone)]
pub enum Reservation {
    Reserved(Order),
    /// Another order holds the ticket.
    Taken,
    /// The buyer already holds the most reservations allowed at once.
    TooMany,
}

/// A stored order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub status: OrderStatus,
    #[serde(rename = "expiresAt")]
    pub expires_at: bson::DateTime,
    pub version: i64,
    #[serde(rename = "ticketId")]
    pub ticket_id: ObjectId,
}

/// The event of a status change.
#[derive(Debug, Clone)]
enum StatusEvent {
    Cancelled(OrderCancelled),
    Completed(OrderCompleted),
}

impl StatusEvent {
    fn status(&self) -> OrderStatus {
        match self {
            Self::Cancelled(_) => OrderStatus::Cancelled,
            Self::Completed(_) => OrderStatus::Complete,
        }
    }
}

/// The orders database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    orders: Collection<Order>,
    tickets: Collection<TicketReplica>,
    /// One document per buyer with the number of its orders `created` (`active`), kept in
    /// the transactions that create and end them; two reservations of one buyer write it
    /// and so conflict, which makes the per-buyer limit exact.
    buyers: Collection<bson::Document>,
    outbox: Outbox,
}

impl Store {
    pub fn new(db: &Database, outbox: Outbox) -> Self {
        Self {
            client: db.client().clone(),
            orders: db.collection("orders"),
            tickets: db.collection("tickets"),
            buyers: db.collection("buyers"),
            outbox,
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.orders.create_index(IndexModel::builder().keys(doc! { "userId": 1, "_id": 1 }).build()).await?;
        self.orders.create_index(IndexModel::builder().keys(doc! { "userId": 1, "status": 1 }).build()).await?;
        self.outbox.ensure_indexes().await
    }

    pub async fn find_ticket(&self, id: ObjectId) -> mongodb::error::Result<Option<TicketReplica>> {
        self.tickets.find_one(doc! { "_id": id }).await
    }

    pub async fn find_order(&self, id: ObjectId) -> mongodb::error::Result<Option<Order>> {
        self.orders.find_one(doc! { "_id": id }).await
    }

    /// The user's orders, oldest first, each with its ticket replica.
    pub async fn orders_of(&self, user_id: &str) -> mongodb::error::Result<Vec<(Order, Option<TicketReplica>)>> {
        let orders: Vec<Order> =
            self.orders.find(doc! { "userId": user_id }).sort(doc! { "_id": 1 }).await?.try_collect().await?;
        let ids: Vec<ObjectId> = orders.iter().map(|o| o.ticket_id).collect();
        let tickets: Vec<TicketReplica> =
            self.tickets.find(doc! { "_id": { "$in": ids } }).await?.try_collect().await?;
        Ok(orders
            .into_iter()
            .map(|order| {
                let ticket = tickets.iter().find(|t| t.id == order.ticket_id).cloned();
                (order, ticket)
            })
            .collect())
    }

    /// Reserves `ticket` for a new order of `user_id`, who may hold at most `max_active`
    /// reservations (orders `created`) at once.
    pub async fn reserve(
        &self,
        user_id: &str,
        ticket: &TicketReplica,
        expires_at: time::OffsetDateTime,
        max_active: u64,
    ) -> mongodb::error::Result<Reservation> {
        let order = Order {
            id: ObjectId::new(),
            user_id: user_id.to_owned(),
            status: OrderStatus::Created,
            expires_at: bson::DateTime::from_millis((expires_at.unix_timestamp_nanos() / 1_000_000) as i64),
            version: 0,
            ticket_id: ticket.id,
        };
        let event = OrderCreated {
            id: order.id.to_hex(),
            version: 0,
            status: OrderStatus::Created,
            user_id: order.user_id.clone(),
            expires_at: rfc3339(order.expires_at),
            ticket: OrderTicket { id: ticket.id.to_hex(), price: ticket.price },
        };
        let this = self.clone();
        let reserved = common::mongo::transaction(&self.client, async move |session| {
            let active = this
                .buyers
                .find_one(doc! { "_id": &order.user_id })
                .session(&mut *session)
                .await?
                .and_then(|buyer| buyer.get_i64("active").ok())
                .unwrap_or(0);
            if u64::try_from(active).unwrap_or(0) >= max_active {
                return Ok(Reservation::TooMany);
            }
            // The atomic claim: only an empty slot can be taken. Concurrent claims on one
            // ticket write the same document, so all but one transaction conflict and
            // retry, then find the slot taken.
            let claim = this
                .tickets
                .update_one(
                    doc! { "_id": order.ticket_id, "reservedBy": null },
                    doc! { "$set": { "reservedBy": order.id.to_hex() } },
                )
                .session(&mut *session)
                .await?;
            if claim.modified_count == 0 {
                return Ok(Reservation::Taken);
            }
            this.orders.insert_one(&order).session(&mut *session).await?;
            // A concurrent reservation of the same buyer writes this document too: one of
            // the two conflicts, retries, and reads the other's count.
            this.buyers
                .update_one(doc! { "_id": &order.user_id }, doc! { "$inc": { "active": 1_i64 } })
                .upsert(true)
                .session(&mut *session)
                .await?;
            this.outbox.stage(session, &event).await?;
            Ok(Reservation::Reserved(order.clone()))
        })
        .await?;
        if matches!(reserved, Reservation::Reserved(_)) {
            self.outbox.notify();
        }
        Ok(reserved)
    }

    /// The user's orders still `created` (reserved, unpaid).
    pub async fn pending_orders_of(&self, user_id: &str) -> mongodb::error::Result<Vec<Order>> {
        self.orders.find(doc! { "userId": user_id, "status": OrderStatus::Created.as_str() }).await?.try_collect().await
    }

    /// Cancels a `created` order at its version and frees its ticket. `None` if the order
    /// changed meanwhile (the caller re-reads and decides again).
    pub async fn cancel(&self, order: &Order) -> mongodb::error::Result<Option<Order>> {
        let ticket = TicketRef { id: order.ticket_id.to_hex() };
        let event =
            StatusEvent::Cancelled(OrderCancelled { id: order.id.to_hex(), version: order.version + 1, ticket });
        self.transition(order, event).await
    }

    /// Completes a `created` order at its version (it was paid); the ticket stays held.
    pub async fn complete(&self, order: &Order) -> mongodb::error::Result<Option<Order>> {
        let ticket = TicketRef { id: order.ticket_id.to_hex() };
        let event =
            StatusEvent::Completed(OrderCompleted { id: order.id.to_hex(), version: order.version + 1, ticket });
        self.transition(order, event).await
    }

    /// Moves a `created` order on with a conditional update at its version, frees the
    /// ticket slot on cancellation, and stages the event, in one transaction.
    async fn transition(&self, order: &Order, event: StatusEvent) -> mongodb::error::Result<Option<Order>> {
        let next = Order { status: event.status(), version: order.version + 1, ..order.clone() };
        let mut filter = owner_filter(order.id, order.version);
        filter.insert("status", OrderStatus::Created.as_str());
        let update = doc! { "$set": { "status": next.status.as_str() }, "$inc": { "version": 1 } };
        let this = self.clone();
        let changed = common::mongo::transaction(&self.client, async move |session| {
            let moved = this.orders.update_one(filter.clone(), update.clone()).session(&mut *session).await?;
            if moved.matched_count == 0 {
                return Ok(None);
            }
            // No longer `created`: one active reservation less for the buyer.
            this.buyers
                .update_one(
                    doc! { "_id": &next.user_id, "active": { "$gt": 0_i64 } },
                    doc! { "$inc": { "active": -1_i64 } },
                )
                .session(&mut *session)
                .await?;
            match &event {
                StatusEvent::Cancelled(cancelled) => {
                    this.tickets
                        .update_one(
                            doc! { "_id": next.ticket_id, "reservedBy": next.id.to_hex() },
                            doc! { "$unset": { "reservedBy": "" } },
                        )
                        .session(&mut *session)
                        .await?;
                    this.outbox.stage(session, cancelled).await?;
                }
                StatusEvent::Completed(completed) => {
                    this.outbox.stage(session, completed).await?;
                }
            }
            Ok(Some(next.clone()))
        })
        .await?;
        if changed.is_some() {
            self.outbox.notify();
        }
        Ok(changed)
    }

    /// `ticket.created`: the replica starts at the event's version. A redelivery finds it
    /// there already and changes nothing.
    pub async fn insert_ticket(&self, event: &TicketCreated, id: ObjectId) -> mongodb::error::Result<()> {
        let replica = TicketReplica {
            id,
            title: event.title.clone(),
            price: event.price,
            version: event.version,
            reserved_by: None,
            user_id: Some(event.user_id.clone()),
        };
        common::mongo::insert_once(&self.tickets, &replica).await.map(drop)
    }

    /// `ticket.updated`: applied only as the direct successor of the replica's version.
    pub async fn update_ticket(&self, event: &TicketUpdated, id: ObjectId) -> mongodb::error::Result<ReplicaOutcome> {
        apply_to_replica(
            &self.tickets,
            None,
            id,
            event.version,
            doc! { "title": &event.title, "priceCents": event.price.cents(), "userId": &event.user_id },
        )
        .await
    }
}

/// RFC 3339 with milliseconds, UTC (`2026-01-01T00:00:00.000Z`).
pub fn rfc3339(at: bson::DateTime) -> String {
    at.try_to_rfc3339_string().unwrap_or_default()
}
