//! Accounts at runtime (SPEC section 8): `PUT /v1/accounts/{id}` creates
//! or replaces an account defined by the admin API, `DELETE` removes one
//! (its tunnels end at once), and `GET /v1/accounts` lists every account in
//! id order, cursor-paged. Config accounts are listed but never changed
//! here. The secret is hashed (Argon2id, on the blocking pool) before the
//! write lock is taken and is never stored or shown in clear.

use std::sync::Arc;

use base64::Engine as _;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::accounts::account_view;
use super::error::AdminError;
use super::rate_limit::find;
use super::usage::usage_of;
use super::{json, query_param, string_field};
use crate::config::{account_id_problem, Plan, UpstreamUrl};
use crate::control::Control;
use crate::policy::auth::hashed::SecretHash;
use crate::state::accounts::AccountSource;
use crate::state::changes::RouteChange;
use crate::state::runtime::RuntimeAccount;
use crate::state::snapshot::Snapshot;
use crate::wire::body::ProxyBody;

/// The most accounts one page lists.
pub const MAX_PAGE: usize = 1000;
/// Accounts per page when `limit` is not given.
const DEFAULT_PAGE: usize = 100;

/// The fields a `PUT /v1/accounts/{id}` body may have.
const PUT_FIELDS: &[&str] = &["secret", "type", "policy", "plan", "upstream", "country"];

/// `GET /v1/accounts?limit=N&cursor=C`.
pub async fn list(
    app: &Control,
    request: &Request<Incoming>,
) -> Result<Response<ProxyBody>, AdminError> {
    let limit = match query_param(request, "limit") {
        None => DEFAULT_PAGE,
        Some(text) => match text.parse::<usize>() {
            Ok(0) | Err(_) => {
                return Err(AdminError::invalid(
                    "limit",
                    "expected a whole number from 1 to 1000",
                ))
            }
            Ok(n) if n > MAX_PAGE => return Err(AdminError::LimitTooHigh(n, MAX_PAGE)),
            Ok(n) => n,
        },
    };
    let after = match query_param(request, "cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => Some(decode_cursor(&cursor)?),
    };
    let runtime = app.engine.snapshot.load();
    let (page, next) = runtime.accounts.page(after.as_deref(), limit);
    let views = page.iter().map(|account| async move {
        Value::Object(account_view(app, account, &usage_of(app, account).await))
    });
    let accounts: Vec<Value> = futures_util::future::join_all(views).await;
    Ok(json(&json!({
        "accounts": accounts,
        "next_cursor": next.map(|id| encode_cursor(&id)),
    })))
}

/// A cursor is the last listed id, base64url: opaque, and safe in a query.
fn encode_cursor(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn decode_cursor(cursor: &str) -> Result<String, AdminError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| AdminError::invalid("cursor", "not a cursor this API returned"))
}

/// `PUT /v1/accounts/{id}` `{"secret", "type", "policy", "plan",
/// "upstream" | "country"}`: 201 when created, 200 when replaced.
pub async fn put(
    app: &Arc<Control>,
    id: &str,
    body: Map<String, Value>,
) -> Result<Response<ProxyBody>, AdminError> {
    if let Some(problem) = account_id_problem(id) {
        return Err(AdminError::invalid("id", problem));
    }
    refuse_config_account(&app.engine.snapshot.load(), id)?;
    let mut record = record_of(&app.engine.snapshot.load(), &body)?;
    let secret = string_field(&body, "secret")?.as_bytes().to_vec();
    let hashed = tokio::task::spawn_blocking(move || SecretHash::hash(&secret)).await?;
    record.secret_hash = hashed
        .map_err(|err| AdminError::Internal(err.to_string()))?
        .phc()
        .to_owned();
    let _writing = app.writes.lock().await;
    let previous = app.engine.snapshot.load_full();
    refuse_config_account(&previous, id)?;
    let created = previous.accounts.get(id).is_none();
    let snapshot = previous
        .with_runtime_account(id, &record, app.journal.clone())
        .map_err(|reason| AdminError::invalid("policy", reason))?;
    let snapshot = Arc::new(snapshot);
    // A new id finds its usage of today again (deleted, or from before a
    // restart) before its first request.
    app.keep_account(id, record, previous.clone(), snapshot.clone())
        .await?;
    app.engine.snapshot.store(snapshot.clone());
    let account = find(&snapshot, id)?;
    tracing::info!(account = id, created, "runtime account stored");
    let usage = usage_of(app, &account).await;
    let mut response = json(&Value::Object(account_view(app, &account, &usage)));
    if created {
        *response.status_mut() = StatusCode::CREATED;
    }
    Ok(response)
}

