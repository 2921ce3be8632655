//! The payments database: `orders` (a replica fed by order events), `payments` (one per
//! order at most, a unique index on `orderId`), and the outbox.
//!
//! At most one successful charge per order, whatever the concurrency, retries or crashes:
//! 1. a request first **claims** the order by inserting its payment in state `charging`,
//!    with the attempt's number (counted on the order replica), its idempotency key
//!    (order and attempt, never the card) and its card token; the unique index lets one
//!    request in and turns the others away;
//! 2. only the claimant calls the provider;
//! 3. a decline, a refusal or a call that never left releases the claim; a success is
//!    **recorded** in one transaction that also marks the order replica paid and stages
//!    `payment.created`; an **unknown outcome** (a timeout, a 5xx, an answer that does
//!    not decode) keeps the claim, marked `unknown`;
//! 4. a claim `unknown`, or left `charging` past [`STALE_CLAIM`] by a process that died,
//!    is **resolved** by the next request before anything else: it looks the order's
//!    charge up at the provider, then replays the same attempt (same key, same card), so
//!    the provider answers with what it did the first time. Only an attempt known to have
//!    charged nothing makes room for a new one.
//!
//! The recording transaction writes the replica document, and so does the handler of
//! `order.cancelled`: the two cannot interleave unnoticed. Whichever commits second sees
//! the other's write and marks the charge **refund due** in its own transaction; the
//! refund task ([`Store::refund_due`]) refunds it, retrying with backoff until the provider
//! confirms. A refund is never only logged.

use std::time::Duration;

use bson::doc;
use bson::oid::ObjectId;
use common::events::outbox::Outbox;
use common::events::versioning::{ReplicaOutcome, apply_to_replica};
use common::events::{OrderCreated, OrderStatus, PaymentCreated};
use common::money::Price;
use futures::TryStreamExt;
use mongodb::options::{IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

use crate::provider::{Charge, ChargeRequest, PaymentProvider, ProviderError, charge_key};

/// A claim left `charging` longer than this is assumed abandoned (the process died
/// mid-charge) and is resolved by the next request ([`Claim::Resolve`]). Longer than any
/// provider call may take ([`crate::provider::STRIPE_TIMEOUT`]).
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
    #[serde(rename = "priceCents", with = "common::money::cents")]
    pub price: Price,
    /// When the reservation lapses (from `order.created`); it cannot be paid after.
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<bson::DateTime>,
    /// Attempts to charge it so far; numbers the idempotency keys.
    #[serde(rename = "chargeAttempts", default)]
    pub charge_attempts: i64,
}

impl OrderReplica {
    /// True once the reservation's time is up, even before `order.cancelled` arrives.
    pub fn expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= bson::DateTime::now())
    }
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentState {
    /// Claimed; the provider is being called.
    Charging,
    /// The provider was called and did not say what it did (a timeout, a 5xx): the
    /// attempt must be resolved before another is made.
    Unknown,
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
    /// The attempt's number, idempotency key and card token (kept until the attempt is
    /// resolved, so it can be replayed exactly).
    #[serde(default)]
    pub attempt: i64,
    #[serde(rename = "idempotencyKey", default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The charge must be refunded (its order was cancelled); the refund task retries until
    /// the provider confirms.
    #[serde(rename = "refundDue", default)]
    pub refund_due: bool,
    #[serde(rename = "refundAttempts", default)]
    pub refund_attempts: i64,
    #[serde(rename = "nextRefundAt", default, skip_serializing_if = "Option::is_none")]
    pub next_refund_at: Option<bson::DateTime>,
}

impl Payment {
    /// The request this attempt made (or is making), to replay it.
    pub fn request(&self) -> ChargeRequest {
        ChargeRequest {
            amount_cents: self.amount_cents,
            token: self.token.clone().unwrap_or_default(),
            order_id: self.order_id.clone(),
            idempotency_key: self.idempotency_key.clone().unwrap_or_else(|| charge_key(&self.order_id, self.attempt)),
        }
    }

