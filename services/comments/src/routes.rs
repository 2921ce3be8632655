//! The two routes of the comments service.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::events::CommentStatus;
use common::extract::object_id;
use common::openapi::{NotAuthorized, NotFound};
use common::{ApiError, CurrentUser, ErrorEnvelope, ValidatedJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::store::Comment;

/// The routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, create))
}

/// Longest accepted comment, in characters.
pub const MAX_CONTENT: usize = 2000;

fn valid_content(content: &str) -> Result<(), ValidationError> {
    let content = content.trim();
    if content.is_empty() {
        Err(ValidationError::new("content").with_message("Content is required".into()))
    } else if content.chars().count() > MAX_CONTENT {
        Err(ValidationError::new("content").with_message("Content must be at most 2000 characters".into()))
    } else {
        Ok(())
    }
}

/// Body of create. The content is an option so that a missing one is a field error in
/// the envelope, not a decoding failure.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CommentBody {
    /// Not blank; at most 2000 characters once trimmed.
    #[validate(required(message = "Content is required"), custom(function = "valid_content"))]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 2000, pattern = r"\S")]
    content: Option<String>,
}

/// A comment as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Comment)]
pub struct CommentView {
    id: String,
    post_id: String,
    content: String,
    /// `pending` until the moderation service decided.
    status: CommentStatus,
    user_id: String,
    /// 0 when created, 1 once moderated.
    version: i64,
}

impl From<Comment> for CommentView {
    fn from(c: Comment) -> Self {
        Self {
            id: c.id.to_hex(),
            post_id: c.post_id,
            content: c.content,
            status: c.status,
            user_id: c.user_id,
            version: c.version,
        }
    }
}

/// The post id, if it is one this service knows (from `post.created`).
async fn known_post(state: &AppState, id: &str) -> Result<String, ApiError> {
    let id = object_id(id)?.to_hex();
    if state.store.post_exists(&id).await? { Ok(id) } else { Err(ApiError::NotFound) }
}

/// Comments on a post.
///
/// The post must be known: this service learns of posts from `post.created`, so a post
/// created a moment ago may still be a 404 here.
#[utoipa::path(
    post,
    path = "/api/posts/{id}/comments",
    operation_id = "createComment",
    tag = "comments",
    params(("id" = String, Path, description = "Post id (24 hex digits)")),
    request_body = CommentBody,
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created `pending`, version 0; emits comment.created", body = CommentView),
        (status = 400, description = "Validation: one entry per failing field", body = ErrorEnvelope),
        NotAuthorized,
        NotFound,
    )
)]
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ValidatedJson(body): ValidatedJson<CommentBody>,
) -> Result<(StatusCode, Json<CommentView>), ApiError> {
    let post_id = known_post(&state, &id).await?;
    let content = body.content.unwrap_or_default().trim().to_owned();
    let comment = state.store.create(post_id, content, user.id).await?;
    tracing::info!(comment_id = %comment.id, post_id = %comment.post_id, "comment created");
    Ok((StatusCode::CREATED, Json(comment.into())))
}

/// The comments of a post, oldest first, with their moderation status.
#[utoipa::path(
    get,
    path = "/api/posts/{id}/comments",
    operation_id = "listComments",
    tag = "comments",
    params(("id" = String, Path, description = "Post id (24 hex digits)")),
    responses(
        (status = 200, description = "The post's comments, oldest first (at most 1000)", body = Vec<CommentView>),
        NotFound,
    )
)]
async fn list(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<CommentView>>, ApiError> {
    let post_id = known_post(&state, &id).await?;
    let comments = state.store.comments_of(&post_id).await?;
    Ok(Json(comments.into_iter().map(Into::into).collect()))
}
