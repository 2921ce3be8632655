//! Sessions that can be ended: refresh tokens in families, and revocations (sign out
//! everywhere, bans) published as events.
//!
//! A refresh token is 256 random bits, given to the browser once; only its SHA-256 is
//! stored (`refresh_tokens._id`, unique), with its family, user and expiry (a TTL index
//! deletes it after). A sign-in starts a family (`refresh_families`); each refresh marks
//! the presented token used and issues the next one in the same family (rotation). A used
//! token presented again within the reuse grace (two tabs refreshing at once) gets a
//! sibling; later, it has been copied, and the whole family is revoked.
//!
//! Every issue of an access token and every revocation goes through the user's document in
//! one transaction, so they are ordered: a revocation records the second up to which
//! tokens are refused (`tokensValidAfter`, never before the latest `iat` issued), and a
//! token issued afterwards gets an `iat` past it. A sign-in racing a ban either sees the
//! ban (and is refused) or is covered by it.

use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bson::doc;
use bson::oid::ObjectId;
use common::events::outbox::Outbox;
use common::events::{UserBanned, UserSessionsRevoked, UserUnbanned};
use mongodb::options::IndexOptions;
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::users::{UserDocument, Users};

/// A family of refresh tokens: one sign-in and its rotations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Family {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    #[serde(rename = "userId")]
    pub user_id: ObjectId,
    #[serde(rename = "createdAt")]
    pub created_at: bson::DateTime,
    /// The latest expiry of its tokens (a TTL index deletes the family after it).
    #[serde(rename = "expiresAt")]
    pub expires_at: bson::DateTime,
    #[serde(rename = "revokedAt", default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<bson::DateTime>,
    #[serde(rename = "revokedBecause", default, skip_serializing_if = "Option::is_none")]
    pub revoked_because: Option<String>,
}

/// One refresh token, by the hash of its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshToken {
    /// SHA-256 of the token, hex.
    #[serde(rename = "_id")]
    pub hash: String,
    #[serde(rename = "familyId")]
    pub family_id: ObjectId,
    #[serde(rename = "userId")]
    pub user_id: ObjectId,
    #[serde(rename = "createdAt")]
    pub created_at: bson::DateTime,
    #[serde(rename = "expiresAt")]
    pub expires_at: bson::DateTime,
    /// When it was exchanged for the next token.
    #[serde(rename = "usedAt", default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<bson::DateTime>,
}

/// A new refresh token's value. Never logged: `Debug` hides it.
pub struct RefreshSecret(String);

impl std::fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshSecret(..)")
    }
}

impl RefreshSecret {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The stored form of a presented token. Anything that is not a token we could have
/// issued still hashes (and then is unknown), so the answer does not depend on its shape.
pub fn token_hash(token: &str) -> String {
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a sign-in or refresh produced: the user as of the commit, the `iat` to sign the
/// access token with, and the next refresh token.
#[derive(Debug)]
pub struct Issued {
    pub user: UserDocument,
    pub iat: i64,
    pub refresh: RefreshSecret,
}

/// Why a refresh token was refused. All are a 401 to the client; the reason is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Unknown,
    Expired,
    Revoked,
    Banned,
    /// Presented again after the grace period: its family is now revoked.
    Reused,
}

/// A revocation that was committed: the second up to which the user's tokens are refused.
#[derive(Debug, Clone, Copy)]
pub struct Revoked {
    pub at: i64,
}

/// What to revoke everything for.
#[derive(Debug, Clone)]
pub enum Revocation {
    SignOutEverywhere,
    Ban { reason: Option<String> },
}

/// The auth database's session side. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionStore {
    client: Client,
    users: Collection<UserDocument>,
    families: Collection<Family>,
    tokens: Collection<RefreshToken>,
    outbox: Outbox,
    ttl: Duration,
    reuse_grace: Duration,
}

fn now_second() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn plus(at: bson::DateTime, duration: Duration) -> bson::DateTime {
    bson::DateTime::from_millis(
        at.timestamp_millis().saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)),
    )
}

