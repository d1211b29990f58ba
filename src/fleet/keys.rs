//! Key names. Every key of an account starts with its base key,
//! `<prefix>{<id>}`, so that all of them share one Redis Cluster hash tag
//! (one slot: a script may touch them all). `{`, `}` and `%` in an id are
//! percent-encoded, so the tag is always the whole id.

use crate::policy::limit::policy::{PolicyLimits, RollingRule, Scope};

/// The base key of `account`'s keys.
pub fn account(prefix: &str, account: &str) -> String {
    let mut key = String::with_capacity(prefix.len() + account.len() + 2);
    key.push_str(prefix);
    key.push('{');
    for c in account.chars() {
        match c {
            '{' => key.push_str("%7B"),
            '}' => key.push_str("%7D"),
            '%' => key.push_str("%25"),
            c => key.push(c),
        }
    }
    key.push('}');
    key
}

/// The name of a rolling window within its account: what it counts and
/// its length, so that a changed N keeps the window's history (SPEC
/// section 4) while another shape starts a fresh one.
pub fn window(policy: &PolicyLimits, rule: &RollingRule) -> String {
    let counted = match rule.scope {
        Scope::All => crate::config::ALL_ACTION,
        Scope::Action(id) => policy
            .action_names
            .get(usize::from(id.0))
            .map_or(crate::config::ALL_ACTION, |name| &**name),
    };
    format!("{counted}:{}", rule.window.as_millis())
}

/// A fleet-wide key outside any account (runtime changes, cooldowns,
/// instances).
pub fn global(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_tag_is_always_the_whole_id() {
        assert_eq!(account("p:", "acct-1"), "p:{acct-1}");
        assert_eq!(account("p:", "}x{"), "p:{%7Dx%7B}");
        assert_eq!(account("p:", "a%7Db"), "p:{a%257Db}");
    }
}
