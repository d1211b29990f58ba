//! Identifying the account (SPEC section 3): the registry of configured
//! accounts, `Proxy-Authorization: Basic` parsing, and constant-time secret
//! checks shared by the HTTP and SOCKS5 listeners.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use http::HeaderValue;
use tokio::sync::Notify;

use crate::config::{AccountConfig, Secret};
use crate::error::ProxyError;
use crate::limit::policy::PolicyLimits;
use crate::limit::AccountLimiter;

/// An account as the request path sees it.
#[derive(Debug)]
pub struct Account {
    /// The account id (the proxy user name).
    pub id: Arc<str>,
    secret: Secret,
    /// The policy in force.
    pub policy: Arc<PolicyLimits>,
    /// The account's limiter state.
    pub limiter: Arc<AccountLimiter>,
}

/// Every configured account, by id.
#[derive(Debug)]
pub struct Accounts {
    by_id: HashMap<Arc<str>, Arc<Account>>,
    /// Compared against when the id is unknown, so that a wrong id and a
    /// wrong secret take the same time.
    decoy: Secret,
}

impl Accounts {
    /// The registry of `accounts`, each with its compiled policy (`None`
    /// when an account names a policy `policies` lacks).
    /// With `journal`, usage is persisted and the flusher woken through it.
    pub fn new(
        accounts: &[AccountConfig],
        policies: &HashMap<String, Arc<PolicyLimits>>,
        journal: Option<Arc<Notify>>,
    ) -> Result<Self, String> {
        let mut by_id = HashMap::with_capacity(accounts.len());
        for config in accounts {
            let policy = policies.get(&config.policy).ok_or_else(|| {
                format!(
                    "account {} names unknown policy {}",
                    config.id, config.policy
                )
            })?;
            let id: Arc<str> = Arc::from(config.id.as_str());
            let account = Account {
                id: id.clone(),
                secret: config.secret.clone(),
                policy: policy.clone(),
                limiter: Arc::new(match &journal {
                    Some(flush) => AccountLimiter::journaled(flush.clone()),
                    None => AccountLimiter::default(),
                }),
            };
            by_id.insert(id, Arc::new(account));
        }
        Ok(Accounts {
            by_id,
            decoy: Secret::new("pacer-decoy-secret-for-unknown-ids"),
        })
    }

    /// Every account.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Account>> {
        self.by_id.values()
    }

    /// The account with this id, for bound listeners.
    pub fn get(&self, id: &str) -> Option<Arc<Account>> {
        self.by_id.get(id).cloned()
    }

    /// The account whose id and secret these are.
    pub fn authenticate(&self, id: &[u8], secret: &[u8]) -> Result<Arc<Account>, ProxyError> {
        let found = std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.by_id.get(id));
        match found {
            Some(account) if account.secret.matches(secret) => Ok(account.clone()),
            Some(_) => Err(ProxyError::InvalidCredentials),
            None => {
                let _ = self.decoy.matches(secret);
                Err(ProxyError::InvalidCredentials)
            }
        }
    }

    /// The account named by a `Proxy-Authorization` header.
    pub fn authenticate_basic(
        &self,
        header: Option<&HeaderValue>,
    ) -> Result<Arc<Account>, ProxyError> {
        let header = header.ok_or(ProxyError::MissingCredentials)?;
        let decoded = decode_basic(header.as_bytes()).ok_or(ProxyError::InvalidCredentials)?;
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(ProxyError::InvalidCredentials)?;
        self.authenticate(&decoded[..colon], &decoded[colon + 1..])
    }
}

/// The decoded `id:secret` of a `Basic` credential (scheme case-insensitive).
fn decode_basic(value: &[u8]) -> Option<Vec<u8>> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(5)?;
    if !scheme.eq_ignore_ascii_case(b"basic") || !rest.first()?.is_ascii_whitespace() {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> Accounts {
        let policy = crate::config::Policy::with_defaults("p");
        let classifier = crate::classify::Classifier::new(&[]).expect("classifier");
        let compiled = Arc::new(PolicyLimits::new(&policy, &classifier));
        let policies = HashMap::from([("p".to_owned(), compiled)]);
        let accounts = Accounts::new(
            &[AccountConfig {
                id: "acct-1".into(),
                secret: Secret::new("s3cret"),
                account_type: None,
                policy: "p".into(),
                plan: crate::config::Plan::Free,
                route: crate::config::AccountRoute::Direct,
            }],
            &policies,
            None,
        );
        accounts.expect("accounts")
    }

    fn basic(user_pass: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_pass);
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("header")
    }

    #[test]
    fn basic_credentials() {
        let accounts = accounts();
        let ok = accounts.authenticate_basic(Some(&basic("acct-1:s3cret")));
        assert_eq!(&*ok.expect("account").id, "acct-1");
        let lower = HeaderValue::from_static("basic YWNjdC0xOnMzY3JldA==");
        assert!(accounts.authenticate_basic(Some(&lower)).is_ok());
    }

    #[test]
    fn refusals() {
        let accounts = accounts();
        let missing = accounts.authenticate_basic(None);
        assert!(matches!(missing, Err(ProxyError::MissingCredentials)));
        for bad in ["acct-1:wrong", "nobody:s3cret", "acct-1", ""] {
            let result = accounts.authenticate_basic(Some(&basic(bad)));
            assert!(
                matches!(result, Err(ProxyError::InvalidCredentials)),
                "{bad}"
            );
        }
        let bearer = HeaderValue::from_static("Bearer abc");
        assert!(matches!(
            accounts.authenticate_basic(Some(&bearer)),
            Err(ProxyError::InvalidCredentials)
        ));
        let garbage = HeaderValue::from_static("Basic !!!");
        assert!(matches!(
            accounts.authenticate_basic(Some(&garbage)),
            Err(ProxyError::InvalidCredentials)
        ));
    }

    #[test]
    fn secrets_are_masked() {
        let printed = format!("{:?}", accounts());
        assert!(!printed.contains("s3cret"), "{printed}");
    }
}
