//! Choosing one upstream of a country pool, as pure functions over the
//! members' identities (a stable hash of `scheme://user@host:port`) and a
//! predicate saying which members may be tried now.
//!
//! - `sticky`: the account's remembered upstream while it may be tried,
//!   else the eligible member with the highest rendezvous score
//!   `hash(account, member)`. Accounts spread evenly over a pool, every
//!   account has the same first choice across restarts, and adding or
//!   removing one upstream moves only the accounts that gain or lose it.
//! - `round_robin`: the next eligible member after a shared counter.
//! - `random`: a uniformly random eligible member.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::config::RoutingStrategy;

/// What a choice depends on besides the pool.
pub struct Choice<'a> {
    /// The strategy in force.
    pub strategy: RoutingStrategy,
    /// [`stable_hash`] of the account id.
    pub account: u64,
    /// The identity the account last succeeded with (sticky only).
    pub remembered: Option<u64>,
    /// The pool's round-robin counter.
    pub counter: &'a AtomicUsize,
}

/// The index of the member to try, among `ids` for which `eligible` holds.
pub fn choose(choice: &Choice<'_>, ids: &[u64], eligible: impl Fn(usize) -> bool) -> Option<usize> {
    match choice.strategy {
        RoutingStrategy::Sticky => {
            let kept = choice
                .remembered
                .and_then(|id| ids.iter().position(|&m| m == id))
                .filter(|&i| eligible(i));
            kept.or_else(|| rendezvous(choice.account, ids, &eligible))
        }
        RoutingStrategy::RoundRobin => {
            let start = choice.counter.fetch_add(1, Ordering::Relaxed);
            round_robin(start, ids.len(), &eligible)
        }
        RoutingStrategy::Random => random_eligible(ids.len(), &eligible),
    }
}

/// The identity of the member a sticky `account` tries first when it
/// remembers none (the highest score of the whole pool).
pub fn first_choice(account: u64, ids: &[u64]) -> Option<u64> {
    rendezvous(account, ids, &|_| true).map(|i| ids[i])
}

/// The eligible member with the highest score for `account`.
fn rendezvous(account: u64, ids: &[u64], eligible: &impl Fn(usize) -> bool) -> Option<usize> {
    (0..ids.len())
        .filter(|&i| eligible(i))
        .max_by_key(|&i| splitmix64(account ^ splitmix64(ids[i])))
}

fn round_robin(start: usize, len: usize, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
    (0..len).map(|k| (start + k) % len).find(|&i| eligible(i))
}

fn random_eligible(len: usize, eligible: &impl Fn(usize) -> bool) -> Option<usize> {
    let candidates: Vec<usize> = (0..len).filter(|&i| eligible(i)).collect();
    if candidates.is_empty() {
        return None;
    }
    let index = (random_u64() % candidates.len() as u64) as usize;
    candidates.get(index).copied()
}

/// FNV-1a, finished with a mix: the same on every run and every build, so
/// sticky choices survive restarts.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(hash)
}

/// A bijective 64-bit mix with full avalanche.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A cheap, unpredictable-per-process sequence (not for secrets).
fn random_u64() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let seed = *SEED.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) as u64;
    splitmix64(seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<u64> {
        (0..n)
            .map(|i| stable_hash(format!("http://u@10.0.0.{i}:3128").as_bytes()))
            .collect()
    }

    fn sticky(account: &str, ids: &[u64], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let counter = AtomicUsize::new(0);
        let choice = Choice {
            strategy: RoutingStrategy::Sticky,
            account: stable_hash(account.as_bytes()),
            remembered: None,
            counter: &counter,
        };
        choose(&choice, ids, eligible)
    }

    #[test]
    fn sticky_spreads_accounts_evenly() {
        let pool = ids(4);
        let mut counts = [0usize; 4];
        for n in 0..4000 {
            let i = sticky(&format!("acct-{n}"), &pool, |_| true).expect("choice");
            counts[i] += 1;
        }
        for count in counts {
            assert!((850..=1150).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn removing_an_upstream_moves_only_its_accounts() {
        let pool = ids(5);
        let smaller: Vec<u64> = pool[..4].to_vec();
        for n in 0..2000 {
            let account = format!("acct-{n}");
            let before = sticky(&account, &pool, |_| true).expect("choice");
            let after = sticky(&account, &smaller, |_| true).expect("choice");
            if before < 4 {
                assert_eq!(before, after, "{account} moved without cause");
            }
        }
    }

    #[test]
    fn sticky_keeps_the_remembered_upstream_while_eligible() {
        let pool = ids(3);
        let counter = AtomicUsize::new(0);
        let account = stable_hash(b"acct-1");
        let first = sticky("acct-1", &pool, |_| true).expect("choice");
        let other = (first + 1) % 3;
        let choice = Choice {
            strategy: RoutingStrategy::Sticky,
            account,
            remembered: Some(pool[other]),
            counter: &counter,
        };
        assert_eq!(choose(&choice, &pool, |_| true), Some(other));
        let fallback = choose(&choice, &pool, |i| i != other).expect("choice");
        assert_eq!(fallback, first, "back to the rendezvous order");
        assert_eq!(choose(&choice, &pool, |_| false), None);
    }

    #[test]
    fn round_robin_cycles_and_skips_ineligible_members() {
        let pool = ids(3);
        let counter = AtomicUsize::new(0);
        let choice = Choice {
            strategy: RoutingStrategy::RoundRobin,
            account: 0,
            remembered: None,
            counter: &counter,
        };
        let picks: Vec<_> = (0..6).map(|_| choose(&choice, &pool, |_| true)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2].map(Some));
        let skipping: Vec<_> = (0..3).map(|_| choose(&choice, &pool, |i| i != 1)).collect();
        assert_eq!(skipping, [Some(0), Some(2), Some(2)]);
    }

    #[test]
    fn random_picks_only_eligible_members_and_all_of_them() {
        let pool = ids(4);
        let counter = AtomicUsize::new(0);
        let choice = Choice {
            strategy: RoutingStrategy::Random,
            account: 0,
            remembered: None,
            counter: &counter,
        };
        let mut seen = [0usize; 4];
        for _ in 0..400 {
            let i = choose(&choice, &pool, |i| i != 2).expect("choice");
            seen[i] += 1;
        }
        assert_eq!(seen[2], 0);
        assert!(seen[0] > 50 && seen[1] > 50 && seen[3] > 50, "{seen:?}");
    }

    #[test]
    fn the_stable_hash_does_not_change() {
        assert_eq!(stable_hash(b""), splitmix64(0xcbf2_9ce4_8422_2325));
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
    }
}
