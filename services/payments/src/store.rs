//! The payments database: `orders` (a replica fed by order events), `payments` (one per
//! order at most, a unique index on `orderId`), and the outbox.
//!
//! At most one successful charge per order, whatever the concurrency:
//! 1. a request first **claims** the order by inserting its payment in state `charging`;
//!    the unique index lets one request in and turns the others away;
//! 2. only the claimant calls the provider (with an idempotency key per order and card);
//! 3. a decline or an outage releases the claim; a success is **recorded** in one
//!    transaction that also marks the order replica paid and stages `payment.created`;
//! 4. a claim left `charging` by a process that died is taken over after
//!    [`STALE_CLAIM`], by a request that first looks up what that process charged.
//!
//! The recording transaction writes the replica document, and so does the handler of
//! `order.cancelled`: the two cannot interleave unnoticed. Whichever commits second sees
//! the other's write, so a charge for an order cancelled meanwhile is always refunded,
//! either by the request (which then answers 400) or by the cancellation handler.

use std::time::Duration;

use bson::doc;
use bson::oid::ObjectId;
use common::events::outbox::Outbox;
use common::events::versioning::{ReplicaOutcome, apply_to_replica};
use common::events::{OrderCreated, OrderStatus, PaymentCreated};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::provider::{Charge, PaymentProvider, ProviderError};

/// A claim older than this is assumed abandoned (the process died mid-charge) and may be
/// taken over ([`Claim::TakenOver`]): the taker first asks the provider for a charge the
/// abandoned attempt made and records that one; only if there is none does it charge
/// (and with the same card, the idempotency key returns the first result anyway).
pub const STALE_CLAIM: Duration = Duration::from_secs(60);

/// The local copy of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReplica {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub status: OrderStatus,
    pub version: i64,
    #[serde(rename = "priceCents")]
    pub price_cents: i64,
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentState {
    /// Claimed; the provider is being called.
    Charging,
    /// Charged.
    Succeeded,
}

/// A stored payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(rename = "orderId")]
    pub order_id: String,
    pub state: PaymentState,
    #[serde(rename = "claimedAt")]
    pub claimed_at: bson::DateTime,
    #[serde(rename = "amountCents", default)]
    pub amount_cents: i64,
    #[serde(rename = "chargeId", default, skip_serializing_if = "Option::is_none")]
    pub charge_id: Option<String>,
    #[serde(rename = "paymentIntent", default, skip_serializing_if = "Option::is_none")]
    pub payment_intent: Option<String>,
    #[serde(rename = "refundId", default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<String>,
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This request may charge; the payment id to record against.
    Granted(ObjectId),
    /// This request took over a claim abandoned mid-charge: it may charge once the
    /// provider confirms no earlier attempt succeeded.
    TakenOver(ObjectId),
    /// The order is paid already.
    Paid,
    /// Another request is charging it right now.
    InProgress,
}

/// The outcome of recording a successful charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded, the order replica marked paid, `payment.created` staged.
    Paid,
    /// The order was cancelled while the card was charged: recorded, to be refunded.
    OrderCancelled,
}

/// The payments database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    orders: Collection<OrderReplica>,
    payments: Collection<Payment>,
    outbox: Outbox,
}

