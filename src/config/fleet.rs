//! `[fleet]`: the shared store (Redis or Valkey) that several pacer
//! instances keep their limits, runtime changes and cooldowns in (SPEC
//! section 10). Absent, pacer runs alone on its embedded store.

use std::time::Duration;

use super::Secret;

/// Name of the environment variable that gives (or overrides) the fleet's
/// Redis URL; it alone turns the fleet on.
pub const REDIS_URL_ENV: &str = "PACER_REDIS_URL";

/// The validated `[fleet]` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetConfig {
    /// `redis://` or `rediss://` URLs, user and password included: one
    /// node, or the seed nodes of a Redis Cluster. Masked when printed.
    pub nodes: Vec<Secret>,
    /// Speak Redis Cluster (slots, redirects) to the seed nodes.
    pub cluster: bool,
    /// Instances with the same Redis and prefix form one fleet. Default
    /// `pacer:`.
    pub key_prefix: String,
    /// The longest one admission round trip may take. Default 250 ms.
    pub timeout: Duration,
    /// What admission does while Redis is unreachable or slow.
    pub on_unavailable: OnUnavailable,
}

/// `on_unavailable`: what admission does while the fleet store is down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnUnavailable {
    /// `"refuse"`: 503 `errors/service_unavailable`, nothing admitted
    /// unchecked. The default.
    #[default]
    Refuse,
    /// `"local"`: this instance's own limits, as if alone.
    Local,
}

impl FleetConfig {
    /// The defaults of every key but the URLs.
    pub const DEFAULT_PREFIX: &'static str = "pacer:";
    /// `timeout` when absent.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            nodes: Vec::new(),
            cluster: false,
            key_prefix: Self::DEFAULT_PREFIX.into(),
            timeout: Self::DEFAULT_TIMEOUT,
            on_unavailable: OnUnavailable::Refuse,
        }
    }
}
