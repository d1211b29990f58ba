//! `GET /ui` and its assets: the dashboard of SPEC section 8, plain HTML,
//! CSS and JavaScript compiled into the binary (no build step, nothing
//! loaded from elsewhere). The page needs no key; it asks the operator for
//! one and reads the JSON API with it, like any other client. Every answer
//! carries a Content-Security-Policy that allows the page's own files from
//! the admin address and nothing else: no inline script or style, no
//! other origin, no framing.

use bytes::Bytes;
use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::Response;

use super::error::AdminError;
use crate::wire::body::ProxyBody;

/// The policy of every dashboard answer.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page's files: path under `/ui/`, content type, content.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("", "text/html; charset=utf-8", include_bytes!("index.html")),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("style.css"),
    ),
    ("icon.svg", "image/svg+xml", include_bytes!("icon.svg")),
];

/// The asset at `/ui/{path}` (`path` empty for the page itself).
pub fn asset(path: &[&str]) -> Result<Response<ProxyBody>, AdminError> {
    let name = path.join("/");
    let (_, content_type, content) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .ok_or_else(|| AdminError::NotFound(format!("no dashboard file `/ui/{name}`")))?;
    let mut response = Response::new(ProxyBody::full(Bytes::from_static(content)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Revalidated on every load, so an upgraded pacer serves its own page.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::routes::{Endpoint, ROUTES};
    use super::ASSETS;

    #[test]
    fn every_file_has_a_route_and_every_route_a_file() {
        let routed: BTreeSet<&str> = ROUTES
            .iter()
            .filter(|r| r.endpoint == Endpoint::Dashboard)
            .map(|r| r.path.trim_start_matches("/ui").trim_start_matches('/'))
            .collect();
        let files: BTreeSet<&str> = ASSETS.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(routed, files);
        assert!(ROUTES
            .iter()
            .filter(|r| r.endpoint == Endpoint::Dashboard)
            .all(|r| r.open));
    }
}
