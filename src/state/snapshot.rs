//! Everything compiled from the config file that a reload replaces as one
//! immutable [`Snapshot`]: actions, policies, account types, accounts and
//! routes. A request loads the snapshot once and keeps it to the end; a
//! reload builds a new one beside it, changing nothing of the old one, and
//! swaps it in whole, carrying each account's limiter (windows of unchanged
//! limits, usage, batch) over. Upstream cooldowns and sticky choices start
//! afresh (the sticky first choice is a stable hash, so accounts keep
//! their upstream).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Notify;

use super::accounts::{self, Account, AccountSettings, AccountSources, Accounts, PolicySet};
use super::changes::AccountChanges;
use crate::config::{AccountType, Config, HostGlobs, Policy};
use crate::egress::route::Router;
use crate::egress::upstream::EgressSettings;
use crate::policy::classify::Classifier;
use crate::policy::limit::policy::PolicyLimits;

/// The reloadable part of the running proxy.
pub struct Snapshot {
    /// The compiled `[[actions]]`.
    pub classifier: Classifier,
    /// The policies as configured, by slug.
    pub policies: BTreeMap<String, Policy>,
    /// The policies compiled, by slug.
    pub compiled: HashMap<String, Arc<PolicyLimits>>,
    /// The account types, by name.
    pub account_types: BTreeMap<String, AccountType>,
    /// The accounts.
    pub accounts: Accounts,
    /// Each account's route and the upstream pools.
    pub router: Router,
    /// `[mitm] hosts`: tunnels to these are intercepted (when interception
    /// is on).
    pub intercepted_hosts: HostGlobs,
}

impl Snapshot {
    /// `account`'s settings with `changes` instead of its current ones.
    pub fn settings_with(
        &self,
        account: &Account,
        changes: AccountChanges,
    ) -> Result<AccountSettings, String> {
        accounts::settings(&account.config, changes, &self.policy_set())
    }

    fn policy_set(&self) -> PolicySet<'_> {
        PolicySet {
            policies: &self.policies,
            compiled: &self.compiled,
            classifier: &self.classifier,
        }
    }

    /// Compiles `config` with the stored runtime `changes`; with `previous`,
    /// its accounts' limiters carry over (`previous` itself is not
    /// changed, so a build that is not swapped in leaves no trace).
    pub fn build(
        config: &Config,
        changes: &HashMap<String, AccountChanges>,
        previous: Option<&Snapshot>,
        journal: Option<Arc<Notify>>,
        egress: &Arc<EgressSettings>,
    ) -> anyhow::Result<Snapshot> {
        let classifier = Classifier::new(&config.actions)?;
        let compiled: HashMap<String, Arc<PolicyLimits>> = config
            .policies
            .iter()
            .map(|(slug, policy)| {
                (
                    slug.clone(),
                    Arc::new(PolicyLimits::new(policy, &classifier)),
                )
            })
            .collect();
        let sources = AccountSources {
            policies: PolicySet {
                policies: &config.policies,
                compiled: &compiled,
                classifier: &classifier,
            },
            changes,
            previous: previous.map(|p| &p.accounts),
            journal,
        };
        let accounts = Accounts::build(&config.accounts, &sources).map_err(anyhow::Error::msg)?;
        let router = Router::new(config, egress.clone());
        for account in accounts.iter() {
            router.set_route(&account.id, &account.settings.load().route);
        }
        Ok(Snapshot {
            intercepted_hosts: HostGlobs::new(&config.mitm.hosts).map_err(anyhow::Error::msg)?,
            router,
            classifier,
            policies: config.policies.clone(),
            compiled,
            account_types: config.account_types.clone(),
            accounts,
        })
    }
}
