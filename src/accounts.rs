//! The accounts as the request path and the admin API see them: identity
//! (id, secret), limiter state, and settings that the admin API can swap
//! at runtime (policy, overrides, type, plan, route). A request reads the
//! settings once, lock-free; a change applies to the account's next
//! request and to no other account.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::classify::Classifier;
use crate::config::{
    AccountConfig, AccountRoute, CountryCode, Limit, LimitNumber, Plan, Policy, Secret,
    UpstreamScheme, UpstreamUrl,
};
use crate::limit::policy::PolicyLimits;
use crate::limit::AccountLimiter;

/// What the admin API changed for an account; it outranks the config file
/// until changed again, and is kept in the store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountChanges {
    /// `PATCH /v2/session/rate-limit`.
    pub policy: Option<String>,
    /// `POST /v1/accounts` `type`.
    pub account_type: Option<String>,
    /// `POST /v1/accounts` `params`, as posted (limit key to number).
    pub params: BTreeMap<String, serde_json::Number>,
    /// `PATCH /v1/accounts/{id}`: a custom proxy or a country pool.
    pub route: Option<RouteChange>,
}

/// A route set through the admin API.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RouteChange {
    /// The account's own upstream proxy.
    Proxy {
        /// `http`, `https` or `socks5`.
        protocol: String,
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// User name, if the proxy wants one.
        username: Option<String>,
        /// Password, if the proxy wants one.
        password: Option<String>,
    },
    /// The managed pool of a country.
    Country {
        /// ISO 3166-1 alpha-2.
        code: String,
    },
}

impl std::fmt::Debug for RouteChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_route() {
            Ok(route) => write!(f, "{route:?}"),
            Err(err) => write!(f, "invalid route ({err})"),
        }
    }
}

impl RouteChange {
    /// The route it sets.
    pub fn to_route(&self) -> Result<AccountRoute, String> {
        match self {
            RouteChange::Proxy {
                protocol,
                host,
                port,
                username,
                password,
            } => {
                if host.is_empty() || *port == 0 {
                    return Err("a proxy needs a host and a non-zero port".into());
                }
                Ok(AccountRoute::Custom(UpstreamUrl {
                    scheme: protocol.parse::<UpstreamScheme>()?,
                    host: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned(),
                    port: *port,
                    username: username.clone().filter(|u| !u.is_empty()),
                    password: password.clone().filter(|p| !p.is_empty()).map(Secret::new),
                }))
            }
            RouteChange::Country { code } => {
                Ok(AccountRoute::Country(code.parse::<CountryCode>()?))
            }
        }
    }
}

/// An account's settings in force.
#[derive(Debug)]
pub struct AccountSettings {
    /// The policy's slug.
    pub policy_slug: String,
    /// The policy's limits with the account's overrides, as written.
    pub limits: Vec<Limit>,
    /// The same, compiled.
    pub policy: Arc<PolicyLimits>,
    /// The account type, if any.
    pub account_type: Option<String>,
    /// Free or paid.
    pub plan: Plan,
    /// Custom upstream, country pool, or direct.
    pub route: AccountRoute,
    /// The runtime changes these settings include.
    pub changes: AccountChanges,
}

/// One account.
#[derive(Debug)]
pub struct Account {
    /// The account id (the proxy user name).
    pub id: Arc<str>,
    /// The account as configured (its secret included, masked in Debug).
    pub config: AccountConfig,
    /// The settings in force.
    pub settings: ArcSwap<AccountSettings>,
    /// The account's limiter state.
    pub limiter: Arc<AccountLimiter>,
}

/// Every account, by id.
#[derive(Debug)]
pub struct Accounts {
    pub(crate) by_id: HashMap<Arc<str>, Arc<Account>>,
    /// Compared against when the id is unknown, so that a wrong id and a
    /// wrong secret take the same time.
    pub(crate) decoy: Secret,
}

/// `policy` with `overrides` replacing (or adding to) its limits.
pub fn with_overrides(policy: &Policy, overrides: &[Limit]) -> Policy {
    let mut merged = policy.clone();
    for limit in overrides {
        merged.limits.retain(|l| l.key != limit.key);
        merged.limits.push(limit.clone());
    }
    merged
}

