//! The accounts as the request path and the admin API see them: identity
//! (id, secret), where they were defined (the config file, or the admin
//! API at runtime), limiter state, and settings that the admin API can
//! swap at runtime (policy, overrides, type, plan, route). A request reads
//! the settings once, lock-free; a change applies to the account's next
//! request and to no other account.
//!
//! Looking an account up costs the same with 100,000 accounts as with 10
//! (a hash map); the ids are also kept sorted, for the paged list.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::changes::AccountChanges;
use super::runtime::{AccountProfile, RuntimeAccounts};
use crate::config::{
    AccountConfig, AccountRoute, AccountType, Limit, LimitNumber, Plan, Policy, Secret,
};
use crate::policy::auth::hashed::SecretHash;
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

/// Where an account was defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountSource {
    /// `[[accounts]]` of the config file.
    Config,
    /// `PUT /v1/accounts/{id}`.
    Runtime,
}

impl AccountSource {
    /// `config` or `runtime`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountSource::Config => "config",
            AccountSource::Runtime => "runtime",
        }
    }
}

/// How an account's secret is known.
#[derive(Debug)]
pub enum AccountSecret {
    /// In clear, from the config file (or its environment).
    Clear(Secret),
    /// Only as a slow hash (runtime accounts).
    Hashed(SecretHash),
}

/// One account.
#[derive(Debug)]
pub struct Account {
    /// The account id (the proxy user name).
    pub id: Arc<str>,
    /// Where it was defined.
    pub source: AccountSource,
    /// Its secret (masked in Debug).
    pub secret: AccountSecret,
    /// Type, policy, plan and route before runtime changes.
    pub profile: AccountProfile,
    /// The settings in force.
    pub settings: ArcSwap<AccountSettings>,
    /// The account's limiter state.
    pub limiter: Arc<AccountLimiter>,
    /// Cancelled when the account is deleted: its tunnels end.
    deleted: CancellationToken,
}

impl Account {
    /// Resolves once the account is deleted.
    pub async fn deleted(&self) {
        self.deleted.cancelled().await;
    }

    /// Marks the account deleted: whatever waits on [`Account::deleted`]
    /// ends.
    pub fn delete(&self) {
        self.deleted.cancel();
    }

    fn is_hashed(&self) -> bool {
        matches!(self.secret, AccountSecret::Hashed(_))
    }
}

/// Every account, by id.
#[derive(Debug)]
pub struct Accounts {
    by_id: HashMap<Arc<str>, Arc<Account>>,
    /// Every id, sorted (the list order).
    ids: Vec<Arc<str>>,
    /// Limiters of accounts a reload removed, kept so that an account
    /// added back the same day finds its usage again.
    retired: HashMap<Arc<str>, Arc<AccountLimiter>>,
    /// Compared against when the id is unknown, so that a wrong id and a
    /// wrong secret take the same time.
    decoy: Secret,
    /// How many accounts have a hashed secret.
    hashed: usize,
}

/// What checking credentials needs next.
#[derive(Debug)]
pub enum Identified {
    /// Decided at once: a clear secret, or a hashed one that verified
    /// before.
    Done(Result<Arc<Account>, AuthError>),
    /// The account's hashed secret must be verified (slow).
    Verify(Arc<Account>),
    /// The id is unknown; a decoy hash is verified so that it takes the
    /// time a wrong secret takes, then the credentials are refused.
    Decoy,
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

