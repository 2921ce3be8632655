//! The tickets database: the `tickets` collection (this service owns tickets), the
//! outbox, and `order_marks`, which remembers which orders were seen created or cancelled.
//!
//! Every change writes the ticket and its event in one transaction, and bumps the version
//! by exactly one with a conditional update on the version it read.

use bson::oid::ObjectId;
use bson::{Document, doc};
use common::events::outbox::{Outbox, Staged};
use common::events::versioning::owner_filter;
use common::events::{TicketCreated, TicketUpdated};
use common::money::Price;
use futures::TryStreamExt;
use mongodb::options::{FindOneAndUpdateOptions, ReturnDocument};
use mongodb::{Client, ClientSession, Collection, Database};
use serde::{Deserialize, Serialize};

/// A stored ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub title: String,
    #[serde(rename = "priceCents", with = "common::money::cents")]
    pub price: Price,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub version: i64,
    /// The order holding the reservation, while reserved.
    #[serde(rename = "orderId", default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl Ticket {
    fn updated_event(&self) -> TicketUpdated {
        TicketUpdated {
            id: self.id.to_hex(),
            version: self.version,
            title: self.title.clone(),
            price: self.price,
            user_id: self.user_id.clone(),
            order_id: self.order_id.clone(),
        }
    }
}

/// What happened to an order event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The ticket changed and `ticket.updated` was staged.
    Changed(Ticket),
    /// Nothing to do (already applied, or the order was cancelled before it was seen
    /// created, or the cancelled order does not hold the ticket).
    Unchanged,
    /// The ticket is held by another order whose cancellation has not arrived yet.
    HeldByAnother(String),
    /// No such ticket.
    UnknownTicket,
}

/// Marks of the orders this service has seen, so a cancellation that overtakes its
/// creation (they travel on different consumers) is not lost.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OrderMark {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    cancelled: bool,
}

/// The tickets database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    tickets: Collection<Ticket>,
    marks: Collection<OrderMark>,
    outbox: Outbox,
}

/// Most tickets `GET /api/tickets` returns; the query service paginates the full list.
pub const LIST_LIMIT: i64 = 1000;

