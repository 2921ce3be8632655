//! The API reference that ships with the code: `docs/API.md` and `docs/openapi.json`.
//!
//! `docs/API.md` is prose written by hand around blocks this crate writes from the code,
//! each between `<!-- generated:NAME -->` and `<!-- end generated:NAME -->`:
//!
//! - `routes` and `schemas`: every public route and body, from the services' own OpenAPI
//!   descriptions (the same ones they serve at `/openapi.json`, built here without
//!   running anything), merged as the gateway merges them. The merged document itself is
//!   `docs/openapi.json`.
//! - `events`: every subject of [`common::events::Subject`], its stream, who publishes
//!   and who listens (the NATS users' table in `infra/nats_auth.py`, which the server
//!   enforces in every test), and its payload as the payload types serialise it.
//!
//! The configuration tables are written by hand (a default's meaning cannot be
//! generated), but checked: every variable the services read must be in them, and every
//! variable in them must be read by some service.
//!
//! Run `cargo run -p docgen` to rewrite the generated parts; `cargo run -p docgen --
//! --check` (part of `.ci/run`, and this crate's test) fails when they, or the
//! configuration tables, no longer match the code.

mod config;
mod events;
mod markdown;
mod routes;

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

pub use config::{documented_variables, variables_read};

/// The command that rewrites the generated parts, for messages.
pub const REGENERATE: &str = "cargo run -p docgen";

/// The reference, relative to the workspace root.
pub const API_MD: &str = "docs/API.md";
/// The merged OpenAPI description, relative to the workspace root.
pub const OPENAPI_JSON: &str = "docs/openapi.json";

/// The workspace root this crate was built in.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Each service with public routes and its OpenAPI description, as it serves it.
pub fn service_descriptions() -> anyhow::Result<Vec<(String, Value)>> {
    let docs = [
        ("auth", auth::routes::routes().split_for_parts().1),
        ("tickets", tickets::routes::routes().split_for_parts().1),
        ("orders", orders::routes::routes().split_for_parts().1),
        ("payments", payments::routes::routes().split_for_parts().1),
        ("query", query::routes::routes().split_for_parts().1),
        ("posts", posts::routes::routes().split_for_parts().1),
        ("comments", comments::routes::routes().split_for_parts().1),
    ];
    docs.into_iter()
        .map(|(name, doc)| {
            let json = common::openapi::finish(doc, name).to_json()?;
            Ok((name.to_owned(), serde_json::from_str(&json)?))
        })
        .collect()
}

/// The files as the code says they should be: `(path relative to the root, content)`.
pub fn generate(root: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let services = service_descriptions()?;
    let merged = gateway::openapi::merge(&services, env!("CARGO_PKG_VERSION"))?;
    let openapi = format!("{}\n", serde_json::to_string_pretty(&merged)?);

    let api_path = root.join(API_MD);
    let mut api = std::fs::read_to_string(&api_path).with_context(|| format!("cannot read {}", api_path.display()))?;
    let topology = events::Topology::load(root)?;
    for (name, content) in [
        ("routes", routes::render_routes(&services)),
        ("schemas", routes::render_schemas(&merged)),
        ("events", events::render(&topology)?),
    ] {
        api = markdown::replace_block(&api, name, &content)?;
    }
    Ok(vec![(OPENAPI_JSON, openapi), (API_MD, api)])
}

/// What is out of date or wrong, one message each; empty when everything is current.
pub fn check(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for (path, want) in generate(root)? {
        let have = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        if have == want {
            continue;
        }
        let blocks = markdown::differing_blocks(&have, &want);
        if blocks.is_empty() {
            problems.push(format!("{path} is not what the code generates: run `{REGENERATE}` and commit the result"));
        } else {
            problems.push(format!(
                "{path}: the generated block(s) {} are not what the code generates: run `{REGENERATE}` and \
                 commit the result",
                blocks.join(", ")
            ));
        }
    }
    let api = std::fs::read_to_string(root.join(API_MD))?;
    problems.extend(config::check(root, &api)?);
    problems.extend(markdown::check_links(&api));
    Ok(problems)
}

/// Rewrites the generated files; returns the ones that changed.
pub fn write(root: &Path) -> anyhow::Result<Vec<&'static str>> {
    let mut changed = Vec::new();
    for (path, want) in generate(root)? {
        let target = root.join(path);
        if std::fs::read_to_string(&target).unwrap_or_default() != want {
            std::fs::write(&target, want).with_context(|| format!("cannot write {}", target.display()))?;
            changed.push(path);
        }
    }
    Ok(changed)
}
