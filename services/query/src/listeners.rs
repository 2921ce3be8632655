//! Every event of the platform, applied to the read model; a change to a ticket's view
//! is then published on the live feed ([`crate::feed`]).

use common::events::listener::{Delivery, HandleError, Handler};
use common::events::{
    OrderCancelled, OrderCompleted, OrderCreated, OrderStatus, PaymentCreated, TicketCreated, TicketUpdated,
};

use crate::feed::FeedPublisher;
use crate::store::Store;

macro_rules! handler {
    ($(#[$doc:meta])* $name:ident, $event:ty, |$store:ident, $ev:ident| $body:expr, ticket: |$tev:ident| $ticket:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name {
            pub store: Store,
            pub feed: Option<FeedPublisher>,
        }

        impl Handler for $name {
            type Event = $event;

            async fn handle(&self, $ev: $event, _: &Delivery) -> Result<(), HandleError> {
                let ticket: Option<String> = {
                    let $tev = &$ev;
                    $ticket
                };
                let $store = &self.store;
                $body?;
                // After the projection (applied now or before: a redelivery publishes again,
                // so a failed publish loses nothing).
                if let (Some(feed), Some(ticket)) = (&self.feed, ticket) {
                    feed.changed(&ticket).await.map_err(HandleError::Transient)?;
                }
                Ok(())
            }
        }
    };
}

handler!(
    /// `ticket.created`: a new ticket, available unless orders for it arrived first (and
    /// stale if one of its updates arrived first).
    TicketCreatedHandler, TicketCreated, |store, event| {
        let what = format!("ticket {} v{}", event.id, event.version);
        store.ticket_state((&event).into()).await?.into_result(&what)
    },
    ticket: |event| Some(event.id.clone())
);

handler!(
    /// `ticket.updated`: title and price in version order (creating the ticket if this is
    /// the first event of it seen).
    TicketUpdatedHandler, TicketUpdated, |store, event| {
        let what = format!("ticket {} v{}", event.id, event.version);
        store.ticket_state((&event).into()).await?.into_result(&what)
    },
    ticket: |event| Some(event.id.clone())
);

handler!(
    /// `order.created`: the order; its ticket becomes reserved.
    OrderCreatedHandler, OrderCreated, |store, event| Ok::<(), HandleError>(store.order_created(&event).await?),
    ticket: |event| Some(event.ticket.id.clone())
);

handler!(
    /// `order.cancelled`: the order is cancelled; its ticket available again.
    OrderCancelledHandler, OrderCancelled, |store, event| {
        let what = format!("order {} v{}", event.id, event.version);
        store.order_status(&event.id, &event.ticket.id, event.version, OrderStatus::Cancelled).await?.into_result(&what)
    },
    ticket: |event| Some(event.ticket.id.clone())
);

handler!(
    /// `order.completed`: the order is complete; its ticket sold.
    OrderCompletedHandler, OrderCompleted, |store, event| {
        let what = format!("order {} v{}", event.id, event.version);
        store.order_status(&event.id, &event.ticket.id, event.version, OrderStatus::Complete).await?.into_result(&what)
    },
    ticket: |event| Some(event.ticket.id.clone())
);

handler!(
    /// `payment.created`: kept, and joined to its order when orders are read, whichever
    /// arrives first.
    PaymentCreatedHandler, PaymentCreated, |store, event| Ok::<(), HandleError>(store.payment_created(&event).await?),
    ticket: |_event| None
);
