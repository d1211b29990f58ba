//! Accounts: authentication, stale stored changes, and limiters that
//! follow an account across snapshots.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;

use super::*;
use crate::config::Plan;
use crate::egress::tls::TlsClient;
use crate::egress::upstream::EgressSettings;
use crate::state::runtime::{RuntimeAccount, RuntimeAccounts};
use crate::state::snapshot::Snapshot;
use crate::state::store::Stored;

const BASE: &str =
    "[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n[policies.standard_policy]\n";

fn snapshot(
    toml: &str,
    changes: &HashMap<String, AccountChanges>,
    previous: Option<&Snapshot>,
) -> Snapshot {
    let config = crate::config::parse(&format!("{BASE}{toml}"), &|_| None).expect("config");
    let egress = Arc::new(EgressSettings {
        connect_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        tls: TlsClient::new(&config.tls).expect("tls"),
        pools: 1,
    });
    let stored = Stored {
        changes: changes.clone(),
        accounts: RuntimeAccounts::new(),
    };
    Snapshot::build(&config, &stored, previous, None, &egress).expect("snapshot")
}

fn found(identified: Identified) -> Result<Arc<str>, String> {
    match identified {
        Identified::Done(Ok(account)) => Ok(account.id.clone()),
        other => Err(format!("{other:?}")),
    }
}

const ACCT: &str = "[[accounts]]\nid = \"acct-1\"\nsecret = \"s3cret\"\n";

fn basic(user_pass: &str) -> Credentials {
    let encoded = base64::engine::general_purpose::STANDARD.encode(user_pass);
    let header = HeaderValue::from_str(&format!("Basic {encoded}")).expect("header");
    Credentials::from_basic(Some(&header)).expect("credentials")
}

#[test]
fn credentials_name_an_account_or_are_refused() {
    let accounts = snapshot(ACCT, &HashMap::new(), None).accounts;
    let ok = found(accounts.identify(&basic("acct-1:s3cret")));
    assert_eq!(ok.as_deref(), Ok("acct-1"));
    for bad in ["acct-1:wrong", "nobody:s3cret", "acct-1:"] {
        let refused = accounts.identify(&basic(bad));
        assert!(
            matches!(refused, Identified::Done(Err(AuthError::Invalid))),
            "{bad}: {refused:?}"
        );
    }
    assert!(!format!("{accounts:?}").contains("s3cret"));
}

#[test]
fn a_hashed_secret_is_verified_once_then_known() {
    let runtime = snapshot(ACCT, &HashMap::new(), None);
    let record = RuntimeAccount {
        secret_hash: SecretHash::hash(b"rt-secret")
            .expect("hash")
            .phc()
            .to_owned(),
        account_type: None,
        policy: None,
        plan: Plan::Paid,
        route: None,
    };
    let with = runtime
        .with_runtime_account("rt", &record, None)
        .expect("created");
    let Identified::Verify(account) = with.accounts.identify(&basic("rt:rt-secret")) else {
        panic!("an unverified hash needs the slow check");
    };
    assert_eq!(account.source, AccountSource::Runtime);
    assert_eq!(account.settings.load().plan, Plan::Paid);
    let AccountSecret::Hashed(hash) = &account.secret else {
        panic!("kept as a hash");
    };
    assert!(!hash.verify(b"wrong"));
    assert!(matches!(
        with.accounts.identify(&basic("rt:wrong")),
        Identified::Verify(_)
    ));
    assert!(hash.verify(b"rt-secret"));
    assert_eq!(
        found(with.accounts.identify(&basic("rt:rt-secret"))).as_deref(),
        Ok("rt")
    );
    assert!(
        matches!(
            with.accounts.identify(&basic("nobody:x")),
            Identified::Decoy
        ),
        "an unknown id costs a hash while hashed secrets exist"
    );
    assert!(matches!(
        runtime.accounts.identify(&basic("nobody:x")),
        Identified::Done(Err(AuthError::Invalid))
    ));
    let without = with.without_account("rt").expect("deleted");
    assert!(without.accounts.get("rt").is_none());
    assert!(matches!(
        without.accounts.identify(&basic("nobody:x")),
        Identified::Done(_)
    ));
    assert!(
        without.accounts.knew("rt"),
        "its limiter is retired, so usage survives a re-creation"
    );
}

#[test]
fn a_stored_override_of_a_removed_action_is_ignored_and_dropped() {
    let mut changes = AccountChanges {
        policy: Some("gone_policy".into()),
        ..AccountChanges::default()
    };
    changes.params.insert("profiles".into(), 5.into());
    changes.params.insert("batch".into(), 3.into());
    changes.params.insert("batch_hours".into(), 1.into());
    let stored = HashMap::from([("acct-1".to_owned(), changes)]);
    let built = snapshot(ACCT, &stored, None);
    let account = built.accounts.get("acct-1").expect("account");
    let settings = account.settings.load();
    assert_eq!(settings.policy_slug, "standard_policy");
    let keys: Vec<&str> = settings.limits.iter().map(|l| l.raw_key.as_str()).collect();
    assert_eq!(keys, ["batch", "batch_hours"]);
    let kept: Vec<&String> = settings.changes.params.keys().collect();
    assert_eq!(
        kept,
        ["batch", "batch_hours"],
        "the next save drops the stale key"
    );
    assert_eq!(settings.changes.policy, None);
}

#[test]
fn an_account_added_back_finds_its_limiter_again() {
    let first = snapshot(ACCT, &HashMap::new(), None);
    let limiter = first
        .accounts
        .get("acct-1")
        .expect("account")
        .limiter
        .clone();
    let without = snapshot("", &HashMap::new(), Some(&first));
    assert!(without.accounts.get("acct-1").is_none());
    assert!(without.accounts.knew("acct-1"), "retired, not forgotten");
    assert!(
        without
            .accounts
            .limiters()
            .any(|retired| Arc::ptr_eq(retired, &limiter)),
        "the idle sweep reaches a retired limiter"
    );
    let again = snapshot(ACCT, &HashMap::new(), Some(&without));
    let back = again.accounts.get("acct-1").expect("account");
    assert!(Arc::ptr_eq(&back.limiter, &limiter));
    assert_eq!(again.accounts.limiters().count(), 1, "each limiter once");
}

#[tokio::test]
async fn usage_follows_action_names_and_a_discarded_build_changes_nothing() {
    let actions = "[[actions]]\nname = \"a\"\npaths = [\"/a\"]\n[[actions]]\nname = \"b\"\npaths = [\"/b\"]\n";
    let reordered = "[[actions]]\nname = \"b\"\npaths = [\"/b\"]\n[[actions]]\nname = \"a\"\npaths = [\"/a\"]\n";
    let first = snapshot(&format!("{actions}{ACCT}"), &HashMap::new(), None);
    let account = first.accounts.get("acct-1").expect("account");
    let policy = account.settings.load().policy.clone();
    let clock = crate::policy::limit::clock::Clock::system();
    let b = first.classifier.id("b").expect("b");
    let actions_b: crate::policy::classify::ActionSet = [b].into_iter().collect();
    for _ in 0..3 {
        drop(
            account
                .limiter
                .admit(&policy, &actions_b, &clock)
                .await
                .expect("admitted"),
        );
    }
    // A reload builds (and here throws away) a snapshot with the actions
    // in another order: the running one must not see its counts move.
    drop(snapshot(
        &format!("{reordered}{ACCT}"),
        &HashMap::new(),
        Some(&first),
    ));
    let (usage, _) = account.limiter.usage(&policy, &clock);
    assert_eq!((usage.count(Some("a")), usage.count(Some("b"))), (0, 3));
}
