//! The route table, read from the Ingress manifest: the single source of truth for both the
//! cluster and the local gateway.
//!
//! Matching follows ingress-nginx: with `nginx.ingress.kubernetes.io/use-regex: "true"` (or
//! `pathType: ImplementationSpecific` on a path that looks like a regex) a path is a
//! case-insensitive regular expression anchored at the start of the URI path; `Prefix`
//! matches whole path segments; `Exact` the whole path. Longer paths are tried first, as
//! ingress-nginx orders its locations. Hosts are not compared: locally everything is
//! `localhost`.

use std::collections::HashMap;

use regex::Regex;
use serde::Deserialize;

/// How a path matches.
#[derive(Debug, Clone)]
pub enum Matcher {
    Regex(Regex),
    Prefix(String),
    Exact(String),
}

impl Matcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Regex(re) => re.is_match(path),
            Self::Exact(p) => path == p,
            Self::Prefix(p) => {
                let p = p.trim_end_matches('/');
                p.is_empty() || path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

/// One path of the Ingress.
#[derive(Debug, Clone)]
pub struct Route {
    pub path: String,
    pub matcher: Matcher,
    pub service: String,
    pub port: u16,
}

/// The routes of every Ingress in a manifest, longest path first.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

#[derive(Deserialize)]
struct Object {
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: Option<IngressSpec>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Deserialize)]
struct IngressSpec {
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    http: Option<Http>,
}

#[derive(Deserialize)]
struct Http {
    paths: Vec<IngressPath>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IngressPath {
    path: String,
    path_type: String,
    backend: Backend,
}

#[derive(Deserialize)]
struct Backend {
    service: BackendService,
}

#[derive(Deserialize)]
struct BackendService {
    name: String,
    port: BackendPort,
}

#[derive(Deserialize)]
struct BackendPort {
    number: u16,
}

impl RouteTable {
    /// Reads every `Ingress` of a (multi-document) manifest.
    pub fn from_manifest(text: &str) -> anyhow::Result<Self> {
        let mut routes = Vec::new();
        for document in serde_norway::Deserializer::from_str(text) {
            let value = serde_norway::Value::deserialize(document)?;
            if value.is_null() {
                continue;
            }
            let object: Object = serde_norway::from_value(value)?;
            if object.kind.as_deref() != Some("Ingress") {
                continue;
            }
            let use_regex =
                object.metadata.annotations.get("nginx.ingress.kubernetes.io/use-regex").map(String::as_str)
                    == Some("true");
            let Some(spec) = object.spec else { continue };
            for path in spec.rules.into_iter().filter_map(|r| r.http).flat_map(|h| h.paths) {
                let matcher = match path.path_type.as_str() {
                    "Exact" => Matcher::Exact(path.path.clone()),
                    "Prefix" if !use_regex => Matcher::Prefix(path.path.clone()),
                    // ingress-nginx: `location ~* "^<path>"`.
                    _ => Matcher::Regex(Regex::new(&format!("(?i)^{}", path.path))?),
                };
                routes.push(Route {
                    path: path.path,
                    matcher,
                    service: path.backend.service.name,
                    port: path.backend.service.port.number,
                });
            }
        }
        if routes.is_empty() {
            anyhow::bail!("the manifest holds no Ingress paths");
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        Ok(Self { routes })
    }

    /// The route for a request path, if any.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matcher.matches(path))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
---
apiVersion: v1
kind: Service
metadata: {name: auth}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: x
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
spec:
  rules:
    - host: ticketing.dev
      http:
        paths:
          - path: /api/users/?(.*)
            pathType: ImplementationSpecific
            backend: {service: {name: auth, port: {number: 3000}}}
          - path: /api/tickets/?(.*)
            pathType: ImplementationSpecific
            backend: {service: {name: tickets, port: {number: 3000}}}
          - path: /?(.*)
            pathType: ImplementationSpecific
            backend: {service: {name: client, port: {number: 3000}}}
"#;

    #[test]
    fn regex_paths_match_like_ingress_nginx() {
        let table = RouteTable::from_manifest(MANIFEST).unwrap();
        let service = |p: &str| table.route(p).map(|r| r.service.as_str());
        assert_eq!(service("/api/users/signup"), Some("auth"));
        assert_eq!(service("/API/Users/signin"), Some("auth"), "case-insensitive");
        assert_eq!(service("/api/tickets"), Some("tickets"));
        assert_eq!(service("/api/tickets/abc"), Some("tickets"));
        assert_eq!(service("/api/orders"), Some("client"), "the catch-all takes the rest");
        assert_eq!(table.routes()[0].path, "/api/tickets/?(.*)", "longest first");
    }

    #[test]
    fn prefix_and_exact_paths_match_segments() {
        assert!(Matcher::Prefix("/api/users".into()).matches("/api/users/signup"));
        assert!(Matcher::Prefix("/api/users".into()).matches("/api/users"));
        assert!(!Matcher::Prefix("/api/users".into()).matches("/api/usersx"));
        assert!(Matcher::Exact("/a".into()).matches("/a"));
        assert!(!Matcher::Exact("/a".into()).matches("/a/b"));
    }

    #[test]
    fn a_manifest_without_ingress_paths_is_refused() {
        assert!(RouteTable::from_manifest("---\nkind: Service\n").is_err());
    }
}
