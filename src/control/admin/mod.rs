//! The admin API (SPEC section 8) on `admin.addr`: API keys checked in
//! constant time, JSON bodies of at most 64 KiB, every error as the
//! envelope. Path segments are percent-decoded once (RFC 3986), so any
//! account id can be named. Handlers live by resource: [`rate_limit`],
//! [`accounts`] (overrides, routes, one account), [`runtime`] (accounts
//! created at runtime, the list), [`upstreams`], [`ops`] (health,
//! metrics, reload), [`stats`] (recent traffic), [`ui`] (the dashboard's
//! files); [`routes`] is the table of them all, which [`openapi`]'s
//! document describes.

pub mod accounts;
pub mod error;
pub mod openapi;
pub mod ops;
pub mod probe;
pub mod rate_limit;
pub mod routes;
pub mod runtime;
pub mod stats;
pub mod ui;
pub mod upstreams;
pub mod usage;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use self::error::AdminError;
use self::routes::Endpoint;
use super::Control;
use crate::ingress::accept;
use crate::wire::body::ProxyBody;
use crate::wire::problem;
use crate::wire::request_id::RequestId;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

/// Accepts admin connections until shutdown begins.
pub async fn serve(app: Arc<Control>, listener: TcpListener) {
    loop {
        let (stream, _) = tokio::select! {
            () = app.engine.shutdown.begun() => break,
            accepted = accept::next(&listener) => accepted,
        };
        app.engine
            .shutdown
            .spawn(serve_connection(app.clone(), stream));
    }
}

/// One admin connection: keep-alive until idle for `header_read_timeout`,
/// closed after its current request once shutdown begins. `stream` is the
/// accepted socket (or, in the fuzz targets, an in-memory stream).
pub async fn serve_connection<S>(app: Arc<Control>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_app = app.clone();
    let service = service_fn(move |request| {
        let app = service_app.clone();
        async move { Ok::<_, Infallible>(handle(&app, request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(app.engine.settings.header_read_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = app.engine.shutdown.begun() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

async fn handle(app: &Arc<Control>, request: Request<Incoming>) -> Response<ProxyBody> {
    let id = RequestId::next();
    match route(app, request).await {
        Ok(response) => response,
        Err(err) => {
            let detail = err.to_string();
            tracing::info!(target: "pacer::admin", %id, status = err.wire_code().status.as_u16(), %detail);
            problem::response(err.wire_code(), Some(&detail), Some(id), false)
        }
    }
}

async fn route(
    app: &Arc<Control>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, AdminError> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let not_found = || AdminError::NotFound(format!("no {method} {path}"));
    let decoded = segments(&path).ok_or_else(not_found)?;
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let (route, id) = routes::resolve(&method, &segments).ok_or_else(not_found)?;
    let public = route.open || (route.endpoint == Endpoint::Metrics && app.admin.public_metrics);
    if !public {
        authorize(app, &request)?;
    }
    let id = id.unwrap_or_default().to_owned();
    match route.endpoint {
        Endpoint::Healthz => Ok(ops::healthz(app)),
        Endpoint::OpenApi => Ok(openapi::document()),
        Endpoint::Metrics => Ok(ops::metrics(app)),
        Endpoint::Reload => ops::reload(app).await,
        Endpoint::RateLimitGet => rate_limit::get(app, &request),
        Endpoint::RateLimitPatch => rate_limit::patch(app, read_json(request).await?).await,
        Endpoint::AccountOverrides => accounts::post(app, read_json(request).await?).await,
        Endpoint::AccountList => runtime::list(app, &request).await,
        Endpoint::AccountGet => accounts::get(app, &id).await,
        Endpoint::AccountPatch => accounts::patch(app, &id, read_json(request).await?).await,
        Endpoint::AccountPut => runtime::put(app, &id, read_json(request).await?).await,
        Endpoint::AccountDelete => runtime::delete(app, &id).await,
        Endpoint::Upstreams => Ok(upstreams::list(app)),
        Endpoint::Stats => stats::get(app, &request),
        Endpoint::Dashboard => ui::asset(&segments[1..]),
    }
}

/// The path's segments, each percent-decoded once; `None` when one does
/// not decode to UTF-8.
fn segments(path: &str) -> Option<Vec<String>> {
    path.trim_matches('/')
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .ok()
                .map(|s| s.into_owned())
        })
        .collect()
}

/// Checks `Authorization: Token|Bearer KEY` or `X-API-KEY: KEY`.
fn authorize(app: &Control, request: &Request<Incoming>) -> Result<(), AdminError> {
    let headers = request.headers();
    let offered = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            let known =
                scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer");
            known.then(|| key.trim().to_owned())
        })
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
        });
    let key = offered.ok_or(AdminError::MissingKey)?;
    let mut accepted = false;
    for known in &app.admin.api_keys {
        accepted |= known.matches(key.as_bytes());
    }
    if accepted {
        Ok(())
    } else {
        Err(AdminError::InvalidKey)
    }
}

/// The body as a JSON object, at most [`MAX_BODY`] bytes.
async fn read_json(request: Request<Incoming>) -> Result<Map<String, Value>, AdminError> {
    let limited = Limited::new(request.into_body(), MAX_BODY);
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(AdminError::TooLarge(MAX_BODY))
        }
        Err(err) => return Err(AdminError::MalformedJson(err.to_string())),
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(AdminError::MalformedJson("expected an object".into())),
        Err(err) => Err(AdminError::MalformedJson(err.to_string())),
    }
}

/// A required string field.
fn string_field<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, AdminError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(AdminError::MissingParameter(field.to_owned())),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(AdminError::invalid(field, "expected a non-empty string")),
    }
}

/// A query parameter, percent-decoded.
fn query_param(request: &Request<Incoming>, name: &str) -> Option<String> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| {
            let value = value.replace('+', " ");
            percent_encoding::percent_decode_str(&value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Unix milliseconds as `2026-11-22T21:47:09Z`.
fn rfc3339(unix_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A `200` JSON response.
fn json(value: &Value) -> Response<ProxyBody> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(ProxyBody::full(Bytes::from(bytes)));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
