//! Who is looking: the browser's session as the pages need it, its CSRF token and its
//! one-shot notice, and the cookies to send back.
//!
//! The client holds no key and decides nothing about access: the API does, on every call.
//! To show the header ("signed in as ...") and to know when to refresh, it reads the
//! session token's claims without verifying them; a forged cookie could only change what
//! its own holder sees. When the token has expired (or is about to) and the browser has a
//! refresh cookie, the session is refreshed through `POST /api/users/refresh` before the
//! page renders, and the new cookies go back with the page.

use std::sync::{Arc, Mutex};

use axum::extract::{FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use common::session::{REFRESH_COOKIE, SESSION_COOKIE, cookie_value};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::api::{Api, Caller};

/// The CSRF cookie: a random token the forms repeat (double submit).
pub const CSRF_COOKIE: &str = "csrf";
/// The one-shot notice carried across a redirect.
pub const FLASH_COOKIE: &str = "flash";
/// A token this close to its expiry is refreshed before the page renders, so it does not
/// expire between the page's API calls.
const REFRESH_MARGIN_SECONDS: i64 = 10;

/// Cookies to add to the response, collected while the page is made.
#[derive(Clone, Debug, Default)]
pub struct Outgoing(Arc<Mutex<Vec<HeaderValue>>>);

impl Outgoing {
    pub fn push(&self, cookie: HeaderValue) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(cookie);
    }

    fn take(&self) -> Vec<HeaderValue> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Middleware: gives each request an [`Outgoing`] and appends what it collected to the
/// response.
pub async fn relay_cookies(mut request: Request, next: Next) -> Response {
    let outgoing = Outgoing::default();
    request.extensions_mut().insert(outgoing.clone());
    let mut response = next.run(request).await;
    for cookie in outgoing.take() {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The signed-in user, as the session token says.
#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub admin: bool,
    exp: i64,
}

/// A notice for the next page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flash {
    /// `success`, `error` or `info`.
    pub kind: String,
    pub text: String,
}

impl Flash {
    pub fn success(text: impl Into<String>) -> Self {
        Self { kind: "success".into(), text: text.into() }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self { kind: "error".into(), text: text.into() }
    }

    pub fn info(text: impl Into<String>) -> Self {
        Self { kind: "info".into(), text: text.into() }
    }
}

/// One browser, for the duration of one request.
#[derive(Clone, Debug)]
pub struct Visitor {
    pub user: Option<User>,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub caller: Caller,
    outgoing: Outgoing,
    cookie_secure: bool,
}

impl<S> FromRequestParts<S> for Visitor
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let outgoing = parts.extensions.get::<Outgoing>().cloned().unwrap_or_default();
        Ok(Visitor::arrive(&parts.headers, &state.api, outgoing, state.cookie_secure, peer(parts)).await)
    }
}

fn peer(parts: &Parts) -> Option<String> {
    parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip().to_string())
}

impl Visitor {
    async fn arrive(
        headers: &HeaderMap,
        api: &Api,
        outgoing: Outgoing,
        cookie_secure: bool,
        peer: Option<String>,
    ) -> Self {
        let session = cookie_value(headers, SESSION_COOKIE).map(|v| format!("{SESSION_COOKIE}={v}"));
        let refresh = cookie_value(headers, REFRESH_COOKIE).map(|v| format!("{REFRESH_COOKIE}={v}"));
        let forwarded_for = match (headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()), peer) {
            (Some(chain), Some(peer)) => Some(format!("{chain}, {peer}")),
            (Some(chain), None) => Some(chain.to_owned()),
            (None, peer) => peer,
        };
        let mut visitor = Self {
            user: session.as_deref().and_then(claims),
            csrf: String::new(),
            flash: None,
            caller: Caller { session, refresh, forwarded_for },
            outgoing,
            cookie_secure,
        };
        visitor.csrf = match cookie_value(headers, CSRF_COOKIE).filter(|v| v.len() >= 32) {
            Some(token) => token.to_owned(),
            None => {
                let token = new_token();
                visitor.set_cookie(CSRF_COOKIE, &token, "SameSite=Lax", None);
                token
            }
        };
        if let Some(raw) = cookie_value(headers, FLASH_COOKIE) {
            visitor.flash = URL_SAFE_NO_PAD.decode(raw).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
            visitor.clear_cookie(FLASH_COOKIE, "SameSite=Lax");
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let fresh = visitor.user.as_ref().is_some_and(|user| user.exp > now + REFRESH_MARGIN_SECONDS);
        if !fresh && visitor.caller.refresh.is_some() {
            visitor.refresh(api).await;
        } else if !fresh {
            visitor.user = None;
        }
        visitor
    }

