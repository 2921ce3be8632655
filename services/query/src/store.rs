//! The read model, built only from events: `tickets` (with a derived status), `orders`,
//! `payments`.
//!
//! - A ticket's **status** is derived from the orders for it: `sold` once one of them is
//!   complete, `reserved` while one is created, `available` otherwise. Every order change
//!   and the ticket's status are written in one transaction that writes the ticket
//!   document, so two order events for one ticket cannot interleave into a stale status.
//! - **Payments** are kept in their own collection and joined when orders are read, so a
//!   `payment.created` that arrives before its order is never lost.
//! - Titles are also stored as lower-case words for case-insensitive word search.
//! - **Listing reads are shared**: requests for the same page that arrive while a read of
//!   it is in flight get that read's answer instead of starting their own
//!   ([`SharedReads`]). In a sale every buyer asks for the same first page at once. Such an
//!   answer is at most one read's duration older than a read of its own would be; the
//!   read model is asynchronous anyway, behind its events by more than that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bson::{Document, doc};
use common::events::versioning::{ReplicaOutcome, apply_to_replica};
use common::events::{OrderCreated, OrderStatus, PaymentCreated, TicketCreated, TicketUpdated};
use common::money::Price;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, TryStreamExt};
use mongodb::options::IndexOptions;
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// The collections of the read model (what a rebuild drops), the blog's included
/// ([`crate::blog`]).
pub const COLLECTIONS: [&str; 6] = ["tickets", "orders", "payments", "status_locks", "posts", "comments"];

/// A ticket's sale status in the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    Available,
    Reserved,
    Sold,
}

impl TicketStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "available" => Some(Self::Available),
            "reserved" => Some(Self::Reserved),
            "sold" => Some(Self::Sold),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Reserved => "reserved",
            Self::Sold => "sold",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketView {
    #[serde(rename = "_id")]
    pub id: String,
    pub title: String,
    /// Lower-case words of the title, for search.
    pub words: Vec<String>,
    #[serde(rename = "priceCents", with = "common::money::cents")]
    pub price: Price,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub version: i64,
    pub status: TicketStatus,
    /// The order holding the ticket while reserved or sold.
    #[serde(rename = "orderId", default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub status: OrderStatus,
    pub version: i64,
    #[serde(rename = "expiresAt")]
    pub expires_at: String,
    #[serde(rename = "ticketId")]
    pub ticket_id: String,
    #[serde(rename = "priceCents", with = "common::money::cents")]
    pub price: Price,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "orderId")]
    pub order_id: String,
    #[serde(rename = "chargeId")]
    pub charge_id: String,
}

/// Lower-case words of a title (letters and digits).
pub fn words(text: &str) -> Vec<String> {
    let mut words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    words.sort();
    words.dedup();
    words
}

impl TicketView {
    /// A ticket as first seen: available until its orders say otherwise.
    fn new(id: &str, version: i64, title: &str, price: Price, user_id: &str) -> Self {
        Self {
            id: id.to_owned(),
            title: title.to_owned(),
            words: words(title),
            price,
            user_id: user_id.to_owned(),
            version,
            status: TicketStatus::Available,
            order_id: None,
        }
    }
}

impl From<&TicketCreated> for TicketView {
    fn from(event: &TicketCreated) -> Self {
        Self::new(&event.id, event.version, &event.title, event.price, &event.user_id)
    }
}

impl From<&TicketUpdated> for TicketView {
    fn from(event: &TicketUpdated) -> Self {
        Self::new(&event.id, event.version, &event.title, event.price, &event.user_id)
    }
}

/// A page of tickets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    /// Every word must be in the title.
    pub words: Vec<String>,
    /// Only tickets after this id.
    pub after: Option<String>,
    pub limit: i64,
}

/// The read model. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    db: Database,
    tickets: Collection<TicketView>,
    orders: Collection<OrderView>,
    payments: Collection<PaymentView>,
    locks: Collection<Document>,
    reads: SharedReads,
}

/// One page's read in flight: the task's answer, shared by every request that asked for
/// the page meanwhile.
type PageRead = Shared<BoxFuture<'static, Result<Arc<Vec<TicketView>>, mongodb::error::Error>>>;

