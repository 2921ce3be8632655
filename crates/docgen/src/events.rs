//! The event catalogue: subjects, streams, publishers, listeners and payloads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use common::events::{
    CommentCreated, CommentModerated, CommentStatus, CommentUpdated, ExpirationComplete, OrderCancelled,
    OrderCompleted, OrderCreated, OrderStatus, OrderTicket, PaymentCreated, PostCreated, Subject, TicketCreated,
    TicketRef, TicketUpdated, UserBanned, UserSessionsRevoked, UserUnbanned,
};
use common::money::Price;
use serde::Serialize;
use serde_json::Value;

use crate::markdown::{cell, link};

/// Who publishes, listens to and follows what, from `infra/nats_auth.py`: the table the
/// NATS users (and so what each service may do on the server) are rendered from.
#[derive(Debug, serde::Deserialize)]
pub struct Topology(BTreeMap<String, User>);

#[derive(Debug, serde::Deserialize)]
struct User {
    publishes: Vec<String>,
    listens: Vec<String>,
    follows: Vec<String>,
}

const READ_TOPOLOGY: &str = "import json, sys; sys.path.insert(0, 'infra'); import nats_auth; \
    print(json.dumps({name: {'publishes': u.publishes, 'listens': u.listens, 'follows': u.follows} \
    for name, u in nats_auth.USERS.items()}))";

impl Topology {
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let output = std::process::Command::new("python3")
            .args(["-c", READ_TOPOLOGY])
            .current_dir(root)
            .output()
            .context("cannot run python3 to read infra/nats_auth.py")?;
        anyhow::ensure!(
            output.status.success(),
            "reading infra/nats_auth.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    fn publishers(&self, subject: &str) -> Vec<&str> {
        self.0.iter().filter(|(_, u)| u.publishes.iter().any(|s| s == subject)).map(|(n, _)| n.as_str()).collect()
    }

    fn listeners(&self, subject: &str) -> Vec<&str> {
        self.0.iter().filter(|(_, u)| u.listens.iter().any(|s| s == subject)).map(|(n, _)| n.as_str()).collect()
    }

    fn followers(&self, stream: &str) -> Vec<&str> {
        self.0.iter().filter(|(_, u)| u.follows.iter().any(|s| s == stream)).map(|(n, _)| n.as_str()).collect()
    }
}

