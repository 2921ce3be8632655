//! Optimistic concurrency, as the SPEC's versioning rules state it.
//!
//! - The **owner** of a record changes it only with a conditional update on the version it
//!   read, and increments `version` by exactly one ([`owner_filter`] with
//!   `$inc: {version: 1}`).
//! - A **replica** applies an update event only when `replica.version == event.version - 1`
//!   and then sets `version = event.version` ([`apply_to_replica`]); older or equal
//!   versions are acknowledged and ignored, newer ones retried until the gap fills.

use bson::{Bson, Document, doc};
use mongodb::{ClientSession, Collection};
use serde::de::DeserializeOwned;

use super::listener::HandleError;

/// The filter of an owner's conditional update: the record at the version it was read.
pub fn owner_filter(id: impl Into<Bson>, version: i64) -> Document {
    doc! { "_id": id.into(), "version": version }
}

/// How a replica stands with respect to a versioned event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaCheck {
    /// The event is the replica's direct successor.
    Apply,
    /// The replica already has this version or a later one.
    Stale,
    /// An earlier event is missing.
    Gap,
    /// The replica does not have the record at all yet.
    Missing,
}

pub fn replica_check(current: Option<i64>, event_version: i64) -> ReplicaCheck {
    match current {
        Some(v) if v == event_version - 1 => ReplicaCheck::Apply,
        Some(v) if v >= event_version => ReplicaCheck::Stale,
        Some(_) => ReplicaCheck::Gap,
        None => ReplicaCheck::Missing,
    }
}

/// What [`apply_to_replica`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaOutcome {
    Applied,
    /// Already applied (a duplicate or an old event): acknowledge and ignore.
    Stale,
    /// A predecessor is missing: retry later.
    Gap,
    /// The record is not in the replica yet (its creation has not arrived): retry later,
    /// unless the caller can create it from the event.
    Missing,
}

impl ReplicaOutcome {
    /// The listener result for this outcome: applied and stale are done; a gap is retried.
    pub fn into_result(self, what: &str) -> Result<(), HandleError> {
        match self {
            Self::Applied | Self::Stale => Ok(()),
            Self::Gap => Err(HandleError::OutOfOrder(format!("{what}: an earlier version has not been applied yet"))),
            Self::Missing => Err(HandleError::OutOfOrder(format!("{what}: the record has not been created yet"))),
        }
    }
}

/// Applies `set` to the replica `id` if and only if it is at `event_version - 1`, setting
/// `version = event_version` in the same write. Runs in `session` when given.
pub async fn apply_to_replica<T>(
    collection: &Collection<T>,
    session: Option<&mut ClientSession>,
    id: impl Into<Bson>,
    event_version: i64,
    mut set: Document,
) -> mongodb::error::Result<ReplicaOutcome>
where
    T: DeserializeOwned + Send + Sync,
{
    let id = id.into();
    set.insert("version", event_version);
    let filter = doc! { "_id": id.clone(), "version": event_version - 1 };
    let update = doc! { "$set": set };
    let raw = collection.clone_with_type::<Document>();
    let (matched, current) = match session {
        Some(session) => {
            let result = raw.update_one(filter, update).session(&mut *session).await?;
            if result.matched_count == 1 {
                return Ok(ReplicaOutcome::Applied);
            }
            (result.matched_count, raw.find_one(doc! { "_id": id }).session(&mut *session).await?)
        }
        None => {
            let result = raw.update_one(filter, update).await?;
            if result.matched_count == 1 {
                return Ok(ReplicaOutcome::Applied);
            }
            (result.matched_count, raw.find_one(doc! { "_id": id }).await?)
        }
    };
    debug_assert_eq!(matched, 0);
    let current_version = current.and_then(|d| d.get_i64("version").ok());
    Ok(match replica_check(current_version, event_version) {
        ReplicaCheck::Apply => ReplicaOutcome::Gap, // changed between the two reads: retry
        ReplicaCheck::Stale => ReplicaOutcome::Stale,
        ReplicaCheck::Gap => ReplicaOutcome::Gap,
        ReplicaCheck::Missing => ReplicaOutcome::Missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_applies_only_the_direct_successor() {
        assert_eq!(replica_check(Some(2), 3), ReplicaCheck::Apply);
        assert_eq!(replica_check(Some(3), 3), ReplicaCheck::Stale);
        assert_eq!(replica_check(Some(5), 3), ReplicaCheck::Stale);
        assert_eq!(replica_check(Some(1), 3), ReplicaCheck::Gap);
        assert_eq!(replica_check(None, 1), ReplicaCheck::Missing);
    }

    #[test]
    fn a_gap_is_retried_and_stale_events_are_acked() {
        assert!(ReplicaOutcome::Applied.into_result("x").is_ok());
        assert!(ReplicaOutcome::Stale.into_result("x").is_ok());
        assert!(matches!(ReplicaOutcome::Gap.into_result("x"), Err(HandleError::OutOfOrder(_))));
        assert!(matches!(ReplicaOutcome::Missing.into_result("x"), Err(HandleError::OutOfOrder(_))));
    }
}