/// The listing reads in flight, by page ([`Store::tickets`]). A read runs in its own task,
/// so it completes (and leaves this map) even when every request waiting for it is gone.
#[derive(Clone, Debug, Default)]
pub struct SharedReads {
    in_flight: Arc<Mutex<HashMap<TicketFilter, PageRead>>>,
    started: Arc<std::sync::atomic::AtomicU64>,
}

impl SharedReads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TicketFilter, PageRead>> {
        self.in_flight.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads in flight now.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// Reads started since the store was made (requests that waited for one are not).
    pub fn started(&self) -> u64 {
        self.started.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Takes a finished read out of [`SharedReads`] when dropped.
struct ReadDone {
    reads: SharedReads,
    filter: TicketFilter,
}

impl Drop for ReadDone {
    fn drop(&mut self) {
        self.reads.lock().remove(&self.filter);
    }
}

impl Store {
    pub fn new(db: &Database) -> Self {
        Self {
            client: db.client().clone(),
            db: db.clone(),
            tickets: db.collection("tickets"),
            orders: db.collection("orders"),
            payments: db.collection("payments"),
            locks: db.collection("status_locks"),
            reads: SharedReads::default(),
        }
    }

    /// The listing reads in flight (see [`SharedReads`]).
    pub fn shared_reads(&self) -> &SharedReads {
        &self.reads
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.tickets.create_index(IndexModel::builder().keys(doc! { "status": 1, "_id": 1 }).build()).await?;
        self.tickets.create_index(IndexModel::builder().keys(doc! { "words": 1, "_id": 1 }).build()).await?;
        self.orders.create_index(IndexModel::builder().keys(doc! { "ticketId": 1 }).build()).await?;
        self.orders.create_index(IndexModel::builder().keys(doc! { "userId": 1, "_id": 1 }).build()).await?;
        let unique = IndexOptions::builder().unique(true).build();
        self.payments.create_index(IndexModel::builder().keys(doc! { "orderId": 1 }).options(unique).build()).await?;
        Ok(())
    }

    /// True when the read model holds nothing at all (a fresh or dropped database).
    pub async fn is_empty(&self) -> mongodb::error::Result<bool> {
        for name in COLLECTIONS {
            if self.db.collection::<Document>(name).find_one(doc! {}).await?.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Drops the read model (the rebuild's first step).
    pub async fn drop_all(&self) -> mongodb::error::Result<()> {
        for name in COLLECTIONS {
            self.db.collection::<Document>(name).drop().await?;
        }
        self.ensure_indexes().await?;
        crate::blog::BlogStore::new(&self.db).ensure_indexes().await
    }

    // ---- reads ----

    pub async fn ticket(&self, id: &str) -> mongodb::error::Result<Option<TicketView>> {
        self.tickets.find_one(doc! { "_id": id }).await
    }

    /// Tickets in id order (stable, and new tickets never shift earlier pages). A request
    /// for a page already being read waits for that read ([`SharedReads`]).
    pub async fn tickets(&self, filter: &TicketFilter) -> mongodb::error::Result<Vec<TicketView>> {
        let read = self
            .reads
            .lock()
            .entry(filter.clone())
            .or_insert_with(|| {
                let (this, filter) = (self.clone(), filter.clone());
                self.reads.started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let task = tokio::spawn(async move {
                    // Out of the table however the read ends (a panic included), so a
                    // failed read is never handed to later requests.
                    let _done = ReadDone { reads: this.reads.clone(), filter: filter.clone() };
                    this.read_tickets(&filter).await.map(Arc::new)
                });
                async move {
                    task.await.unwrap_or_else(|err| Err(mongodb::error::Error::custom(Arc::new(err.to_string()))))
                }
                .boxed()
                .shared()
            })
            .clone();
        read.await.map(Arc::unwrap_or_clone)
    }

    async fn read_tickets(&self, filter: &TicketFilter) -> mongodb::error::Result<Vec<TicketView>> {
        let mut query = Document::new();
        if let Some(status) = filter.status {
            query.insert("status", status.as_str());
        }
        if !filter.words.is_empty() {
            query.insert("words", doc! { "$all": &filter.words });
        }
        if let Some(after) = &filter.after {
            query.insert("_id", doc! { "$gt": after });
        }
        self.tickets.find(query).sort(doc! { "_id": 1 }).limit(filter.limit).await?.try_collect().await
    }

    pub async fn order(&self, id: &str) -> mongodb::error::Result<Option<OrderView>> {
        self.orders.find_one(doc! { "_id": id }).await
    }

    pub async fn orders_of(&self, user_id: &str) -> mongodb::error::Result<Vec<OrderView>> {
        self.orders.find(doc! { "userId": user_id }).sort(doc! { "_id": 1 }).await?.try_collect().await
    }

    pub async fn tickets_by_ids(&self, ids: &[String]) -> mongodb::error::Result<Vec<TicketView>> {
        self.tickets.find(doc! { "_id": { "$in": ids } }).await?.try_collect().await
    }

    pub async fn payments_of(&self, order_ids: &[String]) -> mongodb::error::Result<Vec<PaymentView>> {
        self.payments.find(doc! { "orderId": { "$in": order_ids } }).await?.try_collect().await
    }

    // ---- event application ----

    /// `ticket.created` and `ticket.updated`.
    ///
    /// A known ticket follows the versioning rule: an update applies on its direct
    /// predecessor, older ones are stale, newer ones wait for the gap to fill. An update
    /// of a ticket whose creation has not arrived yet creates it instead: the event carries
    /// every field the creation does, so there is nothing to wait for, and the creation is
    /// stale when it comes. Waiting would be costly in a replay, where the `ticket.updated`
    /// consumer runs far ahead of the slower `ticket.created` one and each early update
    /// would be redelivered again and again (see BENCHMARKS.md).
    ///
    /// A new ticket is inserted with its status derived from the orders already known, in
    /// one transaction; if another event inserted it meanwhile, the versioning rule decides.
    pub async fn ticket_state(&self, ticket: TicketView) -> mongodb::error::Result<ReplicaOutcome> {
        for _ in 0..2 {
            if ticket.version > 0 {
                let set = doc! {
                    "title": &ticket.title,
                    "words": &ticket.words,
                    "priceCents": ticket.price.cents(),
                    "userId": &ticket.user_id,
                };
                match apply_to_replica(&self.tickets, None, ticket.id.as_str(), ticket.version, set).await? {
                    ReplicaOutcome::Missing => {}
                    outcome => return Ok(outcome),
                }
            }
            if self.insert_ticket(&ticket).await? {
                return Ok(ReplicaOutcome::Applied);
            }
            if ticket.version == 0 {
                return Ok(ReplicaOutcome::Stale);
            }
        }
        // Inserted by another delivery between the two checks, then removed: only a
        // rebuild's drop does that. Retry.
        Ok(ReplicaOutcome::Missing)
    }

    /// Inserts a new ticket and derives its status, in one transaction; false when it
    /// already exists.
    async fn insert_ticket(&self, ticket: &TicketView) -> mongodb::error::Result<bool> {
        let (tickets, orders, locks) = (self.tickets.clone(), self.orders.clone(), self.locks.clone());
        let ticket = ticket.clone();
        common::mongo::transaction(&self.client, async move |session| {
            if !insert_absent(session, &tickets, &ticket.id, &ticket).await? {
                return Ok(false);
            }
            refresh_status(session, &locks, &tickets, &orders, &ticket.id).await.map(|()| true)
        })
        .await
    }

    /// `order.created`: the order, and its ticket's status.
    pub async fn order_created(&self, event: &OrderCreated) -> mongodb::error::Result<()> {
        let order = OrderView {
            id: event.id.clone(),
            user_id: event.user_id.clone(),
            status: event.status,
            version: event.version,
            expires_at: event.expires_at.clone(),
            ticket_id: event.ticket.id.clone(),
            price: event.ticket.price,
        };
        let (tickets, orders, locks) = (self.tickets.clone(), self.orders.clone(), self.locks.clone());
        common::mongo::transaction(&self.client, async move |session| {
            if !insert_absent(session, &orders, &order.id, &order).await? {
                return Ok(());
            }
            refresh_status(session, &locks, &tickets, &orders, &order.ticket_id).await
        })
        .await
    }

    /// `order.cancelled` / `order.completed`: the status in version order, and the
    /// ticket's status.
    pub async fn order_status(
        &self,
        order_id: &str,
        ticket_id: &str,
        version: i64,
        status: OrderStatus,
    ) -> mongodb::error::Result<ReplicaOutcome> {
        let (tickets, orders, locks) = (self.tickets.clone(), self.orders.clone(), self.locks.clone());
        let (order_id, ticket_id) = (order_id.to_owned(), ticket_id.to_owned());
        common::mongo::transaction(&self.client, async move |session| {
            let set = doc! { "status": status.as_str() };
            let outcome = apply_to_replica(&orders, Some(&mut *session), order_id.as_str(), version, set).await?;
            if outcome == ReplicaOutcome::Applied {
                refresh_status(session, &locks, &tickets, &orders, &ticket_id).await?;
            }
            Ok(outcome)
        })
        .await
    }

    /// `payment.created`: kept, and joined to its order on reads.
    pub async fn payment_created(&self, event: &PaymentCreated) -> mongodb::error::Result<()> {
        let payment =
            PaymentView { id: event.id.clone(), order_id: event.order_id.clone(), charge_id: event.charge_id.clone() };
        common::mongo::insert_once(&self.payments, &payment).await.map(drop)
    }
}

/// Inserts `value` under `id` unless a document with that id exists; true when inserted.
///
/// An upsert that only sets fields on insert, not an insert that may fail: inside a
/// transaction a duplicate-key error aborts the whole transaction (as in mongod), so a
/// redelivered event would fail its transaction instead of being a no-op.
async fn insert_absent<T: Serialize + Send + Sync>(
    session: &mut ClientSession,
    collection: &Collection<T>,
    id: &str,
    value: &T,
) -> mongodb::error::Result<bool> {
    let mut fields = bson::serialize_to_document(value)?;
    fields.remove("_id");
    let result = collection
        .update_one(doc! { "_id": id }, doc! { "$setOnInsert": fields })
        .upsert(true)
        .session(&mut *session)
        .await?;
    Ok(result.upserted_id.is_some())
}

/// Recomputes a ticket's status from its orders, inside the caller's transaction.
///
/// Every refresh of a ticket first writes that ticket's lock document (which exists even
/// before the ticket does, when an order overtakes its ticket). So two transactions that
/// affect one ticket's status always write a common document: one of them conflicts and
/// retries with the other's change visible, and the status never goes stale.
async fn refresh_status(
    session: &mut ClientSession,
    locks: &Collection<Document>,
    tickets: &Collection<TicketView>,
    orders: &Collection<OrderView>,
    ticket_id: &str,
) -> mongodb::error::Result<()> {
    locks
        .update_one(
            doc! { "_id": ticket_id },
            doc! { "$inc": { "changes": 1 }, "$set": { "updatedAt": bson::DateTime::now() } },
        )
        .upsert(true)
        .session(&mut *session)
        .await?;
    let holding: Vec<OrderView> = orders
        .find(doc! { "ticketId": ticket_id, "status": { "$in": [OrderStatus::Created.as_str(), OrderStatus::Complete.as_str()] } })
        .session(&mut *session)
        .await?
        .stream(&mut *session)
        .try_collect()
        .await?;
    let sold = holding.iter().find(|o| o.status == OrderStatus::Complete);
    let (status, order_id) = match (sold, holding.first()) {
        (Some(order), _) => (TicketStatus::Sold, Some(order.id.clone())),
        (None, Some(order)) => (TicketStatus::Reserved, Some(order.id.clone())),
        (None, None) => (TicketStatus::Available, None),
    };
    let update = match order_id {
        Some(order_id) => doc! { "$set": { "status": status.as_str(), "orderId": order_id } },
        None => doc! { "$set": { "status": status.as_str() }, "$unset": { "orderId": "" } },
    };
    tickets.update_one(doc! { "_id": ticket_id }, update).session(&mut *session).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_words_are_lower_case_unique_and_split_on_punctuation() {
        assert_eq!(words("Rock & Roll: Live at the O2, LIVE!"), vec!["at", "live", "o2", "rock", "roll", "the"]);
        assert!(words("  ").is_empty());
    }
}
