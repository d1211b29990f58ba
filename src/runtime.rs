//! Everything compiled from the config file that a reload replaces as one
//! snapshot: actions, policies, account types, accounts and routes.
//! Requests load the snapshot once; a reload swaps it whole, carrying each
//! account's limiter state (windows of unchanged limits, usage, batch)
//! over. Upstream cooldowns and sticky choices start afresh (the sticky
//! first choice is a stable hash, so accounts keep their upstream).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::accounts::{
    self, Account, AccountChanges, AccountSettings, AccountSources, Accounts, PolicySet,
};
use crate::classify::Classifier;
use crate::config::{AccountType, Config, Policy};
use crate::limit::policy::PolicyLimits;
use crate::route::Router;
use crate::upstream::EgressSettings;

/// The reloadable part of the running proxy.
pub struct Runtime {
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
}

impl Runtime {
    /// `account`'s settings with `changes` instead of its current ones.
    pub fn settings_with(
        &self,
        account: &Account,
        changes: AccountChanges,
    ) -> Result<AccountSettings, String> {
        let set = PolicySet {
            policies: &self.policies,
            compiled: &self.compiled,
            classifier: &self.classifier,
        };
        accounts::settings(&account.config, changes, &set)
    }

    /// Compiles `config` with the stored runtime `changes`; with `previous`,
    /// its accounts' limiters carry over.
    pub fn build(
        config: &Config,
        changes: &HashMap<String, AccountChanges>,
        previous: Option<&Runtime>,
        journal: Option<Arc<Notify>>,
        egress: &Arc<EgressSettings>,
    ) -> anyhow::Result<Runtime> {
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
            policies: &config.policies,
            compiled: &compiled,
            classifier: &classifier,
            changes,
            previous: previous.map(|p| &p.accounts),
            journal,
        };
        let accounts = Accounts::build(&config.accounts, &sources).map_err(anyhow::Error::msg)?;
        if let Some(previous) = previous {
            if previous.classifier.names() != classifier.names() {
                for account in accounts.iter() {
                    account
                        .limiter
                        .remap_actions(&previous.classifier, &classifier);
                }
            }
        }
        let router = Router::new(config, egress.clone());
        for account in accounts.iter() {
            router.set_route(&account.id, &account.settings.load().route);
        }
        Ok(Runtime {
            router,
            classifier,
            policies: config.policies.clone(),
            compiled,
            account_types: config.account_types.clone(),
            accounts,
        })
    }
}
