//! The read model, built only from events: `tickets` (with a derived status), `orders`,
//! `payments`.
//!
//! - A ticket's **status** is derived from the orders for it: `sold` once one of them is
//!   complete, `reserved` while one is created, `available` otherwise. Each ticket's
//!   orders are kept as three sets of order ids in one document (`ticket_orders`): an
//!   order event adds its id to its set and counts the change, in one atomic update that
//!   returns the sets; the status derived from them is then written to the ticket only if
//!   no later change was written first ([`Store::record_order`]). Adding to a set commutes
//!   and repeats harmlessly, so events may arrive in any order and more than once, and no
//!   multi-document transaction is needed: two events about one ticket never wait on each
//!   other.
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
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// The collections of the read model (what a rebuild drops), the blog's included
/// ([`crate::blog`]).
///
/// `ticket_orders` first: a replica still running while a rebuild drops them must not
/// find a ticket dropped and re-inserted next to the orders it had before the drop.
pub const COLLECTIONS: [&str; 6] = ["ticket_orders", "tickets", "orders", "payments", "posts", "comments"];

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
    /// The [`TicketOrders::stamp`] the status was derived from; a status derived from
    /// an earlier state of the ticket's orders never overwrites it.
    #[serde(rename = "statusStamp", default)]
    pub status_stamp: i64,
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
            status_stamp: 0,
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
    db: Database,
    tickets: Collection<TicketView>,
    orders: Collection<OrderView>,
    payments: Collection<PaymentView>,
    ticket_orders: Collection<TicketOrders>,
    reads: SharedReads,
}

/// The orders known for one ticket, as sets of order ids by what happened to them; the
/// ticket's status is derived from them alone ([`TicketOrders::status`]).
///
/// Sets, not one status per order, because adding to a set is the same whatever the
/// order of the events and however often one is repeated: a cancellation seen before its
/// creation still cancels it, and a redelivery changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketOrders {
    #[serde(rename = "_id")]
    pub ticket_id: String,
    #[serde(default)]
    pub created: Vec<String>,
    #[serde(default)]
    pub cancelled: Vec<String>,
    #[serde(default)]
    pub complete: Vec<String>,
    /// Updates made to this document, redeliveries included: orders the statuses derived
    /// from it.
    #[serde(default)]
    pub changes: i64,
    /// When the document was created (Unix milliseconds): orders the statuses derived
    /// from it against those derived from a document a rebuild has since dropped.
    #[serde(default)]
    pub since: i64,
}

impl TicketOrders {
    /// Sold once an order is complete (to the first one); reserved while an order is
    /// created and neither cancelled nor complete; available otherwise.
    pub fn status(&self) -> (TicketStatus, Option<&str>) {
        if let Some(order) = self.complete.first() {
            return (TicketStatus::Sold, Some(order));
        }
        match self.created.iter().find(|id| !self.cancelled.contains(id)) {
            Some(order) => (TicketStatus::Reserved, Some(order)),
            None => (TicketStatus::Available, None),
        }
    }

    /// The order of the statuses derived from this document: later changes stamp higher,
    /// and so does any change of a document created after this one (a rebuild's), since
    /// a document sees fewer than a million changes and is created milliseconds or more
    /// after the one it replaces.
    pub fn stamp(&self) -> i64 {
        self.since.saturating_mul(1_000_000).saturating_add(self.changes)
    }

    /// Whether the order is in the set its status puts it in.
    pub fn contains(&self, order_id: &str, status: OrderStatus) -> bool {
        let set = match status {
            OrderStatus::Created | OrderStatus::AwaitingPayment => &self.created,
            OrderStatus::Cancelled => &self.cancelled,
            OrderStatus::Complete => &self.complete,
        };
        set.iter().any(|id| id == order_id)
    }

