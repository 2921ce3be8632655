//! The posts database: the `posts` collection and the outbox.

use bson::doc;
use bson::oid::ObjectId;
use common::events::PostCreated;
use common::events::outbox::Outbox;
use mongodb::{Client, Collection, Database};
use serde::{Deserialize, Serialize};

/// A stored post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub title: String,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub version: i64,
}

/// The posts database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    posts: Collection<Post>,
    outbox: Outbox,
}

impl Store {
    pub fn new(db: &Database, outbox: Outbox) -> Self {
        Self { client: db.client().clone(), posts: db.collection("posts"), outbox }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub async fn find(&self, id: ObjectId) -> mongodb::error::Result<Option<Post>> {
        self.posts.find_one(doc! { "_id": id }).await
    }

    /// Creates a post at version 0 and stages `post.created`, in one transaction.
    pub async fn create(&self, title: String, user_id: String) -> mongodb::error::Result<Post> {
        let post = Post { id: ObjectId::new(), title, user_id, version: 0 };
        let event =
            PostCreated { id: post.id.to_hex(), version: 0, title: post.title.clone(), user_id: post.user_id.clone() };
        let (this, doc) = (self.clone(), post.clone());
        let staged = common::mongo::transaction(&self.client, async move |session| {
            this.posts.insert_one(&doc).session(&mut *session).await?;
            this.outbox.stage(session, &event).await
        })
        .await?;
        self.outbox.committed([staged]);
        Ok(post)
    }
}
