//! Runtime changes (SPEC section 9): what the admin API changed for an
//! account. They outrank the config file until changed again and are kept
//! in the store; a change that a later config no longer supports (an
//! action or a policy it removed) is ignored with a warning, never fatal,
//! and dropped from the store with the account's next change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{AccountRoute, CountryCode, Secret, UpstreamScheme, UpstreamUrl};

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
