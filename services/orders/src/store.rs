//! The orders database: `orders` (owned here), `tickets` (a replica fed by ticket events,
//! plus the reservation slot this service owns), and the outbox.
//!
//! Reservation is one transaction: claim the replica's empty `reservedBy` slot with a
//! conditional write, insert the order, stage `order.created`. Concurrent claims on one
//! ticket conflict, so exactly one order gets it. Cancelling frees the slot in the same
//! transaction that cancels the order; completing keeps it (the ticket is sold).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::doc;
use bson::oid::ObjectId;
use common::events::outbox::Outbox;
use common::events::versioning::{ReplicaOutcome, apply_to_replica, owner_filter};
use common::events::{
    OrderCancelled, OrderCompleted, OrderCreated, OrderStatus, OrderTicket, TicketCreated, TicketRef, TicketUpdated,
};
use common::money::Price;
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
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
    /// Tickets this replica knows to be held, refused without a database read.
    taken: TakenTickets,
    /// One reservation attempt per ticket at a time in this replica.
    claims: Claims,
}

/// Abandons a reservation's transaction: the buyer holds the most reservations allowed.
#[derive(Debug)]
struct TooManyReservations;

impl Store {
    pub fn new(db: &Database, outbox: Outbox) -> Self {
        Self {
            client: db.client().clone(),
            orders: db.collection("orders"),
            tickets: db.collection("tickets"),
            buyers: db.collection("buyers"),
            outbox,
            taken: TakenTickets::default(),
            claims: Claims::default(),
        }
    }

    /// Waits until no other attempt of this replica is reserving `ticket` (see [`Claims`]).
    pub async fn claim(&self, ticket: ObjectId) -> Claim {
        self.claims.claim(ticket).await
    }

    /// The tickets this replica knows to be held (see [`TakenTickets`]).
    pub fn taken(&self) -> &TakenTickets {
        &self.taken
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
            // The atomic claim first: only an empty slot can be taken. Concurrent claims on
            // one ticket write the same document, so all but one transaction conflict and
            // retry, then find the slot taken, having done nothing else.
            let claim = this
                .tickets
                .update_one(
                    doc! { "_id": order.ticket_id, "reservedBy": null },
                    doc! { "$set": { "reservedBy": order.id.to_hex() } },
                )
                .session(&mut *session)
                .await?;
            if claim.modified_count == 0 {
                return Ok((Reservation::Taken, None));
            }
            // The buyer's count, incremented and read in one round trip. A concurrent
            // reservation of the same buyer writes this document too: one of the two
            // conflicts, retries, and counts the other. Over the limit, the transaction is
            // abandoned, so nothing of it is written.
            let active = this
                .buyers
                .find_one_and_update(doc! { "_id": &order.user_id }, doc! { "$inc": { "active": 1_i64 } })
                .upsert(true)
                .return_document(ReturnDocument::After)
                .session(&mut *session)
                .await?
                .and_then(|buyer| buyer.get_i64("active").ok())
                .unwrap_or(1);
            if u64::try_from(active).unwrap_or(u64::MAX) > max_active {
                return Err(mongodb::error::Error::custom(TooManyReservations));
            }
            this.orders.insert_one(&order).session(&mut *session).await?;
            let staged = this.outbox.stage(session, &event).await?;
            Ok((Reservation::Reserved(order.clone()), Some(staged)))
        })
        .await;
        let (reserved, staged) = match reserved {
            Err(err) if err.get_custom::<TooManyReservations>().is_some() => (Reservation::TooMany, None),
            other => other?,
        };
        self.outbox.committed(staged);
        match &reserved {
            Reservation::Reserved(_) | Reservation::Taken => self.taken.insert(ticket.id, ticket.user_id.clone()),
            Reservation::TooMany => {}
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
            let staged = match &event {
                StatusEvent::Cancelled(cancelled) => {
                    this.tickets
                        .update_one(
                            doc! { "_id": next.ticket_id, "reservedBy": next.id.to_hex() },
                            doc! { "$unset": { "reservedBy": "" } },
                        )
                        .session(&mut *session)
                        .await?;
                    this.outbox.stage(session, cancelled).await?
                }
                StatusEvent::Completed(completed) => this.outbox.stage(session, completed).await?,
            };
            Ok(Some((next.clone(), staged)))
        })
        .await?;
        Ok(changed.map(|(order, staged)| {
            self.outbox.committed([staged]);
            if order.status == OrderStatus::Cancelled {
                self.taken.forget(order.ticket_id);
            }
            order
        }))
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

/// Tickets this replica knows to be held, so that the refusals of a sale cost no database
/// read: in a flash sale most reservation attempts are for tickets taken a moment ago,
/// which the buyers' listing still showed as available.
///
/// A ticket is remembered when this replica reserves it or finds it held, for
/// [`TakenTickets::KEPT`], and forgotten as soon as this replica cancels its order. Another
/// replica's cancellation is noticed when the entry lapses: until then this replica refuses
/// a ticket that is free again, never the opposite, so the cache can cost a buyer a retry
/// but never a double booking. At most [`TakenTickets::MAX`] entries are kept.
#[derive(Clone, Debug, Default)]
pub struct TakenTickets(Arc<Mutex<HashMap<ObjectId, Taken>>>);

/// Until when a ticket is known to be held, and whose ticket it is (its seller).
#[derive(Clone, Debug)]
pub struct Taken {
    until: Instant,
    pub seller: Option<String>,
}

