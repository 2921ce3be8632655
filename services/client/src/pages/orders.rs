//! Orders: one order (the countdown, the payment, the result), paying, cancelling, and
//! the list of the visitor's orders.

use std::time::Duration;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Layout, PageError, clock, dollars, render, see_other};
use crate::AppState;
use crate::forms::SafeForm;
use crate::pages::tickets::Nothing;
use crate::visitor::{Flash, Visitor};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiOrder {
    id: String,
    status: String,
    expires_at: String,
    ticket: ApiOrderTicket,
}

#[derive(Deserialize)]
struct ApiOrderTicket {
    id: String,
    title: Option<String>,
    price: Option<f64>,
}

/// An order as the pages show it.
#[derive(Debug)]
pub struct OrderView {
    pub id: String,
    pub ticket_id: String,
    pub ticket_title: String,
    pub price: String,
    pub expires_at: String,
    /// `pending`, `paid`, `expired` or `cancelled`.
    pub state: &'static str,
    pub state_label: &'static str,
    pub detail: String,
    pub seconds_left: i64,
}

fn seconds_until(rfc3339: &str) -> i64 {
    let now = time::OffsetDateTime::now_utc();
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|at| (at - now).whole_seconds())
        .unwrap_or(0)
}

impl From<ApiOrder> for OrderView {
    fn from(order: ApiOrder) -> Self {
        let seconds_left = seconds_until(&order.expires_at);
        // A reservation past its time is expired for the buyer even before the expiration
        // event has cancelled it (payments refuses it too).
        let (state, state_label) = match order.status.as_str() {
            "complete" => ("paid", "Paid"),
            "cancelled" if seconds_left <= 0 => ("expired", "Expired"),
            "cancelled" => ("cancelled", "Cancelled"),
            _ if seconds_left <= 0 => ("expired", "Expired"),
            _ => ("pending", "Awaiting payment"),
        };
        let detail = match state {
            "pending" => format!("Pay within {}", clock(seconds_left)),
            "paid" => "The ticket is yours".to_owned(),
            "expired" => "Not paid in time".to_owned(),
            _ => "Cancelled, nothing charged".to_owned(),
        };
        Self {
            id: order.id,
            ticket_id: order.ticket.id,
            ticket_title: order.ticket.title.unwrap_or_else(|| "A ticket".to_owned()),
            price: order.ticket.price.map(dollars).unwrap_or_default(),
            expires_at: order.expires_at,
            state,
            state_label,
            detail,
            seconds_left,
        }
    }
}

#[derive(Template)]
#[template(path = "order.html")]
struct OrderPage {
    l: Layout,
    order: OrderView,
    state: &'static str,
    state_label: &'static str,
    countdown: String,
    seconds_left: i64,
}

fn require_user(visitor: &Visitor, back: &str) -> Result<(), PageError> {
    if visitor.signed_in() { Ok(()) } else { Err(PageError::SignIn(back.to_owned())) }
}

async fn order(state: &AppState, visitor: &mut Visitor, id: &str) -> Result<ApiOrder, PageError> {
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PageError::NotFound);
    }
    let reply = state.api.get(&format!("/api/orders/{id}"), &visitor.caller).await?;
    match reply.status {
        StatusCode::OK => Ok(reply.json()?),
        StatusCode::UNAUTHORIZED => {
            visitor.sign_out_locally();
            Err(PageError::SignIn(format!("/orders/{id}")))
        }
        StatusCode::FORBIDDEN => Err(PageError::NotYours),
        _ => Err(PageError::NotFound),
    }
}

/// `GET /orders/{id}`
pub async fn show(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    require_user(&visitor, &format!("/orders/{id}"))?;
    let view = OrderView::from(order(&state, &mut visitor, &id).await?);
    let mut layout = Layout::new(&state, &visitor, format!("Order: {}", view.ticket_title), "orders");
    if view.state == "pending" {
        layout.stripe_key.clone_from(&state.stripe_key);
    }
    let page = OrderPage {
        l: layout,
        state: view.state,
        state_label: view.state_label,
        countdown: clock(view.seconds_left),
        seconds_left: view.seconds_left,
        order: view,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Debug, Deserialize)]
