//! `GET /v1/upstreams`: every pool upstream with its password masked, its
//! country, whether it sits out a cooldown (and until when), its attempts
//! and failures since start, and how many accounts stick to it.

use http::Response;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{json, rfc3339};
use crate::control::Control;
use crate::wire::body::ProxyBody;

/// The pool, by country then in config order.
pub fn list(app: &Control) -> Response<ProxyBody> {
    let runtime = app.engine.snapshot.load();
    let now = Instant::now();
    let wall_ms = app.engine.clock.unix_ms();
    let upstreams: Vec<Value> = runtime
        .router
        .members()
        .into_iter()
        .map(|member| {
            let until = member.cooling_until.map(|until| {
                let left = i64::try_from(until.duration_since(now).as_millis()).unwrap_or(i64::MAX);
                rfc3339(wall_ms.saturating_add(left))
            });
            json!({
                "url": member.url.to_string(),
                "country": member.country.to_string(),
                "state": if until.is_some() { "cooling_down" } else { "ok" },
                "until": until,
                "attempts": member.attempts,
                "failures": member.failures,
                "accounts": member.accounts,
            })
        })
        .collect();
    json(&json!({ "upstreams": upstreams }))
}
