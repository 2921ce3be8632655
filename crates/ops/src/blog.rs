//! The blog's part of the audit: posts, comments, moderation decisions and the query
//! view of them.
//!
//! - a comment on a post that posts does not have;
//! - a moderated comment without a decision, or with another status than its decision;
//! - a decision not applied (its comment still pending), or about no comment at all;
//! - the query view disagreeing with the owners (a post or comment missing or unknown, a
//!   comment's status or version).

use std::collections::{HashMap, HashSet};

use bson::Document;

use crate::{Finding, all, id, s};

/// Where the blog's services keep their data.
#[derive(Debug, Clone)]
pub struct BlogDatabases {
    pub posts: mongodb::Database,
    pub comments: mongodb::Database,
    pub moderation: mongodb::Database,
}

/// What the blog's audit read, and what was wrong.
#[derive(Debug, Clone, Default)]
pub struct BlogAudit {
    pub posts: usize,
    pub comments: usize,
    pub findings: Vec<Finding>,
}

/// Runs the blog's checks; `query` is the query service's database.
pub async fn audit(dbs: &BlogDatabases, query: &mongodb::Database) -> anyhow::Result<BlogAudit> {
    let posts = all(&dbs.posts, "posts").await?;
    let comments = all(&dbs.comments, "comments").await?;
    let decisions = all(&dbs.moderation, "decisions").await?;
    let query_posts = all(query, "posts").await?;
    let query_comments = all(query, "comments").await?;
    let mut findings = Vec::new();
    let mut find = |kind: &'static str, detail: String| findings.push(Finding { kind, detail });

    let post_ids: HashSet<String> = posts.iter().map(id).collect();
    let comment_by_id: HashMap<String, &Document> = comments.iter().map(|c| (id(c), c)).collect();
    let decision_by_id: HashMap<String, &Document> = decisions.iter().map(|d| (id(d), d)).collect();
    for (comment_id, comment) in &comment_by_id {
        let post_id = s(comment, "postId").unwrap_or_default();
        if !post_ids.contains(post_id) {
            find("comment_on_unknown_post", format!("comment {comment_id} is on post {post_id}, which posts lacks"));
        }
        let status = s(comment, "status");
        let decided = decision_by_id.get(comment_id).and_then(|d| s(d, "status"));
        match (status, decided) {
            (Some("pending"), None) => {}
            (Some("pending"), Some(decided)) => find(
                "decision_not_applied",
                format!("comment {comment_id} is still pending, moderation decided {decided}"),
            ),
            (status, None) => {
                find("comment_status_without_decision", format!("comment {comment_id} is {status:?} undecided"));
            }
            (status, Some(decided)) if status != Some(decided) => find(
                "comment_status_disagrees_with_decision",
                format!("comment {comment_id} is {status:?}, moderation decided {decided}"),
            ),
            _ => {}
        }
    }
    for decision_id in decision_by_id.keys().filter(|d| !comment_by_id.contains_key(*d)) {
        find("decision_for_unknown_comment", format!("moderation decided comment {decision_id}, which comments lacks"));
    }

    let query_post_ids: HashSet<String> = query_posts.iter().map(id).collect();
    for post_id in post_ids.difference(&query_post_ids) {
        find("query_missing_post", format!("post {post_id} is not in the query view"));
    }
    for post_id in query_post_ids.difference(&post_ids) {
        find("query_unknown_post", format!("post {post_id} is in the query view only"));
    }
    let query_comment_by_id: HashMap<String, &Document> = query_comments.iter().map(|c| (id(c), c)).collect();
    for (comment_id, comment) in &comment_by_id {
        let Some(view) = query_comment_by_id.get(comment_id) else {
            find("query_missing_comment", format!("comment {comment_id} is not in the query view"));
            continue;
        };
        let owner = (s(comment, "status"), comment.get_i64("version").ok());
        let shown = (s(view, "status"), view.get_i64("version").ok());
        if owner != shown {
            find("query_comment_disagrees", format!("comment {comment_id}: query says {shown:?}, comments {owner:?}"));
        }
    }
    for comment_id in query_comment_by_id.keys().filter(|c| !comment_by_id.contains_key(*c)) {
        find("query_unknown_comment", format!("comment {comment_id} is in the query view only"));
    }
    Ok(BlogAudit { posts: posts.len(), comments: comments.len(), findings })
}
