//! The client's own static files: one stylesheet and one script, compiled into the binary,
//! served under a name that carries a hash of their content (`/static/app.3f2a9c1e.css`)
//! with `Cache-Control: immutable`, so a browser fetches each version once and a new
//! release is never hidden by a cache.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::Digest;

const CSS: &str = include_str!("../static/app.css");
const JS: &str = include_str!("../static/app.js");

/// One file and its fingerprinted name.
#[derive(Debug)]
struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static str,
}

/// The fingerprinted files. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Assets(Arc<[Asset; 2]>);

fn fingerprinted(stem: &str, extension: &str, body: &str) -> String {
    let digest = sha2::Sha256::digest(body.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{stem}.{hash}.{extension}")
}

impl Default for Assets {
    fn default() -> Self {
        Self(Arc::new([
            Asset { name: fingerprinted("app", "css", CSS), content_type: "text/css; charset=utf-8", body: CSS },
            Asset { name: fingerprinted("app", "js", JS), content_type: "text/javascript; charset=utf-8", body: JS },
        ]))
    }
}

impl Assets {
    /// The stylesheet's path.
    pub fn css(&self) -> String {
        format!("/static/{}", self.0[0].name)
    }

    /// The script's path.
    pub fn js(&self) -> String {
        format!("/static/{}", self.0[1].name)
    }

    /// Bytes of every file, uncompressed.
    pub fn total_bytes(&self) -> usize {
        self.0.iter().map(|a| a.body.len()).sum()
    }
}

/// `GET /static/{name}`: a current file, cached for a year; anything else is a 404.
pub async fn serve(State(assets): State<Assets>, Path(name): Path<String>) -> Response {
    match assets.0.iter().find(|asset| asset.name == name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
            ],
            asset.body,
        )
            .into_response(),
        None => crate::pages::error_page(StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_a_hash_of_the_content() {
        let assets = Assets::default();
        assert!(assets.css().starts_with("/static/app.") && assets.css().ends_with(".css"));
        assert_ne!(fingerprinted("app", "css", "a"), fingerprinted("app", "css", "b"));
    }

    #[test]
    fn all_javascript_together_stays_under_20_kb() {
        assert!(JS.len() < 20 * 1024, "app.js is {} bytes", JS.len());
    }
}
