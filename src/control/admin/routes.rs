//! The admin API's route table: every endpoint once, with its method, its
//! path template (as the OpenAPI document writes it) and whether it needs
//! the API key. Routing reads this table, and a test holds it equal to the
//! paths of `openapi.json`, so an endpoint cannot be added undocumented.

use http::Method;

/// One admin endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /healthz`.
    Healthz,
    /// `GET /metrics`.
    Metrics,
    /// `GET /openapi.json`.
    OpenApi,
    /// `POST /v1/reload`.
    Reload,
    /// `GET /v2/session/rate-limit`.
    RateLimitGet,
    /// `PATCH /v2/session/rate-limit`.
    RateLimitPatch,
    /// `POST /v1/accounts`.
    AccountOverrides,
    /// `GET /v1/accounts`.
    AccountList,
    /// `GET /v1/accounts/{id}`.
    AccountGet,
    /// `PATCH /v1/accounts/{id}`.
    AccountPatch,
    /// `PUT /v1/accounts/{id}`.
    AccountPut,
    /// `DELETE /v1/accounts/{id}`.
    AccountDelete,
    /// `GET /v1/upstreams`.
    Upstreams,
    /// `GET /v1/stats`.
    Stats,
    /// `GET /ui` and the page's files under `/ui/`.
    Dashboard,
}

/// A row of the table.
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path, `{id}` standing for one segment.
    pub path: &'static str,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Served without an API key.
    pub open: bool,
}

const fn route(method: Method, path: &'static str, endpoint: Endpoint, open: bool) -> Route {
    Route {
        method,
        path,
        endpoint,
        open,
    }
}

/// Every admin endpoint.
pub const ROUTES: &[Route] = &[
    route(Method::GET, "/healthz", Endpoint::Healthz, true),
    route(Method::GET, "/openapi.json", Endpoint::OpenApi, true),
    route(Method::GET, "/metrics", Endpoint::Metrics, false),
    route(Method::POST, "/v1/reload", Endpoint::Reload, false),
    route(
        Method::GET,
        "/v2/session/rate-limit",
        Endpoint::RateLimitGet,
        false,
    ),
    route(
        Method::PATCH,
        "/v2/session/rate-limit",
        Endpoint::RateLimitPatch,
        false,
    ),
    route(
        Method::POST,
        "/v1/accounts",
        Endpoint::AccountOverrides,
        false,
    ),
    route(Method::GET, "/v1/accounts", Endpoint::AccountList, false),
    route(
        Method::GET,
        "/v1/accounts/{id}",
        Endpoint::AccountGet,
        false,
    ),
    route(
        Method::PATCH,
        "/v1/accounts/{id}",
        Endpoint::AccountPatch,
        false,
    ),
    route(
        Method::PUT,
        "/v1/accounts/{id}",
        Endpoint::AccountPut,
        false,
    ),
    route(
        Method::DELETE,
        "/v1/accounts/{id}",
        Endpoint::AccountDelete,
        false,
    ),
    route(Method::GET, "/v1/upstreams", Endpoint::Upstreams, false),
    route(Method::GET, "/v1/stats", Endpoint::Stats, false),
    route(Method::GET, "/ui", Endpoint::Dashboard, true),
    route(Method::GET, "/ui/app.js", Endpoint::Dashboard, true),
    route(Method::GET, "/ui/style.css", Endpoint::Dashboard, true),
    route(Method::GET, "/ui/icon.svg", Endpoint::Dashboard, true),
];

/// The route of `method` on the decoded path `segments`, and the segment
/// that stands for `{id}` if the path has one.
pub fn resolve<'a>(
    method: &Method,
    segments: &[&'a str],
) -> Option<(&'static Route, Option<&'a str>)> {
    ROUTES.iter().filter(|r| r.method == *method).find_map(|r| {
        let template: Vec<&str> = r.path.trim_matches('/').split('/').collect();
        if template.len() != segments.len() {
            return None;
        }
        let mut id = None;
        for (part, segment) in template.iter().zip(segments) {
            if *part == "{id}" {
                id = Some(*segment);
            } else if part != segment {
                return None;
            }
        }
        Some((r, id))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every (method, path) of the OpenAPI document.
    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value =
            serde_json::from_str(super::super::openapi::DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
        let paths = doc["paths"].as_object().expect("paths");
        let mut out = BTreeSet::new();
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes() {
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        assert_eq!(routed, documented());
    }

    #[test]
    fn paths_resolve_with_their_id() {
        let (r, id) = resolve(&Method::GET, &["v1", "accounts", "a/b"]).expect("route");
        assert_eq!((r.endpoint, id), (Endpoint::AccountGet, Some("a/b")));
        let (r, id) = resolve(&Method::GET, &["v1", "accounts"]).expect("route");
        assert_eq!((r.endpoint, id), (Endpoint::AccountList, None));
        assert!(resolve(&Method::GET, &["v1", "nothing"]).is_none());
        assert!(resolve(&Method::POST, &["healthz"]).is_none());
    }
}
