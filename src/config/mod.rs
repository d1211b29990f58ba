//! Configuration: `pacer.toml` from file shape to a validated [`Config`].
//!
//! The pipeline, one module per step:
//! 1. `locate`: parse the TOML document once, keeping every key's span, so
//!    any later error can be reported as `LINE:COLUMN`.
//! 2. `file`: deserialize into the *file shape* (serde types mirroring the
//!    TOML, everything optional). `serde_ignored` collects every unknown
//!    key; all of them are reported, not just the first.
//! 3. `validate`: resolve references and build the typed [`Config`],
//!    collecting every error with its position.
//!
//! `error` holds the error types; `limit_key` (the limit-key grammar),
//! `types` and `upstream_url` (value types) know nothing about TOML and are
//! reused by the admin API.
//!
//! Precedence: a value in its section, else the default named on the field.
//! Two values combine rather than override: admin API keys are those of
//! `[admin] api_keys` plus those of env `PACER_ADMIN_KEYS` (comma list). An
//! account's policy is its own `policy`, else its type's, else
//! `standard_policy`. Relative paths (state, TLS roots, CA files) are taken
//! relative to the working directory, not to the config file.

mod error;
mod file;
mod fleet;
mod glob;
mod limit_key;
mod locate;
mod types;
mod upstream_url;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors};
pub use fleet::{FleetConfig, OnUnavailable, REDIS_URL_ENV};
pub use glob::{globset_pattern, HostGlobs};
pub use limit_key::{
    check_action_name, Limit, LimitKey, LimitKeyError, LimitNumber, LimitValue, ALL_ACTION,
    MAX_WINDOW,
};
pub use types::{account_id_problem, parse_duration, CountryCode, DayReset, DenyRule, Secret};
pub use upstream_url::{format_authority, parse_host_port, UpstreamScheme, UpstreamUrl};

/// Name of the environment variable holding extra admin API keys.
pub const ADMIN_KEYS_ENV: &str = "PACER_ADMIN_KEYS";
/// The policy an account falls back to when neither it nor its type names one.
pub const STANDARD_POLICY: &str = "standard_policy";

/// Reads and validates a config file, taking secrets from the process
/// environment.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let fail = |errors| ConfigErrors {
        file: path.to_path_buf(),
        errors,
    };
    let source = std::fs::read_to_string(path).map_err(|e| {
        fail(vec![ConfigError {
            line: 0,
            column: 0,
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    parse(&source, &|name| std::env::var(name).ok()).map_err(fail)
}

/// Validates config text. `env` looks up environment variables
/// (`secret_env`, `PACER_ADMIN_KEYS`), injected so tests stay hermetic.
pub fn parse(
    source: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<ConfigError>> {
    let doc = locate::Document::parse(source).map_err(|e| vec![e])?;
    let (shape, mut errors) = file::read(&doc);
    let result = match shape {
        Ok(shape) => validate::build(&shape, &doc, env),
        Err(type_error) => Err(vec![type_error]),
    };
    match result {
        Ok(config) if errors.is_empty() => Ok(config),
        Ok(_) => Err(locate::sorted(errors)),
        Err(more) => {
            errors.extend(more);
            Err(locate::sorted(errors))
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub listeners: Vec<ListenerConfig>,
    pub admin: AdminConfig,
    pub state: StateConfig,
    pub tls: TlsConfig,
    /// In file order.
    pub actions: Vec<ActionRule>,
    /// Keyed by slug.
    pub policies: BTreeMap<String, Policy>,
    pub account_types: BTreeMap<String, AccountType>,
    /// In file order.
    pub accounts: Vec<AccountConfig>,
    /// The managed pool, in file order.
    pub upstreams: Vec<UpstreamConfig>,
    pub routing: RoutingConfig,
    pub mitm: MitmConfig,
    /// `[fleet]` (or env `PACER_REDIS_URL`): the shared store of a fleet;
    /// none when pacer runs alone.
    pub fleet: Option<FleetConfig>,
}

/// `[server]`: timeouts and sizes of the proxy listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Deadline for a whole request head. Default 10 s.
    pub header_read_timeout: Duration,
    /// Keep-alive with no request, tunnel with no bytes. Default 90 s.
    pub idle_timeout: Duration,
    /// To an upstream proxy or origin. Default 10 s.
    pub connect_timeout: Duration,
    /// Client connections over all proxy listeners. Default 10000.
    pub max_connections: usize,
    /// In-flight work may finish for this long after a stop. Default 10 s.
    pub shutdown_grace: Duration,
    /// Larger request heads get 431. Default 65536, at least 1024.
    pub max_header_bytes: usize,
    /// Destinations never dialled. Default the link-local ranges
    /// `169.254.0.0/16` and `fe80::/10`.
    pub deny_destinations: Vec<DenyRule>,
    /// Pipes each ingress thread may hold for `splice(2)` tunnels (two
    /// file descriptors each); 0 relays every tunnel through buffers.
    /// Default 64.
    pub splice_pipes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            connect_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            max_header_bytes: 65_536,
            deny_destinations: DenyRule::link_local(),
            splice_pipes: 64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerProtocol {
    /// `"http"`: absolute-form requests and CONNECT.
    Http,
    /// `"socks5"`.
    Socks5,
}

/// One `[[listeners]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    pub protocol: ListenerProtocol,
    pub addr: SocketAddr,
    /// A bound listener: every client is this account, no credentials
    /// asked. Only socks5 listeners may be bound (HTTP clients can always
    /// send `Proxy-Authorization`).
    pub account: Option<String>,
}

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    /// Default 127.0.0.1:9090.
    pub addr: SocketAddr,
    /// `api_keys` plus the keys of env `PACER_ADMIN_KEYS`. Default none.
    pub api_keys: Vec<Secret>,
    /// `/metrics` without a key. Default false.
    pub public_metrics: bool,
    /// Per-account metric labels (one series per account). Default false.
    pub account_metrics: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 9090)),
            api_keys: Vec::new(),
            public_metrics: false,
            account_metrics: false,
        }
    }
}

/// `[state] path`: `"memory"` keeps nothing. Default `data/pacer.db`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateConfig {
    Memory,
    Path(PathBuf),
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig::Path(PathBuf::from("data/pacer.db"))
    }
}

