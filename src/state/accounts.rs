//! The accounts as the request path and the admin API see them: identity
//! (id, secret), limiter state, and settings that the admin API can swap
//! at runtime (policy, overrides, type, plan, route). A request reads the
//! settings once, lock-free; a change applies to the account's next
//! request and to no other account.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use super::changes::AccountChanges;
use crate::config::{AccountConfig, AccountRoute, Limit, LimitNumber, Plan, Policy, Secret};
use crate::policy::auth::{AuthError, Credentials};
use crate::policy::classify::Classifier;
use crate::policy::limit::policy::PolicyLimits;
use crate::policy::limit::AccountLimiter;

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
    by_id: HashMap<Arc<str>, Arc<Account>>,
    /// Limiters of accounts a reload removed, kept so that an account
    /// added back the same day finds its usage again.
    retired: HashMap<Arc<str>, Arc<AccountLimiter>>,
    /// Compared against when the id is unknown, so that a wrong id and a
    /// wrong secret take the same time.
    decoy: Secret,
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
    params
        .iter()
        .map(|(key, number)| parse_param(key, number, classifier))
        .collect()
}

fn parse_param(
    key: &str,
    number: &serde_json::Number,
    classifier: &Classifier,
) -> Result<Limit, String> {
    let number = match number.as_i64() {
        Some(n) => LimitNumber::Int(n),
        None => LimitNumber::Float(number.as_f64().unwrap_or(f64::NAN)),
    };
    Limit::parse(key, number, classifier.names()).map_err(|e| e.to_string())
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

impl Accounts {
    /// The account that `credentials` name, if its secret matches, in
    /// constant time whether the id is known or not.
    pub fn authenticate(&self, credentials: &Credentials) -> Result<Arc<Account>, AuthError> {
        let found = std::str::from_utf8(&credentials.id)
            .ok()
            .and_then(|id| self.by_id.get(id));
        match found {
            Some(account) if account.config.secret.matches(&credentials.secret) => {
                Ok(account.clone())
            }
            Some(_) => Err(AuthError::Invalid),
            None => {
                let _ = self.decoy.matches(&credentials.secret);
                Err(AuthError::Invalid)
            }
        }
    }
}

/// What building the accounts needs besides the config.
pub struct AccountSources<'a> {
    /// The policies an account's settings are made from.
    pub policies: PolicySet<'a>,
    /// Runtime changes from the store.
    pub changes: &'a HashMap<String, AccountChanges>,
    /// The accounts of the previous snapshot, whose limiters carry over.
    pub previous: Option<&'a Accounts>,
    /// With `Some`, usage is persisted and the flusher woken through it.
    pub journal: Option<Arc<Notify>>,
}

impl Accounts {
    /// Builds every configured account, applying its runtime changes. A
    /// limiter carries over from the previous accounts, or from their
    /// retired ones; the previous accounts are never changed.
    pub fn build(configs: &[AccountConfig], sources: &AccountSources<'_>) -> Result<Self, String> {
        let mut by_id = HashMap::with_capacity(configs.len());
        for config in configs {
            let changes = sources.changes.get(&config.id).cloned().unwrap_or_default();
            let settings = settings(config, changes, &sources.policies)?;
            let id: Arc<str> = Arc::from(config.id.as_str());
            let limiter = sources
                .previous
                .and_then(|p| p.limiter_of(&id))
                .unwrap_or_else(|| {
                    Arc::new(match &sources.journal {
                        Some(flush) => AccountLimiter::journaled(flush.clone()),
                        None => AccountLimiter::default(),
                    })
                });
            let account = Account {
                id: id.clone(),
                config: config.clone(),
                settings: ArcSwap::from_pointee(settings),
                limiter,
            };
            by_id.insert(id, Arc::new(account));
        }
        let retired = match sources.previous {
            Some(previous) => previous.retire_missing(&by_id),
            None => HashMap::new(),
        };
        Ok(Accounts {
            by_id,
            retired,
            decoy: Secret::new("pacer-decoy-secret-for-unknown-ids"),
        })
    }

