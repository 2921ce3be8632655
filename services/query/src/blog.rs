//! The blog's read model: `posts` and `comments`, built only from `post.created`,
//! `comment.created` and `comment.updated`, joined when read.
//!
//! - A comment follows the versioning rule: an update applies on its direct predecessor,
//!   older ones are stale, newer ones wait. As for tickets, an update of a comment whose
//!   creation has not arrived yet creates it (the event carries every field), and the
//!   creation is then stale.
//! - Comments are joined to their post on reads, so a comment that arrives before its
//!   post is kept and shows once the post does.

use bson::doc;
use common::events::listener::{Delivery, HandleError, Handler};
use common::events::versioning::{ReplicaOutcome, apply_to_replica};
use common::events::{CommentCreated, CommentStatus, CommentUpdated, PostCreated};
use futures::TryStreamExt;
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// Most posts `GET /api/query/posts` returns (oldest first).
pub const POSTS_LIMIT: i64 = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostView {
    #[serde(rename = "_id")]
    pub id: String,
    pub title: String,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentView {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "postId")]
    pub post_id: String,
    pub content: String,
    pub status: CommentStatus,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub version: i64,
}

impl From<&CommentCreated> for CommentView {
    fn from(e: &CommentCreated) -> Self {
        Self {
            id: e.id.clone(),
            post_id: e.post_id.clone(),
            content: e.content.clone(),
            status: e.status,
            user_id: e.user_id.clone(),
            version: e.version,
        }
    }
}

impl From<&CommentUpdated> for CommentView {
    fn from(e: &CommentUpdated) -> Self {
        Self {
            id: e.id.clone(),
            post_id: e.post_id.clone(),
            content: e.content.clone(),
            status: e.status,
            user_id: e.user_id.clone(),
            version: e.version,
        }
    }
}

/// The blog's collections of the read model. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BlogStore {
    posts: Collection<PostView>,
    comments: Collection<CommentView>,
}

impl BlogStore {
    pub fn new(db: &Database) -> Self {
        Self { posts: db.collection("posts"), comments: db.collection("comments") }
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        self.comments.create_index(IndexModel::builder().keys(doc! { "postId": 1, "_id": 1 }).build()).await.map(drop)
    }

    /// Posts oldest first, each with its comments oldest first.
    pub async fn posts(&self) -> mongodb::error::Result<Vec<(PostView, Vec<CommentView>)>> {
        let posts: Vec<PostView> =
            self.posts.find(doc! {}).sort(doc! { "_id": 1 }).limit(POSTS_LIMIT).await?.try_collect().await?;
        let ids: Vec<&str> = posts.iter().map(|p| p.id.as_str()).collect();
        let comments: Vec<CommentView> =
            self.comments.find(doc! { "postId": { "$in": ids } }).sort(doc! { "_id": 1 }).await?.try_collect().await?;
        let mut by_post: std::collections::HashMap<String, Vec<CommentView>> = std::collections::HashMap::new();
        for comment in comments {
            by_post.entry(comment.post_id.clone()).or_default().push(comment);
        }
        Ok(posts
            .into_iter()
            .map(|post| {
                let comments = by_post.remove(&post.id).unwrap_or_default();
                (post, comments)
            })
            .collect())
    }

    /// `post.created`: posts never change, so the first copy is the post.
    pub async fn post_created(&self, event: &PostCreated) -> mongodb::error::Result<()> {
        let post = PostView {
            id: event.id.clone(),
            title: event.title.clone(),
            user_id: event.user_id.clone(),
            version: event.version,
        };
        common::mongo::insert_once(&self.posts, &post).await.map(drop)
    }

    /// `comment.created` and `comment.updated` (see the module's rules).
    pub async fn comment_state(&self, comment: CommentView) -> mongodb::error::Result<ReplicaOutcome> {
        for _ in 0..2 {
            if comment.version > 0 {
                let set = doc! { "content": &comment.content, "status": comment.status.as_str() };
                match apply_to_replica(&self.comments, None, comment.id.as_str(), comment.version, set).await? {
                    ReplicaOutcome::Missing => {}
                    outcome => return Ok(outcome),
                }
            }
            if common::mongo::insert_once(&self.comments, &comment).await? {
                return Ok(ReplicaOutcome::Applied);
            }
            if comment.version == 0 {
                return Ok(ReplicaOutcome::Stale);
            }
        }
        // Inserted by another delivery between the two checks, then removed: only a
        // rebuild's drop does that. Retry.
        Ok(ReplicaOutcome::Missing)
    }
}

/// `post.created`: a post of the blog.
#[derive(Clone, Debug)]
pub struct PostCreatedHandler {
    pub blog: BlogStore,
}

impl Handler for PostCreatedHandler {
    type Event = PostCreated;

    async fn handle(&self, event: PostCreated, _: &Delivery) -> Result<(), HandleError> {
        Ok(self.blog.post_created(&event).await?)
    }
}

/// `comment.created`: a new comment, `pending` (stale if its update arrived first).
#[derive(Clone, Debug)]
pub struct CommentCreatedHandler {
    pub blog: BlogStore,
}

impl Handler for CommentCreatedHandler {
    type Event = CommentCreated;

    async fn handle(&self, event: CommentCreated, _: &Delivery) -> Result<(), HandleError> {
        let what = format!("comment {} v{}", event.id, event.version);
        self.blog.comment_state((&event).into()).await?.into_result(&what)
    }
}

/// `comment.updated`: the moderated status, in version order.
#[derive(Clone, Debug)]
pub struct CommentUpdatedHandler {
    pub blog: BlogStore,
}

impl Handler for CommentUpdatedHandler {
    type Event = CommentUpdated;

    async fn handle(&self, event: CommentUpdated, _: &Delivery) -> Result<(), HandleError> {
        let what = format!("comment {} v{}", event.id, event.version);
        self.blog.comment_state((&event).into()).await?.into_result(&what)
    }
}