/// A payload as it travels, with every optional field set, and as it travels without
/// them (`None` when the payload has no optional field).
fn examples(subject: Subject) -> (String, Option<String>) {
    // Serialised straight from the payload types: field order as on the wire.
    fn json(payload: impl Serialize) -> String {
        serde_json::to_string(&payload).expect("a payload serialises")
    }
    let price = Price::from_cents(2050).expect("a valid price");
    let (ticket, order, user) = ("65f1c0a2b4d3e2f1a0b9c8d7", "65f1c0a8b4d3e2f1a0b9c8e1", "65f1c09cb4d3e2f1a0b9c8d1");
    let at = "2026-03-13T12:00:00Z";
    let (post, comment) = ("65f1c0c0b4d3e2f1a0b9c901", "65f1c0c6b4d3e2f1a0b9c912");
    // A new subject does not compile until it has an example here.
    match subject {
        Subject::TicketCreated => (
            json(TicketCreated { id: ticket.into(), version: 0, title: "Concert".into(), price, user_id: user.into() }),
            None,
        ),
        Subject::TicketUpdated => {
            let updated = |order_id: Option<&str>| TicketUpdated {
                id: ticket.into(),
                version: 1,
                title: "Concert".into(),
                price,
                user_id: user.into(),
                order_id: order_id.map(Into::into),
            };
            (json(updated(Some(order))), Some(json(updated(None))))
        }
        Subject::OrderCreated => (
            json(OrderCreated {
                id: order.into(),
                version: 0,
                status: OrderStatus::Created,
                user_id: user.into(),
                expires_at: "2026-03-13T12:15:00Z".into(),
                ticket: OrderTicket { id: ticket.into(), price },
            }),
            None,
        ),
        Subject::OrderCancelled => {
            (json(OrderCancelled { id: order.into(), version: 1, ticket: TicketRef { id: ticket.into() } }), None)
        }
        Subject::OrderCompleted => {
            (json(OrderCompleted { id: order.into(), version: 1, ticket: TicketRef { id: ticket.into() } }), None)
        }
        Subject::ExpirationComplete => (json(ExpirationComplete { order_id: order.into() }), None),
        Subject::PaymentCreated => (
            json(PaymentCreated {
                id: "65f1c0b4b4d3e2f1a0b9c8f0".into(),
                order_id: order.into(),
                charge_id: "ch_3OtRmK2eZvKYlo2C0x0x0x0x".into(),
            }),
            None,
        ),
        Subject::UserBanned => {
            let banned = |reason: Option<&str>| UserBanned {
                user_id: user.into(),
                at: at.into(),
                reason: reason.map(Into::into),
            };
            (json(banned(Some("fraud"))), Some(json(banned(None))))
        }
        Subject::UserUnbanned => (json(UserUnbanned { user_id: user.into(), at: at.into() }), None),
        Subject::UserSessionsRevoked => (json(UserSessionsRevoked { user_id: user.into(), at: at.into() }), None),
        Subject::PostCreated => {
            (json(PostCreated { id: post.into(), version: 0, title: "Hello".into(), user_id: user.into() }), None)
        }
        Subject::CommentCreated => (
            json(CommentCreated {
                id: comment.into(),
                version: 0,
                post_id: post.into(),
                content: "First!".into(),
                status: CommentStatus::Pending,
                user_id: user.into(),
            }),
            None,
        ),
        Subject::CommentModerated => (
            json(CommentModerated {
                id: comment.into(),
                version: 0,
                post_id: post.into(),
                status: CommentStatus::Approved,
            }),
            None,
        ),
        Subject::CommentUpdated => (
            json(CommentUpdated {
                id: comment.into(),
                version: 1,
                post_id: post.into(),
                content: "First!".into(),
                status: CommentStatus::Approved,
                user_id: user.into(),
            }),
            None,
        ),
    }
}

/// A JSON value that keeps the order of object keys (`serde_json::Value` sorts them).
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Object(Vec<(String, Node)>),
    Other(Value),
}

impl Node {
    fn parse(text: &str) -> Self {
        serde_json::from_str(text).expect("a payload parses")
    }

