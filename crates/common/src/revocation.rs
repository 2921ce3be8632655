//! Revoked sessions: which users' tokens are refused, and up to when they were issued.
//!
//! A revocation (a ban, or "sign out everywhere") says: every token of this user whose
//! `iat` is at or before second `at` is refused. Such a token lives at most
//! `JWT_TTL_SECONDS` past its `iat`, so the entry is kept exactly that long after `at` and
//! then dropped: memory is bounded by the revocations of the last token lifetime, however
//! many bans there ever were.
//!
//! A check is one hash lookup under a read lock ([`Revocations::is_revoked`]); expired
//! entries are pruned from a min-heap in time order ([`Revocations::prune`]), so pruning
//! never scans the whole map. The entries are fed from the `user.>` events by
//! [`crate::events::revocation_feed`]; auth also records its own revocations as it commits
//! them.
//!
//! User ids are MongoDB ObjectIds, kept as their 12 bytes; any other id (only a token
//! minted by hand could carry one) is reduced to 12 bytes of its SHA-256.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::Digest;

type UserKey = [u8; 12];

fn key(user_id: &str) -> UserKey {
    if let Ok(id) = bson::oid::ObjectId::parse_str(user_id) {
        return id.bytes();
    }
    let digest = sha2::Sha256::digest(user_id.as_bytes());
    let mut key = [0; 12];
    key.copy_from_slice(&digest[..12]);
    key
}

#[derive(Debug, Default)]
struct Entries {
    /// User -> the latest revocation second.
    by_user: HashMap<UserKey, i64>,
    /// (second the entry may be dropped, user), earliest first.
    expiry: BinaryHeap<Reverse<(i64, UserKey)>>,
}

/// The revocations a service knows of. Cheap to clone; shared by every request.
#[derive(Clone, Debug)]
pub struct Revocations {
    entries: Arc<RwLock<Entries>>,
    /// How long a token lives (`JWT_TTL_SECONDS`), so how long an entry matters.
    ttl: i64,
}

impl Revocations {
    pub fn new(token_ttl: Duration) -> Self {
        Self { entries: Arc::default(), ttl: i64::try_from(token_ttl.as_secs()).unwrap_or(i64::MAX) }
    }

    /// Records that `user_id`'s tokens issued at or before second `at` are refused. An
    /// older revocation of the same user changes nothing; one that can no longer matter
    /// at `now` (every such token has expired) is not stored.
    pub fn revoke(&self, user_id: &str, at: i64, now: i64) {
        let drop_at = at.saturating_add(self.ttl);
        if drop_at < now {
            return;
        }
        let key = key(user_id);
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let latest = entries.by_user.entry(key).or_insert(at);
        if *latest > at {
            return;
        }
        *latest = at;
        entries.expiry.push(Reverse((drop_at, key)));
    }

    /// Whether a token of `user_id` issued at second `iat` is refused.
    pub fn is_revoked(&self, user_id: &str, iat: i64) -> bool {
        let entries = self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.by_user.get(&key(user_id)).is_some_and(|at| iat <= *at)
    }

    /// Drops the entries that can no longer refuse a live token at `now`; returns how many.
    pub fn prune(&self, now: i64) -> usize {
        let mut entries = self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut dropped = 0;
        while let Some(Reverse((drop_at, key))) = entries.expiry.peek().copied() {
            if drop_at >= now {
                break;
            }
            entries.expiry.pop();
            // A later revocation of the same user has its own, later heap entry.
            if entries.by_user.get(&key).is_some_and(|at| at.saturating_add(self.ttl) == drop_at) {
                entries.by_user.remove(&key);
                dropped += 1;
            }
        }
        if entries.expiry.capacity() > 64 && entries.expiry.len() < entries.expiry.capacity() / 4 {
            entries.expiry.shrink_to_fit();
            entries.by_user.shrink_to_fit();
        }
        dropped
    }

    /// The number of users with a live revocation.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner).by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The whole second of an RFC 3339 time (`2026-01-01T00:00:00.900Z` -> its second).
pub fn unix_second(rfc3339: &str) -> Option<i64> {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(900);
    const ALICE: &str = "0123456789abcdef01234567";
    const BOB: &str = "89abcdef0123456789abcdef";

    #[test]
    fn tokens_issued_up_to_the_revocation_second_are_refused_and_later_ones_are_not() {
        let revocations = Revocations::new(TTL);
        revocations.revoke(ALICE, 1_000, 1_000);

        assert!(revocations.is_revoked(ALICE, 990));
        assert!(revocations.is_revoked(ALICE, 1_000));
        assert!(!revocations.is_revoked(ALICE, 1_001));
        assert!(!revocations.is_revoked(BOB, 990));
    }

    #[test]
    fn a_later_revocation_wins_and_an_older_one_changes_nothing() {
        let revocations = Revocations::new(TTL);
        revocations.revoke(ALICE, 1_000, 1_000);
        revocations.revoke(ALICE, 2_000, 2_000);
        revocations.revoke(ALICE, 1_500, 2_000);

        assert!(revocations.is_revoked(ALICE, 1_999));
        assert_eq!(revocations.len(), 1);
    }

    #[test]
    fn entries_live_exactly_as_long_as_a_token_can() {
        let revocations = Revocations::new(TTL);
        revocations.revoke(ALICE, 1_000, 1_000);
        revocations.revoke(BOB, 1_500, 1_500);

        assert_eq!(revocations.prune(1_900), 0, "a token issued at 1000 lives until 1900");
        assert_eq!(revocations.prune(1_901), 1);
        assert!(!revocations.is_revoked(ALICE, 1_000));
        assert!(revocations.is_revoked(BOB, 1_500));
        assert_eq!(revocations.prune(2_401), 1);
        assert!(revocations.is_empty());
    }

    #[test]
    fn a_superseded_entry_is_not_dropped_at_its_old_expiry() {
        let revocations = Revocations::new(TTL);
        revocations.revoke(ALICE, 1_000, 1_000);
        revocations.revoke(ALICE, 1_800, 1_800);

        revocations.prune(1_901);

        assert!(revocations.is_revoked(ALICE, 1_800), "the later revocation still holds");
        assert_eq!(revocations.prune(2_701), 1);
        assert!(revocations.is_empty());
    }

    #[test]
    fn a_revocation_older_than_any_live_token_is_not_stored() {
        let revocations = Revocations::new(TTL);
        revocations.revoke(ALICE, 1_000, 5_000);
        assert!(revocations.is_empty());
    }

    #[test]
    fn ids_that_are_not_object_ids_are_still_told_apart() {
        let revocations = Revocations::new(TTL);
        revocations.revoke("user-a", 1_000, 1_000);
        assert!(revocations.is_revoked("user-a", 1_000));
        assert!(!revocations.is_revoked("user-b", 1_000));
    }

    #[test]
    fn a_hundred_thousand_entries_are_pruned_in_time_order() {
        let revocations = Revocations::new(Duration::from_secs(10));
        for i in 0..100_000_i64 {
            revocations.revoke(&bson::oid::ObjectId::new().to_hex(), 1_000 + i % 100, 1_000);
        }
        assert_eq!(revocations.len(), 100_000);
        assert_eq!(revocations.prune(1_060), 50_000);
        assert_eq!(revocations.prune(1_111), 50_000);
        assert!(revocations.is_empty());
    }

    #[test]
    fn rfc3339_times_are_read_to_their_second() {
        assert_eq!(unix_second("1970-01-01T00:16:40.900Z"), Some(1_000));
        assert_eq!(unix_second("not a time"), None);
    }
}
