//! The routes of the auth service: the course's four (sign up, sign in, sign out,
//! current user), and sessions that can be ended (refresh, sign out everywhere, bans).

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use common::extract::object_id;
use common::openapi::{Forbidden, NotAuthorized, NotFound};
use common::session::{REFRESH_COOKIE, Subject, cookie_value};
use common::{AdminUser, ApiError, Claims, CurrentUser, ErrorEnvelope, MaybeUser, ValidatedJson};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::password::PasswordError;
use crate::sessions::{Issued, Revocation};
use crate::users::{InsertError, UserDocument};

/// The routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(signin))
        .routes(routes!(signout))
        .routes(routes!(current_user))
        .routes(routes!(refresh))
        .routes(routes!(revoke_sessions))
        .routes(routes!(ban, unban))
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
        (status = 201, description = "Signed up; the session and refresh cookies are set", body = UserView,
            headers(("set-cookie" = String, description = "The `session` and `refresh` cookies"))),
        (status = 400, description = "Validation, or `Email in use`", body = ErrorEnvelope),
        (status = 429, description = "Too many sign-ups from this client", body = ErrorEnvelope,
            headers(("retry-after" = String, description = "Seconds until the next attempt is allowed"))),
        (status = 503, description = "Busy hashing: retry after the given seconds", body = ErrorEnvelope,
            headers(("retry-after" = String, description = "Seconds to wait"))),
    )
)]
async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<ValidatedJson<SignupBody>, ApiError>,
) -> Result<Response, Response> {
    let client = state.trusted_proxies.client_key(&headers, Some(peer));
    state.signup_limit.check(&client).map_err(too_many)?;
    let ValidatedJson(body) = body.map_err(IntoResponse::into_response)?;
    create_account(&state, body).await.map(IntoResponse::into_response).map_err(IntoResponse::into_response)
}

/// 429 with the seconds to wait.
fn too_many(retry_after: std::time::Duration) -> Response {
    let seconds = retry_after.as_secs().max(1).to_string();
    ([(header::RETRY_AFTER, seconds)], ApiError::Http(StatusCode::TOO_MANY_REQUESTS)).into_response()
}

/// A full hashing queue is a 503 to retry in a second; anything else a 500.
fn password_error(err: PasswordError) -> Response {
    match err {
        PasswordError::Busy => {
            ([(header::RETRY_AFTER, "1")], ApiError::unavailable(anyhow::anyhow!("the hashing queue is full")))
                .into_response()
        }
        PasswordError::Failed(err) => ApiError::Internal(err).into_response(),
    }
}

async fn create_account(state: &AppState, body: SignupBody) -> Result<Response, Response> {
    let email = normalize_email(&present(body.email));
    let hash = state.passwords.hash(SecretString::from(present(body.password))).await.map_err(password_error)?;
    let user = state.users.insert(&email, hash).await.map_err(|err| match err {
        InsertError::EmailInUse => ApiError::BadRequest("Email in use".into()).into_response(),
        InsertError::Database(err) => ApiError::from(err).into_response(),
    })?;
    tracing::info!(user_id = %user.id, "user signed up");
    let issued = state
        .store
        .start(user.id)
        .await
        .map_err(|e| ApiError::from(e).into_response())?
        .ok_or_else(|| ApiError::Forbidden.into_response())?;
    session_response(state, StatusCode::CREATED, &issued)
        .map(IntoResponse::into_response)
        .map_err(IntoResponse::into_response)
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
        (status = 200, description = "Signed in; the session and refresh cookies are set", body = UserView,
            headers(("set-cookie" = String, description = "The `session` and `refresh` cookies"))),
        (status = 400, description = "Validation, or `Invalid credentials` (unknown email and wrong password alike)",
            body = ErrorEnvelope),
        (status = 403, description = "`Account suspended`: the credentials are right but the user is banned",
            body = ErrorEnvelope),
        (status = 429, description = "Too many attempts from this client, or too many failures for this account",
            body = ErrorEnvelope,
            headers(("retry-after" = String, description = "Seconds until the next attempt is allowed"))),
        (status = 503, description = "Busy hashing: retry after the given seconds", body = ErrorEnvelope,
            headers(("retry-after" = String, description = "Seconds to wait"))),
    )
)]
async fn signin(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<ValidatedJson<SigninBody>, ApiError>,
) -> Result<Response, Response> {
    let client = state.trusted_proxies.client_key(&headers, Some(peer));
    state.signin_limit.check(&client).map_err(too_many)?;
    let ValidatedJson(body) = body.map_err(IntoResponse::into_response)?;
    let email = normalize_email(body.email.as_deref().unwrap_or_default());
    // Guessing one account's password from many addresses meets this limit instead.
    state.account_failures.allows(&email).map_err(too_many)?;
    check_credentials(&state, &email, body).await
}

