//! The four routes of the tickets service.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use common::extract::object_id;
use common::money::Price;
use common::{ApiError, CurrentUser, ValidatedJson};
use serde::{Deserialize, Serialize};
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::store::Ticket;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/tickets", get(list).post(create)).route("/api/tickets/{id}", get(show).put(update))
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

fn valid_price(price: f64) -> Result<(), ValidationError> {
    Price::from_decimal(price).map(drop).map_err(|e| ValidationError::new("price").with_message(e.to_string().into()))
}

/// Body of create and update.
#[derive(Debug, Deserialize, Validate)]
pub struct TicketBody {
    #[validate(required(message = "Title is required"), custom(function = "valid_title"))]
    title: Option<String>,
    #[validate(required(message = "Price must be greater than 0"), custom(function = "valid_price"))]
    price: Option<f64>,
}

impl TicketBody {
    /// The validated title (trimmed) and price.
    fn into_parts(self) -> Result<(String, Price), ApiError> {
        let title = self.title.unwrap_or_default().trim().to_owned();
        let price =
            Price::from_decimal(self.price.unwrap_or_default()).map_err(|e| ApiError::field("price", e.to_string()))?;
        Ok((title, price))
    }
}

/// A ticket as clients see it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    id: String,
    title: String,
    price: Price,
    user_id: String,
    version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<String>,
}

impl From<Ticket> for TicketView {
    fn from(t: Ticket) -> Self {
        let price = t.price();
        Self { id: t.id.to_hex(), title: t.title, price, user_id: t.user_id, version: t.version, order_id: t.order_id }
    }
}

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

async fn list(State(state): State<AppState>) -> Result<Json<Vec<TicketView>>, ApiError> {
    let tickets = state.store.list_available().await?;
    Ok(Json(tickets.into_iter().map(Into::into).collect()))
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TicketView>, ApiError> {
    let ticket = state.store.find(object_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(ticket.into()))
}

/// Check order: 401 (extractor), 400 validation (extractor), 404, 400 reserved, 403.
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
