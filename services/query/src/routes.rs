//! The query routes: tickets with their sale status, and the caller's orders.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use common::money::Price;
use common::openapi::{Forbidden, NotAuthorized, NotFound};
use common::{ApiError, CurrentUser, ErrorEnvelope, ErrorItem};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::StreamExt;

use crate::AppState;
use crate::feed::{FeedFilter, Item};
use crate::store::{OrderView, PaymentView, TicketFilter, TicketStatus, TicketView, words};

/// The routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tickets))
        .routes(routes!(ticket_events))
        .routes(routes!(show_ticket))
        .routes(routes!(list_orders))
        .routes(routes!(show_order))
        .routes(routes!(list_posts))
}

/// Default and largest page size.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
/// Longest search text, in characters (a title's longest).
const MAX_SEARCH: usize = 200;
/// Decodes cursors: unpadded base64url of any length a decoder accepts, which is the
/// pattern the OpenAPI description gives (so every string it allows is accepted),
/// including a hand-made cursor with non-zero trailing bits (it only positions the page).
const CURSOR: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// A ticket with its sale status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketItem {
    id: String,
    title: String,
    price: Price,
    user_id: String,
    version: i64,
    status: TicketStatus,
    /// The order holding the ticket, while reserved or sold.
    #[serde(skip_serializing_if = "Option::is_none")]
    order_id: Option<String>,
}

impl TryFrom<TicketView> for TicketItem {
    type Error = ApiError;
    fn try_from(t: TicketView) -> Result<Self, ApiError> {
        Ok(Self {
            price: t.price,
            id: t.id,
            title: t.title,
            user_id: t.user_id,
            version: t.version,
            status: t.status,
            order_id: t.order_id,
        })
    }
}

/// The live feed's filter: `ids` (comma-separated ticket ids: every change of those
/// tickets), else `status` and `q` as in the listing (tickets that now match them).
fn feed_filter(params: &HashMap<String, String>) -> Result<FeedFilter, ApiError> {
    let mut errors = Vec::new();
    let status = match params.get("status").map(String::as_str) {
        None => None,
        Some(raw) => TicketStatus::parse(raw).or_else(|| {
            errors.push(ErrorItem::field("status", "Status must be available, reserved or sold"));
            None
        }),
    };
    let search = params.get("q").map(String::as_str).unwrap_or_default();
    if search.chars().count() > MAX_SEARCH {
        errors.push(ErrorItem::field("q", format!("Search at most {MAX_SEARCH} characters")));
    }
    let ids = params
        .get("ids")
        .map(|raw| raw.split(',').map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned).collect::<Vec<_>>());
    if ids.as_ref().is_some_and(|ids| ids.len() > MAX_LIMIT as usize || ids.iter().any(|id| id.len() > 64)) {
        errors.push(ErrorItem::field("ids", format!("At most {MAX_LIMIT} ticket ids")));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(FeedFilter { status, words: words(search), ids })
}

