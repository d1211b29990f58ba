//! Proxy authentication against 1,000 to 1,000,000 accounts created at runtime
//! (secrets kept as Argon2id hashes): a credential verified before (the
//! keep-alive client, the busy account) and a wrong secret for a known
//! id, which is sent to the slow check. The cost must not grow with the
//! number of accounts (SPEC 8, issue 13).
//!
//! `cargo bench --bench auth`

use divan::{black_box, Bencher};
use pacer::config::Plan;
use pacer::policy::auth::hashed::SecretHash;
use pacer::policy::auth::{Credentials, Field};
use pacer::state::accounts::{AccountSecret, Identified};
use pacer::state::runtime::RuntimeAccount;
use pacer::state::snapshot::Snapshot;
use pacer::state::store::Stored;

#[path = "support/snapshot.rs"]
mod support;

fn main() {
    divan::main();
}

const CONFIG: &str = r#"
[[listeners]]
protocol = "http"
addr = "127.0.0.1:0"
[policies.standard_policy]
"#;

/// A snapshot of `n` runtime accounts sharing one hash (hashing 100,000
/// secrets would take the bench an hour), `rt-0` verified once.
fn snapshot(n: usize) -> Snapshot {
    let hash = SecretHash::hash(b"secret").expect("hash");
    let mut stored = Stored::default();
    for i in 0..n {
        let record = RuntimeAccount {
            secret_hash: hash.phc().to_owned(),
            account_type: None,
            policy: None,
            plan: Plan::Free,
            route: None,
        };
        stored.accounts.insert(format!("rt-{i}"), record);
    }
    let snapshot = support::build(CONFIG, &stored);
    let account = snapshot.accounts.get("rt-0").expect("rt-0");
    let AccountSecret::Hashed(secret) = &account.secret else {
        panic!("hashed");
    };
    assert!(secret.verify(b"secret"));
    snapshot
}

fn credentials(secret: &[u8]) -> Credentials {
    Credentials {
        id: Field::from_slice(b"rt-0"),
        secret: Field::from_slice(secret),
    }
}

#[divan::bench(args = [1_000, 10_000, 100_000, 1_000_000], sample_count = 200)]
fn verified_before(bencher: Bencher, n: usize) {
    let snapshot = snapshot(n);
    let offered = credentials(b"secret");
    bencher.bench_local(|| {
        let identified = snapshot.accounts.identify(black_box(&offered));
        assert!(matches!(identified, Identified::Done(Ok(_))));
    });
}

#[divan::bench(args = [1_000, 10_000, 100_000, 1_000_000], sample_count = 200)]
fn wrong_secret_is_sent_to_the_slow_check(bencher: Bencher, n: usize) {
    let snapshot = snapshot(n);
    let offered = credentials(b"wrong");
    bencher.bench_local(|| {
        let identified = snapshot.accounts.identify(black_box(&offered));
        assert!(matches!(identified, Identified::Verify(_)));
    });
}