/// `[tls]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM files trusted besides the system roots. Default none.
    pub extra_roots: Vec<PathBuf>,
}

/// One `[[actions]]` rule; `None` matches anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRule {
    pub name: String,
    /// Upper-cased.
    pub methods: Option<Vec<http::Method>>,
    /// Globs as written.
    pub hosts: Option<Vec<String>>,
    /// Globs as written.
    pub paths: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyMode {
    /// Hold a request until allowed, up to `max_wait`.
    Pace,
    /// Refuse at once.
    Reject,
}

/// One `[policies.SLUG]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub slug: String,
    /// Default: the slug.
    pub name: String,
    /// Default: empty.
    pub description: String,
    /// Selectable by free-plan accounts. Default false.
    pub free: bool,
    /// Default pace.
    pub mode: PolicyMode,
    /// Default 30 s.
    pub max_wait: Duration,
    /// Default 0 s.
    pub jitter: Duration,
    /// Margin added to every rolling window and to the gap. Default 0 ms.
    pub guard: Duration,
    /// Default 00:00+00:00.
    pub day_resets_at: DayReset,
    /// In file order.
    pub limits: Vec<Limit>,
    /// `[policies.X.backoff]`, when present.
    pub backoff: Option<Backoff>,
}

/// Platform feedback (`[policies.X.backoff]`): origin answers that pause
/// the account's matched actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Origin statuses that mean "too fast" (100 to 999). Default `[429]`.
    pub statuses: Vec<u16>,
    /// The pause when the answer has no usable `Retry-After`. Default 60 s.
    pub default_pause: Duration,
    /// The longest pause; a longer `Retry-After` is cut to it. Default 1 h.
    pub max_pause: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            statuses: vec![429],
            default_pause: Duration::from_secs(60),
            max_pause: Duration::from_secs(3600),
        }
    }
}

impl Policy {
    /// A policy with every field at its default and no limits.
    pub fn with_defaults(slug: &str) -> Policy {
        Policy {
            slug: slug.to_string(),
            name: slug.to_string(),
            description: String::new(),
            free: false,
            mode: PolicyMode::Pace,
            max_wait: Duration::from_secs(30),
            jitter: Duration::ZERO,
            guard: Duration::ZERO,
            day_resets_at: DayReset::default(),
            limits: Vec::new(),
            backoff: None,
        }
    }
}

/// One `[account_types.NAME]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountType {
    pub name: String,
    /// Resolved: the type's `policy`, default `standard_policy`.
    pub policy: String,
    /// Ceilings for per-account overrides, in file order.
    pub max: Vec<Limit>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Paid,
}

/// Where an account's traffic leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRoute {
    Direct,
    /// The account's own upstream: always used, no cooldown.
    Custom(UpstreamUrl),
    /// The pool's upstreams of that country (at least one exists).
    Country(CountryCode),
}

/// One `[[accounts]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountConfig {
    pub id: String,
    /// From `secret` or from the variable named by `secret_env`.
    pub secret: Secret,
    pub account_type: Option<String>,
    /// Resolved: own, else type's, else `standard_policy`.
    pub policy: String,
    /// Default free.
    pub plan: Plan,
    pub route: AccountRoute,
}

/// One `[[upstreams]]` entry of the managed pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub url: UpstreamUrl,
    pub country: CountryCode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingStrategy {
    Sticky,
    RoundRobin,
    Random,
}

/// `[routing]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingConfig {
    /// Default sticky.
    pub strategy: RoutingStrategy,
    /// Upstreams tried before 502. Default 3.
    pub max_attempts: NonZeroU32,
    /// A failed pool upstream sits out this long. Default 30 s.
    pub failure_cooldown: Duration,
    /// CONNECT target used to try a new proxy, host without IPv6
    /// brackets. Default ("example.com", 443).
    pub probe_target: (String, u16),
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            strategy: RoutingStrategy::Sticky,
            max_attempts: NonZeroU32::new(3).unwrap_or(NonZeroU32::MIN),
            failure_cooldown: Duration::from_secs(30),
            probe_target: ("example.com".to_string(), 443),
        }
    }
}

/// `[mitm]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MitmConfig {
    /// Default false.
    pub enabled: bool,
    /// Default `certs/ca.pem`.
    pub ca_cert: PathBuf,
    /// Default `certs/ca.key`.
    pub ca_key: PathBuf,
    /// Host globs to intercept. Default none.
    pub hosts: Vec<String>,
    /// Leaf certificates kept (least recently used go first). Default
    /// 10000.
    pub leaf_cache: usize,
}

impl Default for MitmConfig {
    fn default() -> Self {
        MitmConfig {
            enabled: false,
            ca_cert: PathBuf::from("certs/ca.pem"),
            ca_key: PathBuf::from("certs/ca.key"),
            hosts: Vec::new(),
            leaf_cache: 10_000,
        }
    }
}