    /// The set an order with this status belongs to.
    const fn set(status: OrderStatus) -> &'static str {
        match status {
            // Unused by the orders service; it would hold the ticket like a created order.
            OrderStatus::Created | OrderStatus::AwaitingPayment => "created",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Complete => "complete",
        }
    }
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
            db: db.clone(),
            tickets: db.collection("tickets"),
            orders: db.collection("orders"),
            payments: db.collection("payments"),
            ticket_orders: db.collection("ticket_orders"),
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

    /// Stamps the statuses of tickets written before statuses were stamped with zero, so
    /// the next order event of each can write its status (one scan at start; nothing
    /// matches after the first). See DECISIONS.md, "Upgrading".
    pub async fn upgrade(&self) -> mongodb::error::Result<u64> {
        let result = self
            .tickets
            .update_many(doc! { "statusStamp": { "$exists": false } }, doc! { "$set": { "statusStamp": 0_i64 } })
            .await?;
        Ok(result.modified_count)
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
    /// A new ticket is inserted as available and then given the status its orders
    /// already known say; if another event inserted it meanwhile, the versioning rule
    /// decides.
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
                    ReplicaOutcome::Stale => {
                        // As above, for an update that inserted the ticket.
                        self.refresh_status(&ticket.id).await?;
                        return Ok(ReplicaOutcome::Stale);
                    }
                    outcome => return Ok(outcome),
                }
            }
            if self.insert_ticket(&ticket).await? {
                return Ok(ReplicaOutcome::Applied);
            }
            if ticket.version == 0 {
                // Maybe the redelivery of the event that inserted the ticket and failed
                // before its status was written: write it now.
                self.refresh_status(&ticket.id).await?;
                return Ok(ReplicaOutcome::Stale);
            }
        }
        // Inserted by another delivery between the two checks, then removed: only a
        // rebuild's drop does that. Retry.
        Ok(ReplicaOutcome::Missing)
    }

    /// Inserts a new ticket, then derives its status from the orders known for it; false
    /// when it already exists.
    ///
    /// Read after the insert: an order event that finds no ticket to write its status to
    /// has recorded its order before this read, so the read sees it; one that records
    /// after the read finds the ticket and writes the status itself. If this fails
    /// between the insert and the status, the redelivered event finds the ticket there,
    /// is stale, and writes the status then ([`Store::ticket_state`]).
    async fn insert_ticket(&self, ticket: &TicketView) -> mongodb::error::Result<bool> {
        if !common::mongo::insert_once(&self.tickets, ticket).await? {
            return Ok(false);
        }
        self.refresh_status(&ticket.id).await?;
        Ok(true)
    }

    /// The orders known for a ticket.
    pub async fn ticket_orders(&self, ticket_id: &str) -> mongodb::error::Result<Option<TicketOrders>> {
        self.ticket_orders.find_one(doc! { "_id": ticket_id }).await
    }

    /// Writes the status the ticket's known orders give, if it has any.
    async fn refresh_status(&self, ticket_id: &str) -> mongodb::error::Result<()> {
        match self.ticket_orders(ticket_id).await? {
            Some(orders) => self.write_status(&orders).await,
            None => Ok(()),
        }
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
        // Independent writes, each idempotent: a redelivery redoes whichever failed.
        tokio::try_join!(
            self.record_order(&order.ticket_id, &order.id, event.status),
            common::mongo::insert_once(&self.orders, &order),
        )
        .map(drop)
    }

    /// `order.cancelled` / `order.completed`: the ticket's status, and the order's status
    /// in version order (missing until its `order.created` has been applied).
    pub async fn order_status(
        &self,
        order_id: &str,
        ticket_id: &str,
        version: i64,
        status: OrderStatus,
    ) -> mongodb::error::Result<ReplicaOutcome> {
        // The ticket first: it is what buyers look at, and the sets need no order.
        self.record_order(ticket_id, order_id, status).await?;
        apply_to_replica(&self.orders, None, order_id, version, doc! { "status": status.as_str() }).await
    }

    /// Records what happened to an order of a ticket and writes the ticket's status
    /// derived from every order known for it.
    ///
    /// Two round trips and no transaction: the first atomically adds the order to its set
    /// and counts the change, returning the sets as they are after it; the second writes
    /// the status only over one derived from fewer changes. So when two events about one
    /// ticket race, whichever status write comes last, the ticket ends with the status
    /// of the later change, which saw both orders.
    async fn record_order(&self, ticket_id: &str, order_id: &str, status: OrderStatus) -> mongodb::error::Result<()> {
        let update = doc! {
            "$addToSet": { TicketOrders::set(status): order_id },
            "$inc": { "changes": 1_i64 },
            "$setOnInsert": { "since": bson::DateTime::now().timestamp_millis() },
        };
        let record = || {
            self.ticket_orders
                .find_one_and_update(doc! { "_id": ticket_id }, update.clone())
                .upsert(true)
                .return_document(mongodb::options::ReturnDocument::After)
        };
        let orders = match record().await {
            // Two upserts of a new document at once: one inserts it, the other conflicts
            // on the id and, run again, updates it.
            Err(err) if common::mongo::is_duplicate_key(&err) => record().await?,
            other => other?,
        };
        // The development server answers a racing upsert with no document at times, having
        // made the update: a read finds it (with at least this change counted). Unless the
        // order is not there, then the event fails and is delivered again.
        let orders = match orders {
            Some(orders) => orders,
            None => {
                self.ticket_orders(ticket_id).await?.filter(|orders| orders.contains(order_id, status)).ok_or_else(
                    || {
                        mongodb::error::Error::custom(Arc::new(format!(
                            "order {order_id} not recorded for ticket {ticket_id}"
                        )))
                    },
                )?
            }
        };
        self.write_status(&orders).await
    }

    /// Writes the status derived from `orders` to their ticket, unless the ticket holds
    /// one with the same [`TicketOrders::stamp`] or a later one (or does not exist yet:
    /// its insert derives it then).
    pub async fn write_status(&self, orders: &TicketOrders) -> mongodb::error::Result<()> {
        let (status, order_id) = orders.status();
        let stamp = orders.stamp();
        let mut set = doc! { "status": status.as_str(), "statusStamp": stamp };
        let update = match order_id {
            Some(order_id) => {
                set.insert("orderId", order_id);
                doc! { "$set": set }
            }
            None => doc! { "$set": set, "$unset": { "orderId": "" } },
        };
        self.tickets
            // A plain comparison beside the id: the development server answers an `$or`
            // here by scanning the whole collection (134 ms an update at 20,000 tickets).
            .update_one(doc! { "_id": &orders.ticket_id, "statusStamp": { "$lt": stamp } }, update)
            .await
            .map(drop)
    }

    /// `payment.created`: kept, and joined to its order on reads.
    pub async fn payment_created(&self, event: &PaymentCreated) -> mongodb::error::Result<()> {
        let payment =
            PaymentView { id: event.id.clone(), order_id: event.order_id.clone(), charge_id: event.charge_id.clone() };
        common::mongo::insert_once(&self.payments, &payment).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders(created: &[&str], cancelled: &[&str], complete: &[&str]) -> TicketOrders {
        let ids = |ids: &[&str]| ids.iter().map(|&id| id.to_owned()).collect();
        TicketOrders {
            ticket_id: "t".into(),
            created: ids(created),
            cancelled: ids(cancelled),
            complete: ids(complete),
            changes: 1,
            since: 0,
        }
    }

    #[test]
    fn a_ticket_is_reserved_by_an_order_neither_cancelled_nor_complete_and_sold_by_a_complete_one() {
        assert_eq!(orders(&[], &[], &[]).status(), (TicketStatus::Available, None));
        assert_eq!(orders(&["a"], &[], &[]).status(), (TicketStatus::Reserved, Some("a")));
        assert_eq!(orders(&["a"], &["a"], &[]).status(), (TicketStatus::Available, None));
        // Resold after a cancellation: held by the second order.
        assert_eq!(orders(&["a", "b"], &["a"], &[]).status(), (TicketStatus::Reserved, Some("b")));
        assert_eq!(orders(&["a", "b"], &["a"], &["b"]).status(), (TicketStatus::Sold, Some("b")));
    }

    #[test]
    fn the_status_does_not_depend_on_which_event_came_first() {
        // A cancellation or a completion seen before its order's creation.
        assert_eq!(orders(&[], &["a"], &[]).status(), (TicketStatus::Available, None));
        assert_eq!(orders(&["a"], &["a"], &[]).status(), (TicketStatus::Available, None));
        assert_eq!(orders(&[], &[], &["a"]).status(), (TicketStatus::Sold, Some("a")));
        assert_eq!(orders(&["a"], &[], &["a"]).status(), (TicketStatus::Sold, Some("a")));
    }

    #[test]
    fn a_later_change_or_a_later_document_stamps_higher() {
        let earlier = TicketOrders { since: 1_700_000_000_000, changes: 999, ..orders(&["a"], &[], &[]) };
        let later_change = TicketOrders { changes: 1_000, ..earlier.clone() };
        // A rebuild's document, a millisecond later, after its first change.
        let rebuilt = TicketOrders { since: earlier.since + 1, changes: 1, ..earlier.clone() };
        assert!(later_change.stamp() > earlier.stamp());
        assert!(rebuilt.stamp() > later_change.stamp());
    }

    #[test]
    fn title_words_are_lower_case_unique_and_split_on_punctuation() {
        assert_eq!(words("Rock & Roll: Live at the O2, LIVE!"), vec!["at", "live", "o2", "rock", "roll", "the"]);
        assert!(words("  ").is_empty());
    }
}