async fn check_credentials(state: &AppState, email: &str, body: SigninBody) -> Result<Response, Response> {
    let fail = |err: ApiError| err.into_response();
    let user = state.users.find_by_email(email).await.map_err(|e| fail(e.into()))?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let matches =
        state.passwords.verify(SecretString::from(present(body.password)), hash).await.map_err(password_error)?;
    let user = match user {
        Some(user) if matches => user,
        _ => {
            state.account_failures.consume(email);
            return Err(fail(ApiError::BadRequest("Invalid credentials".into())));
        }
    };
    // Only once the password is right, so a ban does not tell strangers an email exists.
    let suspended = || fail(ApiError::Refused(StatusCode::FORBIDDEN, "Account suspended".into()));
    if user.is_banned() {
        return Err(suspended());
    }
    let issued = state.store.start(user.id).await.map_err(|e| fail(e.into()))?.ok_or_else(suspended)?;
    session_response(state, StatusCode::OK, &issued)
        .map(IntoResponse::into_response)
        .map_err(IntoResponse::into_response)
}

/// The session and refresh cookies of a new access token, with the user.
fn session_response(
    state: &AppState,
    status: StatusCode,
    issued: &Issued,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let user = &issued.user;
    let subject = Subject { id: &user.id.to_hex(), email: &user.email, admin: user.admin };
    let (token, _) = state.sessions().issue_at(subject, issued.iat).map_err(ApiError::internal)?;
    let cookies = [
        (header::SET_COOKIE, state.sessions().cookie(&token)),
        (header::SET_COOKIE, refresh_cookie(state, Some(issued.refresh.expose()))),
    ];
    Ok((status, AppendHeaders(cookies), Json(UserView::from(user))))
}

/// The `Set-Cookie` value of the refresh cookie (`None` clears it). `SameSite=Strict`: no
/// other site can make a browser send it; `Path=/` so the server-rendered client sees it
/// and can refresh before it renders a page.
fn refresh_cookie(state: &AppState, token: Option<&str>) -> HeaderValue {
    let mut cookie = match token {
        Some(token) => format!(
            "{REFRESH_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            state.refresh.ttl.as_secs()
        ),
        None => format!(
            "{REFRESH_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        ),
    };
    if state.sessions().cookie_secure() {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("base64url and fixed attributes are valid header text")
}

/// Both cookies cleared.
fn cleared_cookies(state: &AppState) -> AppendHeaders<[(header::HeaderName, HeaderValue); 2]> {
    AppendHeaders([
        (header::SET_COOKIE, state.sessions().clear_cookie()),
        (header::SET_COOKIE, refresh_cookie(state, None)),
    ])
}

/// The empty object `{}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Empty {}

/// Signs out: revokes this session's refresh tokens and clears both cookies.
///
/// The access token itself stays valid until it expires (at most `JWT_TTL_SECONDS`), as
/// any token every service checks on its own; `sessions/revoke` ends those too.
#[utoipa::path(
    post,
    path = "/api/users/signout",
    operation_id = "signout",
    tag = "users",
    responses((status = 200, description = "Signed out; the cookies are cleared", body = Empty,
        headers(("set-cookie" = String, description = "The `session` and `refresh` cookies, expired"))))
)]
async fn signout(State(state): State<AppState>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = cookie_value(&headers, REFRESH_COOKIE) {
        state.store.end(token).await?;
    }
    Ok((cleared_cookies(&state), Json(Empty {})))
}

/// Renews the session: exchanges the `refresh` cookie for a new access token and a new
/// refresh token (rotation).
///
/// 401 when the cookie is missing, unknown, expired, revoked or the user is banned; a
/// rotated token presented again after the grace period revokes its whole family.
#[utoipa::path(
    post,
    path = "/api/users/refresh",
    operation_id = "refresh",
    tag = "users",
    security(("refresh" = [])),
    responses(
        (status = 200, description = "Renewed; new session and refresh cookies are set", body = UserView,
            headers(("set-cookie" = String, description = "The new `session` and `refresh` cookies"))),
        NotAuthorized,
    )
)]
async fn refresh(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(presented) = cookie_value(&headers, REFRESH_COOKIE) else {
        return Err(ApiError::NotAuthorized);
    };
    match state.store.refresh(presented).await? {
        Ok(issued) => Ok(session_response(&state, StatusCode::OK, &issued)?.into_response()),
        Err(refused) => {
            tracing::info!(reason = ?refused, "refresh refused");
            let clear = AppendHeaders([(header::SET_COOKIE, refresh_cookie(&state, None))]);
            Ok((clear, ApiError::NotAuthorized).into_response())
        }
    }
}

