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
    /// Granted by an operator (`auth grant-admin EMAIL`); carried in the token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// Set while the user is banned.
    #[serde(rename = "bannedAt", default, skip_serializing_if = "Option::is_none")]
    pub banned_at: Option<bson::DateTime>,
    #[serde(rename = "banReason", default, skip_serializing_if = "Option::is_none")]
    pub ban_reason: Option<String>,
    /// Tokens of this user issued at or before this second are revoked (the last ban or
    /// sign-out everywhere); new tokens are issued after it.
    #[serde(rename = "tokensValidAfter", default)]
    pub tokens_valid_after: i64,
    /// The latest `iat` issued to this user, so a revocation covers every token issued
    /// before it, even one whose `iat` was moved past an earlier revocation.
    #[serde(rename = "lastIat", default)]
    pub last_iat: i64,
}

impl UserDocument {
    pub fn is_banned(&self) -> bool {
        self.banned_at.is_some()
    }

    /// The `iat` of a token issued at second `now`: after the last revocation.
    pub fn next_iat(&self, now: i64) -> i64 {
        now.max(self.tokens_valid_after.saturating_add(1))
    }
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
    pub(crate) collection: Collection<UserDocument>,
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
            admin: false,
            banned_at: None,
            ban_reason: None,
            tokens_valid_after: 0,
            last_iat: 0,
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

    pub async fn find(&self, id: ObjectId) -> mongodb::error::Result<Option<UserDocument>> {
        self.collection.find_one(doc! { "_id": id }).await
    }

    /// Grants or withdraws the admin role; `false` when no user has this email.
    pub async fn set_admin(&self, email: &str, admin: bool) -> mongodb::error::Result<bool> {
        let result = self.collection.update_one(doc! { "email": email }, doc! { "$set": { "admin": admin } }).await?;
        Ok(result.matched_count == 1)
    }
}
