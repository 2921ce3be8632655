//! The `users` collection: one document per user, email unique.

use bson::doc;
use bson::oid::ObjectId;
use mongodb::options::IndexOptions;
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};

/// A stored user. The hash never leaves this service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDocument {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub email: String,
    #[serde(rename = "passwordHash")]
    pub password_hash: String,
    #[serde(rename = "createdAt")]
    pub created_at: bson::DateTime,
}

/// Why an insert failed.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("the email is already registered")]
    EmailInUse,
    #[error(transparent)]
    Database(#[from] mongodb::error::Error),
}

#[derive(Clone, Debug)]
pub struct Users {
    collection: Collection<UserDocument>,
}

impl Users {
    pub fn new(db: &Database) -> Self {
        Self { collection: db.collection("users") }
    }

    /// Creates the unique index on `email` (idempotent). It is what makes concurrent
    /// sign-ups with one email produce exactly one user.
    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let index = IndexModel::builder()
            .keys(doc! { "email": 1 })
            .options(IndexOptions::builder().unique(true).name("email_unique".to_owned()).build())
            .build();
        self.collection.create_index(index).await.map(drop)
    }

    pub async fn insert(&self, email: &str, password_hash: String) -> Result<UserDocument, InsertError> {
        let user = UserDocument {
            id: ObjectId::new(),
            email: email.to_owned(),
            password_hash,
            created_at: bson::DateTime::now(),
        };
        match self.collection.insert_one(&user).await {
            Ok(_) => Ok(user),
            Err(err) if common::mongo::is_duplicate_key(&err) => Err(InsertError::EmailInUse),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn find_by_email(&self, email: &str) -> mongodb::error::Result<Option<UserDocument>> {
        self.collection.find_one(doc! { "email": email }).await
    }
}
