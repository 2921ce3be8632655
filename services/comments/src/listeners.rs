//! `post.created` tells which posts exist; `comment.moderated` sets a comment's status.

use common::events::listener::{Delivery, HandleError, Handler, object_id_or_poison};
use common::events::{CommentModerated, CommentStatus, PostCreated};

use crate::store::{Moderation, Store};

/// `post.created`: the post may now be commented on.
#[derive(Clone, Debug)]
pub struct PostCreatedHandler {
    pub store: Store,
}

impl Handler for PostCreatedHandler {
    type Event = PostCreated;

    async fn handle(&self, event: PostCreated, _: &Delivery) -> Result<(), HandleError> {
        self.store.post_created(&event.id).await?;
        Ok(())
    }
}

/// `comment.moderated`: the comment becomes `approved` or `rejected` (version + 1,
/// `comment.updated` emitted), once; a redelivery is acknowledged and ignored.
#[derive(Clone, Debug)]
pub struct CommentModeratedHandler {
    pub store: Store,
}

impl Handler for CommentModeratedHandler {
    type Event = CommentModerated;

    async fn handle(&self, event: CommentModerated, _: &Delivery) -> Result<(), HandleError> {
        if event.status == CommentStatus::Pending {
            return Err(HandleError::Poison(format!("comment {}: a decision cannot be `pending`", event.id)));
        }
        let id = object_id_or_poison(&event.id, "comment")?;
        match self.store.moderate(&event, id).await? {
            Moderation::Changed(comment) => {
                tracing::info!(comment_id = %comment.id, status = comment.status.as_str(), "comment moderated");
                Ok(())
            }
            Moderation::Stale => Ok(()),
            Moderation::UnknownComment => Err(HandleError::Poison(format!("comment {} does not exist", event.id))),
        }
    }
}
