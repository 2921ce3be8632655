//! The pages. Each is a full server render; every action is a form posted here and
//! answered with a redirect (Post/Redirect/Get), or the form again with its problems.

pub mod auth;
pub mod blog;
pub mod orders;
pub mod tickets;

use askama::Template;
use axum::http::{StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::AppState;
use crate::api::Unavailable;
use crate::visitor::{Flash, User, Visitor};

/// What every page's frame shows.
#[derive(Debug)]
pub struct Layout {
    pub title: String,
    /// Which navigation entry is this page (`sell`, `orders`, `blog`, `signin`, `signup`, or empty).
    pub current: &'static str,
    pub user: Option<User>,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub css: String,
    pub js: String,
    /// Loads Stripe.js, on the pages that take a card, when Stripe is configured.
    pub stripe_key: Option<String>,
}

impl Layout {
    pub fn new(state: &AppState, visitor: &Visitor, title: impl Into<String>, current: &'static str) -> Self {
        Self {
            title: title.into(),
            current,
            user: visitor.user.clone(),
            csrf: visitor.csrf.clone(),
            flash: visitor.flash.clone(),
            css: state.assets.css(),
            js: state.assets.js(),
            stripe_key: None,
        }
    }

    /// The frame of a page rendered without a visitor (error pages from the middleware).
    fn anonymous(title: &str) -> Self {
        let assets = crate::assets::Assets::default();
        Self {
            title: title.to_owned(),
            current: "",
            user: None,
            csrf: String::new(),
            flash: None,
            css: assets.css(),
            js: assets.js(),
            stripe_key: None,
        }
    }
}

/// Renders a template as a page with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a template failed to render");
            error_page(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// A redirect after a form (303: the browser follows with a GET).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not found")]
    NotFound,
    /// A form without a valid CSRF token or from another origin, or a page that is not the
    /// visitor's.
    #[error("forbidden")]
    Forbidden,
    /// Someone else's ticket or order.
    #[error("not the visitor's")]
    NotYours,
    /// The visitor must sign in first; then come back here.
    #[error("sign-in required")]
    SignIn(String),
    #[error("a form that cannot be read")]
    BadForm,
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound => error_page(StatusCode::NOT_FOUND),
            Self::Forbidden => error_page(StatusCode::FORBIDDEN),
            Self::NotYours => page_for(
                StatusCode::FORBIDDEN,
                "That is not yours to change",
                "Only the member who listed a ticket can edit it, and only the buyer can see an order.",
                false,
            ),
            Self::BadForm => error_page(StatusCode::BAD_REQUEST),
            Self::SignIn(back) => see_other(&format!("/auth/signin?next={}", encode(&back))),
            Self::Unavailable(err) => {
                tracing::warn!(error = %err, "the API is unavailable; answering 503");
                let mut page = error_page(StatusCode::SERVICE_UNAVAILABLE);
                page.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                page
            }
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)]).map(|s| s[2..].to_owned()).unwrap_or_default()
}

/// A local path to come back to after signing in; anything else (another site, a
/// protocol-relative `//host`) is the home page.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.starts_with("/\\") => path.to_owned(),
        _ => "/".to_owned(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    code: u16,
    heading: &'static str,
    text: &'static str,
    retry: bool,
    retry_href: &'static str,
}

/// The error page of a status, in the layout.
pub fn error_page(status: StatusCode) -> Response {
    let (heading, text, retry) = match status {
        StatusCode::NOT_FOUND => {
            ("We couldn't find that page", "It may have moved, or the address is mistyped.", false)
        }
        StatusCode::FORBIDDEN => (
            "That did not go through",
            "The form was out of date or came from another site, so nothing was changed. Go back, reload the page and try again.",
            false,
        ),
        StatusCode::BAD_REQUEST => ("That form could not be read", "Go back, reload the page and try again.", false),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => (
            "The service is busy, try again in a moment",
            "Nothing was lost: your session and your orders are safe.",
            true,
        ),
        _ => ("Something went wrong", "It is not you, it is us. Please try again in a moment.", true),
    };
    page_for(status, heading, text, retry)
}

fn page_for(status: StatusCode, heading: &'static str, text: &'static str, retry: bool) -> Response {
    let page = ErrorPage { l: Layout::anonymous(heading), code: status.as_u16(), heading, text, retry, retry_href: "" };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => (status, Html(heading)).into_response(),
    }
}

/// Unknown paths: the 404 page, or the API's JSON 404 for an `/api/...` path nothing
/// routes (behind the Ingress every path that no service claims reaches the client).
pub async fn not_found(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return common::ApiError::NotFound.into_response();
    }
    error_page(StatusCode::NOT_FOUND)
}

/// Prices as the API renders them (a JSON number of dollars), shown as `$25.00`.
pub fn dollars(amount: f64) -> String {
    let cents = (amount * 100.0).round() as i64;
    let whole = cents / 100;
    let mut digits = whole.to_string();
    let mut grouped = String::new();
    while digits.len() > 3 {
        let tail = digits.split_off(digits.len() - 3);
        grouped = format!(",{tail}{grouped}");
    }
    format!("${digits}{grouped}.{:02}", cents % 100)
}

/// `m:ss` (or `h:mm:ss`) of a number of seconds.
pub fn clock(seconds: i64) -> String {
    let s = seconds.max(0);
    let (h, m, r) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 { format!("{h}:{m:02}:{r:02}") } else { format!("{m}:{r:02}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_show_as_dollars_with_cents_and_groups() {
        assert_eq!(dollars(25.0), "$25.00");
        assert_eq!(dollars(19.99), "$19.99");
        assert_eq!(dollars(0.01), "$0.01");
        assert_eq!(dollars(1_000_000.0), "$1,000,000.00");
        assert_eq!(dollars(1234.5), "$1,234.50");
    }

    #[test]
    fn countdowns_read_as_a_clock() {
        assert_eq!(clock(872), "14:32");
        assert_eq!(clock(59), "0:59");
        assert_eq!(clock(3_661), "1:01:01");
        assert_eq!(clock(-5), "0:00");
    }

    #[test]
    fn only_local_paths_are_followed_after_signing_in() {
        assert_eq!(safe_next(Some("/tickets/1")), "/tickets/1");
        for hostile in ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)"] {
            assert_eq!(safe_next(Some(hostile)), "/", "{hostile}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn an_error_page_has_its_status_and_says_what_to_do() {
        let page = error_page(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(page.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    }
}