    fn get(&self, name: &str) -> Option<&Node> {
        match self {
            Self::Object(entries) => entries.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            Self::Other(_) => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Object(_) => "object",
            Self::Other(Value::String(_)) => "string",
            Self::Other(Value::Number(n)) if n.is_i64() || n.is_u64() => "integer",
            Self::Other(Value::Number(_)) => "number",
            Self::Other(Value::Bool(_)) => "boolean",
            Self::Other(Value::Array(_)) => "array",
            Self::Other(_) => "null",
        }
    }
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Node>()? {
                    entries.push((key, value));
                }
                Ok(Node::Object(entries))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(Node::Other(Value::Array(items)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Other(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Other(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Other(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Other(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Other(v.into()))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Other(Value::Null))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// One row per field: dotted name, JSON type, whether it may be absent.
fn fields(full: &Node, minimal: Option<&Node>, prefix: &str, out: &mut Vec<(String, String, bool)>) {
    let Node::Object(entries) = full else { return };
    for (name, value) in entries {
        let dotted = format!("{prefix}{name}");
        let other = minimal.map(|m| m.get(name));
        let optional = matches!(other, Some(None));
        let mut kind = value.kind().to_owned();
        if let Node::Other(Value::String(text)) = value {
            if text.len() == 24 && text.chars().all(|c| c.is_ascii_hexdigit()) {
                kind.push_str(" (24-hex id)");
            } else if text.len() == 20 && text.ends_with('Z') && text.as_bytes().get(10) == Some(&b'T') {
                kind.push_str(" (RFC 3339 time)");
            }
        }
        if matches!(other, Some(Some(Node::Other(Value::Null)))) {
            kind.push_str(" or null");
        }
        out.push((dotted.clone(), kind, optional));
        if let Node::Object(_) = value {
            fields(value, other.flatten(), &format!("{dotted}."), out);
        }
    }
}

/// The SPEC's shorthand of a payload: `{id,version,ticket:{id,price},orderId?}`.
fn shape(full: &Node, minimal: Option<&Node>) -> String {
    let Node::Object(entries) = full else { return String::new() };
    let parts: Vec<String> = entries
        .iter()
        .map(|(name, value)| {
            let other = minimal.map(|m| m.get(name));
            let mark = if matches!(other, Some(None)) { "?" } else { "" };
            match value {
                Node::Object(_) => format!("{name}{mark}:{}", shape(value, other.flatten())),
                Node::Other(_) => format!("{name}{mark}"),
            }
        })
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A payload's example, its shape and its fields.
fn parsed(subject: Subject) -> (String, Node, Option<Node>) {
    let (full, minimal) = examples(subject);
    let node = Node::parse(&full);
    (full, node, minimal.as_deref().map(Node::parse))
}

/// The `events` block.
pub fn render(topology: &Topology) -> anyhow::Result<String> {
    let mut out = String::new();
    out.push_str("| subject | stream | published by | durable consumers | payload |\n|---|---|---|---|---|\n");
    for subject in Subject::ALL {
        let name = subject.as_str();
        let stream = subject.stream();
        let publishers = topology.publishers(name);
        anyhow::ensure!(
            publishers == [stream.owner().unwrap_or_default()],
            "{name}: infra/nats_auth.py lets {publishers:?} publish it, but its stream {} belongs to {:?}",
            stream.as_str(),
            stream.owner()
        );
        let (_, full, minimal) = parsed(subject);
        let title = format!("`{name}`");
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | `{}` |",
            link(&title, &title),
            stream.as_str(),
            publishers.join(", "),
            or_dash(&topology.listeners(name)),
            cell(&shape(&full, minimal.as_ref())),
        );
    }
    let followers = topology.followers("USERS");
    let _ = writeln!(
        out,
        "\nBesides the durable consumers, every replica of {} reads the `USERS` stream through an \
         ordered consumer of its own: its revocation feed (see [Sessions](#sessions)).\n",
        followers.join(", ")
    );
    for subject in Subject::ALL {
        let (wire, full, minimal) = parsed(subject);
        let _ = writeln!(out, "#### `{}`\n", subject.as_str());
        let _ = writeln!(out, "```json\n{wire}\n```\n");
        let mut rows = Vec::new();
        fields(&full, minimal.as_ref(), "", &mut rows);
        out.push_str("| field | JSON type | always present |\n|---|---|---|\n");
        for (field, kind, optional) in rows {
            let _ = writeln!(out, "| `{field}` | {kind} | {} |", if optional { "no" } else { "yes" });
        }
        out.push('\n');
    }
    Ok(out)
}

fn or_dash(names: &[&str]) -> String {
    if names.is_empty() { "–".to_owned() } else { names.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shape_marks_fields_that_may_be_absent() {
        let (_, full, minimal) = parsed(Subject::TicketUpdated);
        assert_eq!(shape(&full, minimal.as_ref()), "{id,version,title,price,userId,orderId?}");
        let (_, full, minimal) = parsed(Subject::OrderCreated);
        assert_eq!(shape(&full, minimal.as_ref()), "{id,version,status,userId,expiresAt,ticket:{id,price}}");
        let (_, full, minimal) = parsed(Subject::UserBanned);
        assert_eq!(shape(&full, minimal.as_ref()), "{userId,at,reason?}");
    }
}