/// RFC 3339 of the revocation second `at`, or of the precise current time when that is
/// the same second (the event says when it happened, to the millisecond where it can).
fn revocation_time(at: i64) -> String {
    let now = time::OffsetDateTime::now_utc();
    let time =
        if now.unix_timestamp() == at { now } else { time::OffsetDateTime::from_unix_timestamp(at).unwrap_or(now) };
    time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

impl SessionStore {
    pub fn new(db: &Database, users: &Users, outbox: Outbox, ttl: Duration, reuse_grace: Duration) -> Self {
        Self {
            client: db.client().clone(),
            users: users.collection.clone(),
            families: db.collection("refresh_families"),
            tokens: db.collection("refresh_tokens"),
            outbox,
            ttl,
            reuse_grace,
        }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// TTL indexes delete expired tokens and families; the family index serves revoking a
    /// family's tokens, the user index revoking every family of a user.
    pub async fn ensure_indexes(&self) -> mongodb::error::Result<()> {
        let expiring = |name: &str| {
            IndexModel::builder()
                .keys(doc! { "expiresAt": 1 })
                .options(IndexOptions::builder().name(name.to_owned()).expire_after(Duration::ZERO).build())
                .build()
        };
        self.tokens.create_index(expiring("token_expiry")).await?;
        self.families.create_index(expiring("family_expiry")).await?;
        self.families.create_index(IndexModel::builder().keys(doc! { "userId": 1 }).build()).await?;
        self.outbox.ensure_indexes().await
    }

    /// Starts a session for `user` (sign-up, sign-in): a new family and its first token.
    /// `None` when the user was banned meanwhile.
    pub async fn start(&self, user: ObjectId) -> mongodb::error::Result<Option<Issued>> {
        let this = self.clone();
        let issued = common::mongo::transaction(&self.client, async move |session| {
            let Some(user) = this.users.find_one(doc! { "_id": user }).session(&mut *session).await? else {
                return Ok(None);
            };
            if user.is_banned() {
                return Ok(None);
            }
            let now = bson::DateTime::now();
            let family = Family {
                id: ObjectId::new(),
                user_id: user.id,
                created_at: now,
                expires_at: plus(now, this.ttl),
                revoked_at: None,
                revoked_because: None,
            };
            this.families.insert_one(&family).session(&mut *session).await?;
            let refresh = this.insert_token(session, &family, now).await?;
            let iat = this.record_issue(session, &user).await?;
            Ok(Some(Issued { user, iat, refresh }))
        })
        .await?;
        Ok(issued)
    }

    /// Exchanges a presented refresh token for the next one (see the module docs).
    pub async fn refresh(&self, presented: &str) -> mongodb::error::Result<Result<Issued, Refused>> {
        let (this, hash) = (self.clone(), token_hash(presented));
        common::mongo::transaction(&self.client, async move |session| {
            let Some(token) = this.tokens.find_one(doc! { "_id": &hash }).session(&mut *session).await? else {
                return Ok(Err(Refused::Unknown));
            };
            let now = bson::DateTime::now();
            if token.expires_at <= now {
                return Ok(Err(Refused::Expired));
            }
            let family = this.families.find_one(doc! { "_id": token.family_id }).session(&mut *session).await?;
            let Some(family) = family.filter(|f| f.revoked_at.is_none()) else {
                return Ok(Err(Refused::Revoked));
            };
            let Some(user) = this.users.find_one(doc! { "_id": token.user_id }).session(&mut *session).await? else {
                return Ok(Err(Refused::Revoked));
            };
            if user.is_banned() {
                this.revoke_family_in(session, family.id, "banned").await?;
                return Ok(Err(Refused::Banned));
            }
            match token.used_at {
                Some(used) if now.timestamp_millis() - used.timestamp_millis() > millis(this.reuse_grace) => {
                    tracing::warn!(user_id = %user.id, family_id = %family.id, "a rotated refresh token was presented again; revoking its family");
                    this.revoke_family_in(session, family.id, "reused").await?;
                    return Ok(Err(Refused::Reused));
                }
                // Within the grace period (another tab refreshed at the same moment): a
                // sibling token, so both stay signed in.
                Some(_) => {}
                None => {
                    this.tokens
                        .update_one(doc! { "_id": &hash, "usedAt": null }, doc! { "$set": { "usedAt": now } })
                        .session(&mut *session)
                        .await?;
                }
            }
            let refresh = this.insert_token(session, &family, now).await?;
            this.families
                .update_one(doc! { "_id": family.id }, doc! { "$max": { "expiresAt": plus(now, this.ttl) } })
                .session(&mut *session)
                .await?;
            let iat = this.record_issue(session, &user).await?;
            Ok(Ok(Issued { user, iat, refresh }))
        })
        .await
    }

    /// Sign-out: revokes the family of the presented token, if it is one of ours.
    pub async fn end(&self, presented: &str) -> mongodb::error::Result<()> {
        if let Some(token) = self.tokens.find_one(doc! { "_id": token_hash(presented) }).await? {
            self.families
                .update_one(
                    doc! { "_id": token.family_id, "revokedAt": null },
                    doc! { "$set": { "revokedAt": bson::DateTime::now(), "revokedBecause": "signed out" } },
                )
                .await?;
        }
        Ok(())
    }

    /// Revokes every session of `user` and publishes the event: `user.sessions.revoked`,
    /// or `user.banned` (then the user is banned too). `None` for an unknown user, and for
    /// a ban of a user already banned (nothing changes, no event).
    pub async fn revoke_all(&self, user: ObjectId, why: Revocation) -> mongodb::error::Result<Option<Revoked>> {
        let this = self.clone();
        let revoked = common::mongo::transaction(&self.client, async move |session| {
            let Some(doc) = this.users.find_one(doc! { "_id": user }).session(&mut *session).await? else {
                return Ok(None);
            };
            if matches!(why, Revocation::Ban { .. }) && doc.is_banned() {
                return Ok(None);
            }
            // Every token issued so far has an iat at or before this second.
            let at = now_second().max(doc.last_iat).max(doc.tokens_valid_after);
            let mut set = doc! { "tokensValidAfter": at };
            let (user_id, time) = (user.to_hex(), revocation_time(at));
            let (because, staged) = match &why {
                Revocation::SignOutEverywhere => (
                    "signed out everywhere",
                    this.outbox.stage(session, &UserSessionsRevoked { user_id, at: time }).await?,
                ),
                Revocation::Ban { reason } => {
                    set.insert("bannedAt", bson::DateTime::now());
                    if let Some(reason) = reason {
                        set.insert("banReason", reason);
                    }
                    (
                        "banned",
                        this.outbox.stage(session, &UserBanned { user_id, at: time, reason: reason.clone() }).await?,
                    )
                }
            };
            this.users.update_one(doc! { "_id": user }, doc! { "$set": set }).session(&mut *session).await?;
            this.families
                .update_many(
                    doc! { "userId": user, "revokedAt": null },
                    doc! { "$set": { "revokedAt": bson::DateTime::now(), "revokedBecause": because } },
                )
                .session(&mut *session)
                .await?;
            Ok(Some((Revoked { at }, staged)))
        })
        .await?;
        Ok(revoked.map(|(revoked, staged)| {
            self.outbox.committed([staged]);
            revoked
        }))
    }

    /// Lifts a ban and publishes `user.unbanned`. `None` for an unknown user; `Some(false)`
    /// when the user was not banned (no event).
    pub async fn unban(&self, user: ObjectId) -> mongodb::error::Result<Option<bool>> {
        let this = self.clone();
        let lifted = common::mongo::transaction(&self.client, async move |session| {
            let Some(doc) = this.users.find_one(doc! { "_id": user }).session(&mut *session).await? else {
                return Ok(None);
            };
            if !doc.is_banned() {
                return Ok(Some(None));
            }
            this.users
                .update_one(doc! { "_id": user }, doc! { "$unset": { "bannedAt": "", "banReason": "" } })
                .session(&mut *session)
                .await?;
            let at = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let staged = this.outbox.stage(session, &UserUnbanned { user_id: user.to_hex(), at }).await?;
            Ok(Some(Some(staged)))
        })
        .await?;
        Ok(lifted.map(|staged| {
            let lifted = staged.is_some();
            self.outbox.committed(staged);
            lifted
        }))
    }

    async fn insert_token(
        &self,
        session: &mut ClientSession,
        family: &Family,
        now: bson::DateTime,
    ) -> mongodb::error::Result<RefreshSecret> {
        let secret = RefreshSecret::generate();
        let token = RefreshToken {
            hash: token_hash(secret.expose()),
            family_id: family.id,
            user_id: family.user_id,
            created_at: now,
            expires_at: plus(now, self.ttl),
            used_at: None,
        };
        self.tokens.insert_one(&token).session(session).await?;
        Ok(secret)
    }

    /// Records that an access token is issued to `user` now and returns its `iat`. The
    /// write also makes a concurrent revocation of the user conflict with this transaction.
    async fn record_issue(&self, session: &mut ClientSession, user: &UserDocument) -> mongodb::error::Result<i64> {
        let iat = user.next_iat(now_second());
        self.users.update_one(doc! { "_id": user.id }, doc! { "$max": { "lastIat": iat } }).session(session).await?;
        Ok(iat)
    }

    async fn revoke_family_in(
        &self,
        session: &mut ClientSession,
        family: ObjectId,
        because: &str,
    ) -> mongodb::error::Result<()> {
        self.families
            .update_one(
                doc! { "_id": family, "revokedAt": null },
                doc! { "$set": { "revokedAt": bson::DateTime::now(), "revokedBecause": because } },
            )
            .session(session)
            .await
            .map(drop)
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_secrets_are_256_random_bits_and_differ() {
        let (a, b) = (RefreshSecret::generate(), RefreshSecret::generate());
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "RefreshSecret(..)");
    }

    #[test]
    fn only_the_hash_of_a_token_is_kept() {
        let hash = token_hash("abc");
        assert_eq!(hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
