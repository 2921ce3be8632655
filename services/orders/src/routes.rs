//! The four routes of the orders service.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::events::OrderStatus;
use common::extract::object_id;
use common::money::Price;
use common::openapi::{Forbidden, NotAuthorized, NotFound};
use common::{ApiError, CurrentUser, ErrorEnvelope, ValidatedJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::store::{Order, Reservation, TicketReplica, rfc3339};

/// The routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, cancel))
}

/// Attempts of a cancellation that keeps meeting concurrent changes.
const CANCEL_ATTEMPTS: usize = 5;

fn valid_id(id: &str) -> Result<(), ValidationError> {
    object_id(id)
        .map(drop)
        .map_err(|_| ValidationError::new("ticketId").with_message("TicketId must be a valid id".into()))
}

/// Body of a reservation.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewOrder {
    /// The ticket to reserve.
    #[validate(required(message = "TicketId must be provided"), custom(function = "valid_id"))]
    #[schema(value_type = String, required = true, pattern = "^[0-9a-fA-F]{24}$")]
    ticket_id: Option<String>,
}

/// The ticket inside an order, from the replica.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = OrderTicket)]
pub struct OrderTicketView {
    id: String,
    title: Option<String>,
    price: Option<Price>,
    version: Option<i64>,
}

/// An order as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Order)]
pub struct OrderView {
    id: String,
    user_id: String,
    status: OrderStatus,
    /// RFC 3339; the reservation lapses then unless paid.
    #[schema(format = DateTime)]
    expires_at: String,
    version: i64,
    ticket: OrderTicketView,
}

impl OrderView {
    fn new(order: Order, ticket: Option<TicketReplica>) -> Self {
        let ticket = OrderTicketView {
            id: order.ticket_id.to_hex(),
            title: ticket.as_ref().map(|t| t.title.clone()),
            price: ticket.as_ref().map(|t| t.price),
            version: ticket.as_ref().map(|t| t.version),
        };
        Self {
            id: order.id.to_hex(),
            user_id: order.user_id,
            status: order.status,
            expires_at: rfc3339(order.expires_at),
            version: order.version,
            ticket,
        }
    }
}

/// Reserves a ticket.
///
/// Check order: 401, 400 validation, 404 unknown ticket, 400 reserved.
#[utoipa::path(
    post,
    path = "/api/orders",
    operation_id = "createOrder",
    tag = "orders",
    request_body = NewOrder,
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Reserved until `expiresAt`; emits order.created", body = OrderView),
        (status = 400, description = "Validation, `Cannot buy your own ticket`, `Ticket is already reserved`, or \
            `Too many active reservations`", body = ErrorEnvelope),
        NotAuthorized,
        (status = 404, description = "The ticket is unknown to orders", body = ErrorEnvelope),
    )
)]
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidatedJson(body): ValidatedJson<NewOrder>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    let ticket_id = object_id(&body.ticket_id.unwrap_or_default())?;
    let own = || ApiError::BadRequest("Cannot buy your own ticket".into());
    let reserved = || ApiError::BadRequest("Ticket is already reserved".into());
    // Refused without reading the database when this replica saw the ticket held a moment
    // ago (the common case in a sale: most attempts are for tickets just reserved). An
    // attempt waits for this replica's attempts on the same ticket before it, so a ticket
    // one of them reserved is refused here too.
    let _claim = state.store.claim(ticket_id).await;
    if let Some(taken) = state.store.taken().get(ticket_id) {
        return Err(if taken.seller.as_deref() == Some(user.id.as_str()) { own() } else { reserved() });
    }
    let ticket = state.store.find_ticket(ticket_id).await?.ok_or(ApiError::NotFound)?;
    if ticket.user_id.as_deref() == Some(user.id.as_str()) {
        return Err(own());
    }
    // Refused without a transaction when the replica already knows it is taken.
    if ticket.reserved_by.is_some() {
        state.store.taken().insert(ticket.id, ticket.user_id.clone());
        return Err(reserved());
    }
    let expires_at = time::OffsetDateTime::now_utc() + state.expiration_window;
    let order = match state.store.reserve(&user.id, &ticket, expires_at, state.max_active_per_user).await? {
        Reservation::Reserved(order) => order,
        Reservation::Taken => return Err(reserved()),
        Reservation::TooMany => return Err(ApiError::BadRequest("Too many active reservations".into())),
    };
    state.reserved.inc();
    tracing::info!(order_id = %order.id, ticket_id = %ticket.id, "ticket reserved");
    Ok((StatusCode::CREATED, Json(OrderView::new(order, Some(ticket)))))
}

/// The caller's orders.
#[utoipa::path(
    get,
    path = "/api/orders",
    operation_id = "listOrders",
    tag = "orders",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The caller's orders", body = Vec<OrderView>),
        NotAuthorized,
    )
)]
async fn list(State(state): State<AppState>, CurrentUser(user): CurrentUser) -> Result<Json<Vec<OrderView>>, ApiError> {
    let orders = state.store.orders_of(&user.id).await?;
    Ok(Json(orders.into_iter().map(|(order, ticket)| OrderView::new(order, ticket)).collect()))
}

/// One of the caller's orders.
///
/// Check order: 401, 404, 403.
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    operation_id = "showOrder",
    tag = "orders",
    params(("id" = String, Path, description = "Order id (24 hex digits)")),
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderView),
        NotAuthorized,
        Forbidden,
        NotFound,
    )
)]
async fn show(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    let order = state.store.find_order(object_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    if order.user_id != user.id {
        return Err(ApiError::Forbidden);
    }
    let ticket = state.store.find_ticket(order.ticket_id).await?;
    Ok(Json(OrderView::new(order, ticket)))
}

/// Cancels an order and releases its ticket.
///
/// Check order: 401, 404, 400 paid, 403; an already cancelled order is a no-op 204.
#[utoipa::path(
    delete,
    path = "/api/orders/{id}",
    operation_id = "cancelOrder",
    tag = "orders",
    params(("id" = String, Path, description = "Order id (24 hex digits)")),
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Cancelled (emits order.cancelled), or already cancelled (no event)"),
        (status = 400, description = "`Cannot cancel a paid order`", body = ErrorEnvelope),
        NotAuthorized,
        Forbidden,
        NotFound,
    )
)]
async fn cancel(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = object_id(&id)?;
    for _ in 0..CANCEL_ATTEMPTS {
        let order = state.store.find_order(id).await?.ok_or(ApiError::NotFound)?;
        if order.status == OrderStatus::Complete {
            return Err(ApiError::BadRequest("Cannot cancel a paid order".into()));
        }
        if order.user_id != user.id {
            return Err(ApiError::Forbidden);
        }
        if order.status == OrderStatus::Cancelled {
            return Ok(StatusCode::NO_CONTENT);
        }
        // None: the order changed meanwhile (paid, expired): read it again.
        if state.store.cancel(&order).await?.is_some() {
            tracing::info!(order_id = %order.id, "order cancelled by its owner");
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    Err(ApiError::unavailable(anyhow::anyhow!("order {id} kept changing during the cancellation")))
}