/// How often an idle stream carries a comment, so proxies do not close it.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// Ticket changes as they happen, as Server-Sent Events.
///
/// Each event is `event: ticket`, `id: <sequence>`, `data: {id,title,price,status,version,orderId?}`.
/// Reconnecting with `Last-Event-ID` resumes after that change; a client too far behind,
/// or too slow to read, gets `event: reload` and the stream ends. A comment every 15 s
/// keeps idle connections open through proxies.
#[utoipa::path(
    get,
    path = "/api/query/tickets/events",
    operation_id = "ticketEvents",
    tag = "query",
    params(
        ("ids" = Option<String>, Query, description = "Comma-separated ticket ids: every change of these tickets"),
        ("status" = Option<TicketStatus>, Query, description = "Without ids: tickets that now have this status"),
        ("q" = Option<String>, Query, max_length = 200, description = "Without ids: tickets whose title has these words"),
        ("Last-Event-ID" = Option<String>, Header, description = "The last change seen: resume after it"),
    ),
    responses(
        (status = 200, description = "A stream of `ticket` events (text/event-stream)", content_type = "text/event-stream",
            body = String),
        (status = 400, description = "A bad parameter", body = ErrorEnvelope),
    )
)]
async fn ticket_events(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let filter = feed_filter(&params)?;
    let last_seen =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let stream = state.feed.items(filter, last_seen).filter_map(|item| async move {
        match item {
            Item::Change(change) => {
                Event::default().event("ticket").id(change.seq.to_string()).json_data(&change.change.ticket).ok()
            }
            Item::Reload => Some(Event::default().event("reload").data("reload")),
        }
    });
    let stream = stream.map(Ok);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

/// One page of tickets.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketPage {
    items: Vec<TicketItem>,
    /// Pass as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

/// Parses the list's query string, one envelope entry per bad parameter.
fn ticket_filter(params: &HashMap<String, String>) -> Result<TicketFilter, ApiError> {
    let mut errors = Vec::new();
    let status = match params.get("status").map(String::as_str) {
        None => None,
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
        Some(raw) => match CURSOR.decode(raw) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(_) => {
                errors.push(ErrorItem::field("cursor", "Cursor is not one this service issued"));
                None
            }
        },
    };
    let search = params.get("q").map(String::as_str).unwrap_or_default();
    if search.chars().count() > MAX_SEARCH {
        errors.push(ErrorItem::field("q", format!("Search at most {MAX_SEARCH} characters")));
    }
    let words = words(search);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(TicketFilter { status, words, after, limit })
}

/// Tickets with their sale status, in the order they were listed (oldest first), a page at a time.
#[utoipa::path(
    get,
    path = "/api/query/tickets",
    operation_id = "queryTickets",
    tag = "query",
    params(
        ("status" = Option<TicketStatus>, Query, description = "Only tickets with this status"),
        ("q" = Option<String>, Query, max_length = 200,
            description = "Title words, all of which must match (case and punctuation ignored)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size, 20 by default"),
        ("cursor" = Option<String>, Query, pattern = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$",
            description = "`nextCursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "One page", body = TicketPage),
        (status = 400, description = "A bad parameter (one entry per parameter)", body = ErrorEnvelope),
    )
)]
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

/// One ticket with its sale status.
#[utoipa::path(
    get,
    path = "/api/query/tickets/{id}",
    operation_id = "queryTicket",
    tag = "query",
    params(("id" = String, Path, description = "Ticket id")),
    responses(
        (status = 200, description = "The ticket", body = TicketItem),
        NotFound,
    )
)]
async fn show_ticket(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<TicketItem>, ApiError> {
    let ticket = state.store.ticket(&id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(ticket.try_into()?))
}

/// The ticket of an order, as far as the read model knows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = QueryOrderTicket)]
pub struct OrderTicket {
    id: String,
    title: Option<String>,
    price: Option<Price>,
}

/// The payment of a paid order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPayment {
    id: String,
    charge_id: String,
}

/// An order with its ticket, and its payment once paid.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    id: String,
    user_id: String,
    status: common::events::OrderStatus,
    #[schema(format = DateTime)]
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
                    price: ticket.map(|t| t.price),
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

