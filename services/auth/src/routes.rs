//! The four routes of the auth service.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::ratelimit::client_key;
use common::{ApiError, MaybeUser, ValidatedJson};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::users::{InsertError, UserDocument};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/signup", post(signup))
        .route("/api/users/signin", post(signin))
        .route("/api/users/signout", post(signout))
        .route("/api/users/currentuser", get(current_user))
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

#[derive(Debug, Deserialize, Validate)]
pub struct SignupBody {
    #[validate(required(message = "Email must be valid"), custom(function = "valid_email"))]
    email: Option<String>,
    #[validate(
        required(message = "Password must be between 8 and 128 characters"),
        length(min = 8, max = 128, message = "Password must be between 8 and 128 characters")
    )]
    password: Option<String>,
}

#[derive(Debug, Deserialize, Validate)]
pub struct SigninBody {
    #[validate(required(message = "Email must be valid"), custom(function = "valid_email"))]
    email: Option<String>,
    #[validate(
        required(message = "You must supply a password"),
        length(min = 1, message = "You must supply a password")
    )]
    password: Option<String>,
}

/// The public view of a user.
#[derive(Debug, Serialize)]
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

/// Refused with 429 before any work when the client is over its attempts; then as usual.
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

async fn signout(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::SET_COOKIE, state.sessions.clear_cookie())], Json(json!({})))
}

async fn current_user(MaybeUser(claims): MaybeUser) -> Json<serde_json::Value> {
    Json(json!({ "currentUser": claims }))
}
