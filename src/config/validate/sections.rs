//! The sections without cross-references: `[server]`, `[[listeners]]`
//! (which may name an account), `[admin]`, `[state]`, `[tls]`,
//! `[routing]` and `[mitm]`. Absent values take the defaults of the
//! validated types' `Default` impls.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use toml::Spanned;

use super::rules::{glob, GlobKind};
use super::{Ctx, FirstSeen};
use crate::config::file::{
    AdminFile, ListenerFile, MitmFile, RoutingFile, ServerFile, StateFile, Text, TlsFile,
};
use crate::config::upstream_url::parse_host_port;
use crate::config::{
    AccountConfig, AdminConfig, DenyRule, ListenerConfig, ListenerProtocol, MitmConfig,
    RoutingConfig, RoutingStrategy, Secret, ServerConfig, StateConfig, TlsConfig, ADMIN_KEYS_ENV,
};

pub fn server(cx: &mut Ctx, f: &ServerFile) -> ServerConfig {
    let d = ServerConfig::default();
    ServerConfig {
        header_read_timeout: cx.positive_duration(
            f.header_read_timeout.as_ref(),
            "header_read_timeout",
            d.header_read_timeout,
        ),
        idle_timeout: cx.positive_duration(f.idle_timeout.as_ref(), "idle_timeout", d.idle_timeout),
        connect_timeout: cx.positive_duration(
            f.connect_timeout.as_ref(),
            "connect_timeout",
            d.connect_timeout,
        ),
        max_connections: cx.integer_at_least(
            f.max_connections.as_ref(),
            "max_connections",
            1,
            d.max_connections,
        ),
        shutdown_grace: cx.duration(
            f.shutdown_grace.as_ref(),
            "shutdown_grace",
            d.shutdown_grace,
        ),
        max_header_bytes: cx.integer_at_least(
            f.max_header_bytes.as_ref(),
            "max_header_bytes",
            1024,
            d.max_header_bytes,
        ),
        deny_destinations: match &f.deny_destinations {
            None => d.deny_destinations,
            Some(list) => list
                .iter()
                .filter_map(|entry| deny_rule(cx, entry))
                .collect(),
        },
        splice_pipes: cx.integer_at_least(
            f.splice_pipes.as_ref(),
            "splice_pipes",
            0,
            d.splice_pipes,
        ),
    }
}

/// A CIDR (`169.254.0.0/16`, `fe80::/10`) or a host glob.
fn deny_rule(cx: &mut Ctx, entry: &Text) -> Option<DenyRule> {
    let text = entry.get_ref().trim();
    if text.contains('/') {
        return match text.parse::<ipnet::IpNet>() {
            Ok(net) => Some(DenyRule::Net(net.trunc())),
            Err(_) => {
                cx.at(
                    entry,
                    format!("`deny_destinations`: `{text}` is not a CIDR"),
                );
                None
            }
        };
    }
    glob(cx, entry, GlobKind::Host).map(DenyRule::Host)
}

const PROTOCOLS: &[(&str, ListenerProtocol)] = &[
    ("http", ListenerProtocol::Http),
    ("socks5", ListenerProtocol::Socks5),
];

/// Every listener; none at all is an error. Duplicate addresses (port 0
/// excepted: each bind gets its own port) and the admin address are refused.
pub fn listeners(
    cx: &mut Ctx,
    list: Option<&Spanned<Vec<Spanned<ListenerFile>>>>,
    accounts: &[AccountConfig],
    admin_addr: SocketAddr,
) -> Vec<ListenerConfig> {
    let Some(list) = list.filter(|l| !l.get_ref().is_empty()) else {
        let span = list.map_or(0..0, |l| l.span());
        cx.at_span(
            span,
            "no [[listeners]]: at least one proxy listener is needed",
        );
        return Vec::new();
    };
    let mut seen = FirstSeen::new();
    let mut out = Vec::new();
    for entry in list.get_ref() {
        let Some(listener) = listener(cx, entry, accounts) else {
            continue;
        };
        let addr_text = entry.get_ref().addr.as_ref();
        if let (Some(text), true) = (addr_text, listener.addr.port() != 0) {
            check_unique_addr(cx, text, listener.addr, &mut seen, admin_addr);
        }
        out.push(listener);
    }
    out
}

