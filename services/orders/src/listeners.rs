//! Events that feed the ticket replica and move orders on.

use common::events::listener::{Delivery, HandleError, Handler, object_id_or_poison};
use common::events::{ExpirationComplete, OrderStatus, PaymentCreated, TicketCreated, TicketUpdated, UserBanned};

use crate::store::{Order, Store};

async fn order(store: &Store, raw: &str) -> Result<Order, HandleError> {
    let id = object_id_or_poison(raw, "order")?;
    store.find_order(id).await?.ok_or_else(|| HandleError::Poison(format!("order {raw} does not exist")))
}

/// `ticket.created`: a new replica at the event's version.
#[derive(Clone, Debug)]
pub struct TicketCreatedHandler {
    pub store: Store,
}

impl Handler for TicketCreatedHandler {
    type Event = TicketCreated;

    async fn handle(&self, event: TicketCreated, _: &Delivery) -> Result<(), HandleError> {
        let id = object_id_or_poison(&event.id, "ticket")?;
        Ok(self.store.insert_ticket(&event, id).await?)
    }
}

/// `ticket.updated`: applied in version order; a gap is retried until it fills.
#[derive(Clone, Debug)]
pub struct TicketUpdatedHandler {
    pub store: Store,
}

impl Handler for TicketUpdatedHandler {
    type Event = TicketUpdated;

    async fn handle(&self, event: TicketUpdated, _: &Delivery) -> Result<(), HandleError> {
        let id = object_id_or_poison(&event.id, "ticket")?;
        self.store.update_ticket(&event, id).await?.into_result(&format!("ticket {} v{}", event.id, event.version))
    }
}

/// `expiration.complete`: cancels the order if it is still `created`; anything else (paid,
/// already cancelled) is acknowledged and ignored, with no event.
#[derive(Clone, Debug)]
pub struct ExpirationCompleteHandler {
    pub store: Store,
}

impl Handler for ExpirationCompleteHandler {
    type Event = ExpirationComplete;

    async fn handle(&self, event: ExpirationComplete, _: &Delivery) -> Result<(), HandleError> {
        let order = order(&self.store, &event.order_id).await?;
        if order.status != OrderStatus::Created {
            return Ok(());
        }
        match self.store.cancel(&order).await? {
            Some(_) => {
                tracing::info!(order_id = %order.id, "order expired");
                Ok(())
            }
            None => Err(HandleError::OutOfOrder(format!("order {} changed during expiration", order.id))),
        }
    }
}

/// `payment.created`: completes the order. A payment for an order cancelled meanwhile is
/// left to the payments service, which refunds it on `order.cancelled`.
#[derive(Clone, Debug)]
pub struct PaymentCreatedHandler {
    pub store: Store,
}

impl Handler for PaymentCreatedHandler {
    type Event = PaymentCreated;

    async fn handle(&self, event: PaymentCreated, _: &Delivery) -> Result<(), HandleError> {
        let order = order(&self.store, &event.order_id).await?;
        match order.status {
            OrderStatus::Created | OrderStatus::AwaitingPayment => {}
            OrderStatus::Complete => return Ok(()),
            OrderStatus::Cancelled => {
                tracing::warn!(order_id = %order.id, payment_id = %event.id, "payment for a cancelled order; payments refunds it");
                return Ok(());
            }
        }
        match self.store.complete(&order).await? {
            Some(_) => {
                tracing::info!(order_id = %order.id, "order paid");
                Ok(())
            }
            None => Err(HandleError::OutOfOrder(format!("order {} changed during completion", order.id))),
        }
    }
}

/// `user.banned`: cancels the user's reservations that are still `created`, so their
/// tickets go back on sale (through the usual `order.cancelled`). Paid orders stay paid.
/// A redelivery finds nothing left to cancel.
#[derive(Clone, Debug)]
pub struct UserBannedHandler {
    pub store: Store,
}

impl Handler for UserBannedHandler {
    type Event = UserBanned;

    async fn handle(&self, event: UserBanned, _: &Delivery) -> Result<(), HandleError> {
        let mut changed = 0;
        for order in self.store.pending_orders_of(&event.user_id).await? {
            if self.store.cancel(&order).await?.is_some() {
                tracing::info!(order_id = %order.id, user_id = %event.user_id, "order of a banned user cancelled");
            } else {
                changed += 1;
            }
        }
        if changed > 0 {
            // Paid or expired meanwhile, or changed under us: look again.
            return Err(HandleError::OutOfOrder(format!(
                "{changed} orders of {} changed during the ban",
                event.user_id
            )));
        }
        Ok(())
    }
}
