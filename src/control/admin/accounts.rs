//! `POST /v1/accounts` (per-account overrides, checked against the account
//! type's ceilings) and `GET /v1/accounts/{id}`; shared by every admin
//! change: [`apply`], which stores a change before it takes effect.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Response;
use serde_json::{json, Map, Value};

use super::error::AdminError;
use super::rate_limit::{find, flat, number};
use super::usage::{usage_of, Usage};
use super::{json, rfc3339, string_field};
use std::net::IpAddr;

use crate::config::{AccountRoute, CountryCode};
use crate::config::{AccountType, LimitKey, LimitValue, Plan, ALL_ACTION};
use crate::control::Control;
use crate::egress::geo;
use crate::policy::limit::backoff::Pause;
use crate::state::accounts::{parse_params, Account};
use crate::state::changes::{AccountChanges, RouteChange};
use crate::state::snapshot::Snapshot;
use crate::wire::body::ProxyBody;

/// Stores `changes` for `account`, then puts them in force.
pub async fn apply(
    app: &Arc<Control>,
    runtime: &Snapshot,
    account: &Account,
    changes: AccountChanges,
) -> Result<(), AdminError> {
    let settings = runtime
        .settings_with(account, changes.clone())
        .map_err(|reason| AdminError::invalid("params", reason))?;
    // What is stored is what is in force: stale parts are dropped.
    let stored = settings.changes.clone();
    app.keep_changes(&account.id, stored).await?;
    if settings.route != account.settings.load().route {
        runtime.router.set_route(&account.id, &settings.route);
    }
    account.settings.store(Arc::new(settings));
    Ok(())
}

/// `PATCH /v1/accounts/{id}` with `{"proxy": {...}}` (tried before it is
/// saved), `{"country": "US"}` or `{"ip": "203.0.113.42"}`.
pub async fn patch(
    app: &Arc<Control>,
    id: &str,
    body: Map<String, Value>,
) -> Result<Response<ProxyBody>, AdminError> {
    // The proxy is tried before the write lock is taken: a slow probe
    // must not hold up every other admin change.
    let change = route_change(app, id, &body).await?;
    let _writing = app.writes.lock().await;
    let runtime = app.engine.snapshot.load_full();
    let account = find(&runtime, id)?;
    let mut changes = account.settings.load().changes.clone();
    changes.route = Some(change);
    apply(app, &runtime, &account, changes).await?;
    Ok(json(&json!({"object": "AccountPatched", "account_id": id})))
}

/// The route a `PATCH /v1/accounts/{id}` body asks for, a custom proxy
/// tried first.
async fn route_change(
    app: &Arc<Control>,
    id: &str,
    body: &Map<String, Value>,
) -> Result<RouteChange, AdminError> {
    let runtime = app.engine.snapshot.load_full();
    find(&runtime, id)?;
    let change = if let Some(proxy) = body.get("proxy") {
        let change = proxy_change(proxy)?;
        let route = change
            .to_route()
            .map_err(|reason| AdminError::invalid("proxy", reason))?;
        if let AccountRoute::Custom(url) = &route {
            super::probe::try_proxy(app, url).await?;
        }
        change
    } else if body.contains_key("country") {
        let code = string_field(body, "country")?;
        pool_country(
            &runtime,
            "country",
            code.parse()
                .map_err(|e: String| AdminError::invalid("country", e))?,
        )?
    } else if body.contains_key("ip") {
        let ip: IpAddr = string_field(body, "ip")?
            .parse()
            .map_err(|_| AdminError::invalid("ip", "not an IP address"))?;
        let country = geo::country_of(ip)
            .ok_or_else(|| AdminError::invalid("ip", format!("{ip} has no registered country")))?;
        pool_country(&runtime, "ip", country)?
    } else {
        return Err(AdminError::MissingParameter("proxy, country or ip".into()));
    };
    Ok(change)
}

/// The managed pool of `country`, which must have an upstream.
fn pool_country(
    runtime: &Snapshot,
    field: &str,
    country: CountryCode,
) -> Result<RouteChange, AdminError> {
    if !runtime.router.serves_country(country) {
        return Err(AdminError::invalid(
            field,
            format!("no pool upstream serves {country}"),
        ));
    }
    Ok(RouteChange::Country {
        code: country.to_string(),
    })
}

