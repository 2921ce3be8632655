//! Request extractors whose rejections are rendered in the platform's error envelope.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors};

use crate::error::{ApiError, ErrorItem};

/// A JSON body that is deserialised and then validated with [`validator`].
///
/// Every way a body can be wrong becomes an envelope: a missing or non-JSON content type
/// (415), a body over the limit (413), malformed JSON or a non-object (400), a field of the
/// wrong type or a missing field (400 with that `field`), and failed validation rules (400,
/// one entry per field).
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidatedJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidatedJson<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(&req) {
            return Err(ApiError::Http(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| ApiError::Http(rejection.status()))?;
        let value: T = parse_json(&bytes)?;
        value.validate().map_err(|errors| ApiError::Validation(validation_items(&errors)))?;
        Ok(Self(value))
    }
}

/// A body that may be left out: an empty body is `T::default()`; anything else must be a
/// JSON object with a JSON content type, parsed and validated as by [`ValidatedJson`].
pub fn optional_json<T>(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<T, ApiError>
where
    T: DeserializeOwned + Validate + Default,
{
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if !is_json(headers) {
        return Err(ApiError::Http(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let value: T = parse_json(body)?;
    value.validate().map_err(|errors| ApiError::Validation(validation_items(&errors)))?;
    Ok(value)
}

fn is_json_content_type(req: &Request) -> bool {
    is_json(req.headers())
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(content_type) = content_type.to_str() else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5 && essence[..essence.len() - 5].contains('/') && essence.ends_with("+json"))
}

/// Parses a JSON object body into `T`, naming the failing field where serde can tell.
///
/// The body is read straight from its bytes (not through `serde_json::Value`), so a field
/// can see its exact text: a price is judged on its digits, not on a float
/// ([`crate::money::PriceInput`]). Syntax is checked first, so a malformed body is always
/// `Malformed JSON body` whatever its fields.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|_| ApiError::BadRequest("Malformed JSON body".into()))?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::BadRequest("Request body must be a JSON object".into()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.inner().to_string();
        if let Some(missing) = missing_field(&inner) {
            ApiError::field(missing, format!("{missing} is required"))
        } else if path == "." {
            ApiError::BadRequest("Invalid request body".into())
        } else {
            ApiError::field(path.clone(), format!("{path} has an invalid type or value"))
        }
    })
}

/// serde reports a missing field only in its message: "missing field `name`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Parses an id from a path. Anything that is not a 24-hex ObjectId cannot name a record,
/// so it is a 404 like an unknown id (the SPEC's rule), never a 400 or a 500.
pub fn object_id(raw: &str) -> Result<bson::oid::ObjectId, ApiError> {
    if raw.len() != 24 {
        return Err(ApiError::NotFound);
    }
    bson::oid::ObjectId::parse_str(raw).map_err(|_| ApiError::NotFound)
}

/// validator names fields as they are in Rust (`ticket_id`); clients know them by their
/// JSON names, which the SPEC makes camelCase (`ticketId`).
fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Flattens validator's errors into envelope entries, sorted by field for stable output,
/// named as the JSON body names them.
pub fn validation_items(errors: &ValidationErrors) -> Vec<ErrorItem> {
    let mut items: Vec<ErrorItem> = errors
        .field_errors()
        .into_iter()
        .flat_map(|(field, errs)| {
            errs.iter().map(move |err| {
                let message =
                    err.message.as_ref().map(ToString::to_string).unwrap_or_else(|| format!("{field} is invalid"));
                ErrorItem::field(camel_case(&field), message)
            })
        })
        .collect();
    items.sort_by(|a, b| a.field.cmp(&b.field));
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Validate)]
    struct Body {
        #[validate(length(min = 3, message = "name too short"))]
        name: String,
        #[allow(dead_code)]
        count: u32,
    }

    #[test]
    fn malformed_json_is_a_bad_request_without_field() {
        let err = parse_json::<Body>(b"{not json").unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(m) if m == "Malformed JSON body"));
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_json::<Body>(br#"{"name":"abc"}"#).unwrap_err();
        let ApiError::Validation(items) = err else { panic!("expected validation") };
        assert_eq!(items, vec![ErrorItem::field("count", "count is required")]);
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let err = parse_json::<Body>(br#"{"name":"abc","count":"many"}"#).unwrap_err();
        let ApiError::Validation(items) = err else { panic!("expected validation") };
        assert_eq!(items[0].field.as_deref(), Some("count"));
    }

    #[test]
    fn only_24_hex_ids_parse_and_the_rest_are_not_found() {
        assert!(object_id("0123456789abcdef01234567").is_ok());
        for bad in ["", "123", "zzzzzzzzzzzzzzzzzzzzzzzz", "0123456789abcdef0123456789", "{\"$gt\":\"\"}"] {
            assert!(matches!(object_id(bad), Err(ApiError::NotFound)), "{bad}");
        }
    }

    #[test]
    fn a_non_object_body_is_refused() {
        assert!(matches!(parse_json::<Body>(b"[1,2]"), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn rust_field_names_are_reported_by_their_camel_case_json_names() {
        assert_eq!(camel_case("ticket_id"), "ticketId");
        assert_eq!(camel_case("email"), "email");
        assert_eq!(camel_case("order_id_x"), "orderIdX");
    }

    #[test]
    fn validation_messages_are_kept_per_field() {
        let body: Body = parse_json(br#"{"name":"ab","count":1}"#).unwrap();
        let items = validation_items(&body.validate().unwrap_err());
        assert_eq!(items, vec![ErrorItem::field("name", "name too short")]);
    }
}