pub struct PayFields {
    #[serde(default)]
    token: String,
}

/// How long the page waits for the order to show as paid after the charge (orders learns
/// of the payment from its event, a few milliseconds later).
const CONFIRMATION_WAIT: Duration = Duration::from_secs(3);

/// `POST /orders/{id}/pay`: charges the card token (a Stripe PaymentMethod, or a test
/// card), then shows the result on the order page.
pub async fn pay(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Path(id): Path<String>,
    SafeForm(form): SafeForm<PayFields>,
) -> Result<Response, PageError> {
    let back = format!("/orders/{id}");
    require_user(&visitor, &back)?;
    let body = json!({"token": form.token, "orderId": id});
    let reply = match state.api.post("/api/payments", &visitor.caller, &body).await {
        Ok(reply) => reply,
        Err(err) => {
            // Payments could not say whether the card was charged; it finds out before any
            // new attempt, so paying again is safe and never charges twice.
            tracing::warn!(error = %err, "payment outcome unknown to the buyer");
            visitor.flash(&Flash::error(
                "We could not confirm your payment. Try again in a moment: you will never be charged twice.",
            ));
            return Ok(see_other(&back));
        }
    };
    match reply.status {
        StatusCode::CREATED => {
            let deadline = tokio::time::Instant::now() + CONFIRMATION_WAIT;
            while tokio::time::Instant::now() < deadline {
                if order(&state, &mut visitor, &id).await?.status == "complete" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            visitor.flash(&Flash::success("Payment received. Enjoy the event!"));
        }
        StatusCode::UNAUTHORIZED => {
            visitor.sign_out_locally();
            return Err(PageError::SignIn(back));
        }
        StatusCode::FORBIDDEN => return Err(PageError::NotYours),
        StatusCode::NOT_FOUND => return Err(PageError::NotFound),
        _ => {
            let problems = reply.errors();
            let message = problems
                .general
                .first()
                .or_else(|| problems.fields.values().next())
                .cloned()
                .unwrap_or_else(|| "The payment did not go through.".into());
            visitor.flash(&Flash::error(format!("{message} Nothing was charged; you can try again.")));
        }
    }
    Ok(see_other(&back))
}

/// `POST /orders/{id}/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Path(id): Path<String>,
    SafeForm(_): SafeForm<Nothing>,
) -> Result<Response, PageError> {
    let back = format!("/orders/{id}");
    require_user(&visitor, &back)?;
    let reply = state.api.call(Method::DELETE, &format!("/api/orders/{id}"), &visitor.caller, None).await?;
    match reply.status {
        StatusCode::NO_CONTENT => visitor.flash(&Flash::info("Reservation cancelled. The ticket is back on sale.")),
        StatusCode::UNAUTHORIZED => {
            visitor.sign_out_locally();
            return Err(PageError::SignIn(back));
        }
        StatusCode::FORBIDDEN => return Err(PageError::NotYours),
        StatusCode::NOT_FOUND => return Err(PageError::NotFound),
        _ => {
            let message = reply.errors().general.into_iter().next().unwrap_or_else(|| "Could not cancel it.".into());
            visitor.flash(&Flash::error(message));
        }
    }
    Ok(see_other(&back))
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    l: Layout,
    orders: Vec<OrderView>,
}

/// `GET /orders`
pub async fn list(State(state): State<AppState>, mut visitor: Visitor) -> Result<Response, PageError> {
    require_user(&visitor, "/orders")?;
    let reply = state.api.get("/api/orders", &visitor.caller).await?;
    if reply.status == StatusCode::UNAUTHORIZED {
        visitor.sign_out_locally();
        return Err(PageError::SignIn("/orders".into()));
    }
    let orders: Vec<ApiOrder> = reply.json()?;
    let page = OrdersPage {
        l: Layout::new(&state, &visitor, "My orders", "orders"),
        orders: orders.into_iter().map(OrderView::from).collect(),
    };
    Ok(render(StatusCode::OK, &page))
}