fn check_unique_addr(
    cx: &mut Ctx,
    text: &Text,
    addr: SocketAddr,
    seen: &mut FirstSeen<SocketAddr>,
    admin: SocketAddr,
) {
    if let Some(first) = seen.earlier(addr, &text.span()) {
        let line = cx.line_of(first);
        cx.at(
            text,
            format!("duplicate listener address `{addr}` (first at line {line})"),
        );
    } else if addr == admin {
        cx.at(
            text,
            format!("listener address `{addr}` is also the admin address"),
        );
    }
}

fn listener(
    cx: &mut Ctx,
    entry: &Spanned<ListenerFile>,
    accounts: &[AccountConfig],
) -> Option<ListenerConfig> {
    let f = entry.get_ref();
    let protocol = match &f.protocol {
        Some(p) => cx.choice(p, "protocol", PROTOCOLS),
        None => cx.fail(
            entry,
            "listener needs a `protocol` (\"http\" or \"socks5\")".into(),
            None,
        ),
    };
    let addr = match &f.addr {
        Some(a) => socket_addr(cx, a),
        None => cx.fail(entry, "listener needs an `addr` (IP:PORT)".into(), None),
    };
    let account = f
        .account
        .as_ref()
        .and_then(|a| bound_account(cx, a, protocol, accounts));
    Some(ListenerConfig {
        protocol: protocol?,
        addr: addr?,
        account,
    })
}

/// Only socks5 listeners may be bound: browsers cannot send SOCKS5
/// credentials, while every HTTP client can send `Proxy-Authorization`.
fn bound_account(
    cx: &mut Ctx,
    account: &Text,
    protocol: Option<ListenerProtocol>,
    accounts: &[AccountConfig],
) -> Option<String> {
    let id = account.get_ref();
    if protocol == Some(ListenerProtocol::Http) {
        let message = "only socks5 listeners may be bound to an account (HTTP clients send Proxy-Authorization)";
        return cx.fail(account, message.into(), None);
    }
    if !accounts.iter().any(|a| &a.id == id) {
        return cx.fail(account, format!("unknown account `{id}`"), None);
    }
    Some(id.clone())
}

fn socket_addr(cx: &mut Ctx, text: &Text) -> Option<SocketAddr> {
    match text.get_ref().parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            let message = format!(
                "`{}` is not an IP:PORT address (host names are not accepted)",
                text.get_ref()
            );
            cx.fail(text, message, None)
        }
    }
}

pub fn admin(cx: &mut Ctx, f: &AdminFile) -> AdminConfig {
    let d = AdminConfig::default();
    let addr = f
        .addr
        .as_ref()
        .and_then(|a| socket_addr(cx, a))
        .unwrap_or(d.addr);
    let mut api_keys: Vec<Secret> = f
        .api_keys
        .iter()
        .filter_map(|k| cx.non_empty(k, "an admin API key").map(Secret::new))
        .collect();
    let from_env = cx.env(ADMIN_KEYS_ENV).unwrap_or_default();
    api_keys.extend(
        from_env
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(Secret::new),
    );
    AdminConfig {
        addr,
        api_keys,
        public_metrics: f.public_metrics,
        account_metrics: f.account_metrics,
    }
}

pub fn state(cx: &mut Ctx, f: &StateFile) -> StateConfig {
    let Some(path) = &f.path else {
        return StateConfig::default();
    };
    match cx.non_empty(path, "`path`") {
        Some(p) if p == "memory" => StateConfig::Memory,
        Some(p) => StateConfig::Path(PathBuf::from(p)),
        None => StateConfig::default(),
    }
}

