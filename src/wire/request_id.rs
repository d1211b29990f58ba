//! Request ids: `req_` and 12 hex digits, unique within the process and
//! unpredictable across runs; shown in the envelope's `instance`, the
//! `X-Request-Id` header and the access log.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A request id, shown as `req_` and 12 hex digits in the envelope's
/// `instance`, the `X-Request-Id` header and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

impl RequestId {
    /// A fresh id: unique within the process, unpredictable across runs.
    pub fn next() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static SEED: OnceLock<u64> = OnceLock::new();
        let seed = *SEED.get_or_init(random_seed);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        RequestId(splitmix64(seed.wrapping_add(n)) & 0xffff_ffff_ffff)
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish()
}

/// A bijective mix, so consecutive counters give unrelated-looking ids.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "req_{:012x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_well_formed() {
        let a = RequestId::next().to_string();
        let b = RequestId::next().to_string();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(a.starts_with("req_"));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