/// Signs out everywhere: revokes every session of the signed-in user and publishes
/// `user.sessions.revoked`; every service then refuses the user's tokens issued up to now.
#[utoipa::path(
    post,
    path = "/api/users/sessions/revoke",
    operation_id = "revokeSessions",
    tag = "users",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Every session ended; the cookies are cleared", body = Empty),
        NotAuthorized,
    )
)]
async fn revoke_sessions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<impl IntoResponse, ApiError> {
    let id = object_id(&user.id).map_err(|_| ApiError::NotAuthorized)?;
    if let Some(revoked) = state.store.revoke_all(id, Revocation::SignOutEverywhere).await? {
        // This service refuses the tokens at once; the others when the event reaches them.
        state.sessions().revocations().revoke(&user.id, revoked.at, revoked.at);
        tracing::info!(user_id = %user.id, "signed out everywhere");
    }
    Ok((cleared_cookies(&state), Json(Empty {})))
}

/// Body of a ban.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
pub struct BanBody {
    /// Why, for the record (at most 500 characters); published with `user.banned`.
    #[validate(length(max = 500, message = "Reason must be at most 500 characters"))]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// A user as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserView {
    id: String,
    email: String,
    admin: bool,
    banned: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    banned_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ban_reason: Option<String>,
}

impl From<&UserDocument> for AdminUserView {
    fn from(user: &UserDocument) -> Self {
        Self {
            id: user.id.to_hex(),
            email: user.email.clone(),
            admin: user.admin,
            banned: user.is_banned(),
            banned_at: user.banned_at.and_then(|at| at.try_to_rfc3339_string().ok()),
            ban_reason: user.ban_reason.clone(),
        }
    }
}

/// Bans a user (administrators only): every session ends, `user.banned` is published,
/// every service refuses the user's tokens issued up to now, sign-in answers 403
/// `Account suspended`, and the user's pending reservations are cancelled. Banning a
/// banned user changes nothing.
///
/// Check order: 401, 403 (not an admin: before anything about the target is told), 400,
/// 404, 400 `You cannot ban yourself`.
#[utoipa::path(
    post,
    path = "/api/users/{id}/ban",
    operation_id = "banUser",
    tag = "admin",
    params(("id" = String, Path, description = "User id (24 hex digits)")),
    request_body(content = BanBody, description = "Optional; an empty body bans without a reason"),
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Banned", body = AdminUserView),
        (status = 400, description = "Validation, or `You cannot ban yourself`", body = ErrorEnvelope),
        NotAuthorized,
        Forbidden,
        NotFound,
    )
)]
async fn ban(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<AdminUserView>, ApiError> {
    let body: BanBody = common::extract::optional_json(&headers, &body)?;
    let id = object_id(&id)?;
    let user = state.users.find(id).await?.ok_or(ApiError::NotFound)?;
    if user.id.to_hex() == admin.id {
        return Err(ApiError::BadRequest("You cannot ban yourself".into()));
    }
    let reason = body.reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    if let Some(revoked) = state.store.revoke_all(id, Revocation::Ban { reason }).await? {
        state.sessions().revocations().revoke(&user.id.to_hex(), revoked.at, revoked.at);
        tracing::warn!(user_id = %user.id, admin_id = %admin.id, "user banned");
    }
    let user = state.users.find(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(AdminUserView::from(&user)))
}

/// Lifts a ban (administrators only) and publishes `user.unbanned`: the user may sign in
/// again; tokens from before the ban stay refused.
#[utoipa::path(
    delete,
    path = "/api/users/{id}/ban",
    operation_id = "unbanUser",
    tag = "admin",
    params(("id" = String, Path, description = "User id (24 hex digits)")),
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Not banned (any more)", body = AdminUserView),
        NotAuthorized,
        Forbidden,
        NotFound,
    )
)]
async fn unban(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<String>,
) -> Result<Json<AdminUserView>, ApiError> {
    let id = object_id(&id)?;
    if state.store.unban(id).await?.ok_or(ApiError::NotFound)? {
        tracing::warn!(user_id = %id, admin_id = %admin.id, "ban lifted");
    }
    let user = state.users.find(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(AdminUserView::from(&user)))
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
