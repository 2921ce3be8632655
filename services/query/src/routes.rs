//! The query routes: tickets with their sale status, and the caller's orders.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::money::Price;
use common::{ApiError, CurrentUser, ErrorItem};
use serde::Serialize;

use crate::AppState;
use crate::store::{OrderView, PaymentView, TicketFilter, TicketStatus, TicketView, words};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/query/tickets", get(list_tickets))
        .route("/api/query/tickets/{id}", get(show_ticket))
        .route("/api/query/orders", get(list_orders))
        .route("/api/query/orders/{id}", get(show_order))
}

/// Default and largest page size.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
/// Most words a search may name.
const MAX_WORDS: usize = 10;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketItem {
    id: String,
    title: String,
    price: Price,
    user_id: String,
    version: i64,
    status: TicketStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<String>,
}

fn price(cents: i64) -> Result<Price, ApiError> {
    Price::from_cents(cents).map_err(ApiError::internal)
}

impl TryFrom<TicketView> for TicketItem {
    type Error = ApiError;
    fn try_from(t: TicketView) -> Result<Self, ApiError> {
        Ok(Self {
            price: price(t.price_cents)?,
            id: t.id,
            title: t.title,
            user_id: t.user_id,
            version: t.version,
            status: t.status,
            order_id: t.order_id,
        })
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketPage {
    items: Vec<TicketItem>,
    next_cursor: Option<String>,
}

/// Parses the list's query string, one envelope entry per bad parameter.
fn ticket_filter(params: &HashMap<String, String>) -> Result<TicketFilter, ApiError> {
    let mut errors = Vec::new();
    let status = match params.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(raw) => TicketStatus::parse(raw).or_else(|| {
            errors.push(ErrorItem::field("status", "Status must be available, reserved or sold"));
            None
        }),
    };
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                errors.push(ErrorItem::field("limit", format!("Limit must be a number from 1 to {MAX_LIMIT}")));
                DEFAULT_LIMIT
            }
        },
    };
    let after = match params.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => match URL_SAFE_NO_PAD.decode(raw).ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(id) => Some(id),
            None => {
                errors.push(ErrorItem::field("cursor", "Cursor is not one this service issued"));
                None
            }
        },
    };
    let words = params.get("q").map(|q| words(q)).unwrap_or_default();
    if words.len() > MAX_WORDS {
        errors.push(ErrorItem::field("q", format!("Search at most {MAX_WORDS} words")));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(TicketFilter { status, words, after, limit })
}

async fn list_tickets(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<TicketPage>, ApiError> {
    let mut filter = ticket_filter(&params)?;
    let page_size = filter.limit;
    filter.limit += 1; // one more tells whether there is a next page
    let mut tickets = state.store.tickets(&filter).await?;
    let more = tickets.len() as i64 > page_size;
    tickets.truncate(usize::try_from(page_size).unwrap_or(0));
    let next_cursor = more.then(|| tickets.last().map(|t| URL_SAFE_NO_PAD.encode(&t.id))).flatten();
    let items = tickets.into_iter().map(TicketItem::try_from).collect::<Result<_, _>>()?;
    Ok(Json(TicketPage { items, next_cursor }))
}

async fn show_ticket(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TicketItem>, ApiError> {
    let ticket = state.store.ticket(&id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(ticket.try_into()?))
}

#[derive(Debug, Serialize)]
pub struct OrderTicket {
    id: String,
    title: Option<String>,
    price: Option<Price>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPayment {
    id: String,
    charge_id: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    id: String,
    user_id: String,
    status: common::events::OrderStatus,
    expires_at: String,
    version: i64,
    ticket: OrderTicket,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<OrderPayment>,
}

/// Joins orders with their tickets and payments (two queries, whatever the count).
async fn order_items(state: &AppState, orders: Vec<OrderView>) -> Result<Vec<OrderItem>, ApiError> {
    let ticket_ids: Vec<String> = orders.iter().map(|o| o.ticket_id.clone()).collect();
    let order_ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
    let tickets = state.store.tickets_by_ids(&ticket_ids).await?;
    let payments: Vec<PaymentView> = state.store.payments_of(&order_ids).await?;
    orders
        .into_iter()
        .map(|order| {
            let ticket = tickets.iter().find(|t| t.id == order.ticket_id);
            let payment = payments.iter().find(|p| p.order_id == order.id);
            Ok(OrderItem {
                ticket: OrderTicket {
                    id: order.ticket_id.clone(),
                    title: ticket.map(|t| t.title.clone()),
                    price: ticket.map(|t| price(t.price_cents)).transpose()?,
                },
                payment: payment.map(|p| OrderPayment { id: p.id.clone(), charge_id: p.charge_id.clone() }),
                id: order.id,
                user_id: order.user_id,
                status: order.status,
                expires_at: order.expires_at,
                version: order.version,
            })
        })
        .collect()
}

async fn list_orders(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<OrderItem>>, ApiError> {
    let orders = state.store.orders_of(&user.id).await?;
    Ok(Json(order_items(&state, orders).await?))
}

async fn show_order(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<OrderItem>, ApiError> {
    let order = state.store.order(&id).await?.ok_or(ApiError::NotFound)?;
    if order.user_id != user.id {
        return Err(ApiError::Forbidden);
    }
    let mut items = order_items(&state, vec![order]).await?;
    items.pop().map(Json).ok_or_else(|| ApiError::internal(anyhow::anyhow!("order vanished while joining")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let err = ticket_filter(&params(&[("status", "gone"), ("limit", "1000"), ("cursor", "%%%")])).unwrap_err();
        let ApiError::Validation(items) = err else { panic!("a validation error") };
        let fields: Vec<_> = items.iter().filter_map(|i| i.field.as_deref()).collect();
        assert_eq!(fields, vec!["status", "limit", "cursor"]);
    }

    #[test]
    fn defaults_apply_and_words_are_normalised() {
        let filter = ticket_filter(&params(&[("q", "Rock CONCERT")])).unwrap();
        assert_eq!((filter.limit, filter.status, filter.after), (DEFAULT_LIMIT, None, None));
        assert_eq!(filter.words, vec!["concert", "rock"]);
    }
}