impl Store {
    pub fn new(db: &Database, outbox: Outbox) -> Self {
        Self {
            client: db.client().clone(),
            tickets: db.collection("tickets"),
            marks: db.collection("order_marks"),
            outbox,
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let index = mongodb::IndexModel::builder().keys(doc! { "orderId": 1, "_id": 1 }).build();
        self.tickets.create_index(index).await?;
        self.outbox.ensure_indexes().await
    }

    pub async fn find(&self, id: ObjectId) -> mongodb::error::Result<Option<Ticket>> {
        self.tickets.find_one(doc! { "_id": id }).await
    }

    /// Tickets not reserved, oldest first.
    pub async fn list_available(&self) -> mongodb::error::Result<Vec<Ticket>> {
        self.tickets.find(doc! { "orderId": null }).sort(doc! { "_id": 1 }).limit(LIST_LIMIT).await?.try_collect().await
    }

    /// Creates a ticket at version 0 and stages `ticket.created`.
    pub async fn create(&self, title: String, price: Price, user_id: String) -> mongodb::error::Result<Ticket> {
        let ticket = Ticket { id: ObjectId::new(), title, price, user_id, version: 0, order_id: None };
        let event = TicketCreated {
            id: ticket.id.to_hex(),
            version: 0,
            title: ticket.title.clone(),
            price,
            user_id: ticket.user_id.clone(),
        };
        let (this, doc) = (self.clone(), ticket.clone());
        let staged = common::mongo::transaction(&self.client, async move |session| {
            this.tickets.insert_one(&doc).session(&mut *session).await?;
            this.outbox.stage(session, &event).await
        })
        .await?;
        self.outbox.committed([staged]);
        Ok(ticket)
    }

    /// Changes title and price of `ticket` if it is still at its version and not
    /// reserved; `None` when it changed in between (the caller re-reads and decides again).
    pub async fn update(&self, ticket: &Ticket, title: String, price: Price) -> mongodb::error::Result<Option<Ticket>> {
        let mut filter = owner_filter(ticket.id, ticket.version);
        filter.insert("orderId", bson::Bson::Null);
        let update = doc! { "$set": { "title": &title, "priceCents": price.cents() }, "$inc": { "version": 1 } };
        let next = Ticket { title, price, version: ticket.version + 1, ..ticket.clone() };
        self.change(filter, update, next).await
    }

    /// Applies a conditional change and stages `ticket.updated` for the new state, in one
    /// transaction. `None` if the filter no longer matches.
    async fn change(&self, filter: Document, update: Document, next: Ticket) -> mongodb::error::Result<Option<Ticket>> {
        let this = self.clone();
        let changed = common::mongo::transaction(&self.client, async move |session| {
            change_in(session, &this.tickets, &this.outbox, filter.clone(), update.clone(), next.clone()).await
        })
        .await?;
        Ok(changed.map(|(ticket, staged)| {
            self.outbox.committed([staged]);
            ticket
        }))
    }

    /// `order.created`: reserves the ticket for the order and stages `ticket.updated`.
    pub async fn reserve(&self, ticket_id: ObjectId, order_id: &str) -> mongodb::error::Result<Reservation> {
        let (this, order_id) = (self.clone(), order_id.to_owned());
        let outcome = common::mongo::transaction(&self.client, async move |session| {
            // Writing the mark makes a concurrent `release` of the same order conflict with
            // this transaction instead of slipping past it.
            let mark = mark_order(session, &this.marks, &order_id, doc! { "seenCreated": true }).await?;
            if mark.cancelled {
                return Ok((Reservation::Unchanged, None));
            }
            // The claim and the read of the new state in one round trip: the update only
            // matches a free ticket, and increments the version exactly once.
            let claimed = this
                .tickets
                .find_one_and_update(
                    doc! { "_id": ticket_id, "orderId": null },
                    doc! { "$set": { "orderId": &order_id }, "$inc": { "version": 1 } },
                )
                .return_document(ReturnDocument::After)
                .session(&mut *session)
                .await?;
            if let Some(ticket) = claimed {
                let staged = this.outbox.stage(session, &ticket.updated_event()).await?;
                return Ok((Reservation::Changed(ticket), Some(staged)));
            }
            // Not free: why (a redelivery, another holder, no such ticket). The snapshot
            // is the claim's, so the ticket is held here.
            let Some(ticket) = this.tickets.find_one(doc! { "_id": ticket_id }).session(&mut *session).await? else {
                return Ok((Reservation::UnknownTicket, None));
            };
            Ok((
                match ticket.order_id {
                    Some(holder) if holder == order_id => Reservation::Unchanged,
                    Some(holder) => Reservation::HeldByAnother(holder),
                    None => Reservation::Unchanged,
                },
                None,
            ))
        })
        .await?;
        let (outcome, staged) = outcome;
        self.outbox.committed(staged);
        Ok(outcome)
    }

    /// `order.cancelled`: releases the ticket only if this order holds it.
    pub async fn release(&self, ticket_id: ObjectId, order_id: &str) -> mongodb::error::Result<Reservation> {
        let (this, order_id) = (self.clone(), order_id.to_owned());
        let outcome = common::mongo::transaction(&self.client, async move |session| {
            mark_order(session, &this.marks, &order_id, doc! { "cancelled": true }).await?;
            let Some(ticket) = this.tickets.find_one(doc! { "_id": ticket_id }).session(&mut *session).await? else {
                return Ok((Reservation::UnknownTicket, None));
            };
            if ticket.order_id.as_deref() != Some(order_id.as_str()) {
                return Ok((Reservation::Unchanged, None));
            }
            let filter = doc! { "_id": ticket.id, "version": ticket.version, "orderId": &order_id };
            let update = doc! { "$unset": { "orderId": "" }, "$inc": { "version": 1 } };
            let next = Ticket { order_id: None, version: ticket.version + 1, ..ticket };
            Ok(match change_in(session, &this.tickets, &this.outbox, filter, update, next).await? {
                Some((ticket, staged)) => (Reservation::Changed(ticket), Some(staged)),
                None => (Reservation::Unchanged, None),
            })
        })
        .await?;
        let (outcome, staged) = outcome;
        self.outbox.committed(staged);
        Ok(outcome)
    }
}

async fn change_in(
    session: &mut ClientSession,
    tickets: &Collection<Ticket>,
    outbox: &Outbox,
    filter: Document,
    update: Document,
    next: Ticket,
) -> mongodb::error::Result<Option<(Ticket, Staged)>> {
    let result = tickets.update_one(filter, update).session(&mut *session).await?;
    if result.matched_count == 0 {
        return Ok(None);
    }
    let staged = outbox.stage(session, &next.updated_event()).await?;
    Ok(Some((next, staged)))
}

async fn mark_order(
    session: &mut ClientSession,
    marks: &Collection<OrderMark>,
    order_id: &str,
    set: Document,
) -> mongodb::error::Result<OrderMark> {
    let options = FindOneAndUpdateOptions::builder().upsert(true).return_document(ReturnDocument::After).build();
    let mut set = set;
    // When the mark was last needed: pruned after the retention period (common::retention).
    set.insert("updatedAt", bson::DateTime::now());
    let mark = marks
        .find_one_and_update(doc! { "_id": order_id }, doc! { "$set": set })
        .with_options(options)
        .session(&mut *session)
        .await?;
    Ok(mark.unwrap_or_else(|| OrderMark { id: order_id.to_owned(), cancelled: false }))
}