    /// Exchanges the refresh cookie for a new session; on refusal the visitor is signed
    /// out (auth clears the refresh cookie, this clears the session cookie).
    pub async fn refresh(&mut self, api: &Api) -> bool {
        let caller = Caller { session: None, ..self.caller.clone() };
        match api.call(axum::http::Method::POST, "/api/users/refresh", &caller, None).await {
            Ok(reply) if reply.is_success() => {
                self.relay(&reply.cookies);
                for cookie in &reply.cookies {
                    let pair = cookie.to_str().unwrap_or_default().split(';').next().unwrap_or_default().to_owned();
                    if pair.starts_with(&format!("{SESSION_COOKIE}=")) {
                        self.user = claims(&pair);
                        self.caller.session = Some(pair);
                    } else if pair.starts_with(&format!("{REFRESH_COOKIE}=")) {
                        self.caller.refresh = Some(pair);
                    }
                }
                tracing::debug!("session refreshed before rendering");
                self.user.is_some()
            }
            Ok(reply) => {
                self.relay(&reply.cookies);
                self.sign_out_locally();
                false
            }
            Err(err) => {
                // Keep the cookies: the refresh can be tried again on the next page.
                tracing::warn!(error = %err, "could not refresh the session");
                self.user = None;
                self.caller.session = None;
                false
            }
        }
    }

    /// Forgets the session here and in the browser.
    pub fn sign_out_locally(&mut self) {
        self.user = None;
        if self.caller.session.take().is_some() {
            self.clear_cookie(SESSION_COOKIE, "SameSite=Lax");
        }
        self.caller.refresh = None;
    }

    /// Relays the API's cookies to the browser.
    pub fn relay(&self, cookies: &[HeaderValue]) {
        for cookie in cookies {
            self.outgoing.push(cookie.clone());
        }
    }

    /// A notice for the page after the redirect.
    pub fn flash(&self, flash: &Flash) {
        let value = URL_SAFE_NO_PAD.encode(serde_json::to_vec(flash).unwrap_or_default());
        self.set_cookie(FLASH_COOKIE, &value, "SameSite=Lax", Some(60));
    }

    fn set_cookie(&self, name: &str, value: &str, same_site: &str, max_age: Option<u64>) {
        let mut cookie = format!("{name}={value}; Path=/; HttpOnly; {same_site}");
        if let Some(seconds) = max_age {
            cookie.push_str(&format!("; Max-Age={seconds}"));
        }
        if self.cookie_secure {
            cookie.push_str("; Secure");
        }
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            self.outgoing.push(value);
        }
    }

    fn clear_cookie(&self, name: &str, same_site: &str) {
        self.set_cookie(name, "", same_site, Some(0));
    }

    pub fn signed_in(&self) -> bool {
        self.user.is_some()
    }

    pub fn is(&self, user_id: &str) -> bool {
        self.user.as_ref().is_some_and(|user| user.id == user_id)
    }
}

/// The claims of a `session=<base64 {"jwt": ...}>` cookie, unverified (see the module docs).
fn claims(pair: &str) -> Option<User> {
    let value = pair.split_once('=')?.1.trim_matches('"');
    let jwt = common::session::decode_session_cookie(value).ok()?;
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).or_else(|_| STANDARD_NO_PAD.decode(payload)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Two random UUIDs (244 random bits from the OS), base64url.
fn new_token() -> String {
    let bytes: Vec<u8> = (0..2).flat_map(|_| *uuid::Uuid::new_v4().as_bytes()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_of_a_session_cookie_are_read_for_display() {
        let sessions = common::Sessions::new(
            &secrecy::SecretString::from("k".repeat(32)),
            std::time::Duration::from_secs(900),
            false,
        );
        let (token, issued) = sessions.issue("0123456789abcdef01234567", "me@example.com").unwrap();
        let pair = format!("session={}", common::session::encode_session_cookie(&token));

        let user = claims(&pair).expect("claims");

        assert_eq!(
            (user.id.as_str(), user.email.as_str(), user.exp),
            (issued.id.as_str(), "me@example.com", issued.exp)
        );
        assert!(claims("session=garbage").is_none());
    }

    #[test]
    fn csrf_tokens_are_long_and_unique() {
        let (a, b) = (new_token(), new_token());
        assert!(a.len() >= 32);
        assert_ne!(a, b);
    }
}
