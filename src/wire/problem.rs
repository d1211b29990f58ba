//! The `application/problem+json` envelope (SPEC section 6) every response
//! pacer makes itself is built from.

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderValue, CONNECTION, CONTENT_TYPE, PROXY_AUTHENTICATE, RETRY_AFTER,
};
use http::Response;
use serde::Serialize;

use super::body::{BodyEnd, ProxyBody};
use super::error::{retry_after_secs, ExtraHeaders, ProxyError, WireCode};
use super::request_id::RequestId;
use crate::policy::limit::Hit;

/// The header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
}

/// The envelope's JSON text.
pub fn envelope_json(code: WireCode, detail: Option<&str>, id: Option<RequestId>) -> Bytes {
    let envelope = Envelope {
        kind: code.kind,
        title: code.title,
        status: code.status.as_u16(),
        detail,
        instance: id.map(|id| id.to_string()),
    };
    // Serializing a struct of strings and integers cannot fail.
    Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default())
}

/// A complete envelope response with `X-Request-Id`, optionally asking the
/// client to close the connection.
pub fn response<E: BodyEnd>(
    code: WireCode,
    detail: Option<&str>,
    id: Option<RequestId>,
    close: bool,
) -> Response<ProxyBody<E>> {
    let body = envelope_json(code, detail, id);
    let mut response = Response::new(ProxyBody::full(body));
    *response.status_mut() = code.status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(id) = id {
        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
            headers.insert(REQUEST_ID, value);
        }
    }
    if close {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The response for a request that failed with `err`: the envelope plus
/// the headers its kind calls for (`Proxy-Authenticate` on 407; on 429
/// `Retry-After` and the IETF `RateLimit-Policy` / `RateLimit` fields for
/// the limit that refused).
pub fn error_response<E: BodyEnd>(err: &ProxyError, id: RequestId) -> Response<ProxyBody<E>> {
    let detail = err.to_string();
    let wire = err.wire();
    let mut response = response(wire.code, Some(&detail), Some(id), wire.close);
    let headers = response.headers_mut();
    match wire.headers {
        ExtraHeaders::None => {}
        ExtraHeaders::ProxyAuthenticate => {
            headers.insert(
                PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"pacer\""),
            );
        }
        ExtraHeaders::RateLimit(hit) => rate_limit_headers(headers, hit),
    }
    response
}

/// The head and body of an envelope written straight to a socket (for a
/// client hyper never saw), asking it to close.
pub fn raw_response(err: &ProxyError, id: RequestId) -> Vec<u8> {
    let code = err.wire_code();
    let body = envelope_json(code, Some(&err.to_string()), Some(id));
    let mut raw = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\n{REQUEST_ID}: {id}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        code.status.as_u16(),
        code.status.canonical_reason().unwrap_or(""),
        body.len(),
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    raw
}

fn rate_limit_headers(headers: &mut HeaderMap, hit: &Hit) {
    let wait = retry_after_secs(hit.retry_after);
    let mut policy = format!("\"{}\";q={}", hit.key, hit.value);
    if let Some(window) = hit.window() {
        policy.push_str(&format!(";w={}", retry_after_secs(window)));
    }
    let state = format!("\"{}\";r={};t={wait}", hit.key, hit.remaining);
    for (name, value) in [
        (RETRY_AFTER.as_str(), wait.to_string()),
        ("ratelimit-policy", policy),
        ("ratelimit", state),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::auth::AuthError;
    use crate::wire::error::ProxyError;

    #[test]
    fn envelope_has_the_spec_fields() {
        let id = RequestId::next();
        let json = envelope_json(
            ProxyError::Auth(AuthError::Missing).wire_code(),
            Some("d"),
            Some(id),
        );
        let value: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(value["type"], "errors/missing_credentials");
        assert_eq!(value["status"], 407);
        assert_eq!(value["title"], "Proxy Authentication Required");
        assert_eq!(value["detail"], "d");
        assert_eq!(value["instance"], id.to_string());
    }
}
