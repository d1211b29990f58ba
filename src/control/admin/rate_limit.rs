//! `GET` and `PATCH /v2/session/rate-limit`: the policies an account may
//! choose, and choosing one (applied on its next request).

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::error::AdminError;
use super::{json, query_param, string_field};
use crate::config::{Limit, LimitValue, Plan, Policy};
use crate::control::Control;
use crate::state::accounts::Account;
use crate::state::snapshot::Snapshot;
use crate::wire::body::ProxyBody;

/// `GET /v2/session/rate-limit?account=ID`.
pub fn get(app: &Control, request: &Request<Incoming>) -> Result<Response<ProxyBody>, AdminError> {
    let id = query_param(request, "account")
        .ok_or_else(|| AdminError::MissingParameter("account".into()))?;
    let runtime = app.engine.snapshot.load();
    let account = find(&runtime, &id)?;
    Ok(json(&view(&runtime, &account)))
}

/// `PATCH /v2/session/rate-limit` `{"account", "policy_slug"}`.
pub async fn patch(
    app: &Arc<Control>,
    body: Map<String, Value>,
) -> Result<Response<ProxyBody>, AdminError> {
    let id = string_field(&body, "account")?;
    let slug = string_field(&body, "policy_slug")?;
    let _writing = app.writes.lock().await;
    let runtime = app.engine.snapshot.load_full();
    let account = find(&runtime, id)?;
    let policy = runtime
        .policies
        .get(slug)
        .ok_or_else(|| AdminError::invalid("policy_slug", format!("no policy `{slug}`")))?;
    let plan = account.settings.load().plan;
    if !available(policy.free, plan) {
        return Err(AdminError::InsufficientPrivileges(format!(
            "policy `{slug}` is not available on the free plan"
        )));
    }
    let mut changes = account.settings.load().changes.clone();
    changes.policy = Some(slug.to_owned());
    super::accounts::apply(app, &runtime, &account, changes).await?;
    Ok(json(&view(&runtime, &account)))
}

/// The account's view of the policies.
pub fn view(runtime: &Snapshot, account: &Account) -> Value {
    let settings = account.settings.load();
    let policies: Vec<Value> = runtime
        .policies
        .values()
        .enumerate()
        .map(|(index, p)| {
            json!({
                "id": index + 1,
                "name": p.name,
                "slug": p.slug,
                "description": p.description,
                "limits": policy_limits(p),
                "available": available(p.free, settings.plan),
            })
        })
        .collect();
    let free: Vec<&str> = runtime
        .policies
        .values()
        .filter(|p| p.free)
        .map(|p| p.slug.as_str())
        .collect();
    json!({
        "status": "success",
        "current_policy": settings.policy_slug,
        "has_active_plan": settings.plan == Plan::Paid,
        "free_policies": free,
        "policies": policies,
    })
}

fn available(free_policy: bool, plan: Plan) -> bool {
    free_policy || plan == Plan::Paid
}

/// A policy's limits as flat keys, with its `guard` and its `backoff`
/// (statuses and pauses) when it has one.
fn policy_limits(policy: &Policy) -> Map<String, Value> {
    let mut limits = flat(&policy.limits);
    let pause = |d| humantime::format_duration(d).to_string();
    limits.insert("guard".into(), json!(pause(policy.guard)));
    if let Some(backoff) = &policy.backoff {
        limits.insert(
            "backoff".into(),
            json!({
                "statuses": backoff.statuses,
                "default_pause": pause(backoff.default_pause),
                "max_pause": pause(backoff.max_pause),
            }),
        );
    }
    limits
}

/// Limits as flat `{key: value}`, keys as written.
pub fn flat(limits: &[Limit]) -> Map<String, Value> {
    limits
        .iter()
        .map(|l| (l.raw_key.clone(), number(l.value)))
        .collect()
}

/// A limit value as JSON (whole hours as integers: `"batch_hours": 2`).
pub fn number(value: LimitValue) -> Value {
    match value {
        LimitValue::Count(n) => json!(n),
        LimitValue::Hours(h) if h.fract() == 0.0 && h <= 8760.0 => json!(h as u64),
        LimitValue::Hours(h) => json!(h),
    }
}

/// The account with this id, or 404.
pub fn find(runtime: &Snapshot, id: &str) -> Result<Arc<Account>, AdminError> {
    runtime
        .accounts
        .get(id)
        .ok_or_else(|| AdminError::NotFound(format!("no account `{id}`")))
}
