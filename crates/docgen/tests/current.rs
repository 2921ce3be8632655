//! The committed reference matches the code (the same check as `docgen --check`).

#[test]
fn the_committed_api_reference_matches_the_code() {
    let problems = docgen::check(&docgen::workspace_root()).expect("the check runs");
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}