/// `{"protocol", "host", "port", "username", "password"}`.
fn proxy_change(proxy: &Value) -> Result<RouteChange, AdminError> {
    let Value::Object(fields) = proxy else {
        return Err(AdminError::invalid("proxy", "expected an object"));
    };
    let text = |name: &str| -> Result<Option<String>, AdminError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(AdminError::invalid(
                format!("proxy.{name}"),
                "expected a string",
            )),
        }
    };
    let required = |name: &str| -> Result<String, AdminError> {
        text(name)?.ok_or_else(|| AdminError::MissingParameter(format!("proxy.{name}")))
    };
    let port = match fields.get("port") {
        None | Some(Value::Null) => return Err(AdminError::MissingParameter("proxy.port".into())),
        Some(value) => value
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| AdminError::invalid("proxy.port", "expected a port from 1 to 65535"))?,
    };
    Ok(RouteChange::Proxy {
        protocol: required("protocol")?,
        host: required("host")?,
        port,
        username: text("username")?,
        password: text("password")?,
    })
}

/// `POST /v1/accounts` `{"account", "type", "params"}`.
pub async fn post(
    app: &Arc<Control>,
    body: Map<String, Value>,
) -> Result<Response<ProxyBody>, AdminError> {
    let id = string_field(&body, "account")?;
    let posted = params(&body)?;
    let _writing = app.writes.lock().await;
    let runtime = app.engine.snapshot.load_full();
    let account = find(&runtime, id)?;
    let type_name = match body.get("type") {
        None | Some(Value::Null) => account.settings.load().account_type.clone(),
        Some(_) => Some(string_field(&body, "type")?.to_owned()),
    };
    let account_type = match &type_name {
        Some(name) => Some(
            runtime
                .account_types
                .get(name)
                .ok_or_else(|| AdminError::invalid("type", format!("no account type `{name}`")))?,
        ),
        None => None,
    };
    let limits = parse_params(&posted, &runtime.classifier)
        .map_err(|reason| AdminError::invalid("params", reason))?;
    if let Some(account_type) = account_type {
        check_ceilings(&limits, account_type)?;
    }
    let mut changes = account.settings.load().changes.clone();
    changes.account_type = type_name.clone();
    for (limit, (key, value)) in limits.iter().zip(&posted) {
        changes.params.retain(|old, _| {
            LimitKey::parse(old, runtime.classifier.names()).map_or(true, |k| k != limit.key)
        });
        changes.params.insert(key.clone(), value.clone());
    }
    apply(app, &runtime, &account, changes).await?;
    let default = match account_type.and_then(|t| runtime.policies.get(&t.policy)) {
        Some(policy) => flat(&policy.limits),
        None => Map::new(),
    };
    Ok(json(&json!({
        "account": id,
        "type": type_name,
        "params": {"default": default, "user": limits_in_force(app, &account, &usage_of(app, &account).await)},
    })))
}

/// `GET /v1/accounts/{id}`: the account as listed, with today's usage
/// per action (fleet-wide in fleet mode).
pub async fn get(app: &Control, id: &str) -> Result<Response<ProxyBody>, AdminError> {
    let runtime = app.engine.snapshot.load_full();
    let account = find(&runtime, id)?;
    let usage = usage_of(app, &account).await;
    let actions: Map<String, Value> = runtime
        .classifier
        .names()
        .iter()
        .map(|name| (name.clone(), json!(usage.daily.count(Some(name)))))
        .collect();
    let mut view = account_view(app, &account, &usage);
    view.insert(
        "usage".into(),
        json!({"day_start": usage.daily.day_start(), "all": usage.daily.count(None), "actions": actions}),
    );
    Ok(json(&Value::Object(view)))
}

