//! The four routes of the tickets service.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::extract::object_id;
use common::money::{Price, PriceInput};
use common::openapi::{Forbidden, NotAuthorized, NotFound};
use common::{ApiError, CurrentUser, ErrorEnvelope, ValidatedJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::store::Ticket;

/// The routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create)).routes(routes!(show, update))
}

/// Longest accepted title, in characters.
pub const MAX_TITLE: usize = 200;
/// Attempts of an update that keeps meeting concurrent changes.
const UPDATE_ATTEMPTS: usize = 5;

fn valid_title(title: &str) -> Result<(), ValidationError> {
    let title = title.trim();
    if title.is_empty() {
        Err(ValidationError::new("title").with_message("Title is required".into()))
    } else if title.chars().count() > MAX_TITLE {
        Err(ValidationError::new("title").with_message("Title must be at most 200 characters".into()))
    } else {
        Ok(())
    }
}

fn valid_price(price: &PriceInput) -> Result<(), ValidationError> {
    price.price().map(drop).map_err(|e| ValidationError::new("price").with_message(e.to_string().into()))
}

/// Body of create and update. The fields are options so that a missing one is a field
/// error in the envelope, not a decoding failure.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct TicketBody {
    /// Not blank; at most 200 characters once trimmed.
    #[validate(required(message = "Title is required"), custom(function = "valid_title"))]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"\S")]
    title: Option<String>,
    /// A number, or the text of one (`"25.00"`, as the course's client sends it).
    #[validate(required(message = "Price must be greater than 0"), custom(function = "valid_price"))]
    #[schema(value_type = PriceInput, required = true)]
    price: Option<PriceInput>,
}

impl TicketBody {
    /// The validated title (trimmed) and price.
    fn into_parts(self) -> Result<(String, Price), ApiError> {
        let title = self.title.unwrap_or_default().trim().to_owned();
        let price = self
            .price
            .ok_or(common::money::PriceError::NotPositive)
            .and_then(PriceInput::price)
            .map_err(|e| ApiError::field("price", e.to_string()))?;
        Ok((title, price))
    }
}

/// A ticket as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Ticket)]
pub struct TicketView {
    id: String,
    title: String,
    price: Price,
    user_id: String,
    version: i64,
    /// The order holding the ticket, only while reserved.
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<String>,
}

impl From<Ticket> for TicketView {
    fn from(t: Ticket) -> Self {
        let price = t.price;
        Self { id: t.id.to_hex(), title: t.title, price, user_id: t.user_id, version: t.version, order_id: t.order_id }
    }
}

/// Puts a ticket up for sale.
#[utoipa::path(
    post,
    path = "/api/tickets",
    operation_id = "createTicket",
    tag = "tickets",
    request_body = TicketBody,
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created, version 0; emits ticket.created", body = TicketView),
        (status = 400, description = "Validation: one entry per failing field", body = ErrorEnvelope),
        NotAuthorized,
    )
)]
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidatedJson(body): ValidatedJson<TicketBody>,
) -> Result<(StatusCode, Json<TicketView>), ApiError> {
    let (title, price) = body.into_parts()?;
    let ticket = state.store.create(title, price, user.id).await?;
    tracing::info!(ticket_id = %ticket.id, "ticket created");
    Ok((StatusCode::CREATED, Json(ticket.into())))
}

/// The tickets that are not reserved.
#[utoipa::path(
    get,
    path = "/api/tickets",
    operation_id = "listTickets",
    tag = "tickets",
    responses((status = 200, description = "Tickets not reserved", body = Vec<TicketView>))
)]
async fn list(State(state): State<AppState>) -> Result<Json<Vec<TicketView>>, ApiError> {
    let tickets = state.store.list_available().await?;
    Ok(Json(tickets.into_iter().map(Into::into).collect()))
}

/// One ticket.
#[utoipa::path(
    get,
    path = "/api/tickets/{id}",
    operation_id = "showTicket",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id (24 hex digits)")),
    responses(
        (status = 200, description = "The ticket", body = TicketView),
        NotFound,
    )
)]
async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TicketView>, ApiError> {
    let ticket = state.store.find(object_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(ticket.into()))
}

/// Edits a ticket.
///
/// Check order: 401 (extractor), 400 validation (extractor), 404, 400 reserved, 403.
#[utoipa::path(
    put,
    path = "/api/tickets/{id}",
    operation_id = "updateTicket",
    tag = "tickets",
    params(("id" = String, Path, description = "Ticket id (24 hex digits)")),
    request_body = TicketBody,
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Updated, version + 1; emits ticket.updated", body = TicketView),
        (status = 400, description = "Validation, or `Cannot edit a reserved ticket`", body = ErrorEnvelope),
        NotAuthorized,
        Forbidden,
        NotFound,
    )
)]
async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<TicketBody>,
) -> Result<Json<TicketView>, ApiError> {
    let (title, price) = body.into_parts()?;
    let id = object_id(&id)?;
    for _ in 0..UPDATE_ATTEMPTS {
        let ticket = state.store.find(id).await?.ok_or(ApiError::NotFound)?;
        if ticket.order_id.is_some() {
            return Err(ApiError::BadRequest("Cannot edit a reserved ticket".into()));
        }
        if ticket.user_id != user.id {
            return Err(ApiError::Forbidden);
        }
        // A concurrent change (another edit, a reservation) makes this return None: read
        // again and re-check the rules against the new state.
        if let Some(updated) = state.store.update(&ticket, title.clone(), price).await? {
            tracing::info!(ticket_id = %updated.id, version = updated.version, "ticket updated");
            return Ok(Json(updated.into()));
        }
    }
    Err(ApiError::unavailable(anyhow::anyhow!("ticket {id} kept changing during the update")))
}
