//! `GET /v1/stats`: requests and refusals of the last 15 minutes in 10 s
//! buckets, and the recent refusals one by one, from the telemetry
//! history ([`crate::telemetry::history`]).

use http::Request;
use http::Response;
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::error::AdminError;
use super::json;
use super::query_param;
use crate::control::Control;
use crate::telemetry::history::{Bucket, Refusal, BUCKET_SECS, RECENT, WINDOW_SECS};
use crate::wire::body::ProxyBody;

/// Recent refusals listed when `recent` is not given.
pub const DEFAULT_RECENT: usize = 50;

/// `GET /v1/stats?recent=N&account=ID`: `recent` (default 50, at most
/// 1000: above, 400 `errors/limit_too_high`) refusals newest first, of
/// `account` only if given.
pub fn get(app: &Control, request: &Request<Incoming>) -> Result<Response<ProxyBody>, AdminError> {
    let recent = match query_param(request, "recent") {
        None => DEFAULT_RECENT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > RECENT => return Err(AdminError::LimitTooHigh(n, RECENT)),
            Ok(n) => n,
            Err(_) => {
                return Err(AdminError::invalid(
                    "recent",
                    format!("expected a whole number from 0 to {RECENT}"),
                ))
            }
        },
    };
    let account = query_param(request, "account");
    let now = app.engine.clock.unix_ms();
    let history = app.engine.metrics.history();
    let buckets: Vec<Value> = history.buckets(now).iter().map(bucket_view).collect();
    let (list, by_account) = history.recent(now, recent, account.as_deref());
    let by_account: Map<String, Value> = by_account
        .iter()
        .map(|(account, limits)| {
            let limits: Map<String, Value> = limits
                .iter()
                .map(|(key, n)| (key.to_string(), json!(n)))
                .collect();
            (account.to_string(), Value::Object(limits))
        })
        .collect();
    Ok(json(&json!({
        "now": rfc3339_millis(now),
        "bucket_seconds": BUCKET_SECS,
        "window_seconds": WINDOW_SECS,
        "buckets": buckets,
        "recent_refusals": list.iter().map(refusal_view).collect::<Vec<_>>(),
        "refusals_by_account": by_account,
    })))
}

fn bucket_view(bucket: &Bucket) -> Value {
    let by_type: Map<String, Value> = bucket
        .by_type
        .iter()
        .map(|(outcome, n)| (format!("errors/{outcome}"), json!(n)))
        .collect();
    let by_limit: Map<String, Value> = bucket
        .by_limit
        .iter()
        .map(|(key, n)| (key.to_string(), json!(n)))
        .collect();
    json!({
        "start": bucket.start,
        "requests": bucket.requests,
        "refusals": bucket.refusals,
        "by_type": by_type,
        "by_limit": by_limit,
    })
}

fn refusal_view(refusal: &Refusal) -> Value {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let actions: Vec<&str> = refusal
        .actions
        .split(',')
        .filter(|a| !a.is_empty())
        .collect();
    json!({
        "id": refusal.id.to_string(),
        "at": rfc3339_millis(refusal.at_ms),
        "listener": refusal.listener,
        "account": refusal.account.as_deref(),
        "actions": actions,
        "method": text(&refusal.method),
        "target": text(&refusal.target),
        "limit": refusal.limit.as_deref(),
        "type": format!("errors/{}", refusal.outcome),
        "status": refusal.status,
    })
}

/// Unix milliseconds as `2026-11-22T21:47:09.123Z`.
fn rfc3339_millis(unix_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}
