//! The two routes of the posts service.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::extract::object_id;
use common::openapi::{NotAuthorized, NotFound};
use common::{ApiError, CurrentUser, ErrorEnvelope, ValidatedJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use validator::{Validate, ValidationError};

use crate::AppState;
use crate::store::Post;

/// The routes, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create)).routes(routes!(show))
}

/// Longest accepted title, in characters.
pub const MAX_TITLE: usize = 200;

fn valid_title(title: &str) -> Result<(), ValidationError> {
    let title = title.trim();
    if title.is_empty() {
        Err(ValidationError::new("title").with_message("Title is required".into()))
    } else if title.chars().count() > MAX_TITLE {
        Err(ValidationError::new("title").with_message("Title must be at most 200 characters".into()))
    } else {
        Ok(())
    }
}

/// Body of create. The title is an option so that a missing one is a field error in the
/// envelope, not a decoding failure.
#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct PostBody {
    /// Not blank; at most 200 characters once trimmed.
    #[validate(required(message = "Title is required"), custom(function = "valid_title"))]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"\S")]
    title: Option<String>,
}

/// A post as clients see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Post)]
pub struct PostView {
    id: String,
    title: String,
    user_id: String,
    version: i64,
}

impl From<Post> for PostView {
    fn from(p: Post) -> Self {
        Self { id: p.id.to_hex(), title: p.title, user_id: p.user_id, version: p.version }
    }
}

/// Writes a blog post.
#[utoipa::path(
    post,
    path = "/api/posts",
    operation_id = "createPost",
    tag = "posts",
    request_body = PostBody,
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created, version 0; emits post.created", body = PostView),
        (status = 400, description = "Validation: one entry per failing field", body = ErrorEnvelope),
        NotAuthorized,
    )
)]
async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ValidatedJson(body): ValidatedJson<PostBody>,
) -> Result<(StatusCode, Json<PostView>), ApiError> {
    let title = body.title.unwrap_or_default().trim().to_owned();
    let post = state.store.create(title, user.id).await?;
    tracing::info!(post_id = %post.id, "post created");
    Ok((StatusCode::CREATED, Json(post.into())))
}

/// One post.
#[utoipa::path(
    get,
    path = "/api/posts/{id}",
    operation_id = "showPost",
    tag = "posts",
    params(("id" = String, Path, description = "Post id (24 hex digits)")),
    responses(
        (status = 200, description = "The post", body = PostView),
        NotFound,
    )
)]
async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<PostView>, ApiError> {
    let post = state.store.find(object_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(post.into()))
}
