//! Tickets: the listing, one ticket, selling and editing, and buying (a reservation).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Layout, PageError, dollars, render, see_other};
use crate::AppState;
use crate::api::Problems;
use crate::forms::SafeForm;
use crate::visitor::{Flash, Visitor};

/// Tickets per page of the listing.
const PAGE_SIZE: u32 = 12;

/// A ticket as the pages show it.
#[derive(Debug, Clone)]
pub struct TicketCard {
    pub id: String,
    pub title: String,
    /// `$25.00`
    pub price: String,
    /// `available`, `reserved` or `sold`.
    pub status: String,
    pub user_id: String,
}

impl TicketCard {
    pub fn status_label(&self) -> &'static str {
        match self.status.as_str() {
            "reserved" => "Reserved",
            "sold" => "Sold",
            _ => "Available",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryTicket {
    id: String,
    title: String,
    price: f64,
    user_id: String,
    status: String,
}

impl From<QueryTicket> for TicketCard {
    fn from(t: QueryTicket) -> Self {
        Self { id: t.id, title: t.title, price: dollars(t.price), status: t.status, user_id: t.user_id }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryPage {
    items: Vec<QueryTicket>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    l: Layout,
    q: String,
    status: String,
    searching: bool,
    tickets: Vec<TicketCard>,
    next_page: Option<String>,
    count_text: String,
}

/// `GET /`: tickets with their status, from the query service; search, filter, more.
pub async fn home(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(params): Query<ListParams>,
) -> Result<Response, PageError> {
    let q: String = params.q.trim().chars().take(200).collect();
    let status = match params.status.as_str() {
        "available" | "reserved" | "sold" => params.status.clone(),
        _ => String::new(),
    };
    let mut query = vec![("limit", PAGE_SIZE.to_string())];
    if !q.is_empty() {
        query.push(("q", q.clone()));
    }
    if !status.is_empty() {
        query.push(("status", status.clone()));
    }
    if !params.cursor.is_empty() {
        query.push(("cursor", params.cursor.clone()));
    }
    let path = format!("/api/query/tickets?{}", serde_urlencoded::to_string(&query).unwrap_or_default());
    let reply = state.api.get(&path, &visitor.caller).await?;
    let page: QueryPage = if reply.is_success() {
        reply.json()?
    } else {
        // A cursor or search the API refuses (hand-edited URL): no results, not an error.
        QueryPage { items: Vec::new(), next_cursor: None }
    };
    let next_page = page.next_cursor.map(|cursor| {
        let mut next = vec![("cursor", cursor)];
        if !q.is_empty() {
            next.push(("q", q.clone()));
        }
        if !status.is_empty() {
            next.push(("status", status.clone()));
        }
        format!("/?{}", serde_urlencoded::to_string(&next).unwrap_or_default())
    });
    let shown = page.items.len();
    let count_text = match (shown, next_page.is_some()) {
        (1, false) => "1 ticket".to_owned(),
        (n, false) => format!("{n} tickets"),
        (n, true) => format!("{n} shown, more below"),
    };
    let page = HomePage {
        count_text,
        l: Layout::new(&state, &visitor, "Tickets", ""),
        searching: !q.is_empty() || !status.is_empty(),
        q,
        status,
        tickets: page.items.into_iter().map(TicketCard::from).collect(),
        next_page,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiTicket {
    id: String,
    title: String,
    price: f64,
    user_id: String,
    order_id: Option<String>,
}

#[derive(Deserialize)]
struct StatusOnly {
    status: String,
}

/// The ticket (from its owner, the tickets service) with its sale status (from the read
/// model, which knows whether it was sold; a ticket too new for it is available or
/// reserved as the owner says).
async fn ticket(state: &AppState, visitor: &Visitor, id: &str) -> Result<TicketCard, PageError> {
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PageError::NotFound);
    }
    let (owner_path, view_path) = (format!("/api/tickets/{id}"), format!("/api/query/tickets/{id}"));
    let (owner, view) =
        tokio::join!(state.api.get(&owner_path, &visitor.caller), state.api.get(&view_path, &visitor.caller));
    let owner = owner?;
    if owner.status == StatusCode::NOT_FOUND {
        return Err(PageError::NotFound);
    }
    let ticket: ApiTicket = owner.json()?;
    let status = match view {
        Ok(view) if view.is_success() => view.json::<StatusOnly>()?.status,
        _ if ticket.order_id.is_some() => "reserved".to_owned(),
        _ => "available".to_owned(),
    };
    Ok(TicketCard { id: ticket.id, title: ticket.title, price: dollars(ticket.price), status, user_id: ticket.user_id })
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    l: Layout,
    ticket: TicketCard,
    mine: bool,
}

/// `GET /tickets/{id}`
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let ticket = ticket(&state, &visitor, &id).await?;
    let page = TicketPage {
        l: Layout::new(&state, &visitor, ticket.title.clone(), ""),
        mine: visitor.is(&ticket.user_id),
        ticket,
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "ticket_form.html")]
struct TicketForm {
    l: Layout,
    heading: &'static str,
    intro: &'static str,
    action: String,
    submit: &'static str,
    back_href: String,
    back_text: &'static str,
    title: String,
    price: String,
    problems: Problems,
    focus: &'static str,
}

/// What the ticket form posts.
#[derive(Debug, Deserialize)]
pub struct TicketFields {
    #[serde(default)]
    title: String,
    #[serde(default)]
    price: String,
}

fn new_form(state: &AppState, visitor: &Visitor, title: String, price: String, problems: Problems) -> TicketForm {
    TicketForm {
        l: Layout::new(state, visitor, "Sell a ticket", "sell"),
        heading: "Sell a ticket",
        intro: "Put a ticket up for sale. Buyers find it at once, reserve it, and pay before the reservation runs out.",
        action: "/tickets/new".into(),
        submit: "List the ticket",
        back_href: "/".into(),
        back_text: "All tickets",
        title,
        price,
        focus: problems.first_of(&["title", "price"]).unwrap_or("title"),
        problems,
    }
}

fn require_user(visitor: &Visitor, back: &str) -> Result<(), PageError> {
    if visitor.signed_in() { Ok(()) } else { Err(PageError::SignIn(back.to_owned())) }
}

/// `GET /tickets/new`
pub async fn new(State(state): State<AppState>, visitor: Visitor) -> Result<Response, PageError> {
    require_user(&visitor, "/tickets/new")?;
    Ok(render(StatusCode::OK, &new_form(&state, &visitor, String::new(), String::new(), Problems::default())))
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// `POST /tickets/new`: the price goes to the API as typed (it accepts a plain decimal
/// string), so the API's own rules and messages apply.
pub async fn create(
    State(state): State<AppState>,
    mut visitor: Visitor,
    SafeForm(form): SafeForm<TicketFields>,
) -> Result<Response, PageError> {
    require_user(&visitor, "/tickets/new")?;
    let body = json!({"title": form.title, "price": form.price.trim()});
    let reply = state.api.post("/api/tickets", &visitor.caller, &body).await?;
    match reply.status {
        StatusCode::CREATED => {
            let ticket: Created = reply.json()?;
            visitor.flash(&Flash::success("Ticket listed. Buyers can find it now."));
            Ok(see_other(&format!("/tickets/{}", ticket.id)))
        }
        StatusCode::UNAUTHORIZED => {
            visitor.sign_out_locally();
            Err(PageError::SignIn("/tickets/new".into()))
        }
        _ => {
            let form = new_form(&state, &visitor, form.title, form.price, reply.errors());
            Ok(render(StatusCode::BAD_REQUEST, &form))
        }
    }
}

fn edit_form(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
    title: String,
    price: String,
    problems: Problems,
) -> TicketForm {
    TicketForm {
        l: Layout::new(state, visitor, "Edit your ticket", ""),
        heading: "Edit your ticket",
        intro: "Change the title or the price. Buyers see the change at once.",
        action: format!("/tickets/{id}/edit"),
        submit: "Save changes",
        back_href: format!("/tickets/{id}"),
        back_text: "Back to the ticket",
        title,
        price,
        focus: problems.first_of(&["title", "price"]).unwrap_or("title"),
        problems,
    }
}

/// `GET /tickets/{id}/edit`: only the seller, only while nobody holds it.
pub async fn edit(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    require_user(&visitor, &format!("/tickets/{id}/edit"))?;
    let ticket = ticket(&state, &visitor, &id).await?;
    if !visitor.is(&ticket.user_id) {
        return Err(PageError::NotYours);
    }
    if ticket.status != "available" {
        visitor.flash(&Flash::error("This ticket is reserved or sold, so it cannot be edited."));
        return Ok(see_other(&format!("/tickets/{id}")));
    }
    let price = ticket.price.trim_start_matches('$').replace(',', "");
    Ok(render(StatusCode::OK, &edit_form(&state, &visitor, &id, ticket.title, price, Problems::default())))
}

/// `POST /tickets/{id}/edit`
pub async fn update(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Path(id): Path<String>,
    SafeForm(form): SafeForm<TicketFields>,
) -> Result<Response, PageError> {
    require_user(&visitor, &format!("/tickets/{id}/edit"))?;
    let body = json!({"title": form.title, "price": form.price.trim()});
    let reply =
        state.api.call(axum::http::Method::PUT, &format!("/api/tickets/{id}"), &visitor.caller, Some(&body)).await?;
    match reply.status {
        StatusCode::OK => {
            visitor.flash(&Flash::success("Ticket updated."));
            Ok(see_other(&format!("/tickets/{id}")))
        }
        StatusCode::UNAUTHORIZED => {
            visitor.sign_out_locally();
            Err(PageError::SignIn(format!("/tickets/{id}/edit")))
        }
        StatusCode::FORBIDDEN => Err(PageError::NotYours),
        StatusCode::NOT_FOUND => Err(PageError::NotFound),
        _ => {
            let form = edit_form(&state, &visitor, &id, form.title, form.price, reply.errors());
            Ok(render(StatusCode::BAD_REQUEST, &form))
        }
    }
}

/// Forms that carry nothing but their CSRF token.
#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// `POST /tickets/{id}/buy`: reserves the ticket and goes to the new order.
pub async fn buy(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Path(id): Path<String>,
    SafeForm(_): SafeForm<Nothing>,
) -> Result<Response, PageError> {
    let back = format!("/tickets/{id}");
    require_user(&visitor, &back)?;
    let reply = state.api.post("/api/orders", &visitor.caller, &json!({"ticketId": id})).await?;
    match reply.status {
        StatusCode::CREATED => {
            let order: Created = reply.json()?;
            Ok(see_other(&format!("/orders/{}", order.id)))
        }
        StatusCode::UNAUTHORIZED => {
            visitor.sign_out_locally();
            Err(PageError::SignIn(back))
        }
        StatusCode::NOT_FOUND => {
            // Listed a moment ago: orders learns of it from its event.
            visitor.flash(&Flash::info("This ticket is not open for sale yet. Try again in a moment."));
            Ok(see_other(&back))
        }
        _ => {
            let message = reply.errors().general.into_iter().next().unwrap_or_else(|| "Could not reserve it".into());
            visitor.flash(&Flash::error(message));
            Ok(see_other(&back))
        }
    }
}