impl TakenTickets {
    /// How long a held ticket is remembered.
    pub const KEPT: Duration = Duration::from_secs(1);
    /// The most tickets remembered at once (lapsed entries are dropped first).
    pub const MAX: usize = 100_000;

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, Taken>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The ticket, if it was seen held within the last [`TakenTickets::KEPT`].
    pub fn get(&self, ticket: ObjectId) -> Option<Taken> {
        let now = Instant::now();
        self.entries().get(&ticket).filter(|taken| taken.until > now).cloned()
    }

    /// The ticket was seen held just now.
    pub fn insert(&self, ticket: ObjectId, seller: Option<String>) {
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.len() >= Self::MAX {
            entries.retain(|_, taken| taken.until > now);
            if entries.len() >= Self::MAX {
                entries.clear();
            }
        }
        entries.insert(ticket, Taken { until: now + Self::KEPT, seller });
    }

    /// This replica freed the ticket.
    pub fn forget(&self, ticket: ObjectId) {
        self.entries().remove(&ticket);
    }
}

/// Reservation attempts for one ticket, one at a time within a replica. In a sale dozens
/// of buyers try the same ticket within milliseconds; in the database all but one of their
/// transactions would conflict and retry, each costing round trips on the one server every
/// service shares. Here the first attempt runs, the others wait for it, and find the ticket
/// in [`TakenTickets`] when it won. Attempts through other replicas still meet in the
/// database, where the claim is decided as before: this only saves work.
#[derive(Clone, Debug, Default)]
pub struct Claims(Arc<Mutex<HashMap<ObjectId, Gate>>>);

/// One ticket's turn, and how many attempts hold or wait for it.
#[derive(Debug, Default)]
struct Gate {
    turn: Arc<tokio::sync::Mutex<()>>,
    attempts: usize,
}

/// The right to attempt a reservation of a ticket, until dropped. It exists from the
/// moment an attempt starts waiting, so an attempt abandoned while it waits (the client
/// went away) leaves nothing behind either.
#[derive(Debug)]
pub struct Claim {
    claims: Claims,
    ticket: ObjectId,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Claims {
    fn gates(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectId, Gate>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The longest an attempt waits for those before it. Past it (the database is slow or
    /// away) it goes ahead on its own, so that one stuck attempt cannot queue the others.
    pub const MAX_WAIT: Duration = Duration::from_secs(1);

    /// Waits for the attempts on `ticket` before this one (at most [`Claims::MAX_WAIT`]).
    pub async fn claim(&self, ticket: ObjectId) -> Claim {
        let turn = {
            let mut gates = self.gates();
            let gate = gates.entry(ticket).or_default();
            gate.attempts += 1;
            gate.turn.clone()
        };
        let mut claim = Claim { claims: self.clone(), ticket, held: None };
        claim.held = tokio::time::timeout(Self::MAX_WAIT, turn.lock_owned()).await.ok();
        claim
    }

    /// Tickets with an attempt running or waiting.
    pub fn len(&self) -> usize {
        self.gates().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        drop(self.held.take());
        let mut gates = self.claims.gates();
        if let Some(gate) = gates.get_mut(&self.ticket) {
            gate.attempts -= 1;
            if gate.attempts == 0 {
                gates.remove(&self.ticket);
            }
        }
    }
}

/// RFC 3339 with milliseconds, UTC (`2026-01-01T00:00:00.000Z`).
pub fn rfc3339(at: bson::DateTime) -> String {
    at.try_to_rfc3339_string().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn attempts_on_one_ticket_take_turns_and_leave_nothing_behind() {
        let claims = Claims::default();
        let (hot, other) = (ObjectId::new(), ObjectId::new());
        let first = claims.claim(hot).await;
        let mut second = Box::pin(claims.claim(hot));
        let waited = tokio::time::timeout(Duration::from_millis(10), &mut second).await;
        assert!(waited.is_err(), "the second attempt waits for the first");
        let elsewhere = tokio::time::timeout(Duration::from_millis(1), claims.claim(other)).await;
        assert!(elsewhere.is_ok(), "another ticket does not wait");
        drop(elsewhere);
        drop(first);
        let second = second.await;
        assert!(second.held.is_some(), "the turn passed on");
        drop(second);
        assert!(claims.is_empty(), "no entry outlives its attempts");
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_stuck_longer_than_the_wait_does_not_hold_up_the_next() {
        let claims = Claims::default();
        let ticket = ObjectId::new();
        let stuck = claims.claim(ticket).await;
        let started = tokio::time::Instant::now();
        let next = claims.claim(ticket).await;
        assert_eq!(started.elapsed(), Claims::MAX_WAIT);
        assert!(next.held.is_none(), "it went ahead without the turn");
        drop((stuck, next));
        assert!(claims.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_abandoned_while_it_waits_leaves_nothing_behind() {
        let claims = Claims::default();
        let ticket = ObjectId::new();
        let first = claims.claim(ticket).await;
        let waiting = tokio::time::timeout(Duration::from_millis(10), claims.claim(ticket)).await;
        assert!(waiting.is_err(), "it was waiting, and is abandoned");
        drop(first);
        assert!(claims.is_empty());
    }

    #[test]
    fn a_held_ticket_is_remembered_for_a_second_and_forgotten_when_freed_here() {
        let taken = TakenTickets::default();
        let (ticket, freed) = (ObjectId::new(), ObjectId::new());
        taken.insert(ticket, Some("seller".into()));
        taken.insert(freed, None);
        assert_eq!(taken.get(ticket).and_then(|t| t.seller), Some("seller".into()));
        taken.forget(freed);
        assert!(taken.get(freed).is_none());
        taken.0.lock().unwrap().get_mut(&ticket).unwrap().until = Instant::now();
        assert!(taken.get(ticket).is_none(), "a lapsed entry is not used");
    }
}
