//! Calls to the public API, server-side, on behalf of one browser.
//!
//! One pooled `reqwest` client for the whole process. Each call carries the browser's
//! session (and, to auth only, its refresh cookie) and its address, and brings back the
//! API's status, body and `Set-Cookie` headers; the page relays those cookies to the
//! browser (same origin behind the Ingress, so they are the browser's own).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::config::ApiSettings;

/// The public API. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    host: Option<HeaderValue>,
}

/// What one call needs from the browser it is made for.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The `Cookie` header for the API: the session, and the refresh token for auth.
    pub session: Option<String>,
    pub refresh: Option<String>,
    /// The browser's address chain, forwarded so per-client limits see the browser.
    pub forwarded_for: Option<String>,
}

/// An answer of the API.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    pub cookies: Vec<HeaderValue>,
}

/// The API could not be reached, or answered that it is unavailable (5xx).
#[derive(Debug, thiserror::Error)]
#[error("the API is unavailable: {0:#}")]
pub struct Unavailable(pub anyhow::Error);

impl Api {
    pub fn new(settings: &ApiSettings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(2))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        let host = settings.host.as_deref().map(HeaderValue::from_str).transpose()?;
        Ok(Self { client, base: settings.base_url.clone(), host })
    }

    /// Whether the API answers at all (readiness): `GET /api/users/currentuser` without a
    /// session is the cheapest route that always exists.
    pub async fn answers(&self) -> bool {
        let request = self.request(Method::GET, "/api/users/currentuser", &Caller::default());
        matches!(request.send().await, Ok(response) if !response.status().is_server_error())
    }

    fn request(&self, method: Method, path: &str, caller: &Caller) -> reqwest::RequestBuilder {
        let mut request =
            self.client.request(method, format!("{}{path}", self.base)).header("accept", "application/json");
        if let Some(host) = &self.host {
            request = request.header("host", host.clone());
        }
        let to_auth = path.starts_with("/api/users/");
        let cookies: Vec<&str> =
            [caller.session.as_deref(), caller.refresh.as_deref().filter(|_| to_auth)].into_iter().flatten().collect();
        if !cookies.is_empty() {
            request = request.header("cookie", cookies.join("; "));
        }
        if let Some(forwarded) = &caller.forwarded_for {
            request = request.header("x-forwarded-for", forwarded.as_str());
        }
        // The page's request and the API calls it makes are one trace.
        if let Some(traceparent) = common::trace::current_traceparent() {
            request = request.header(common::trace::TRACEPARENT, traceparent);
        }
        request
    }

    /// One call. A 5xx answer or no answer is [`Unavailable`]; every other status is the
    /// caller's to interpret.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        caller: &Caller,
        body: Option<&serde_json::Value>,
    ) -> Result<Reply, Unavailable> {
        let mut request = self.request(method, path, caller);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Unavailable(anyhow::Error::new(e).context(path.to_owned())))?;
        let status = response.status();
        let cookies = response.headers().get_all("set-cookie").iter().cloned().collect();
        let body = response.bytes().await.map_err(|e| Unavailable(e.into()))?;
        if status.is_server_error() {
            return Err(Unavailable(anyhow::anyhow!("{path} answered {status}")));
        }
        Ok(Reply { status, body, cookies })
    }

    pub async fn get(&self, path: &str, caller: &Caller) -> Result<Reply, Unavailable> {
        self.call(Method::GET, path, caller, None).await
    }

    pub async fn post(&self, path: &str, caller: &Caller, body: &serde_json::Value) -> Result<Reply, Unavailable> {
        self.call(Method::POST, path, caller, Some(body)).await
    }
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as `T`; a body that does not decode means the API and this client disagree,
    /// which the page shows as the API being unavailable.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Unavailable> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Unavailable(anyhow::anyhow!("an API answer ({}) did not decode: {e}", self.status)))
    }

    /// The envelope's entries: field errors by field, and the other messages.
    pub fn errors(&self) -> Problems {
        let mut problems = Problems::default();
        let Ok(envelope) = serde_json::from_slice::<Envelope>(&self.body) else {
            problems.general.push("Something went wrong".into());
            return problems;
        };
        for error in envelope.errors {
            match error.field {
                Some(field) => {
                    problems.fields.entry(field).or_insert(error.message);
                }
                None => problems.general.push(error.message),
            }
        }
        problems
    }
}

#[derive(serde::Deserialize)]
struct Envelope {
    errors: Vec<EnvelopeItem>,
}

#[derive(serde::Deserialize)]
struct EnvelopeItem {
    message: String,
    field: Option<String>,
}

/// What the API said was wrong with a form: a message per field, shown next to it, and
/// the rest, shown above the form.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    pub fields: BTreeMap<String, String>,
    pub general: Vec<String>,
}

impl Problems {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }

    /// The first field with an error, in the form's order: it gets the focus.
    pub fn first_of(&self, order: &[&'static str]) -> Option<&'static str> {
        order.iter().copied().find(|name| self.fields.contains_key(*name))
    }

    pub fn general(message: impl Into<String>) -> Self {
        Self { fields: BTreeMap::new(), general: vec![message.into()] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: &str) -> Reply {
        Reply { status: StatusCode::BAD_REQUEST, body: Bytes::from(body.to_owned()), cookies: Vec::new() }
    }

    #[test]
    fn envelope_entries_split_into_field_and_general_problems() {
        let problems = reply(
            r#"{"errors":[{"message":"Title is required","field":"title"},{"message":"Price must be greater than 0","field":"price"},{"message":"Email in use"}]}"#,
        )
        .errors();
        assert_eq!(problems.field("title"), Some("Title is required"));
        assert_eq!(problems.first_of(&["price", "title"]), Some("price"));
        assert_eq!(problems.general, vec!["Email in use"]);
    }

    #[test]
    fn a_body_that_is_not_an_envelope_is_a_general_problem() {
        let problems = reply("<html>").errors();
        assert_eq!(problems.general, vec!["Something went wrong"]);
        assert!(problems.fields.is_empty());
    }
}