/// An account as the API shows it: id, source, policy, plan, type, route
/// (password masked), the limits in force with usage, the platform's
/// pauses.
pub fn account_view(app: &Control, account: &Account, usage: &Usage) -> Map<String, Value> {
    let settings = account.settings.load();
    let view = json!({
        "account_id": &*account.id,
        "source": account.source.as_str(),
        "policy": settings.policy_slug,
        "plan": if settings.plan == Plan::Paid { "paid" } else { "free" },
        "type": settings.account_type,
        "route": crate::control::admin::ops::route_view(&settings.route),
        "upstream": match &settings.route {
            AccountRoute::Custom(url) => Some(url.to_string()),
            AccountRoute::Direct | AccountRoute::Country(_) => None,
        },
        "country": match &settings.route {
            AccountRoute::Country(code) => Some(code.to_string()),
            AccountRoute::Direct | AccountRoute::Custom(_) => None,
        },
        "limits": limits_in_force(app, account, usage),
        "backoff": pauses_view(&usage.pauses),
    });
    match view {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The posted `params` object: limit key to number.
fn params(body: &Map<String, Value>) -> Result<BTreeMap<String, serde_json::Number>, AdminError> {
    let object = match body.get("params") {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(object)) => object,
        Some(_) => return Err(AdminError::invalid("params", "expected an object")),
    };
    object
        .iter()
        .map(|(key, value)| match value {
            Value::Number(n) => Ok((key.clone(), n.clone())),
            _ => Err(AdminError::invalid(
                format!("params.{key}"),
                "expected a number",
            )),
        })
        .collect()
}

/// Refuses a value above the account type's ceiling for that key.
fn check_ceilings(
    limits: &[crate::config::Limit],
    account_type: &AccountType,
) -> Result<(), AdminError> {
    for limit in limits {
        let Some(max) = account_type.max.iter().find(|m| m.key == limit.key) else {
            continue;
        };
        let above = match (limit.value, max.value) {
            (LimitValue::Count(v), LimitValue::Count(m)) => v > m,
            (LimitValue::Hours(v), LimitValue::Hours(m)) => v > m,
            (LimitValue::Count(v), LimitValue::Hours(m)) => v as f64 > m,
            (LimitValue::Hours(v), LimitValue::Count(m)) => v > m as f64,
        };
        if above {
            return Err(AdminError::invalid(
                format!("params.{}", limit.raw_key),
                format!(
                    "{} is above the maximum {} of account type `{}`",
                    number(limit.value),
                    number(max.value),
                    account_type.name
                ),
            ));
        }
    }
    Ok(())
}

/// Every limit in force: `{"limit": N}`, with today's `value` and the next
/// reset `timestamp` for a daily cap, `current` / `last_batch_at` for
/// `batch`, and `current` (admissions in the window now; null for a
/// window of over 1,024, kept as a token bucket) for a rolling window.
fn limits_in_force(app: &Control, account: &Account, usage: &Usage) -> Map<String, Value> {
    let settings = account.settings.load();
    let Usage {
        daily: usage,
        batch,
        fill,
        ..
    } = usage;
    let windows: Vec<(&str, Option<u64>)> = settings
        .policy
        .rolling
        .iter()
        .map(|rule| &*rule.key)
        .zip(fill.iter().copied())
        .collect();
    let now_secs = app.engine.clock.unix_ms().div_euclid(1000);
    let next_reset = settings.policy.day_reset.next_reset_after(now_secs);
    settings
        .limits
        .iter()
        .map(|limit| {
            let mut entry = Map::new();
            entry.insert("limit".into(), number(limit.value));
            match &limit.key {
                LimitKey::DailyCap { action } => {
                    let counted = (action != ALL_ACTION).then_some(action.as_str());
                    let used = usage.count(counted);
                    entry.insert("value".into(), json!(used));
                    entry.insert("timestamp".into(), json!(next_reset));
                }
                LimitKey::Batch => {
                    entry.insert("current".into(), json!(batch.current));
                    let last = batch.last_batch_at_ms.map(rfc3339);
                    entry.insert("last_batch_at".into(), json!(last));
                }
                LimitKey::Rolling { .. } => {
                    let held = windows
                        .iter()
                        .find(|(key, _)| *key == limit.raw_key)
                        .and_then(|(_, held)| *held);
                    entry.insert("current".into(), json!(held));
                }
                LimitKey::ProtectionGap | LimitKey::ConcurrentLimit | LimitKey::BatchHours => {}
            }
            (limit.raw_key.clone(), Value::Object(entry))
        })
        .collect()
}

/// The running platform pauses: action, until, origin status.
fn pauses_view(pauses: &[Pause]) -> Value {
    let list: Vec<Value> = pauses
        .iter()
        .map(|p| {
            json!({
                "action": p.action,
                "until": rfc3339(p.until_ms),
                "origin_status": p.status,
            })
        })
        .collect();
    Value::Array(list)
}
