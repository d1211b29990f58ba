//! Identifying the account (SPEC section 3): `Proxy-Authorization: Basic`
//! parsing and constant-time secret checks against the accounts, shared by
//! the HTTP and SOCKS5 listeners.

use std::sync::Arc;

use base64::Engine as _;
use http::HeaderValue;

use crate::accounts::{Account, Accounts};
use crate::error::ProxyError;

impl Accounts {
    /// The account whose id and secret these are.
    pub fn authenticate(&self, id: &[u8], secret: &[u8]) -> Result<Arc<Account>, ProxyError> {
        let found = std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.by_id.get(id));
        match found {
            Some(account) if account.config.secret.matches(secret) => Ok(account.clone()),
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
        let config = crate::config::parse(
            "[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n[policies.standard_policy]\n[[accounts]]\nid = \"acct-1\"\nsecret = \"s3cret\"\n",
            &|_| None,
        )
        .expect("config");
        let egress = Arc::new(crate::upstream::EgressSettings {
            connect_timeout: std::time::Duration::from_secs(1),
            idle_timeout: std::time::Duration::from_secs(1),
            tls: crate::upstream::TlsClient::new(&config.tls).expect("tls"),
            pools: 1,
        });
        let runtime =
            crate::runtime::Runtime::build(&config, &Default::default(), None, None, &egress);
        runtime.expect("runtime").accounts
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