/// `DELETE /v1/accounts/{id}`: a runtime account removed; its next request
/// is refused and its open tunnels end.
pub async fn delete(app: &Arc<Control>, id: &str) -> Result<Response<ProxyBody>, AdminError> {
    let _writing = app.writes.lock().await;
    let previous = app.engine.snapshot.load_full();
    let account = find(&previous, id)?;
    if account.source == AccountSource::Config {
        return Err(AdminError::InvalidRequest(format!(
            "account `{id}` is defined in the config file; remove it there"
        )));
    }
    let snapshot = previous
        .without_account(id)
        .ok_or_else(|| AdminError::NotFound(format!("no account `{id}`")))?;
    app.forget_account(id).await?;
    app.engine.snapshot.store(Arc::new(snapshot));
    account.delete();
    tracing::info!(account = id, "runtime account deleted");
    Ok(json(&json!({"object": "AccountDeleted", "account_id": id})))
}

fn refuse_config_account(runtime: &Snapshot, id: &str) -> Result<(), AdminError> {
    match runtime.accounts.get(id) {
        Some(account) if account.source == AccountSource::Config => {
            Err(AdminError::InvalidRequest(format!(
                "account `{id}` is defined in the config file; it cannot be replaced at runtime"
            )))
        }
        _ => Ok(()),
    }
}

/// The record a `PUT` body describes (its secret not yet hashed), each
/// name checked against the running config.
fn record_of(runtime: &Snapshot, body: &Map<String, Value>) -> Result<RuntimeAccount, AdminError> {
    if let Some(unknown) = body.keys().find(|k| !PUT_FIELDS.contains(&k.as_str())) {
        return Err(AdminError::invalid(
            unknown.clone(),
            format!("unknown field; expected one of {}", PUT_FIELDS.join(", ")),
        ));
    }
    let account_type = optional(body, "type")?;
    if let Some(name) = &account_type {
        if !runtime.account_types.contains_key(name) {
            return Err(AdminError::invalid(
                "type",
                format!("no account type `{name}`"),
            ));
        }
    }
    let policy = optional(body, "policy")?;
    if let Some(slug) = &policy {
        if !runtime.policies.contains_key(slug) {
            return Err(AdminError::invalid("policy", format!("no policy `{slug}`")));
        }
    }
    let plan = match optional(body, "plan")?.as_deref() {
        None | Some("free") => Plan::Free,
        Some("paid") => Plan::Paid,
        Some(other) => {
            return Err(AdminError::invalid(
                "plan",
                format!("`{other}`: expected free or paid"),
            ))
        }
    };
    Ok(RuntimeAccount {
        secret_hash: String::new(),
        account_type,
        policy,
        plan,
        route: route_of(runtime, body)?,
    })
}

/// `upstream` (a proxy URL) or `country` (a pool), or neither (direct).
fn route_of(
    runtime: &Snapshot,
    body: &Map<String, Value>,
) -> Result<Option<RouteChange>, AdminError> {
    match (optional(body, "upstream")?, optional(body, "country")?) {
        (Some(_), Some(_)) => Err(AdminError::invalid(
            "upstream",
            "give `upstream` or `country`, not both",
        )),
        (Some(text), None) => {
            let url: UpstreamUrl = text
                .parse()
                .map_err(|reason: String| AdminError::invalid("upstream", reason))?;
            Ok(Some(RouteChange::Proxy {
                protocol: url.scheme.as_str().to_owned(),
                host: url.host.clone(),
                port: url.port,
                username: url.username.clone(),
                password: url.password.as_ref().map(|p| p.expose().to_owned()),
            }))
        }
        (None, Some(code)) => {
            let country = code
                .parse()
                .map_err(|reason: String| AdminError::invalid("country", reason))?;
            if !runtime.router.serves_country(country) {
                return Err(AdminError::invalid(
                    "country",
                    format!("no pool upstream serves {country}"),
                ));
            }
            Ok(Some(RouteChange::Country {
                code: country.to_string(),
            }))
        }
        (None, None) => Ok(None),
    }
}

/// An optional non-empty string field.
fn optional(body: &Map<String, Value>, field: &str) -> Result<Option<String>, AdminError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => string_field(body, field).map(|s| Some(s.to_owned())),
    }
}
