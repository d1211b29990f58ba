//! `GET /healthz`, `GET /metrics` and `POST /v1/reload`.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use serde_json::{json, Map, Value};

use super::error::AdminError;
use super::json;
use crate::config::{AccountRoute, OnUnavailable};
use crate::control::{reload, Control};
use crate::wire::body::ProxyBody;
use crate::wire::request_id::RequestId;

/// 200 `{"status":"ok"}` while pacer runs and the stores it depends on
/// work; 503 `"failing"` while embedded-store writes fail (`store`: the
/// error) or, with `on_unavailable = "refuse"`, while the fleet store is
/// down; 200 `"degraded"` while it is down in `local` mode. In fleet mode
/// `fleet` says `store` (`up` or `down`) and `config_mismatch` (the
/// first section that differs from another live instance's, or null).
pub fn healthz(app: &Control) -> Response<ProxyBody> {
    let mut body = Map::new();
    let mut status = "ok";
    if let Some(error) = app.store.failure() {
        status = "failing";
        body.insert("store".into(), json!(error));
    }
    if let Some(fleet) = &app.fleet {
        let up = fleet.is_up();
        if !up && status == "ok" {
            status = match fleet.on_unavailable() {
                OnUnavailable::Refuse => "failing",
                OnUnavailable::Local => "degraded",
            };
        }
        body.insert(
            "fleet".into(),
            json!({
                "store": if up { "up" } else { "down" },
                "config_mismatch": fleet.config_mismatch(),
            }),
        );
    }
    body.insert("status".into(), json!(status));
    let mut response = json(&Value::Object(body));
    if status == "failing" {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// The Prometheus text exposition.
pub fn metrics(app: &Control) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from(app.engine.metrics.encode())));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Reloads the config file as SIGHUP does; a refused file answers 400
/// `errors/invalid_parameters` with every error under `errors`.
pub async fn reload(app: &Arc<Control>) -> Result<Response<ProxyBody>, AdminError> {
    let reloading = app.clone();
    let outcome =
        tokio::task::spawn_blocking(move || reload::reload(&reloading, reload::Trigger::Api)).await;
    let outcome = outcome?;
    match outcome {
        Ok(summary) => Ok(json(&json!({"status": "success", "reloaded": summary}))),
        Err(errors) => Ok(refused(errors)),
    }
}

fn refused(errors: Vec<String>) -> Response<ProxyBody> {
    let id = RequestId::next();
    let body = json!({
        "type": "errors/invalid_parameters",
        "title": "Bad Request",
        "status": 400,
        "detail": format!("the config file was refused; the running config stays: {}", errors.join("; ")),
        "instance": id.to_string(),
        "errors": errors,
    });
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(ProxyBody::full(Bytes::from(bytes)));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        headers.insert(crate::wire::problem::REQUEST_ID, value);
    }
    response
}

/// An account's route, with the upstream's password masked.
pub fn route_view(route: &AccountRoute) -> Value {
    match route {
        AccountRoute::Direct => json!({"kind": "direct"}),
        AccountRoute::Custom(url) => json!({"kind": "upstream", "upstream": url.to_string()}),
        AccountRoute::Country(code) => json!({"kind": "country", "country": code.to_string()}),
    }
}
