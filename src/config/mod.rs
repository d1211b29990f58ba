//! TEMPORARY stub of the validated config types; replaced by the config branch.
#![allow(missing_docs)]
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone)]
pub struct Secret(String);
impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn matches(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(candidate).into()
    }
}
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub listeners: Vec<ListenerConfig>,
    pub accounts: Vec<AccountConfig>,
}
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub max_header_bytes: usize,
}
impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(10),
            max_connections: 10000,
            shutdown_grace: Duration::from_secs(10),
            max_header_bytes: 65536,
        }
    }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocol {
    Http,
    Socks5,
}
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub protocol: ListenerProtocol,
    pub addr: SocketAddr,
    pub account: Option<String>,
}
#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub id: String,
    pub secret: Secret,
    pub policy: String,
}
