//! Markdown helpers: generated blocks, table cells, GitHub's heading anchors.

use std::collections::BTreeSet;

/// Replaces what lies between `<!-- generated:NAME ... -->` and
/// `<!-- end generated:NAME -->` with `content`, keeping both markers.
pub fn replace_block(text: &str, name: &str, content: &str) -> anyhow::Result<String> {
    let open = format!("<!-- generated:{name} ");
    let close = format!("<!-- end generated:{name} -->");
    let start = text.find(&open).ok_or_else(|| anyhow::anyhow!("docs/API.md has no `{open}...-->` marker"))?;
    let body_start = start + text[start..].find("-->\n").map(|i| i + 4).unwrap_or(open.len());
    let end = text[body_start..]
        .find(&close)
        .map(|i| body_start + i)
        .ok_or_else(|| anyhow::anyhow!("docs/API.md has no `{close}` marker after `{open}`"))?;
    // Blank lines around the content, so the markers never touch a table or a list.
    Ok(format!("{}\n{}\n\n{}", &text[..body_start], content.trim(), &text[end..]))
}

/// The names of the generated blocks whose content differs between two versions.
pub fn differing_blocks<'a>(have: &str, want: &'a str) -> Vec<&'a str> {
    let marker = regex::Regex::new(r"<!-- generated:([a-z]+) ").expect("a valid pattern");
    let block = |text: &str, name: &str| -> Option<String> {
        let start = text.find(&format!("<!-- generated:{name} "))?;
        let end = text.find(&format!("<!-- end generated:{name} -->"))?;
        text.get(start..end).map(str::to_owned)
    };
    marker
        .captures_iter(want)
        .filter_map(|c| c.get(1))
        .map(|m| m.as_str())
        .filter(|name| block(have, name) != block(want, name))
        .collect()
}

/// Text safe inside one cell of a table: one line, `|` escaped.
pub fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// The anchor GitHub gives a heading: lower case, punctuation other than `-` and `_`
/// dropped, spaces as `-`.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A link to a heading of the same document.
pub fn link(text: &str, heading: &str) -> String {
    format!("[{text}](#{})", slug(heading))
}

/// Every `](#anchor)` of the text must name one of its headings.
pub fn check_links(text: &str) -> Vec<String> {
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            anchors.insert(slug(line.trim_start_matches('#')));
        }
    }
    let links = regex::Regex::new(r"\]\(#([^)]+)\)").expect("a valid pattern");
    links
        .captures_iter(text)
        .map(|c| c[1].to_owned())
        .filter(|anchor| !anchors.contains(anchor))
        .map(|anchor| format!("docs/API.md links to #{anchor}, which is no heading of it"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_replaced_between_its_markers_and_the_rest_is_kept() {
        let text = "intro\n<!-- generated:x (run it) -->\nold\n<!-- end generated:x -->\noutro\n";
        let out = replace_block(text, "x", "new\n").unwrap();
        assert_eq!(out, "intro\n<!-- generated:x (run it) -->\n\nnew\n\n<!-- end generated:x -->\noutro\n");
        assert_eq!(replace_block(&out, "x", "new").unwrap(), out, "the same content twice is the same text");
        assert!(replace_block(text, "y", "new").is_err());
    }

    #[test]
    fn anchors_are_the_ones_github_makes() {
        assert_eq!(slug("`GET /api/tickets/{id}`"), "get-apiticketsid");
        assert_eq!(slug("Ticket"), "ticket");
        assert_eq!(slug("`user.sessions.revoked`"), "usersessionsrevoked");
        assert_eq!(cell("a | b\nc"), "a \\| b c");
    }

    #[test]
    fn a_link_to_a_missing_heading_is_reported() {
        let text = "# Top\n## Two words\n[a](#two-words) [b](#nowhere)\n```\n# not a heading\n```\n";
        assert_eq!(check_links(text), vec!["docs/API.md links to #nowhere, which is no heading of it"]);
    }
}
