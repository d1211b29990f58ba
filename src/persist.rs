//! Keeps usage durable (SPEC section 9; the scheme is in `limit::journal`):
//! restores it from the store at start-up, flushes changed accounts every
//! second and at once when one nears its headroom, and writes a last,
//! sealed snapshot at shutdown. Store writes run on the blocking pool, never
//! on a request's path.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::store::StoreError;

/// How often changed usage is written even when no account is near its
/// headroom.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Restores every account's usage, then makes it durable again at once, so
/// that no account is admitted anything before it has a durable record.
pub fn restore(app: &App) -> Result<(), StoreError> {
    let records = app.store.load_usage()?;
    let runtime = app.runtime.load();
    for account in runtime.accounts.iter() {
        if let Some(record) = records.get(&*account.id) {
            let policy = &account.settings.load().policy;
            account
                .limiter
                .restore(record, policy, &runtime.classifier, &app.clock);
        }
    }
    flush(app, true).map(|_| ())
}

/// Writes the usage of accounts that changed (or of all, `always`) in one
/// transaction; returns how many were written.
pub fn flush(app: &App, always: bool) -> Result<usize, StoreError> {
    let runtime = app.runtime.load();
    let pending: Vec<_> = runtime
        .accounts
        .iter()
        .filter_map(|account| {
            let (record, mark) = account.limiter.snapshot(&runtime.classifier, always)?;
            Some((account, record, mark))
        })
        .collect();
    if pending.is_empty() {
        return Ok(0);
    }
    app.store.save_usage(
        pending
            .iter()
            .map(|(account, record, _)| (&*account.id, record)),
    )?;
    for (account, _, mark) in &pending {
        account.limiter.durable(*mark);
    }
    Ok(pending.len())
}

/// Flushes until the task is aborted.
pub async fn run(app: Arc<App>) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = app.flush.notified() => {}
        }
        let app = app.clone();
        match tokio::task::spawn_blocking(move || flush(&app, false)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => tracing::error!(%err, "usage not persisted; will retry"),
            Err(err) => tracing::error!(%err, "usage flush task failed"),
        }
    }
}

/// The last snapshot: every account sealed (nothing more is admitted) and
/// written with no headroom, so a clean restart restores exact counts.
pub fn close(app: &App) -> Result<(), StoreError> {
    for account in app.runtime.load().accounts.iter() {
        account.limiter.seal();
    }
    flush(app, true).map(|_| ())
}
