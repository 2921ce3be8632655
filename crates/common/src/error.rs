//! The platform's error family and its one rendering: the envelope
//! `{"errors":[{"message":"...","field":"..."}]}` with the status the SPEC assigns.
//!
//! Handlers return `Result<_, ApiError>` (or a service error that converts into it).
//! Internal causes are logged here, with their source chain, and never sent to clients.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// One entry of the error envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorItem {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
}

impl ErrorItem {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), field: None }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { message: message.into(), field: Some(field.into()) }
    }
}

/// The body of every error response of every service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    #[schema(min_items = 1)]
    pub errors: Vec<ErrorItem>,
}

/// Marker put in the extensions of every response rendered from an [`ApiError`], so the
/// envelope middleware knows an error response is already in the envelope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Enveloped;

/// Every error a route can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A business rule refused the request (400, rule-specific message).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A business rule refused the request with another status than 400 (e.g. 403
    /// `Account suspended`), with its own message.
    #[error("refused ({0}): {1}")]
    Refused(StatusCode, String),
    /// Request validation failed: one entry per failing field (400).
    #[error("request validation failed")]
    Validation(Vec<ErrorItem>),
    /// No, invalid or expired credentials (401).
    #[error("not authorized")]
    NotAuthorized,
    /// Authenticated, but not the owner (403).
    #[error("forbidden")]
    Forbidden,
    /// Unknown resource, malformed id or unknown route (404).
    #[error("not found")]
    NotFound,
    /// A status-only rejection from the HTTP layer (405, 408, 413, 415, 429 ...), rendered
    /// with a fixed message for that status.
    #[error("http rejection {0}")]
    Http(StatusCode),
    /// The database or the broker cannot be reached (503).
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything unexpected (500).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// Wraps any error as an unexpected one (500).
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// Wraps any error as a dependency outage (503).
    pub fn unavailable(err: impl Into<anyhow::Error>) -> Self {
        Self::Unavailable(err.into())
    }

    /// A single-field validation error.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![ErrorItem::field(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::NotAuthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Http(status) | Self::Refused(status, _) => *status,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The entries the client sees. Never contains internal error text.
    pub fn items(&self) -> Vec<ErrorItem> {
        match self {
            Self::BadRequest(message) | Self::Refused(_, message) => vec![ErrorItem::new(message.clone())],
            Self::Validation(items) => items.clone(),
            other => vec![ErrorItem::new(message_for_status(other.status()))],
        }
    }
}

/// The fixed client-facing message for a status that has no more specific one.
pub fn message_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "Bad request",
        StatusCode::UNAUTHORIZED => "Not authorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::NOT_FOUND => "Not Found",
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed",
        StatusCode::REQUEST_TIMEOUT => "Request timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "Payload too large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "Request headers too large",
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => "Service unavailable",
        s if s.is_client_error() => "Bad request",
        _ => "Something went wrong",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(source) => {
                tracing::error!(error = ?source, "request failed with an unexpected error");
            }
            Self::Unavailable(source) => {
                tracing::warn!(error = ?source, "request failed: dependency unavailable");
            }
            _ => {}
        }
        envelope_response(self.status(), self.items())
    }
}

/// Renders an envelope with a status. Used by [`ApiError`] and the envelope middleware.
pub(crate) fn envelope_response(status: StatusCode, errors: Vec<ErrorItem>) -> Response {
    let mut response = (status, axum::Json(ErrorEnvelope { errors })).into_response();
    response.extensions_mut().insert(Enveloped);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn render(err: ApiError) -> (StatusCode, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn each_variant_renders_the_spec_status_and_message() {
        let cases = [
            (ApiError::NotAuthorized, 401, "Not authorized"),
            (ApiError::Forbidden, 403, "Forbidden"),
            (ApiError::NotFound, 404, "Not Found"),
            (ApiError::unavailable(anyhow::anyhow!("pool closed")), 503, "Service unavailable"),
            (ApiError::internal(anyhow::anyhow!("boom")), 500, "Something went wrong"),
            (ApiError::BadRequest("Email in use".into()), 400, "Email in use"),
        ];
        for (err, status, message) in cases {
            let (got_status, body) = render(err).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(body, serde_json::json!({"errors": [{"message": message}]}));
        }
    }

    #[tokio::test]
    async fn validation_errors_carry_one_entry_per_field() {
        let err = ApiError::Validation(vec![
            ErrorItem::field("email", "Email must be valid"),
            ErrorItem::field("password", "Password must be between 8 and 128 characters"),
        ]);
        let (status, body) = render(err).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"].as_array().unwrap().len(), 2);
        assert_eq!(body["errors"][0]["field"], "email");
        assert_eq!(body["errors"][1]["field"], "password");
    }

    #[tokio::test]
    async fn internal_error_text_never_reaches_the_client() {
        let (_, body) = render(ApiError::internal(anyhow::anyhow!("secret connection string"))).await;
        assert!(!body.to_string().contains("secret"));
    }
}
