//! The blog: every post with its comments (from the query service's read model), a form
//! to write a post, and one to comment under each post.
//!
//! A comment shows its content once approved; until then, and when rejected, only its
//! status, as the course's blog does. Forms post here and are answered with a redirect
//! back to the post; what the API refused is the next page's notice.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::{Layout, PageError, render, see_other};
use crate::AppState;
use crate::api::Reply;
use crate::forms::SafeForm;
use crate::visitor::{Flash, Visitor};

/// A comment as the read model has it.
#[derive(Debug, Clone, Deserialize)]
pub struct BlogComment {
    pub id: String,
    pub content: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
}

impl BlogComment {
    /// What the page shows in place of the content that is not approved.
    pub fn notice(&self) -> Option<&'static str> {
        match self.status.as_str() {
            "approved" => None,
            "rejected" => Some("This comment has been rejected."),
            _ => Some("This comment is awaiting moderation."),
        }
    }
}

/// A post with its comments.
#[derive(Debug, Clone, Deserialize)]
pub struct BlogPost {
    pub id: String,
    pub title: String,
    pub comments: Vec<BlogComment>,
}

#[derive(Template)]
#[template(path = "blog.html")]
struct BlogPage {
    l: Layout,
    posts: Vec<BlogPost>,
    signed_in: bool,
}

/// `GET /blog`: newest posts first.
pub async fn list(State(state): State<AppState>, visitor: Visitor) -> Result<Response, PageError> {
    let reply = state.api.get("/api/query/posts", &visitor.caller).await?;
    let mut posts: Vec<BlogPost> = reply.json()?;
    posts.reverse();
    let page = BlogPage { l: Layout::new(&state, &visitor, "Blog", "blog"), signed_in: visitor.signed_in(), posts };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Debug, Deserialize)]
pub struct PostFields {
    #[serde(default)]
    title: String,
}

#[derive(Debug, Deserialize)]
pub struct CommentFields {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

/// The API's first complaint, for the notice.
fn problem(reply: &Reply) -> String {
    let problems = reply.errors();
    problems.fields.into_values().chain(problems.general).next().unwrap_or_else(|| "Something went wrong".into())
}

/// `POST /blog/posts`
pub async fn create_post(
    State(state): State<AppState>,
    mut visitor: Visitor,
    SafeForm(form): SafeForm<PostFields>,
) -> Result<Response, PageError> {
    if !visitor.signed_in() {
        return Err(PageError::SignIn("/blog".into()));
    }
    let reply = state.api.post("/api/posts", &visitor.caller, &json!({"title": form.title})).await?;
    match reply.status {
        StatusCode::CREATED => {
            let post: Created = reply.json()?;
            visitor.flash(&Flash::success("Post published. It shows here in a moment."));
            Ok(see_other(&format!("/blog#post-{}", post.id)))
        }
        StatusCode::UNAUTHORIZED => {
            visitor.sign_out_locally();
            Err(PageError::SignIn("/blog".into()))
        }
        _ => {
            visitor.flash(&Flash::error(problem(&reply)));
            Ok(see_other("/blog"))
        }
    }
}

/// `POST /blog/posts/{id}/comments`
pub async fn create_comment(
    State(state): State<AppState>,
    mut visitor: Visitor,
    Path(id): Path<String>,
    SafeForm(form): SafeForm<CommentFields>,
) -> Result<Response, PageError> {
    if !visitor.signed_in() {
        return Err(PageError::SignIn("/blog".into()));
    }
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PageError::NotFound);
    }
    let path = format!("/api/posts/{id}/comments");
    let reply = state.api.post(&path, &visitor.caller, &json!({"content": form.content})).await?;
    let back = format!("/blog#post-{id}");
    match reply.status {
        StatusCode::CREATED => {
            visitor.flash(&Flash::success("Comment sent. It shows once moderated."));
            Ok(see_other(&back))
        }
        StatusCode::UNAUTHORIZED => {
            visitor.sign_out_locally();
            Err(PageError::SignIn("/blog".into()))
        }
        StatusCode::NOT_FOUND => {
            visitor.flash(&Flash::error("This post cannot take comments yet. Try again in a moment."));
            Ok(see_other(&back))
        }
        _ => {
            visitor.flash(&Flash::error(problem(&reply)));
            Ok(see_other(&back))
        }
    }
}
