//! Order events that feed the order replica, and the refund of late charges.

use bson::oid::ObjectId;
use common::events::listener::{Delivery, HandleError, Handler};
use common::events::{OrderCancelled, OrderCompleted, OrderCreated, OrderStatus};

use crate::provider::{Provider, ProviderError};
use crate::store::{RefundError, Store};

fn order_id(raw: &str) -> Result<ObjectId, HandleError> {
    ObjectId::parse_str(raw).map_err(|_| HandleError::Poison(format!("order id {raw:?} is not an ObjectId")))
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
/// is refunded.
#[derive(Clone, Debug)]
pub struct OrderCancelledHandler {
    pub store: Store,
    pub provider: Provider,
}

impl Handler for OrderCancelledHandler {
    type Event = OrderCancelled;

    async fn handle(&self, event: OrderCancelled, _: &Delivery) -> Result<(), HandleError> {
        let id = order_id(&event.id)?;
        self.store
            .set_status(id, event.version, OrderStatus::Cancelled)
            .await?
            .into_result(&format!("order {} v{}", event.id, event.version))?;
        match self.store.refund_if_charged(&event.id, &self.provider).await {
            Ok(_) => Ok(()),
            Err(RefundError::Provider(ProviderError::Declined(m) | ProviderError::Rejected(m))) => {
                Err(HandleError::Poison(format!("the provider refused the refund: {m}")))
            }
            Err(err) => Err(HandleError::Transient(err.into())),
        }
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