pub fn tls(cx: &mut Ctx, f: &TlsFile) -> TlsConfig {
    let extra_roots = f
        .extra_roots
        .iter()
        .filter_map(|p| cx.non_empty(p, "an `extra_roots` path").map(PathBuf::from))
        .collect();
    TlsConfig { extra_roots }
}

const STRATEGIES: &[(&str, RoutingStrategy)] = &[
    ("sticky", RoutingStrategy::Sticky),
    ("round_robin", RoutingStrategy::RoundRobin),
    ("random", RoutingStrategy::Random),
];

pub fn routing(cx: &mut Ctx, f: &RoutingFile) -> RoutingConfig {
    let d = RoutingConfig::default();
    RoutingConfig {
        strategy: f
            .strategy
            .as_ref()
            .and_then(|s| cx.choice(s, "strategy", STRATEGIES))
            .unwrap_or(d.strategy),
        max_attempts: f
            .max_attempts
            .as_ref()
            .and_then(|n| max_attempts(cx, n))
            .unwrap_or(d.max_attempts),
        failure_cooldown: cx.duration(
            f.failure_cooldown.as_ref(),
            "failure_cooldown",
            d.failure_cooldown,
        ),
        probe_target: f
            .probe_target
            .as_ref()
            .and_then(|t| probe_target(cx, t))
            .unwrap_or(d.probe_target),
    }
}

fn max_attempts(cx: &mut Ctx, n: &Spanned<i64>) -> Option<NonZeroU32> {
    let value = u32::try_from(*n.get_ref()).ok().and_then(NonZeroU32::new);
    if value.is_none() {
        let message = format!(
            "`max_attempts` must be a positive integer, got {}",
            n.get_ref()
        );
        cx.at(n, message);
    }
    value
}

fn probe_target(cx: &mut Ctx, text: &Text) -> Option<(String, u16)> {
    parse_host_port(text.get_ref(), None)
        .map_err(|m| cx.at(text, format!("`probe_target`: {m}")))
        .ok()
}

pub fn mitm(cx: &mut Ctx, f: &MitmFile) -> MitmConfig {
    let d = MitmConfig::default();
    let path = |cx: &mut Ctx, v: Option<&Text>, what: &str, default: PathBuf| {
        v.and_then(|p| cx.non_empty(p, what))
            .map_or(default, PathBuf::from)
    };
    let config = MitmConfig {
        enabled: f.enabled,
        ca_cert: path(cx, f.ca_cert.as_ref(), "`ca_cert`", d.ca_cert),
        ca_key: path(cx, f.ca_key.as_ref(), "`ca_key`", d.ca_key),
        hosts: f
            .hosts
            .iter()
            .filter_map(|h| glob(cx, h, GlobKind::Host))
            .collect(),
        leaf_cache: cx.integer_at_least(f.leaf_cache.as_ref(), "leaf_cache", 1, d.leaf_cache),
    };
    if config.enabled {
        check_ca_file(
            cx,
            f.ca_cert.as_ref(),
            &config.ca_cert,
            "ca_cert",
            pem_certificate,
        );
        check_ca_file(cx, f.ca_key.as_ref(), &config.ca_key, "ca_key", pem_key);
    }
    config
}

/// A CA file that interception cannot start without: readable PEM of the
/// right kind, or an error at its key (at `[mitm]` when defaulted).
fn check_ca_file(
    cx: &mut Ctx,
    at: Option<&Text>,
    path: &std::path::Path,
    key: &str,
    read: fn(&std::path::Path) -> Result<(), String>,
) {
    let Err(reason) = read(path) else { return };
    let message = format!(
        "`{key}` {}: {reason} (write one with `pacer ca init`)",
        path.display()
    );
    match at {
        Some(text) => cx.at(text, message),
        None => cx.at_key(&["mitm"], message),
    }
}

fn pem_certificate(path: &std::path::Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path)
        .map(drop)
        .map_err(|err| format!("not a readable PEM certificate ({err})"))
}

fn pem_key(path: &std::path::Path) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivateKeyDer::from_pem_file(path)
        .map(drop)
        .map_err(|err| format!("not a readable PEM private key ({err})"))
}