    fn charge(&self) -> Charge {
        Charge {
            id: self.charge_id.clone().unwrap_or_default(),
            payment_intent: self.payment_intent.clone().unwrap_or_default(),
        }
    }
}

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This request may charge: the attempt to make.
    Granted(Payment),
    /// An earlier attempt's outcome is unknown (or it was abandoned mid-charge); this
    /// request now holds it and must resolve it before anything else.
    Resolve(Payment),
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
        let due = IndexOptions::builder().name("refunds_due".to_owned()).build();
        self.payments
            .create_index(IndexModel::builder().keys(doc! { "refundDue": 1, "nextRefundAt": 1 }).options(due).build())
            .await?;
        self.outbox.ensure_indexes().await
    }

    pub async fn find_order(&self, id: ObjectId) -> mongodb::error::Result<Option<OrderReplica>> {
        self.orders.find_one(doc! { "_id": id }).await
    }

    pub async fn payment_of(&self, order_id: &str) -> mongodb::error::Result<Option<Payment>> {
        self.payments.find_one(doc! { "orderId": order_id }).await
    }

    /// Claims the right to charge `order` with `token` (see the module docs).
    pub async fn claim(&self, order: &OrderReplica, token: &str) -> mongodb::error::Result<Claim> {
        let order_id = order.id.to_hex();
        for _ in 0..2 {
            if let Some(existing) = self.payment_of(&order_id).await? {
                return self.take_over(existing).await;
            }
            let attempt = self
                .orders
                .find_one_and_update(doc! { "_id": order.id }, doc! { "$inc": { "chargeAttempts": 1 } })
                .return_document(ReturnDocument::After)
                .await?
                .map_or(1, |o| o.charge_attempts);
            let payment = Payment {
                id: ObjectId::new(),
                order_id: order_id.clone(),
                state: PaymentState::Charging,
                claimed_at: bson::DateTime::now(),
                amount_cents: order.price.cents(),
                charge_id: None,
                payment_intent: None,
                refund_id: None,
                attempt,
                idempotency_key: Some(charge_key(&order_id, attempt)),
                token: Some(token.to_owned()),
                refund_due: false,
                refund_attempts: 0,
                next_refund_at: None,
            };
            match self.payments.insert_one(&payment).await {
                Ok(_) => return Ok(Claim::Granted(payment)),
                Err(err) if common::mongo::is_duplicate_key(&err) => {} // someone else claimed: look again
                Err(err) => return Err(err),
            }
        }
        Ok(Claim::InProgress)
    }

    /// What an existing payment means for a new request: paid, busy, or an attempt to
    /// resolve, which this request then holds (one request wins the takeover).
    async fn take_over(&self, existing: Payment) -> mongodb::error::Result<Claim> {
        let stale_before = bson::DateTime::from_millis(
            bson::DateTime::now().timestamp_millis() - i64::try_from(STALE_CLAIM.as_millis()).unwrap_or(i64::MAX),
        );
        match existing.state {
            PaymentState::Succeeded => return Ok(Claim::Paid),
            PaymentState::Charging if existing.claimed_at > stale_before => return Ok(Claim::InProgress),
            PaymentState::Charging | PaymentState::Unknown => {}
        }
        let state = match existing.state {
            PaymentState::Unknown => "unknown",
            _ => "charging",
        };
        let taken = self
            .payments
            .update_one(
                doc! { "_id": existing.id, "state": state, "claimedAt": existing.claimed_at },
                doc! { "$set": { "state": "charging", "claimedAt": bson::DateTime::now() } },
            )
            .await?;
        Ok(if taken.modified_count == 1 { Claim::Resolve(existing) } else { Claim::InProgress })
    }

    /// The provider did not say what it did: the claim stays, marked for resolution.
    pub async fn mark_unknown(&self, payment_id: ObjectId) -> mongodb::error::Result<()> {
        self.payments
            .update_one(doc! { "_id": payment_id, "state": "charging" }, doc! { "$set": { "state": "unknown" } })
            .await
            .map(drop)
    }

    /// Gives a claim up: its attempt charged nothing, so the order can be paid later.
    pub async fn release(&self, payment_id: ObjectId) -> mongodb::error::Result<()> {
        self.payments
            .delete_one(doc! { "_id": payment_id, "state": { "$in": ["charging", "unknown"] } })
            .await
            .map(drop)
    }

    /// Records a successful charge (see [`Recorded`]).
    pub async fn record(
        &self,
        payment_id: ObjectId,
        order: &OrderReplica,
        charge: &Charge,
    ) -> mongodb::error::Result<Recorded> {
        let (this, order_id, amount, charge) = (self.clone(), order.id, order.price.cents(), charge.clone());
        let recorded = common::mongo::transaction(&self.client, async move |session| {
            // Writing the replica serialises this with a concurrent cancellation.
            let still_open = this
                .orders
                .update_one(
                    doc! { "_id": order_id, "status": { "$in": [OrderStatus::Created.as_str(), OrderStatus::AwaitingPayment.as_str()] } },
                    doc! { "$set": { "paidBy": payment_id } },
                )
                .session(&mut *session)
                .await?
                .matched_count
                == 1;
            let mut set = doc! {
                "state": "succeeded",
                "amountCents": amount,
                "chargeId": &charge.id,
                "paymentIntent": &charge.payment_intent,
            };
            if !still_open {
                // Charged for a cancelled order: the refund is due in the same commit.
                set.insert("refundDue", true);
                set.insert("nextRefundAt", bson::DateTime::now());
            }
            this.payments
                .update_one(doc! { "_id": payment_id }, doc! { "$set": set, "$unset": { "token": "" } })
                .session(&mut *session)
                .await?;
            if !still_open {
                return Ok((Recorded::OrderCancelled, None));
            }
            let event =
                PaymentCreated { id: payment_id.to_hex(), order_id: order_id.to_hex(), charge_id: charge.id.clone() };
            let staged = this.outbox.stage(session, &event).await?;
            Ok((Recorded::Paid, Some(staged)))
        })
        .await?;
        let (recorded, staged) = recorded;
        self.outbox.committed(staged);
        Ok(recorded)
    }

    /// `order.cancelled`: the replica's status, and in the same transaction a refund due
    /// for a charge that landed on the order.
    pub async fn cancel(&self, id: ObjectId, version: i64) -> mongodb::error::Result<ReplicaOutcome> {
        let this = self.clone();
        let outcome = common::mongo::transaction(&self.client, async move |session| {
            let outcome =
                apply_to_replica(&this.orders, Some(&mut *session), id, version, doc! { "status": OrderStatus::Cancelled.as_str() }).await?;
            if outcome == ReplicaOutcome::Applied {
                this.payments
                    .update_one(
                        doc! { "orderId": id.to_hex(), "state": "succeeded", "refundId": null, "refundDue": { "$ne": true } },
                        doc! { "$set": { "refundDue": true, "nextRefundAt": bson::DateTime::now() } },
                    )
                    .session(&mut *session)
                    .await?;
            }
            Ok(outcome)
        })
        .await?;
        Ok(outcome)
    }

    /// Payments whose refund is due now, oldest first.
    pub async fn refunds_due_now(&self, limit: i64) -> mongodb::error::Result<Vec<Payment>> {
        self.payments
            .find(doc! { "refundDue": true, "nextRefundAt": { "$lte": bson::DateTime::now() } })
            .sort(doc! { "nextRefundAt": 1 })
            .limit(limit)
            .await?
            .try_collect()
            .await
    }

    /// How many refunds are due (now or later).
    pub async fn refunds_due(&self) -> mongodb::error::Result<u64> {
        self.payments.count_documents(doc! { "refundDue": true }).await
    }

    /// Refunds one due payment. Success is recorded; a failure schedules the next try
    /// `backoff(attempts)` later. The refund's key is the payment's id, so a retry after
    /// an unknown outcome cannot refund twice.
    pub async fn refund<P: PaymentProvider>(
        &self,
        payment: &Payment,
        provider: &P,
        backoff: impl Fn(i64) -> Duration,
    ) -> Result<String, RefundError> {
        match provider.refund(&payment.charge(), &format!("refund-{}", payment.id.to_hex())).await {
            Ok(refund_id) => {
                self.payments
                    .update_one(
                        doc! { "_id": payment.id },
                        doc! {
                            "$set": { "refundId": &refund_id, "refundedAt": bson::DateTime::now(), "refundDue": false },
                            "$unset": { "nextRefundAt": "", "refundError": "" },
                        },
                    )
                    .await?;
                tracing::warn!(order_id = %payment.order_id, payment_id = %payment.id, refund_id, "refunded a charge for a cancelled order");
                Ok(refund_id)
            }
            Err(err) => {
                let attempts = payment.refund_attempts + 1;
                let next = bson::DateTime::from_millis(
                    bson::DateTime::now().timestamp_millis()
                        + i64::try_from(backoff(attempts).as_millis()).unwrap_or(i64::MAX),
                );
                self.payments
                    .update_one(
                        doc! { "_id": payment.id },
                        doc! { "$set": { "refundAttempts": attempts, "nextRefundAt": next, "refundError": err.to_string() } },
                    )
                    .await?;
                Err(err.into())
            }
        }
    }

    /// `order.created`: a new replica at the event's version (a redelivery changes nothing).
    pub async fn insert_order(&self, event: &OrderCreated, id: ObjectId) -> mongodb::error::Result<()> {
        let expires_at = time::OffsetDateTime::parse(&event.expires_at, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|at| {
                bson::DateTime::from_millis(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
            });
        let replica = OrderReplica {
            id,
            user_id: event.user_id.clone(),
            status: event.status,
            version: event.version,
            price: event.ticket.price,
            expires_at,
            charge_attempts: 0,
        };
        common::mongo::insert_once(&self.orders, &replica).await.map(drop)
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
