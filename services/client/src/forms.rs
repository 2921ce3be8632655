//! Forms that change state: each carries the CSRF token, and comes from this origin.
//!
//! [`SafeForm`] refuses (403 page, nothing changed) a POST whose `_csrf` field does not
//! equal the browser's `csrf` cookie (double submit: another site can neither read the
//! cookie nor set it), or whose `Origin` (or, without one, `Referer`) is another site.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::pages::PageError;
use crate::visitor::CSRF_COOKIE;

/// A url-encoded form, checked against CSRF.
#[derive(Debug)]
pub struct SafeForm<T>(pub T);

#[derive(serde::Deserialize)]
struct Token {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

impl<S, T> FromRequest<S> for SafeForm<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        if !same_origin(&headers) {
            tracing::warn!("refused a form post from another origin");
            return Err(PageError::Forbidden);
        }
        let body = axum::body::Bytes::from_request(request, state).await.map_err(|_| PageError::Forbidden)?;
        let token: Token = serde_urlencoded::from_bytes(&body).map_err(|_| PageError::Forbidden)?;
        let expected = common::session::cookie_value(&headers, CSRF_COOKIE).unwrap_or_default();
        if expected.len() < 32 || !constant_time_eq(token.csrf.as_bytes(), expected.as_bytes()) {
            tracing::warn!("refused a form post without a valid CSRF token");
            return Err(PageError::Forbidden);
        }
        let form = serde_urlencoded::from_bytes(&body).map_err(|_| PageError::BadForm)?;
        Ok(Self(form))
    }
}

/// True when the request's `Origin` (or `Referer`) names the host it was sent to. Behind
/// a proxy the host is the one the browser used (`X-Forwarded-Host`).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .map(|h| h.split(',').next().unwrap_or_default().trim().to_ascii_lowercase());
    let Some(host) = host else { return false };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let authority = source
        .strip_prefix("https://")
        .or_else(|| source.strip_prefix("http://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default().to_ascii_lowercase());
    authority.is_some_and(|authority| authority == host)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn only_a_post_from_this_origin_is_same_origin() {
        assert!(same_origin(&headers(&[("host", "ticketing.dev"), ("origin", "https://ticketing.dev")])));
        assert!(same_origin(&headers(&[
            ("host", "client:3000"),
            ("x-forwarded-host", "localhost:8080"),
            ("origin", "http://localhost:8080")
        ])));
        assert!(same_origin(&headers(&[("host", "ticketing.dev"), ("referer", "https://ticketing.dev/tickets/new")])));
        assert!(!same_origin(&headers(&[("host", "ticketing.dev"), ("origin", "https://evil.example")])));
        assert!(!same_origin(&headers(&[("host", "ticketing.dev"), ("origin", "null")])));
        assert!(!same_origin(&headers(&[("host", "ticketing.dev")])), "neither Origin nor Referer");
        assert!(!same_origin(&headers(&[("host", "ticketing.dev"), ("origin", "https://ticketing.dev.evil.example")])));
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
