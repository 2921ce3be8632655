//! `GET /-/openapi.json`: the services' OpenAPI descriptions merged into one.
//!
//! Every backend the Ingress routes to serves its own description at
//! [`common::openapi::PATH`]; the gateway fetches them all on each request and merges
//! paths, schemas, security schemes and tags. Two services describing the same path or the
//! same schema name differently is a bug of the services, answered with a 500 that names
//! the clash in the log. A backend that does not answer makes the whole document a 503:
//! a description with a service silently missing would mislead its reader.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// Why descriptions cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("{service}: the description is not an OpenAPI object")]
    NotADescription { service: String },
    #[error("{section} {name:?} is described differently by {first} and {second}")]
    Clash { section: &'static str, name: String, first: String, second: String },
}

/// Merges the descriptions of `(service, description)` pairs into one document.
pub fn merge(descriptions: &[(String, Value)], version: &str) -> Result<Value, MergeError> {
    let mut paths = Sections::default();
    let mut schemas = Sections::default();
    let mut security = Sections::default();
    let mut tags: Vec<Value> = Vec::new();
    for (service, doc) in descriptions {
        let not_a_description = || MergeError::NotADescription { service: service.clone() };
        let doc = doc.as_object().ok_or_else(not_a_description)?;
        doc.get("openapi").and_then(Value::as_str).ok_or_else(not_a_description)?;
        paths.add("path", service, doc.get("paths"))?;
        let components = doc.get("components");
        schemas.add("schema", service, components.and_then(|c| c.get("schemas")))?;
        security.add("security scheme", service, components.and_then(|c| c.get("securitySchemes")))?;
        for tag in doc.get("tags").and_then(Value::as_array).into_iter().flatten() {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
    }
    let mut merged = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ticketing",
            "version": version,
            "description": "Every public route of the platform, merged by the gateway from the services' own \
                descriptions. Errors of every route are {\"errors\":[{\"message\":\"...\",\"field\":\"...\"}]}.",
        },
        "paths": paths.entries,
        "components": {"schemas": schemas.entries, "securitySchemes": security.entries},
    });
    if !tags.is_empty() {
        merged["tags"] = Value::Array(tags);
    }
    Ok(merged)
}

/// One section of the merged document, remembering who described each entry first.
#[derive(Default)]
struct Sections {
    entries: Map<String, Value>,
    owners: HashMap<String, String>,
}

impl Sections {
    fn add(&mut self, section: &'static str, service: &str, entries: Option<&Value>) -> Result<(), MergeError> {
        for (name, value) in entries.and_then(Value::as_object).into_iter().flatten() {
            match self.entries.get(name) {
                Some(existing) if existing != value => {
                    return Err(MergeError::Clash {
                        section,
                        name: name.clone(),
                        first: self.owners[name].clone(),
                        second: service.to_owned(),
                    });
                }
                Some(_) => {}
                None => {
                    self.entries.insert(name.clone(), value.clone());
                    self.owners.insert(name.clone(), service.to_owned());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str, schema: Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "x", "version": "1"},
            "paths": {path: {"get": {"responses": {}}}},
            "components": {"schemas": {"Shared": {"type": "string"}, "Own": schema}},
            "tags": [{"name": path}],
        })
    }

    #[test]
    fn paths_and_schemas_of_every_service_are_kept_and_shared_ones_once() {
        let merged = merge(
            &[
                ("auth".into(), doc("/api/users/signin", json!({"type": "object"}))),
                ("tickets".into(), doc("/api/tickets", json!({"type": "object"}))),
            ],
            "0.1.0",
        )
        .unwrap();
        let paths: Vec<&String> = merged["paths"].as_object().unwrap().keys().collect();
        assert_eq!(paths, ["/api/tickets", "/api/users/signin"]);
        assert_eq!(merged["components"]["schemas"].as_object().unwrap().len(), 2);
        assert_eq!(merged["tags"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn one_name_described_two_ways_is_an_error_naming_both_services() {
        let err = merge(
            &[
                ("auth".into(), doc("/api/users/signin", json!({"type": "object"}))),
                ("tickets".into(), doc("/api/tickets", json!({"type": "array"}))),
            ],
            "0.1.0",
        )
        .unwrap_err();
        assert_eq!(
            err,
            MergeError::Clash { section: "schema", name: "Own".into(), first: "auth".into(), second: "tickets".into() }
        );
    }

    #[test]
    fn something_that_is_not_a_description_is_refused() {
        let err = merge(&[("auth".into(), json!({"errors": []}))], "0.1.0").unwrap_err();
        assert_eq!(err, MergeError::NotADescription { service: "auth".into() });
    }
}
