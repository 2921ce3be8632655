//! The four routes of the auth service.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::ratelimit::client_key;
use common::{ApiError, Claims, ErrorEnvelope, MaybeUser, ValidatedJson};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::users::{InsertError, UserDocument};

/// The routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(signin))
        .routes(routes!(signout))
        .routes(routes!(current_user))
}

const INVALID_EMAIL: &str = "Email must be valid";

/// Emails are compared trimmed and lower-cased.
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn valid_email(email: &str) -> Result<(), ValidationError> {
    use validator::ValidateEmail;
    if normalize_email(email).validate_email() {
        Ok(())
    } else {
        Err(ValidationError::new("email").with_message(INVALID_EMAIL.into()))
    }
}

/// Body of sign-up. The fields are options so that a missing one is a field error in the
/// envelope, not a decoding failure.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct SignupBody {
    /// Compared and stored trimmed and lower-cased; must not be in use.
    #[validate(required(message = "Email must be valid"), custom(function = "valid_email"))]
    #[schema(value_type = String, required = true, format = Email)]
    email: Option<String>,
    #[validate(
        required(message = "Password must be between 8 and 128 characters"),
        length(min = 8, max = 128, message = "Password must be between 8 and 128 characters")
    )]
    #[schema(value_type = String, required = true, min_length = 8, max_length = 128)]
    password: Option<String>,
}

/// Body of sign-in.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct SigninBody {
    #[validate(required(message = "Email must be valid"), custom(function = "valid_email"))]
    #[schema(value_type = String, required = true, format = Email)]
    email: Option<String>,
    #[validate(
        required(message = "You must supply a password"),
        length(min = 1, message = "You must supply a password")
    )]
    #[schema(value_type = String, required = true, min_length = 1)]
    password: Option<String>,
}

/// The public view of a user.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    id: String,
    email: String,
}

impl From<&UserDocument> for UserView {
    fn from(user: &UserDocument) -> Self {
        Self { id: user.id.to_hex(), email: user.email.clone() }
    }
}

/// `required` validation guarantees presence; this turns the checked option into a value.
fn present(field: Option<String>) -> String {
    field.unwrap_or_default()
}

/// Creates an account and signs it in.
#[utoipa::path(
    post,
    path = "/api/users/signup",
    operation_id = "signup",
    tag = "users",
    request_body = SignupBody,
    responses(
        (status = 201, description = "Signed up; the session cookie is set", body = UserView,
            headers(("set-cookie" = String, description = "The `session` cookie"))),
        (status = 400, description = "Validation, or `Email in use`", body = ErrorEnvelope),
    )
)]
async fn signup(
    State(state): State<AppState>,
    ValidatedJson(body): ValidatedJson<SignupBody>,
) -> Result<impl IntoResponse, ApiError> {
    let email = normalize_email(&present(body.email));
    let hash = state.passwords.hash(SecretString::from(present(body.password))).await.map_err(ApiError::Internal)?;
    let user = state.users.insert(&email, hash).await.map_err(|err| match err {
        InsertError::EmailInUse => ApiError::BadRequest("Email in use".into()),
        InsertError::Database(err) => err.into(),
    })?;
    tracing::info!(user_id = %user.id, "user signed up");
    session_response(&state, StatusCode::CREATED, &user)
}

/// Signs in with email and password.
///
/// Refused with 429 before any work when the client is over its attempts; then as usual.
#[utoipa::path(
    post,
    path = "/api/users/signin",
    operation_id = "signin",
    tag = "users",
    request_body = SigninBody,
    responses(
        (status = 200, description = "Signed in; the session cookie is set", body = UserView,
            headers(("set-cookie" = String, description = "The `session` cookie"))),
        (status = 400, description = "Validation, or `Invalid credentials` (unknown email and wrong password alike)",
            body = ErrorEnvelope),
        (status = 429, description = "Too many attempts from this client", body = ErrorEnvelope,
            headers(("retry-after" = String, description = "Seconds until the next attempt is allowed"))),
    )
)]
async fn signin(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<ValidatedJson<SigninBody>, ApiError>,
) -> Result<Response, Response> {
    if let Err(retry_after) = state.signin_limit.check(&client_key(&headers, Some(peer))) {
        let seconds = retry_after.as_secs().max(1).to_string();
        return Err(([(header::RETRY_AFTER, seconds)], ApiError::Http(StatusCode::TOO_MANY_REQUESTS)).into_response());
    }
    let ValidatedJson(body) = body.map_err(IntoResponse::into_response)?;
    check_credentials(&state, body).await.map(IntoResponse::into_response).map_err(IntoResponse::into_response)
}

async fn check_credentials(state: &AppState, body: SigninBody) -> Result<impl IntoResponse + use<>, ApiError> {
    let email = normalize_email(&present(body.email));
    let user = state.users.find_by_email(&email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches =
        state.passwords.verify(SecretString::from(present(body.password)), hash).await.map_err(ApiError::Internal)?;
    match user {
        Some(user) if matches => session_response(state, StatusCode::OK, &user),
        _ => Err(ApiError::BadRequest("Invalid credentials".into())),
    }
}

fn session_response(
    state: &AppState,
    status: StatusCode,
    user: &UserDocument,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let (token, _) = state.sessions.issue(&user.id.to_hex(), &user.email).map_err(ApiError::internal)?;
    Ok((status, [(header::SET_COOKIE, state.sessions.cookie(&token))], Json(UserView::from(user))))
}

/// The empty object `{}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

/// Signs out: clears the session cookie.
#[utoipa::path(
    post,
    path = "/api/users/signout",
    operation_id = "signout",
    tag = "users",
    responses((status = 200, description = "Signed out; the cookie is cleared", body = Empty,
        headers(("set-cookie" = String, description = "The `session` cookie, expired"))))
)]
async fn signout(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::SET_COOKIE, state.sessions.clear_cookie())], Json(Empty {}))
}

/// Who the session belongs to, if anyone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentUserView {
    /// The token's claims, or null without a valid session.
    current_user: Option<Claims>,
}

/// The signed-in user, or null. Never an error for a missing or bad token.
#[utoipa::path(
    get,
    path = "/api/users/currentuser",
    operation_id = "currentUser",
    tag = "users",
    responses((status = 200, description = "The claims of a valid session, or null", body = CurrentUserView))
)]
async fn current_user(MaybeUser(claims): MaybeUser) -> Json<CurrentUserView> {
    Json(CurrentUserView { current_user: claims })
}
