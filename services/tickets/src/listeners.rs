//! Order events that reserve and release tickets.

use bson::oid::ObjectId;
use common::events::listener::{Delivery, HandleError, Handler, object_id_or_poison};
use common::events::{OrderCancelled, OrderCreated};

use crate::store::{Reservation, Store};

fn ticket_id(raw: &str) -> Result<ObjectId, HandleError> {
    object_id_or_poison(raw, "ticket")
}

fn outcome(reservation: Reservation, ticket: &str) -> Result<(), HandleError> {
    match reservation {
        Reservation::Changed(_) | Reservation::Unchanged => Ok(()),
        Reservation::HeldByAnother(holder) => {
            Err(HandleError::OutOfOrder(format!("ticket {ticket} is still held by order {holder}")))
        }
        Reservation::UnknownTicket => Err(HandleError::Poison(format!("ticket {ticket} does not exist"))),
    }
}

/// `order.created`: the ticket is reserved for the order (`orderId` set, version + 1,
/// `ticket.updated` emitted). Already reserved for it: nothing to do. Reserved for another
/// order: retried until that order's cancellation arrives.
#[derive(Clone, Debug)]
pub struct OrderCreatedHandler {
    pub store: Store,
}

impl Handler for OrderCreatedHandler {
    type Event = OrderCreated;

    async fn handle(&self, event: OrderCreated, _: &Delivery) -> Result<(), HandleError> {
        let reservation = self.store.reserve(ticket_id(&event.ticket.id)?, &event.id).await?;
        outcome(reservation, &event.ticket.id)
    }
}

/// `order.cancelled`: the ticket is released only if this order holds it.
#[derive(Clone, Debug)]
pub struct OrderCancelledHandler {
    pub store: Store,
}

impl Handler for OrderCancelledHandler {
    type Event = OrderCancelled;

    async fn handle(&self, event: OrderCancelled, _: &Delivery) -> Result<(), HandleError> {
        let release = self.store.release(ticket_id(&event.ticket.id)?, &event.id).await?;
        outcome(release, &event.ticket.id)
    }
}
