//! The configuration tables against the environment variables the code reads.
//!
//! Every service reads its configuration once, through `common::config::Env`
//! (`env.required("JWT_KEY")`, `env.seconds_or("JWT_TTL_SECONDS", 900)`, ...). The
//! variables read are found in the source: a method called with an upper-case string
//! literal, or with a constant holding one, in the non-test code of `crates/common`,
//! `crates/gateway` and `services/*`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// Where the services' and the gateway's configuration is read.
const SOURCES: [&str; 3] = ["crates/common/src", "crates/gateway/src", "services"];
/// Test support reads the test servers' variables; `dev/test` documents them.
const SKIPPED_FILES: [&str; 1] = ["testing.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            // A service's tests start it with literal configurations; only its code counts.
            if name != "tests" && name != "target" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") && !SKIPPED_FILES.contains(&name.as_str()) {
            out.push(path);
        }
    }
}

/// Every variable the code reads, with the files that read it.
pub fn variables_read(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let literal = Regex::new(r#"\.\s*\w+\s*(?:::<[^>]*>)?\(\s*"([A-Z][A-Z0-9_]+)""#).expect("a valid pattern");
    let by_name = Regex::new(r"\.\s*(?:get|required|parse_or|bool_or|seconds_or|var|var_os)\w*\s*(?:::<[^>]*>)?\(\s*([A-Z][A-Z0-9_]+)\s*[,)]")
        .expect("a valid pattern");
    let mut files = Vec::new();
    for dir in SOURCES {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut read: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        // Unit tests sit at the end of a file, behind `#[cfg(test)]`.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
        let mut names: Vec<String> = literal.captures_iter(code).map(|c| c[1].to_owned()).collect();
        for constant in by_name.captures_iter(code) {
            let definition =
                Regex::new(&format!(r#"const\s+{}\s*:\s*&(?:'static\s+)?str\s*=\s*"([A-Z][A-Z0-9_]+)""#, &constant[1]))
                    .expect("a valid pattern");
            names.extend(definition.captures_iter(code).map(|c| c[1].to_owned()));
        }
        for name in names {
            read.entry(name).or_default().insert(shown.clone());
        }
    }
    read
}

/// The variables named in the first column of the tables of the `## Configuration`
/// section.
pub fn documented_variables(api: &str) -> BTreeSet<String> {
    let row = Regex::new(r"^\|\s*`([A-Z][A-Z0-9_]+)`").expect("a valid pattern");
    api.lines()
        .skip_while(|line| line.trim() != "## Configuration")
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| row.captures(line).map(|c| c[1].to_owned()))
        .collect()
}

pub fn check(root: &Path, api: &str) -> anyhow::Result<Vec<String>> {
    let read = variables_read(root);
    anyhow::ensure!(
        read.len() > 10,
        "found only {} configuration variables in the code: the scan is broken",
        read.len()
    );
    let documented = documented_variables(api);
    let mut problems = Vec::new();
    for (name, files) in &read {
        if !documented.contains(name) {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            problems.push(format!(
                "{name} is read by {} but is not in the configuration tables of docs/API.md",
                files.join(", ")
            ));
        }
    }
    for name in documented.iter().filter(|name| !read.contains_key(*name)) {
        problems.push(format!("{name} is in the configuration tables of docs/API.md but no service reads it"));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_of_the_configuration_section_are_read() {
        let api = "## Routes\n| `NOT_CONFIG` | x |\n## Configuration\n| variable | default |\n|---|---|\n\
                   | `PORT` | 3000 |\n| `JWT_KEY` | required |\n### The gateway\n| `GATEWAY_BACKENDS` | |\n## Events\n| `NOPE` |\n";
        let names: Vec<String> = documented_variables(api).into_iter().collect();
        assert_eq!(names, ["GATEWAY_BACKENDS", "JWT_KEY", "PORT"]);
    }

    #[test]
    fn the_code_reads_the_variables_every_service_shares() {
        let read = variables_read(&crate::workspace_root());
        for name in ["PORT", "MONGO_URI", "NATS_URL", "JWT_KEY", "PAYMENTS_PROVIDER", "API_BASE_URL"] {
            assert!(read.contains_key(name), "{name} not found in {:?}", read.keys().collect::<Vec<_>>());
        }
    }
}
