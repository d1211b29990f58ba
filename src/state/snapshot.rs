//! Everything compiled from the config file (and the accounts created at
//! runtime) that a reload replaces as one immutable [`Snapshot`]: actions,
//! policies, account types, accounts and routes. A request loads the
//! snapshot once and keeps it to the end; a reload builds a new one beside
//! it, changing nothing of the old one, and swaps it in whole, carrying
//! each account's limiter (windows of unchanged limits, usage, batch)
//! over, and sharing each upstream's cooldown and counts with the old
//! router. Sticky choices start afresh (the sticky first choice is a
//! stable hash, so accounts keep their upstream).
//!
//! Creating or deleting a runtime account makes a new snapshot that
//! shares everything but the accounts with the old one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::sync::Notify;

use super::accounts::{
    self, Account, AccountSettings, AccountSource, AccountSources, Accounts, NewAccount, PolicySet,
};
use super::changes::AccountChanges;
use super::runtime::{RuntimeAccount, RuntimeAccounts};
use super::store::Stored;
use crate::config::{AccountType, Config, HostGlobs, Policy};
use crate::egress::route::Router;
use crate::egress::upstream::EgressSettings;
use crate::policy::classify::Classifier;
use crate::policy::limit::clock::Clock;
use crate::policy::limit::policy::PolicyLimits;

/// The reloadable part of the running proxy.
pub struct Snapshot {
    /// The compiled `[[actions]]`.
    pub classifier: Arc<Classifier>,
    /// The policies as configured, by slug.
    pub policies: Arc<BTreeMap<String, Policy>>,
    /// The policies compiled, by slug.
    pub compiled: Arc<HashMap<String, Arc<PolicyLimits>>>,
    /// The account types, by name.
    pub account_types: Arc<BTreeMap<String, AccountType>>,
    /// The accounts.
    pub accounts: Accounts,
    /// Each account's route and the upstream pools.
    pub router: Arc<Router>,
    /// `[mitm] hosts`: tunnels to these are intercepted (when interception
    /// is on).
    pub intercepted_hosts: Arc<HostGlobs>,
}

impl Snapshot {
    /// Frees what idle accounts hold: rolling windows that could refuse
    /// nothing more (also of accounts a reload removed), and sticky
    /// choices unused for [`crate::egress::route::STICKY_IDLE`]. Both are
    /// rebuilt on the account's next request.
    pub fn free_idle(&self, clock: &Clock) {
        for limiter in self.accounts.limiters() {
            limiter.compact(clock);
        }
        self.router.forget_idle(tokio::time::Instant::now());
    }

    /// `account`'s settings with `changes` instead of its current ones.
    pub fn settings_with(
        &self,
        account: &Account,
        changes: AccountChanges,
    ) -> Result<AccountSettings, String> {
        accounts::settings(&account.id, &account.profile, changes, &self.policy_set())
    }

    /// This snapshot with the runtime account `id` created (or replaced,
    /// its limiter kept); `Err` when its profile does not resolve.
    pub fn with_runtime_account(
        &self,
        id: &str,
        record: &RuntimeAccount,
        journal: Option<Arc<Notify>>,
    ) -> Result<Snapshot, String> {
        let no_changes = HashMap::new();
        let no_runtime = RuntimeAccounts::new();
        let sources = AccountSources {
            policies: self.policy_set(),
            types: &self.account_types,
            changes: &no_changes,
            runtime: &no_runtime,
            previous: Some(&self.accounts),
            journal,
        };
        let made = NewAccount::runtime(id, record, &sources)
            .ok_or_else(|| format!("account `{id}` does not resolve to a policy and route"))?;
        let account = Arc::new(made.build(&sources)?);
        self.router
            .set_route(&account.id, &account.settings.load().route);
        Ok(self.with_accounts(self.accounts.with(account)))
    }

    /// This snapshot without the account `id` (its sticky choice
    /// forgotten), if it has it.
    pub fn without_account(&self, id: &str) -> Option<Snapshot> {
        let accounts = self.accounts.without(id)?;
        self.router.forget(id);
        Some(self.with_accounts(accounts))
    }

    fn with_accounts(&self, accounts: Accounts) -> Snapshot {
        Snapshot {
            classifier: self.classifier.clone(),
            policies: self.policies.clone(),
            compiled: self.compiled.clone(),
            account_types: self.account_types.clone(),
            accounts,
            router: self.router.clone(),
            intercepted_hosts: self.intercepted_hosts.clone(),
        }
    }

    fn policy_set(&self) -> PolicySet<'_> {
        PolicySet {
            policies: &self.policies,
            compiled: &self.compiled,
            classifier: &self.classifier,
        }
    }

    /// Compiles `config` with the `stored` runtime changes and accounts;
    /// with `previous`, its accounts' limiters carry over (`previous`
    /// itself is not changed, so a build that is not swapped in leaves no
    /// trace).
    pub fn build(
        config: &Config,
        stored: &Stored,
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
            types: &config.account_types,
            changes: &stored.changes,
            runtime: &stored.accounts,
            previous: previous.map(|p| &p.accounts),
            journal,
        };
        let accounts = Accounts::build(&config.accounts, &sources).map_err(anyhow::Error::msg)?;
        let router = Router::new(config, egress.clone(), previous.map(|p| &*p.router));
        for account in accounts.iter() {
            let route = &account.settings.load().route;
            // Router::new set the config accounts' own routes; runtime
            // accounts and runtime route changes are set here.
            if account.source == AccountSource::Runtime || *route != account.profile.route {
                router.set_route(&account.id, route);
            }
        }
        Ok(Snapshot {
            intercepted_hosts: Arc::new(
                HostGlobs::new(&config.mitm.hosts).map_err(anyhow::Error::msg)?,
            ),
            router: Arc::new(router),
            classifier: Arc::new(classifier),
            policies: Arc::new(config.policies.clone()),
            compiled: Arc::new(compiled),
            account_types: Arc::new(config.account_types.clone()),
            accounts,
        })
    }
}
