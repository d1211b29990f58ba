//! Keeps usage durable (SPEC section 9; the scheme is in
//! [`crate::policy::limit::journal`]): restores it from the store when an
//! account appears (at start-up, or added by a reload), writes the usage of
//! accounts that changed, and writes a last, sealed snapshot at shutdown.
//! These are blocking store calls: callers run them off the request path.

use super::snapshot::Snapshot;
use super::store::{Store, StoreError};
use crate::policy::limit::clock::Clock;

/// Restores every account's usage, then makes it durable again at once, so
/// that no account is admitted anything before it has a durable record.
pub fn restore(store: &Store, snapshot: &Snapshot, clock: &Clock) -> Result<(), StoreError> {
    restore_where(store, snapshot, clock, |_| true)?;
    flush(store, snapshot, true).map(|_| ())
}

/// After a reload: accounts that `previous` never had (not even retired)
/// get their usage from the store, then a durable record, before their
/// first request.
pub fn restore_new(
    store: &Store,
    previous: &Snapshot,
    snapshot: &Snapshot,
    clock: &Clock,
) -> Result<(), StoreError> {
    let is_new = |id: &str| !previous.accounts.knew(id);
    restore_where(store, snapshot, clock, is_new)?;
    let fresh: Vec<_> = snapshot
        .accounts
        .iter()
        .filter(|a| is_new(&a.id))
        .filter_map(|a| {
            let (record, mark) = a.limiter.snapshot(true)?;
            Some((a.clone(), record, mark))
        })
        .collect();
    store.save_usage(fresh.iter().map(|(a, record, _)| (&*a.id, record)))?;
    for (account, _, mark) in fresh {
        account.limiter.durable(mark);
    }
    Ok(())
}

fn restore_where(
    store: &Store,
    snapshot: &Snapshot,
    clock: &Clock,
    wanted: impl Fn(&str) -> bool,
) -> Result<(), StoreError> {
    let records = store.load_usage()?;
    for account in snapshot.accounts.iter().filter(|a| wanted(&a.id)) {
        if let Some(record) = records.get(&*account.id) {
            let policy = &account.settings.load().policy;
            account.limiter.restore(record, policy, clock);
        }
    }
    Ok(())
}

/// Writes the usage of accounts that changed (or of all, `always`) in one
/// transaction; returns how many were written.
pub fn flush(store: &Store, snapshot: &Snapshot, always: bool) -> Result<usize, StoreError> {
    let pending: Vec<_> = snapshot
        .accounts
        .iter()
        .filter_map(|account| {
            let (record, mark) = account.limiter.snapshot(always)?;
            Some((account, record, mark))
        })
        .collect();
    if pending.is_empty() {
        return Ok(0);
    }
    store.save_usage(
        pending
            .iter()
            .map(|(account, record, _)| (&*account.id, record)),
    )?;
    for (account, _, mark) in &pending {
        account.limiter.durable(*mark);
    }
    Ok(pending.len())
}

/// The last snapshot: every account sealed (nothing more is admitted) and
/// written with no headroom, so a clean restart restores exact counts.
pub fn close(store: &Store, snapshot: &Snapshot) -> Result<(), StoreError> {
    for account in snapshot.accounts.iter() {
        account.limiter.seal();
    }
    flush(store, snapshot, true).map(|_| ())
}