    /// The limiter of `id`, live or retired.
    fn limiter_of(&self, id: &str) -> Option<Arc<AccountLimiter>> {
        match self.by_id.get(id) {
            Some(account) => Some(account.limiter.clone()),
            None => self.retired.get(id).cloned(),
        }
    }

    /// The retired limiters once `kept` is what stays: those retired
    /// before, and every account that `kept` no longer has.
    fn retire_missing(
        &self,
        kept: &HashMap<Arc<str>, Arc<Account>>,
    ) -> HashMap<Arc<str>, Arc<AccountLimiter>> {
        let live = self.by_id.iter().map(|(id, a)| (id, &a.limiter));
        self.retired
            .iter()
            .chain(live)
            .filter(|(id, _)| !kept.contains_key(*id))
            .map(|(id, limiter)| (id.clone(), limiter.clone()))
            .collect()
    }

    /// Whether `id` names an account this one replaced (live or retired).
    pub fn knew(&self, id: &str) -> bool {
        self.by_id.contains_key(id) || self.retired.contains_key(id)
    }
}

/// The policies an account's settings are made from.
#[derive(Clone, Copy)]
pub struct PolicySet<'a> {
    /// As configured, by slug.
    pub policies: &'a BTreeMap<String, Policy>,
    /// Compiled, by slug (shared by accounts without overrides).
    pub compiled: &'a HashMap<String, Arc<PolicyLimits>>,
    /// The compiled actions.
    pub classifier: &'a Classifier,
}

/// An account's settings: the config, then its runtime changes on top.
/// A stored change this config no longer supports (a removed policy or
/// action) is left out with a warning; what remains is kept as the
/// account's changes, so its next stored change drops the stale part.
/// Fails only when the config itself names an unknown policy.
pub fn settings(
    config: &AccountConfig,
    changes: AccountChanges,
    set: &PolicySet<'_>,
) -> Result<AccountSettings, String> {
    let changes = without_stale(&config.id, changes, set);
    let slug = changes
        .policy
        .clone()
        .unwrap_or_else(|| config.policy.clone());
    let policy = set
        .policies
        .get(&slug)
        .ok_or_else(|| format!("account {} names unknown policy {slug}", config.id))?;
    let overrides = parse_params(&changes.params, set.classifier).unwrap_or_default();
    let merged = with_overrides(policy, &overrides);
    let compiled = match (overrides.is_empty(), set.compiled.get(&slug)) {
        (true, Some(shared)) => shared.clone(),
        _ => Arc::new(PolicyLimits::new(&merged, set.classifier)),
    };
    let route = changes
        .route
        .as_ref()
        .and_then(|change| change.to_route().ok())
        .unwrap_or_else(|| config.route.clone());
    Ok(AccountSettings {
        policy_slug: slug,
        limits: merged.limits,
        policy: compiled,
        account_type: changes
            .account_type
            .clone()
            .or_else(|| config.account_type.clone()),
        plan: config.plan,
        route,
        changes,
    })
}

/// `changes` without what `set` no longer supports, each left-out part
/// logged.
fn without_stale(id: &str, mut changes: AccountChanges, set: &PolicySet<'_>) -> AccountChanges {
    if let Some(slug) = &changes.policy {
        if !set.policies.contains_key(slug) {
            tracing::warn!(account = id, policy = %slug, "stored policy no longer configured; ignored");
            changes.policy = None;
        }
    }
    changes.params.retain(|key, number| {
        let kept = parse_param(key, number, set.classifier);
        if let Err(reason) = &kept {
            tracing::warn!(account = id, key = %key, %reason, "stored override no longer valid; ignored");
        }
        kept.is_ok()
    });
    if let Some(Err(reason)) = changes.route.as_ref().map(|r| r.to_route()) {
        tracing::warn!(account = id, %reason, "stored route unusable; ignored");
        changes.route = None;
    }
    changes
}

#[cfg(test)]
mod tests;