impl Store {
    pub fn new(db: &Database, outbox: Outbox) -> Self {
        Self {
            client: db.client().clone(),
            orders: db.collection("orders"),
            payments: db.collection("payments"),
            outbox,
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let unique = IndexOptions::builder().unique(true).name("one_payment_per_order".to_owned()).build();
        self.payments.create_index(IndexModel::builder().keys(doc! { "orderId": 1 }).options(unique).build()).await?;
        self.outbox.ensure_indexes().await
    }

    pub async fn find_order(&self, id: ObjectId) -> mongodb::error::Result<Option<OrderReplica>> {
        self.orders.find_one(doc! { "_id": id }).await
    }

    pub async fn payment_of(&self, order_id: &str) -> mongodb::error::Result<Option<Payment>> {
        self.payments.find_one(doc! { "orderId": order_id }).await
    }

    /// Claims the right to charge `order_id` (see the module docs).
    pub async fn claim(&self, order_id: &str) -> mongodb::error::Result<Claim> {
        let payment = Payment {
            id: ObjectId::new(),
            order_id: order_id.to_owned(),
            state: PaymentState::Charging,
            claimed_at: bson::DateTime::now(),
            amount_cents: 0,
            charge_id: None,
            payment_intent: None,
            refund_id: None,
        };
        match self.payments.insert_one(&payment).await {
            Ok(_) => return Ok(Claim::Granted(payment.id)),
            Err(err) if common::mongo::is_duplicate_key(&err) => {}
            Err(err) => return Err(err),
        }
        let Some(existing) = self.payment_of(order_id).await? else {
            return Ok(Claim::InProgress); // released between the insert and this read
        };
        if existing.state == PaymentState::Succeeded {
            return Ok(Claim::Paid);
        }
        let stale_before = bson::DateTime::from_millis(
            bson::DateTime::now().timestamp_millis() - i64::try_from(STALE_CLAIM.as_millis()).unwrap_or(i64::MAX),
        );
        if existing.claimed_at > stale_before {
            return Ok(Claim::InProgress);
        }
        // Take over an abandoned claim, unless another request just did.
        let taken = self
            .payments
            .update_one(
                doc! { "_id": existing.id, "state": "charging", "claimedAt": existing.claimed_at },
                doc! { "$set": { "claimedAt": bson::DateTime::now() } },
            )
            .await?;
        Ok(if taken.modified_count == 1 { Claim::TakenOver(existing.id) } else { Claim::InProgress })
    }

    /// Gives a claim up after a decline or an outage, so the order can be paid later.
    pub async fn release(&self, payment_id: ObjectId) -> mongodb::error::Result<()> {
        self.payments.delete_one(doc! { "_id": payment_id, "state": "charging" }).await.map(drop)
    }

    /// Records a successful charge (see [`Recorded`]).
    pub async fn record(
        &self,
        payment_id: ObjectId,
        order: &OrderReplica,
        charge: &Charge,
    ) -> mongodb::error::Result<Recorded> {
        let (orders, payments, outbox) = (self.orders.clone(), self.payments.clone(), self.outbox.clone());
        let (order_id, amount, charge) = (order.id, order.price_cents, charge.clone());
        let recorded = common::mongo::transaction(&self.client, move |session| {
            let (orders, payments, outbox, charge) = (orders.clone(), payments.clone(), outbox.clone(), charge.clone());
            Box::pin(async move {
                // Writing the replica serialises this with a concurrent cancellation.
                let still_open = orders
                    .update_one(
                        doc! { "_id": order_id, "status": { "$in": ["created", "awaiting:payment"] } },
                        doc! { "$set": { "paidBy": payment_id } },
                    )
                    .session(&mut *session)
                    .await?
                    .matched_count
                    == 1;
                payments
                    .update_one(
                        doc! { "_id": payment_id },
                        doc! { "$set": {
                            "state": "succeeded",
                            "amountCents": amount,
                            "chargeId": &charge.id,
                            "paymentIntent": &charge.payment_intent,
                        } },
                    )
                    .session(&mut *session)
                    .await?;
                if !still_open {
                    return Ok(Recorded::OrderCancelled);
                }
                let event =
                    PaymentCreated { id: payment_id.to_hex(), order_id: order_id.to_hex(), charge_id: charge.id };
                outbox.stage(session, &event).await?;
                Ok(Recorded::Paid)
            })
        })
        .await?;
        if recorded == Recorded::Paid {
            self.outbox.notify();
        }
        Ok(recorded)
    }

    /// Refunds the successful charge of `order_id`, if there is one not yet refunded.
    /// Idempotent: the refund's key is the payment id. Returns whether a refund happened.
    pub async fn refund_if_charged<P: PaymentProvider>(
        &self,
        order_id: &str,
        provider: &P,
    ) -> Result<bool, RefundError> {
        let Some(payment) = self.payment_of(order_id).await? else { return Ok(false) };
        if payment.state != PaymentState::Succeeded || payment.refund_id.is_some() {
            return Ok(false);
        }
        let charge = Charge {
            id: payment.charge_id.clone().unwrap_or_default(),
            payment_intent: payment.payment_intent.clone().unwrap_or_default(),
        };
        let refund_id = provider.refund(&charge, &format!("refund-{}", payment.id.to_hex())).await?;
        self.payments
            .update_one(
                doc! { "_id": payment.id },
                doc! { "$set": { "refundId": &refund_id, "refundedAt": bson::DateTime::now() } },
            )
            .await?;
        tracing::warn!(order_id, payment_id = %payment.id, refund_id, "refunded a charge for a cancelled order");
        Ok(true)
    }

    /// `order.created`: a new replica at the event's version (a redelivery changes nothing).
    pub async fn insert_order(&self, event: &OrderCreated, id: ObjectId) -> mongodb::error::Result<()> {
        let replica = OrderReplica {
            id,
            user_id: event.user_id.clone(),
            status: event.status,
            version: event.version,
            price_cents: event.ticket.price.cents(),
        };
        match self.orders.insert_one(&replica).await {
            Ok(_) => Ok(()),
            Err(err) if common::mongo::is_duplicate_key(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// `order.cancelled` / `order.completed`: the status, in version order.
    pub async fn set_status(
        &self,
        id: ObjectId,
        version: i64,
        status: OrderStatus,
    ) -> mongodb::error::Result<ReplicaOutcome> {
        apply_to_replica(&self.orders, None, id, version, doc! { "status": status.as_str() }).await
    }
}

/// Why a refund did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error(transparent)]
    Database(#[from] mongodb::error::Error),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}