    /// Every limiter: the accounts' and those a reload retired.
    pub fn limiters(&self) -> impl Iterator<Item = &Arc<AccountLimiter>> {
        let live = self.by_id.values().map(|account| &account.limiter);
        live.chain(self.retired.values())
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
    /// The account that `credentials` name if its secret matches, or
    /// what must be verified to tell. Clear secrets compare in constant
    /// time; with hashed secrets about, an unknown id costs a hash too.
    pub fn identify(&self, credentials: &Credentials) -> Identified {
        let found = std::str::from_utf8(&credentials.id)
            .ok()
            .and_then(|id| self.by_id.get(id));
        let Some(account) = found else {
            if self.hashed > 0 {
                return Identified::Decoy;
            }
            let _ = self.decoy.matches(&credentials.secret);
            return Identified::Done(Err(AuthError::Invalid));
        };
        match &account.secret {
            AccountSecret::Clear(secret) if secret.matches(&credentials.secret) => {
                Identified::Done(Ok(account.clone()))
            }
            AccountSecret::Clear(_) => Identified::Done(Err(AuthError::Invalid)),
            AccountSecret::Hashed(hash) => match hash.check_cached(&credentials.secret) {
                Some(true) => Identified::Done(Ok(account.clone())),
                Some(false) | None => Identified::Verify(account.clone()),
            },
        }
    }

    /// Up to `limit` accounts after the id `after`, in id order, and the
    /// id to continue after when more remain.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<Arc<Account>>, Option<Arc<str>>) {
        let start = match after {
            Some(after) => self.ids.partition_point(|id| &**id <= after),
            None => 0,
        };
        let page: Vec<Arc<Account>> = self.ids[start..]
            .iter()
            .take(limit)
            .filter_map(|id| self.by_id.get(id).cloned())
            .collect();
        let more = start + page.len() < self.ids.len();
        let next = more.then(|| page.last().map(|a| a.id.clone())).flatten();
        (page, next)
    }

    /// These accounts with `account` added (or replacing the one of its
    /// id).
    pub fn with(&self, account: Arc<Account>) -> Accounts {
        let mut next = self.copy();
        next.retired.remove(&account.id);
        if let Err(at) = next.ids.binary_search(&account.id) {
            next.ids.insert(at, account.id.clone());
        }
        if let Some(old) = next.by_id.insert(account.id.clone(), account.clone()) {
            next.hashed -= usize::from(old.is_hashed());
        }
        next.hashed += usize::from(account.is_hashed());
        next
    }

    /// These accounts without `id` (its limiter retired), if it is one.
    pub fn without(&self, id: &str) -> Option<Accounts> {
        let mut next = self.copy();
        let removed = next.by_id.remove(id)?;
        if let Ok(at) = next.ids.binary_search_by(|probe| (**probe).cmp(id)) {
            next.ids.remove(at);
        }
        next.hashed -= usize::from(removed.is_hashed());
        next.retired
            .insert(removed.id.clone(), removed.limiter.clone());
        Some(next)
    }

    fn copy(&self) -> Accounts {
        Accounts {
            by_id: self.by_id.clone(),
            ids: self.ids.clone(),
            retired: self.retired.clone(),
            decoy: self.decoy.clone(),
            hashed: self.hashed,
        }
    }

    fn assemble(
        by_id: HashMap<Arc<str>, Arc<Account>>,
        retired: HashMap<Arc<str>, Arc<AccountLimiter>>,
    ) -> Accounts {
        let mut ids: Vec<Arc<str>> = by_id.keys().cloned().collect();
        ids.sort_unstable();
        let hashed = by_id.values().filter(|a| a.is_hashed()).count();
        Accounts {
            by_id,
            ids,
            retired,
            decoy: Secret::new("pacer-decoy-secret-for-unknown-ids"),
            hashed,
        }
    }
}

/// What building the accounts needs besides the config.
pub struct AccountSources<'a> {
    /// The policies an account's settings are made from.
    pub policies: PolicySet<'a>,
    /// The account types, by name.
    pub types: &'a BTreeMap<String, AccountType>,
    /// Runtime changes from the store.
    pub changes: &'a HashMap<String, AccountChanges>,
    /// Accounts created at runtime, from the store.
    pub runtime: &'a RuntimeAccounts,
    /// The accounts of the previous snapshot, whose limiters carry over.
    pub previous: Option<&'a Accounts>,
    /// With `Some`, usage is persisted and the flusher woken through it.
    pub journal: Option<Arc<Notify>>,
}

