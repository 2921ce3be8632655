//! Routes and schemas, rendered from the OpenAPI descriptions.

use std::fmt::Write as _;

use serde_json::Value;

use crate::markdown::{cell, link};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// How a route authenticates, from its `security` requirements.
fn authentication(operation: &Value) -> &'static str {
    let schemes: Vec<&str> = operation["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().map(String::as_str))
        .collect();
    match schemes.as_slice() {
        [] => "none",
        s if s.contains(&common::openapi::REFRESH_COOKIE) => "the `refresh` cookie",
        _ => "signed in (`session` cookie or `Authorization: Bearer`)",
    }
}

fn heading(method: &str, path: &str) -> String {
    format!("`{} {path}`", method.to_uppercase())
}

/// The `routes` block: an overview per service, then every operation.
pub fn render_routes(services: &[(String, Value)]) -> String {
    let mut out = String::new();
    for (service, doc) in services {
        let operations: Vec<(&str, &String, &Value)> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(path, item)| METHODS.iter().filter_map(move |m| item.get(*m).map(|op| (*m, path, op))))
            .collect();
        let _ = writeln!(out, "### {service}\n");
        let _ = writeln!(out, "| route | authentication | what it does |\n|---|---|---|");
        for (method, path, operation) in &operations {
            let title = heading(method, path);
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                link(&title, &title),
                authentication(operation),
                cell(operation["summary"].as_str().unwrap_or_default())
            );
        }
        out.push('\n');
        for (method, path, operation) in operations {
            render_operation(&mut out, method, path, operation);
        }
    }
    out
}

fn render_operation(out: &mut String, method: &str, path: &str, operation: &Value) {
    let _ = writeln!(out, "#### {}\n", heading(method, path));
    for key in ["summary", "description"] {
        if let Some(text) = operation[key].as_str() {
            let _ = writeln!(out, "{}\n", text.trim());
        }
    }
    let _ = writeln!(out, "Authentication: {}.\n", authentication(operation));
    if let Some(parameters) = operation["parameters"].as_array().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "| parameter | in | type | required | meaning |\n|---|---|---|---|---|");
        for p in parameters {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                p["name"].as_str().unwrap_or_default(),
                p["in"].as_str().unwrap_or_default(),
                cell(&type_with_constraints(&p["schema"])),
                if p["required"].as_bool() == Some(true) { "yes" } else { "no" },
                cell(p["description"].as_str().unwrap_or_default()),
            );
        }
        out.push('\n');
    }
    if let Some(body) = operation.get("requestBody") {
        let content = body["content"].as_object().into_iter().flatten().next();
        if let Some((media, media_type)) = content {
            let _ = write!(out, "Body (`{media}`): {}", type_name(&media_type["schema"]));
            match body["description"].as_str() {
                Some(text) => {
                    let _ = writeln!(out, ". {}\n", text.trim());
                }
                None => out.push_str("\n\n"),
            }
        }
    }
    let _ = writeln!(out, "| status | body | meaning |\n|---|---|---|");
    for (status, response) in operation["responses"].as_object().into_iter().flatten() {
        let body = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .next()
            .map(|(media, m)| if media == "application/json" { type_name(&m["schema"]) } else { format!("`{media}`") })
            .unwrap_or_else(|| "–".to_owned());
        let _ = writeln!(
            out,
            "| {status} | {} | {} |",
            cell(&body),
            cell(response["description"].as_str().unwrap_or_default())
        );
    }
    out.push('\n');
}

