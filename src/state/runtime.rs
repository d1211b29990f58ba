//! Accounts created through the admin API (SPEC section 8, `PUT
//! /v1/accounts/{id}`): the record kept in the store, and how it becomes
//! an account's profile. The secret is kept only as its Argon2id hash;
//! the route is a [`RouteChange`], like the admin API's route changes.
//! A record names its policy and type by name: a config that no longer
//! has them falls back (type's policy, then `standard_policy`) with a
//! warning, as stored changes do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::changes::RouteChange;
use crate::config::{AccountRoute, AccountType, Plan, Policy, STANDARD_POLICY};

/// One runtime account as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeAccount {
    /// The secret's Argon2id PHC string.
    pub secret_hash: String,
    /// The account type, if any.
    #[serde(default)]
    pub account_type: Option<String>,
    /// The policy, if named (else the type's, else `standard_policy`).
    #[serde(default)]
    pub policy: Option<String>,
    /// Free or paid.
    #[serde(default)]
    pub plan: Plan,
    /// A custom upstream or a country pool; direct when absent.
    #[serde(default)]
    pub route: Option<RouteChange>,
}

/// Every runtime account, by id (id order is the list order).
pub type RuntimeAccounts = BTreeMap<String, RuntimeAccount>;

/// What an account is before runtime changes: type, policy, plan, route.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountProfile {
    /// The account type, if any.
    pub account_type: Option<String>,
    /// The policy's slug.
    pub policy: String,
    /// Free or paid.
    pub plan: Plan,
    /// Custom upstream, country pool, or direct.
    pub route: AccountRoute,
}

impl RuntimeAccount {
    /// The profile under these policies and types; `None` when no policy
    /// resolves or the route is unusable (the record is then skipped with
    /// an error logged).
    pub fn profile(
        &self,
        id: &str,
        policies: &BTreeMap<String, Policy>,
        types: &BTreeMap<String, AccountType>,
    ) -> Option<AccountProfile> {
        let account_type = self.account_type.clone().filter(|name| {
            let known = types.contains_key(name);
            if !known {
                tracing::warn!(account = id, account_type = %name, "stored account type no longer configured; ignored");
            }
            known
        });
        let named = self.policy.clone().filter(|slug| {
            let known = policies.contains_key(slug);
            if !known {
                tracing::warn!(account = id, policy = %slug, "stored policy no longer configured; ignored");
            }
            known
        });
        let policy = named
            .or_else(|| {
                let ty = types.get(account_type.as_deref()?)?;
                policies.contains_key(&ty.policy).then(|| ty.policy.clone())
            })
            .or_else(|| {
                policies
                    .contains_key(STANDARD_POLICY)
                    .then(|| STANDARD_POLICY.to_owned())
            });
        let Some(policy) = policy else {
            tracing::error!(
                account = id,
                "runtime account has no policy in this config (no `{STANDARD_POLICY}`); not served"
            );
            return None;
        };
        let route = match self.route.as_ref().map(RouteChange::to_route) {
            None => AccountRoute::Direct,
            Some(Ok(route)) => route,
            Some(Err(reason)) => {
                // Never direct instead: that would show the account's
                // traffic from pacer's own address.
                tracing::error!(account = id, %reason, "runtime account's stored route unusable; not served");
                return None;
            }
        };
        Some(AccountProfile {
            account_type,
            policy,
            plan: self.plan,
            route,
        })
    }
}