/// Validates posted params: each key in the limit-key grammar (a bare
/// action name is its daily cap), each value a positive number.
pub fn parse_params(
    params: &BTreeMap<String, serde_json::Number>,
    classifier: &Classifier,
) -> Result<Vec<Limit>, String> {
    let actions = classifier.names();
    params
        .iter()
        .map(|(key, number)| {
            let number = match number.as_i64() {
                Some(n) => LimitNumber::Int(n),
                None => LimitNumber::Float(number.as_f64().unwrap_or(f64::NAN)),
            };
            Limit::parse(key, number, actions).map_err(|e| e.to_string())
        })
        .collect()
}

impl Accounts {
    /// Every account.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.by_id.values()
    }

    /// The account with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Account>> {
        self.by_id.get(id).cloned()
    }

    /// The number of accounts.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there is no account.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// What building the accounts needs besides the config.
pub struct AccountSources<'a> {
    /// The policies as configured, by slug.
    pub policies: &'a BTreeMap<String, Policy>,
    /// Their compiled forms, shared by accounts without overrides.
    pub compiled: &'a HashMap<String, Arc<PolicyLimits>>,
    /// The compiled actions.
    pub classifier: &'a Classifier,
    /// Runtime changes from the store.
    pub changes: &'a HashMap<String, AccountChanges>,
    /// The accounts of the previous runtime, whose limiters carry over.
    pub previous: Option<&'a Accounts>,
    /// With `Some`, usage is persisted and the flusher woken through it.
    pub journal: Option<Arc<Notify>>,
}

impl Accounts {
    /// Builds every configured account, applying its runtime changes.
    pub fn build(configs: &[AccountConfig], sources: &AccountSources<'_>) -> Result<Self, String> {
        let mut by_id = HashMap::with_capacity(configs.len());
        for config in configs {
            let changes = sources.changes.get(&config.id).cloned().unwrap_or_default();
            let settings = settings(config, changes, &sources.policy_set())?;
            let limiter = match sources
                .previous
                .and_then(|p| p.by_id.get(config.id.as_str()))
            {
                Some(old) => old.limiter.clone(),
                None => Arc::new(match &sources.journal {
                    Some(flush) => AccountLimiter::journaled(flush.clone()),
                    None => AccountLimiter::default(),
                }),
            };
            let id: Arc<str> = Arc::from(config.id.as_str());
            let account = Account {
                id: id.clone(),
                config: config.clone(),
                settings: ArcSwap::from_pointee(settings),
                limiter,
            };
            by_id.insert(id, Arc::new(account));
        }
        Ok(Accounts {
            by_id,
            decoy: Secret::new("pacer-decoy-secret-for-unknown-ids"),
        })
    }
}

/// The policies an account's settings are made from.
pub struct PolicySet<'a> {
    /// As configured, by slug.
    pub policies: &'a BTreeMap<String, Policy>,
    /// Compiled, by slug (shared by accounts without overrides).
    pub compiled: &'a HashMap<String, Arc<PolicyLimits>>,
    /// The compiled actions.
    pub classifier: &'a Classifier,
}

impl AccountSources<'_> {
    fn policy_set(&self) -> PolicySet<'_> {
        PolicySet {
            policies: self.policies,
            compiled: self.compiled,
            classifier: self.classifier,
        }
    }
}

/// An account's settings: the config, then its runtime changes on top.
pub fn settings(
    config: &AccountConfig,
    changes: AccountChanges,
    set: &PolicySet<'_>,
) -> Result<AccountSettings, String> {
    let slug = changes
        .policy
        .clone()
        .unwrap_or_else(|| config.policy.clone());
    let policy = set
        .policies
        .get(&slug)
        .ok_or_else(|| format!("account {} names unknown policy {slug}", config.id))?;
    let overrides = parse_params(&changes.params, set.classifier)
        .map_err(|e| format!("account {}: stored override: {e}", config.id))?;
    let merged = with_overrides(policy, &overrides);
    let compiled = match (overrides.is_empty(), set.compiled.get(&slug)) {
        (true, Some(shared)) => shared.clone(),
        _ => Arc::new(PolicyLimits::new(&merged, set.classifier)),
    };
    Ok(AccountSettings {
        policy_slug: slug,
        limits: merged.limits,
        policy: compiled,
        account_type: changes
            .account_type
            .clone()
            .or_else(|| config.account_type.clone()),
        plan: config.plan,
        route: match &changes.route {
            Some(change) => change
                .to_route()
                .map_err(|e| format!("account {}: stored route: {e}", config.id))?,
            None => config.route.clone(),
        },
        changes,
    })
}
