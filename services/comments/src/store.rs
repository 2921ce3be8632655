//! The comments database: `comments` (owned here), `posts` (the ids of the posts seen in
//! `post.created`) and the outbox.
//!
//! Every change writes the comment and its event in one transaction, and bumps the
//! version by exactly one with a conditional update on the version it read.

use bson::doc;
use bson::oid::ObjectId;
use common::events::outbox::Outbox;
use common::events::{CommentCreated, CommentModerated, CommentStatus, CommentUpdated};
use futures::TryStreamExt;
use mongodb::options::ReturnDocument;
use mongodb::{Client, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// A stored comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(rename = "postId")]
    pub post_id: String,
    pub content: String,
    pub status: CommentStatus,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub version: i64,
}

impl Comment {
    fn updated_event(&self) -> CommentUpdated {
        CommentUpdated {
            id: self.id.to_hex(),
            version: self.version,
            post_id: self.post_id.clone(),
            content: self.content.clone(),
            status: self.status,
            user_id: self.user_id.clone(),
        }
    }
}

/// A post this service knows exists (from `post.created`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KnownPost {
    #[serde(rename = "_id")]
    id: String,
}

/// What a `comment.moderated` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// The status was set (version + 1) and `comment.updated` staged.
    Changed(Comment),
    /// Already moderated (a redelivery, or a decision about an older version).
    Stale,
    /// No such comment.
    UnknownComment,
}

/// Most comments `GET /api/posts/{id}/comments` returns.
pub const LIST_LIMIT: i64 = 1000;

/// The comments database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    comments: Collection<Comment>,
    posts: Collection<KnownPost>,
    outbox: Outbox,
}

impl Store {
    pub fn new(db: &Database, outbox: Outbox) -> Self {
        Self { client: db.client().clone(), comments: db.collection("comments"), posts: db.collection("posts"), outbox }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let index = IndexModel::builder().keys(doc! { "postId": 1, "_id": 1 }).build();
        self.comments.create_index(index).await?;
        self.outbox.ensure_indexes().await
    }

    /// `post.created`: remembers the post. True when it was new.
    pub async fn post_created(&self, post_id: &str) -> mongodb::error::Result<bool> {
        common::mongo::insert_once(&self.posts, &KnownPost { id: post_id.to_owned() }).await
    }

    pub async fn post_exists(&self, post_id: &str) -> mongodb::error::Result<bool> {
        Ok(self.posts.find_one(doc! { "_id": post_id }).await?.is_some())
    }

    /// The comments of a post, oldest first.
    pub async fn comments_of(&self, post_id: &str) -> mongodb::error::Result<Vec<Comment>> {
        self.comments
            .find(doc! { "postId": post_id })
            .sort(doc! { "_id": 1 })
            .limit(LIST_LIMIT)
            .await?
            .try_collect()
            .await
    }

    /// Creates a comment, `pending` at version 0, and stages `comment.created`.
    pub async fn create(&self, post_id: String, content: String, user_id: String) -> mongodb::error::Result<Comment> {
        let comment =
            Comment { id: ObjectId::new(), post_id, content, status: CommentStatus::Pending, user_id, version: 0 };
        let event = CommentCreated {
            id: comment.id.to_hex(),
            version: 0,
            post_id: comment.post_id.clone(),
            content: comment.content.clone(),
            status: comment.status,
            user_id: comment.user_id.clone(),
        };
        let (this, doc) = (self.clone(), comment.clone());
        let staged = common::mongo::transaction(&self.client, async move |session| {
            this.comments.insert_one(&doc).session(&mut *session).await?;
            this.outbox.stage(session, &event).await
        })
        .await?;
        self.outbox.committed([staged]);
        Ok(comment)
    }

    /// `comment.moderated`: sets the status of a comment still `pending` at the version
    /// the decision was made on (version + 1) and stages `comment.updated`, in one
    /// transaction. A second delivery finds it moderated and changes nothing.
    pub async fn moderate(&self, event: &CommentModerated, id: ObjectId) -> mongodb::error::Result<Moderation> {
        let (this, event) = (self.clone(), event.clone());
        let outcome = common::mongo::transaction(&self.client, async move |session| {
            let filter = doc! { "_id": id, "version": event.version, "status": CommentStatus::Pending.as_str() };
            let update = doc! { "$set": { "status": event.status.as_str() }, "$inc": { "version": 1 } };
            let changed = this
                .comments
                .find_one_and_update(filter, update)
                .return_document(ReturnDocument::After)
                .session(&mut *session)
                .await?;
            if let Some(comment) = changed {
                let staged = this.outbox.stage(session, &comment.updated_event()).await?;
                return Ok((Moderation::Changed(comment), Some(staged)));
            }
            let exists = this.comments.find_one(doc! { "_id": id }).session(&mut *session).await?.is_some();
            Ok((if exists { Moderation::Stale } else { Moderation::UnknownComment }, None))
        })
        .await?;
        let (outcome, staged) = outcome;
        self.outbox.committed(staged);
        Ok(outcome)
    }
}
