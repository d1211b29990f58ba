//! `GET /openapi.json`: the OpenAPI 3.1 document of the admin API, one
//! checked file beside this module. The route table's test holds its
//! paths equal to the routes; the schemathesis test (tests/openapi.rs)
//! holds every answer of a live pacer to its schemas, which forbid
//! undocumented fields.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::Response;

use crate::wire::body::ProxyBody;

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// The document as a response.
pub fn document() -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from_static(DOCUMENT.as_bytes())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
