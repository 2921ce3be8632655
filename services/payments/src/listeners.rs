//! Order events that feed the order replica; a cancellation makes a charge that raced it
//! refund due.

use std::sync::Arc;

use bson::oid::ObjectId;
use common::events::listener::{Delivery, HandleError, Handler, object_id_or_poison};
use common::events::{OrderCancelled, OrderCompleted, OrderCreated, OrderStatus};
use tokio::sync::Notify;

use crate::store::Store;

fn order_id(raw: &str) -> Result<ObjectId, HandleError> {
    object_id_or_poison(raw, "order")
}

/// `order.created`: a replica with the event's version and price.
#[derive(Clone, Debug)]
pub struct OrderCreatedHandler {
    pub store: Store,
}

impl Handler for OrderCreatedHandler {
    type Event = OrderCreated;

    async fn handle(&self, event: OrderCreated, _: &Delivery) -> Result<(), HandleError> {
        Ok(self.store.insert_order(&event, order_id(&event.id)?).await?)
    }
}

/// `order.cancelled`: the replica is cancelled, and a charge that raced the cancellation
/// becomes refund due in the same transaction (the refund task refunds it).
#[derive(Clone, Debug)]
pub struct OrderCancelledHandler {
    pub store: Store,
    pub refunds: Arc<Notify>,
}

impl Handler for OrderCancelledHandler {
    type Event = OrderCancelled;

    async fn handle(&self, event: OrderCancelled, _: &Delivery) -> Result<(), HandleError> {
        let id = order_id(&event.id)?;
        self.store.cancel(id, event.version).await?.into_result(&format!("order {} v{}", event.id, event.version))?;
        self.refunds.notify_one();
        Ok(())
    }
}

/// `order.completed`: the replica is complete.
#[derive(Clone, Debug)]
pub struct OrderCompletedHandler {
    pub store: Store,
}

impl Handler for OrderCompletedHandler {
    type Event = OrderCompleted;

    async fn handle(&self, event: OrderCompleted, _: &Delivery) -> Result<(), HandleError> {
        self.store
            .set_status(order_id(&event.id)?, event.version, OrderStatus::Complete)
            .await?
            .into_result(&format!("order {} v{}", event.id, event.version))
    }
}