/// The `schemas` block: every named schema, its fields and their constraints.
pub fn render_schemas(merged: &Value) -> String {
    let mut out = String::new();
    for (name, schema) in merged["components"]["schemas"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "#### {name}\n");
        if let Some(text) = schema["description"].as_str() {
            let _ = writeln!(out, "{}\n", text.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        if let Some(properties) = schema["properties"].as_object() {
            let required: Vec<&str> =
                schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let _ = writeln!(out, "| field | type | required | meaning |\n|---|---|---|---|");
            // The description keeps the required fields in declaration order (the order
            // of the JSON answered) but sorts the properties: required ones first.
            let mut ordered: Vec<(&String, &Value)> = properties.iter().collect();
            ordered.sort_by_key(|(field, _)| required.iter().position(|r| r == field).unwrap_or(usize::MAX));
            for (field, property) in ordered {
                let _ = writeln!(
                    out,
                    "| `{field}` | {} | {} | {} |",
                    cell(&type_with_constraints(property)),
                    if required.contains(&field.as_str()) { "yes" } else { "no" },
                    cell(property["description"].as_str().unwrap_or_default()),
                );
            }
            if properties.is_empty() {
                out.push_str("| (none) | | | |\n");
            }
            out.push('\n');
        } else if let Some(alternatives) = schema["oneOf"].as_array() {
            out.push_str("One of:\n\n");
            for alternative in alternatives {
                let text = alternative["description"].as_str().map(|d| format!(": {d}")).unwrap_or_default();
                let _ = writeln!(out, "- {}{text}", type_with_constraints(alternative));
            }
            out.push('\n');
        } else if schema.get("type").is_some() && schema["type"] != "object" {
            let _ = writeln!(out, "Type: {}.\n", type_with_constraints(schema));
        }
    }
    out
}

/// A schema's type in words: a link for a named schema, `string or null`, `array of X`.
pub fn type_name(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return link(name, name);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = schema[key].as_array() {
            let mut names: Vec<String> = alternatives.iter().filter(|a| a["type"] != "null").map(type_name).collect();
            if alternatives.iter().any(|a| a["type"] == "null") {
                names.push("null".to_owned());
            }
            return names.join(" or ");
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", v.as_str().unwrap_or_default())).collect();
        return format!("one of {}", values.join(", "));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.is_empty() {
        return "any".to_owned();
    }
    types
        .iter()
        .map(|t| match *t {
            "array" => format!("array of {}", type_name(&schema["items"])),
            "string" => match schema["format"].as_str() {
                Some(format) => format!("string ({format})"),
                None => "string".to_owned(),
            },
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The type and its constraints: `string, 8 to 128 characters`.
pub fn type_with_constraints(schema: &Value) -> String {
    let mut parts = vec![type_name(schema)];
    let number = |key: &str| schema[key].as_f64().map(|n| n.to_string());
    match (number("minLength"), number("maxLength")) {
        (Some(min), Some(max)) => parts.push(format!("{min} to {max} characters")),
        (Some(min), None) => parts.push(format!("at least {min} characters")),
        (None, Some(max)) => parts.push(format!("at most {max} characters")),
        (None, None) => {}
    }
    for (key, words) in [
        ("exclusiveMinimum", "above"),
        ("minimum", "at least"),
        ("maximum", "at most"),
        ("exclusiveMaximum", "below"),
        ("multipleOf", "a multiple of"),
        ("minItems", "items: at least"),
    ] {
        if let Some(n) = number(key) {
            parts.push(format!("{words} {n}"));
        }
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        parts.push(format!("matching `{pattern}`"));
    }
    if let Some(default) = schema.get("default") {
        parts.push(format!("default `{default}`"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_read_as_words_and_named_schemas_as_links() {
        assert_eq!(type_name(&json!({"$ref": "#/components/schemas/Price"})), "[Price](#price)");
        assert_eq!(type_name(&json!({"type": ["string", "null"]})), "string or null");
        assert_eq!(
            type_name(&json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Claims"}]})),
            "[Claims](#claims) or null"
        );
        assert_eq!(
            type_name(&json!({"type": "array", "items": {"$ref": "#/components/schemas/Order"}})),
            "array of [Order](#order)"
        );
        assert_eq!(
            type_with_constraints(&json!({"type": "string", "minLength": 8, "maxLength": 128})),
            "string, 8 to 128 characters"
        );
        assert_eq!(type_name(&json!({"type": "string", "enum": ["a", "b"]})), "one of `a`, `b`");
    }
}
