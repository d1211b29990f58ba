//! One account's usage as the store keeps it (see [`super::journal`] for
//! why it may come back high after a crash, never low).

use serde::{Deserialize, Serialize};

use super::backoff::Pause;

/// One account's usage as persisted: a snapshot of its counters and the
/// headroom of admissions it may have made since (see [`super::journal`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Unix seconds at which the counted day began.
    pub day_start: i64,
    /// Requests today.
    pub all: u64,
    /// Requests today by action name.
    pub actions: Vec<(String, u64)>,
    /// Limited actions in the running batch.
    pub batch_current: u64,
    /// Wall-clock ms when the batch pause ends.
    pub batch_paused_until_ms: Option<i64>,
    /// Wall-clock ms when the last batch filled.
    pub batch_last_at_ms: Option<i64>,
    /// Admissions that may have happened after this snapshot (0 after a
    /// clean shutdown).
    pub headroom: u64,
    /// Paused actions (platform feedback), kept until they end.
    #[serde(default)]
    pub pauses: Vec<Pause>,
}
