//! `docgen`: writes the generated parts of `docs/API.md` and `docs/openapi.json` from
//! the code (see the library docs).
//!
//! usage: `cargo run -p docgen` (rewrite) or `cargo run -p docgen -- --check` (exit 1
//! with one line per problem when the committed docs do not match the code).

// Its report is its output.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

fn main() -> anyhow::Result<ExitCode> {
    let root = docgen::workspace_root();
    match std::env::args().nth(1).as_deref() {
        Some("--check") => {
            let problems = docgen::check(&root)?;
            for problem in &problems {
                println!("docs: {problem}");
            }
            if problems.is_empty() {
                println!("docs: {} and {} match the code", docgen::API_MD, docgen::OPENAPI_JSON);
                return Ok(ExitCode::SUCCESS);
            }
            Ok(ExitCode::FAILURE)
        }
        None => {
            let changed = docgen::write(&root)?;
            if changed.is_empty() {
                println!("docs: already current");
            }
            for path in changed {
                println!("docs: wrote {path}");
            }
            for problem in docgen::check(&root)? {
                println!("docs: {problem}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(_) => {
            println!("usage: cargo run -p docgen [-- --check]");
            Ok(ExitCode::from(2))
        }
    }
}
