//! Order events that create and drop schedules.

use common::events::listener::{Delivery, HandleError, Handler};
use common::events::{OrderCancelled, OrderCompleted, OrderCreated};

use crate::schedule::Schedules;

/// `order.created`: schedule `expiration.complete` at `expiresAt`.
#[derive(Clone, Debug)]
pub struct OrderCreatedHandler {
    pub schedules: Schedules,
}

impl Handler for OrderCreatedHandler {
    type Event = OrderCreated;

    async fn handle(&self, event: OrderCreated, _: &Delivery) -> Result<(), HandleError> {
        let expires_at = bson::DateTime::parse_rfc3339_str(&event.expires_at)
            .map_err(|e| HandleError::Poison(format!("expiresAt {:?} is not RFC 3339: {e}", event.expires_at)))?;
        Ok(self.schedules.schedule(&event.id, expires_at).await?)
    }
}

/// `order.cancelled`: the schedule is dropped.
#[derive(Clone, Debug)]
pub struct OrderCancelledHandler {
    pub schedules: Schedules,
}

impl Handler for OrderCancelledHandler {
    type Event = OrderCancelled;

    async fn handle(&self, event: OrderCancelled, _: &Delivery) -> Result<(), HandleError> {
        Ok(self.schedules.skip(&event.id).await?)
    }
}

/// `order.completed`: the schedule is dropped.
#[derive(Clone, Debug)]
pub struct OrderCompletedHandler {
    pub schedules: Schedules,
}

impl Handler for OrderCompletedHandler {
    type Event = OrderCompleted;

    async fn handle(&self, event: OrderCompleted, _: &Delivery) -> Result<(), HandleError> {
        Ok(self.schedules.skip(&event.id).await?)
    }
}
