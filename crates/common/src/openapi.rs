//! The OpenAPI description of each service, generated from its code.
//!
//! A service declares its public routes with `utoipa_axum::routes!` on handlers annotated
//! with `#[utoipa::path]`: the same call registers the axum route and its description, so
//! a route cannot exist undocumented. [`Api::new`] then adds what every service shares:
//!
//! - the title and version;
//! - the two ways to authenticate (the `session` cookie and `Authorization: Bearer`);
//! - a `default` response on every operation: whatever else goes wrong (413, 415, 429,
//!   503, 500 ...) is answered in the error envelope ([`ErrorEnvelope`]).
//!
//! Each service serves its description at [`PATH`] beside `/metrics` (outside `/api`, so
//! the cluster's Ingress does not publish it); the local gateway merges them into one
//! document.

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ErrorEnvelope;

/// Where every service serves its description.
pub const PATH: &str = "/openapi.json";
/// The security scheme of the session cookie, to name in `security(...)` of a path.
pub const SESSION_COOKIE: &str = "session";
/// The security scheme of `Authorization: Bearer <token>`.
pub const BEARER: &str = "bearer";
/// The security scheme of the refresh cookie (only `POST /api/users/refresh` uses it).
pub const REFRESH_COOKIE: &str = "refresh";

/// The SPEC's fixed errors, to list in `responses(...)` of a path: 401 `Not authorized`.
#[derive(Debug, utoipa::IntoResponses)]
#[response(status = 401, description = "Not authorized: no, invalid or expired session")]
pub struct NotAuthorized(#[allow(dead_code)] ErrorEnvelope);

/// 403 `Forbidden`: authenticated, but not the owner.
#[derive(Debug, utoipa::IntoResponses)]
#[response(status = 403, description = "Forbidden: not the owner")]
pub struct Forbidden(#[allow(dead_code)] ErrorEnvelope);

/// 404 `Not Found`, also for an id that is not a valid id.
#[derive(Debug, utoipa::IntoResponses)]
#[response(status = 404, description = "Not Found (also for an id that is not a valid id)")]
pub struct NotFound(#[allow(dead_code)] ErrorEnvelope);

/// A service's public routes and their description, built together.
pub struct Api {
    pub router: Router,
    pub doc: Option<OpenApi>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Option<Vec<&String>> = self.doc.as_ref().map(|doc| doc.paths.paths.keys().collect());
        f.debug_struct("Api").field("router", &self.router).field("paths", &paths).finish()
    }
}

impl Api {
    /// Splits the documented routes into the axum router (with its state) and the
    /// finished description.
    pub fn new<S>(routes: OpenApiRouter<S>, state: S, service: &str) -> Self
    where
        S: Clone + Send + Sync + 'static,
    {
        let (router, doc) = routes.split_for_parts();
        Self { router: router.with_state(state), doc: Some(finish(doc, service)) }
    }

    /// The router and a route that serves the description, when there is one.
    pub(crate) fn into_router(self) -> Router {
        match self.doc {
            Some(doc) => self.router.merge(serve(&doc)),
            None => self.router,
        }
    }
}

/// Routes with no description: tests of the HTTP stack, and a service with no public API.
impl From<Router> for Api {
    fn from(router: Router) -> Self {
        Self { router, doc: None }
    }
}

/// Adds what every service's description shares (see the module docs).
pub fn finish(mut doc: OpenApi, service: &str) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title(format!("ticketing: {service}"))
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Errors of every route are `{\"errors\":[{\"message\":\"...\",\"field\":\"...\"}]}` \
             (`field` only on field errors).",
        ))
        .build();
    let components = doc.components.take().unwrap_or_else(|| ComponentsBuilder::new().build());
    let mut components = ComponentsBuilder::from(components)
        .schema(ErrorEnvelope::name(), ErrorEnvelope::schema())
        .security_scheme(
            SESSION_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "session",
                "base64 of {\"jwt\":\"<token>\"}, set by signup and signin",
            ))),
        )
        .security_scheme(BEARER, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)))
        .security_scheme(
            REFRESH_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "refresh",
                "the opaque refresh token, set by signup, signin and refresh; only auth reads it",
            ))),
        )
        .build();
    let mut dependencies = Vec::new();
    ErrorEnvelope::schemas(&mut dependencies);
    components.schemas.extend(dependencies);
    doc.components = Some(components);
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            operation.responses.responses.entry("default".into()).or_insert_with(any_error);
        }
    }
    doc
}

fn any_error() -> RefOr<Response> {
    ResponseBuilder::new()
        .description("Any other error (413, 415, 429, 503, 500 ...), in the envelope")
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorEnvelope::name()))).build(),
        )
        .build()
        .into()
}

/// `GET /openapi.json`: the description, serialised once.
fn serve(doc: &OpenApi) -> Router {
    let body = Bytes::from(doc.to_json().expect("an OpenAPI document serialises"));
    Router::new().route(PATH, get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Json;
    use serde_json::Value;

    #[utoipa::path(get, path = "/api/things", responses((status = 200, description = "the things"), NotFound))]
    async fn things() -> Json<Vec<String>> {
        Json(Vec::new())
    }

    fn described() -> Value {
        let api = Api::new(OpenApiRouter::new().routes(utoipa_axum::routes!(things)), (), "things");
        serde_json::to_value(api.doc.expect("a description")).unwrap()
    }

    #[test]
    fn every_operation_answers_other_errors_in_the_envelope() {
        let doc = described();
        let default = &doc["paths"]["/api/things"]["get"]["responses"]["default"];
        assert_eq!(default["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorEnvelope");
        let envelope = &doc["components"]["schemas"]["ErrorEnvelope"];
        assert_eq!(envelope["required"], serde_json::json!(["errors"]));
        assert!(doc["components"]["schemas"]["ErrorItem"].is_object(), "{doc:#}");
        let not_found = &doc["paths"]["/api/things"]["get"]["responses"]["404"];
        assert_eq!(not_found["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorEnvelope");
    }

    #[test]
    fn both_ways_to_authenticate_are_described() {
        let doc = described();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["session"]["in"], "cookie");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(doc["info"]["title"], "ticketing: things");
    }
}
