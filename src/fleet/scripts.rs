//! The server-side scripts, loaded once per connection by EVALSHA (the
//! client falls back to EVAL when a node does not have them yet).

use redis::Script;

/// Every script pacer runs.
pub struct Scripts {
    /// Admission and confirmation (`scripts/admit.lua`).
    pub admit: Script,
    /// Departure, end, lease renewal, give-back, cancel
    /// (`scripts/release.lua`).
    pub release: Script,
    /// Platform pauses (`scripts/backoff.lua`).
    pub backoff: Script,
    /// An account's usage (`scripts/usage.lua`).
    pub usage: Script,
    /// Upstream cooldowns (`scripts/cooldowns.lua`).
    pub cooldowns: Script,
    /// Live instances and their config digests (`scripts/instances.lua`).
    pub instances: Script,
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts {
            admit: Script::new(include_str!("scripts/admit.lua")),
            release: Script::new(include_str!("scripts/release.lua")),
            backoff: Script::new(include_str!("scripts/backoff.lua")),
            usage: Script::new(include_str!("scripts/usage.lua")),
            cooldowns: Script::new(include_str!("scripts/cooldowns.lua")),
            instances: Script::new(include_str!("scripts/instances.lua")),
        }
    }
}
