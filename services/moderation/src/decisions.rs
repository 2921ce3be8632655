//! The decisions, one per comment, in this worker's own database (`decisions`).
//!
//! Deciding is one transaction: insert the decision under the comment's id if there is
//! none yet, and only then stage `comment.moderated` in the outbox. A redelivered
//! `comment.created` (after a crash, a timeout, a restart) finds the decision and stages
//! nothing; with several replicas, only one transaction can insert it. So each comment is
//! moderated exactly once, and the outbox publishes that one event (JetStream drops a
//! republished copy by its event id).

use bson::doc;
use common::events::outbox::Outbox;
use common::events::{CommentCreated, CommentModerated, CommentStatus};
use mongodb::{Client, Collection, Database};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};

/// The decision about one comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The comment id.
    #[serde(rename = "_id")]
    pub comment_id: String,
    #[serde(rename = "postId")]
    pub post_id: String,
    pub status: CommentStatus,
    #[serde(rename = "decidedAt")]
    pub decided_at: bson::DateTime,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

/// The decisions and the worker's outbox. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Decisions {
    client: Client,
    decisions: Collection<Decision>,
    outbox: Outbox,
    decided: Family<StatusLabel, Counter>,
}

impl Decisions {
    /// Registers `comments_moderated_total{status}` in `registry`.
    pub fn new(db: &Database, outbox: Outbox, registry: &mut prometheus_client::registry::Registry) -> Self {
        let decided = Family::default();
        registry.register("comments_moderated", "Comments decided, by status (each comment once)", decided.clone());
        Self { client: db.client().clone(), decisions: db.collection("decisions"), outbox, decided }
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub async fn find(&self, comment_id: &str) -> mongodb::error::Result<Option<Decision>> {
        self.decisions.find_one(doc! { "_id": comment_id }).await
    }

    /// Records `status` for the comment and stages `comment.moderated`, unless the
    /// comment was decided before. True when this call decided it.
    pub async fn decide(&self, comment: &CommentCreated, status: CommentStatus) -> mongodb::error::Result<bool> {
        let decision = Decision {
            comment_id: comment.id.clone(),
            post_id: comment.post_id.clone(),
            status,
            decided_at: bson::DateTime::now(),
        };
        let event = CommentModerated {
            id: comment.id.clone(),
            version: comment.version,
            post_id: comment.post_id.clone(),
            status,
        };
        let (decisions, outbox) = (self.decisions.clone(), self.outbox.clone());
        let decided = common::mongo::transaction(&self.client, async move |session| {
            // An upsert that only sets fields on insert, not an insert that may fail: inside a
            // transaction a duplicate key would abort the transaction instead of being a no-op.
            let mut fields = bson::serialize_to_document(&decision)?;
            fields.remove("_id");
            let result = decisions
                .update_one(doc! { "_id": &decision.comment_id }, doc! { "$setOnInsert": fields })
                .upsert(true)
                .session(&mut *session)
                .await?;
            if result.upserted_id.is_none() {
                return Ok(None);
            }
            outbox.stage(session, &event).await.map(Some)
        })
        .await?;
        let decided = decided.is_some_and(|staged| {
            self.outbox.committed([staged]);
            true
        });
        if decided {
            self.decided.get_or_create(&StatusLabel { status: status.as_str() }).inc();
        }
        Ok(decided)
    }
}
