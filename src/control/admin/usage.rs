//! An account's usage as the admin API shows it: in fleet mode the
//! fleet's figures (every instance's admissions), else this instance's
//! limiter. Read once per answered account.

use crate::control::Control;
use crate::policy::limit::backoff::Pause;
use crate::policy::limit::usage::{BatchProgress, DailyUsage};
use crate::state::accounts::Account;

/// Today's counts, the batch, the fill of each rolling window (`None`: a
/// window kept as a token bucket, without a count) and the running
/// platform pauses.
#[derive(Debug, Clone)]
pub struct Usage {
    /// Today's counts by action.
    pub daily: DailyUsage,
    /// The running batch.
    pub batch: BatchProgress,
    /// Admissions in each of the policy's rolling windows, in its order.
    pub fill: Vec<Option<u64>>,
    /// Pauses running now.
    pub pauses: Vec<Pause>,
}

/// `account`'s usage: fleet-wide in fleet mode (this instance's own when
/// the fleet store cannot answer, logged), else this instance's.
pub async fn usage_of(app: &Control, account: &Account) -> Usage {
    let settings = account.settings.load();
    let policy = &settings.policy;
    let clock = &app.engine.clock;
    if let Some(fleet) = &app.fleet {
        match fleet.usage(&account.id, policy).await {
            Ok(shared) => {
                let now_ms = clock.unix_ms();
                let now_secs = now_ms.div_euclid(1000);
                let today = policy.day_reset.day_start(now_secs);
                return Usage {
                    daily: DailyUsage::from_record(&shared.record, today, now_secs),
                    batch: BatchProgress::from_record(
                        &shared.record,
                        policy.batch.as_ref(),
                        now_ms,
                    ),
                    fill: shared.fill.into_iter().map(Some).collect(),
                    pauses: shared
                        .pauses
                        .into_iter()
                        .filter(|p| p.until_ms > now_ms)
                        .collect(),
                };
            }
            Err(err) => {
                tracing::warn!(account = %account.id, %err, "fleet usage unavailable; showing this instance's");
            }
        }
    }
    let (daily, batch) = account.limiter.usage(policy, clock);
    Usage {
        daily,
        batch,
        fill: account.limiter.window_fill(policy, clock),
        pauses: account.limiter.pauses(clock),
    }
}