impl Accounts {
    /// Builds every configured account and every runtime one, applying
    /// their runtime changes (a runtime account whose id the config now
    /// has is left out: the config's wins). A limiter carries over from
    /// the previous accounts, or from their retired ones; the previous
    /// accounts are never changed.
    pub fn build(configs: &[AccountConfig], sources: &AccountSources<'_>) -> Result<Self, String> {
        let mut by_id = HashMap::with_capacity(configs.len() + sources.runtime.len());
        for config in configs {
            let secret = AccountSecret::Clear(config.secret.clone());
            let profile = AccountProfile {
                account_type: config.account_type.clone(),
                policy: config.policy.clone(),
                plan: config.plan,
                route: config.route.clone(),
            };
            let made = NewAccount {
                id: &config.id,
                source: AccountSource::Config,
                secret,
                profile,
            };
            let account = made.build(sources)?;
            by_id.insert(account.id.clone(), Arc::new(account));
        }
        for (id, record) in sources.runtime {
            if by_id.contains_key(id.as_str()) {
                tracing::warn!(account = %id, "the config file defines this runtime account's id; the config's account is served");
                continue;
            }
            let Some(made) = NewAccount::runtime(id, record, sources) else {
                continue;
            };
            let account = made.build(sources)?;
            by_id.insert(account.id.clone(), Arc::new(account));
        }
        let retired = match sources.previous {
            Some(previous) => previous.retire_missing(&by_id),
            None => HashMap::new(),
        };
        Ok(Accounts::assemble(by_id, retired))
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

/// An account about to be built: who it is, before its settings.
pub struct NewAccount<'a> {
    /// Its id.
    pub id: &'a str,
    /// Where it is defined.
    pub source: AccountSource,
    /// Its secret.
    pub secret: AccountSecret,
    /// Its profile.
    pub profile: AccountProfile,
}

impl<'a> NewAccount<'a> {
    /// A stored runtime account; `None` (logged) when its hash is
    /// unreadable or its profile does not resolve in this config.
    pub fn runtime(
        id: &'a str,
        record: &super::runtime::RuntimeAccount,
        sources: &AccountSources<'_>,
    ) -> Option<Self> {
        let hash = match SecretHash::from_phc(&record.secret_hash) {
            Ok(hash) => hash,
            Err(err) => {
                tracing::error!(account = %id, %err, "runtime account's stored secret unreadable; not served");
                return None;
            }
        };
        let profile = record.profile(id, sources.policies.policies, sources.types)?;
        Some(NewAccount {
            id,
            source: AccountSource::Runtime,
            secret: AccountSecret::Hashed(hash),
            profile,
        })
    }

    /// The account with its stored changes applied and its limiter
    /// carried over (from the previous accounts, live or retired).
    pub fn build(self, sources: &AccountSources<'_>) -> Result<Account, String> {
        let changes = sources.changes.get(self.id).cloned().unwrap_or_default();
        let settings = settings(self.id, &self.profile, changes, &sources.policies)?;
        let limiter = sources
            .previous
            .and_then(|p| p.limiter_of(self.id))
            .unwrap_or_else(|| {
                Arc::new(match &sources.journal {
                    Some(flush) => AccountLimiter::journaled(flush.clone()),
                    None => AccountLimiter::default(),
                })
            });
        Ok(Account {
            id: Arc::from(self.id),
            source: self.source,
            secret: self.secret,
            profile: self.profile,
            settings: ArcSwap::from_pointee(settings),
            limiter,
            deleted: CancellationToken::new(),
        })
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

/// An account's settings: its profile, then its runtime changes on top.
/// A stored change this config no longer supports (a removed policy or
/// action) is left out with a warning; what remains is kept as the
/// account's changes, so its next stored change drops the stale part.
/// Fails only when the profile itself names an unknown policy.
pub fn settings(
    id: &str,
    profile: &AccountProfile,
    changes: AccountChanges,
    set: &PolicySet<'_>,
) -> Result<AccountSettings, String> {
    let changes = without_stale(id, changes, set);
    let slug = changes
        .policy
        .clone()
        .unwrap_or_else(|| profile.policy.clone());
    let policy = set
        .policies
        .get(&slug)
        .ok_or_else(|| format!("account {id} names unknown policy {slug}"))?;
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
        .unwrap_or_else(|| profile.route.clone());
    Ok(AccountSettings {
        policy_slug: slug,
        limits: merged.limits,
        policy: compiled,
        account_type: changes
            .account_type
            .clone()
            .or_else(|| profile.account_type.clone()),
        plan: profile.plan,
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