/// The caller's orders, with tickets and payments.
#[utoipa::path(
    get,
    path = "/api/query/orders",
    operation_id = "queryOrders",
    tag = "query",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The caller's orders", body = Vec<OrderItem>),
        NotAuthorized,
    )
)]
async fn list_orders(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<OrderItem>>, ApiError> {
    let orders = state.store.orders_of(&user.id).await?;
    Ok(Json(order_items(&state, orders).await?))
}

/// One of the caller's orders, with its ticket and payment.
#[utoipa::path(
    get,
    path = "/api/query/orders/{id}",
    operation_id = "queryOrder",
    tag = "query",
    params(("id" = String, Path, description = "Order id")),
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = OrderItem),
        NotAuthorized,
        Forbidden,
        NotFound,
    )
)]
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

    /// The cursor pattern of the description (`list_tickets`).
    const CURSOR_PATTERN: &str = "^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$";

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
    fn an_empty_status_or_an_overlong_search_is_named() {
        let long = "a ".repeat(101);
        let err = ticket_filter(&params(&[("status", ""), ("q", long.as_str())])).unwrap_err();
        let ApiError::Validation(items) = err else { panic!("a validation error") };
        let fields: Vec<_> = items.iter().filter_map(|i| i.field.as_deref()).collect();
        assert_eq!(fields, vec!["status", "q"]);
    }

    #[test]
    fn every_cursor_the_description_allows_is_accepted_and_others_are_not() {
        let pattern = regex::Regex::new(CURSOR_PATTERN).unwrap();
        let issued = URL_SAFE_NO_PAD.encode("6b0ad08f7d57b7e6608192c7");
        for cursor in [issued.as_str(), "", "AB", "ABC", "ABCD", "AB_-xy", "Ab", "__"] {
            assert!(pattern.is_match(cursor), "{cursor}");
            assert!(ticket_filter(&params(&[("cursor", cursor)])).is_ok(), "{cursor}");
        }
        for cursor in ["A", "ABCDE", "%%", "AB==", "a+b/"] {
            assert!(!pattern.is_match(cursor), "{cursor}");
            assert!(ticket_filter(&params(&[("cursor", cursor)])).is_err(), "{cursor}");
        }
        let filter = ticket_filter(&params(&[("cursor", issued.as_str())])).unwrap();
        assert_eq!(filter.after.as_deref(), Some("6b0ad08f7d57b7e6608192c7"));
    }

    #[test]
    fn the_description_names_the_cursor_pattern_and_the_search_limit() {
        let (_, doc) = routes().split_for_parts();
        let doc = serde_json::to_value(doc).unwrap();
        let parameters = doc["paths"]["/api/query/tickets"]["get"]["parameters"].as_array().unwrap().clone();
        let schema = |name: &str| parameters.iter().find(|p| p["name"] == name).unwrap()["schema"].clone();
        assert_eq!(schema("cursor")["pattern"], CURSOR_PATTERN);
        assert_eq!(schema("q")["maxLength"], MAX_SEARCH);
        assert_eq!(schema("limit")["maximum"], MAX_LIMIT);
    }

    #[test]
    fn defaults_apply_and_words_are_normalised() {
        let filter = ticket_filter(&params(&[("q", "Rock CONCERT")])).unwrap();
        assert_eq!((filter.limit, filter.status, filter.after), (DEFAULT_LIMIT, None, None));
        assert_eq!(filter.words, vec!["concert", "rock"]);
    }
}

/// A comment in the blog's read model.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = QueryComment)]
pub struct CommentItem {
    id: String,
    content: String,
    /// `pending` until moderated, then `approved` or `rejected`.
    status: common::events::CommentStatus,
    user_id: String,
    version: i64,
}

/// A blog post with its comments.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = QueryPost)]
pub struct PostItem {
    id: String,
    title: String,
    user_id: String,
    version: i64,
    /// Oldest first, whatever their status (a client may hide the rejected ones).
    comments: Vec<CommentItem>,
}

/// The blog: every post (oldest first, at most 500) with its comments and their
/// moderation status, from events only.
#[utoipa::path(
    get,
    path = "/api/query/posts",
    operation_id = "queryPosts",
    tag = "query",
    responses((status = 200, description = "Posts with their comments", body = Vec<PostItem>))
)]
async fn list_posts(State(state): State<AppState>) -> Result<Json<Vec<PostItem>>, ApiError> {
    let posts = state.blog.posts().await?;
    Ok(Json(
        posts
            .into_iter()
            .map(|(post, comments)| PostItem {
                id: post.id,
                title: post.title,
                user_id: post.user_id,
                version: post.version,
                comments: comments
                    .into_iter()
                    .map(|c| CommentItem {
                        id: c.id,
                        content: c.content,
                        status: c.status,
                        user_id: c.user_id,
                        version: c.version,
                    })
                    .collect(),
            })
            .collect(),
    ))
}
