//! Usage that belongs to the account, not the policy (SPEC section 2): the
//! day's count per action (and `all`), kept whether or not a cap is in
//! force so that a cap added later applies to today's count; and the
//! running batch. Both are on wall-clock time, since they outlive a
//! restart (the store persists them). Counts are keyed by action name, so
//! they follow an action whatever its position in `[[actions]]`.

use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use super::policy::BatchRule;
use super::record::UsageRecord;
use crate::config::DayReset;
use crate::policy::classify::ActionSet;

/// Today's counts.
#[derive(Debug, Default, Clone)]
pub struct DailyUsage {
    /// Unix seconds at which the counted day began.
    day_start: i64,
    all: u64,
    by_action: SmallVec<[(Arc<str>, u64); 4]>,
    /// Added to every count: admissions that may have happened after the
    /// snapshot restored at start-up (see `journal`).
    floor: u64,
}

impl DailyUsage {
    /// Starts a new day when `now_secs` is past the counted one. A changed
    /// `day_resets_at` moves the day's start while the counted day is still
    /// running: its usage is kept in the new day (when each admission
    /// happened is not known, so none is dropped; never lower).
    pub fn roll(&mut self, reset: &DayReset, now_secs: i64) {
        let day_start = reset.day_start(now_secs);
        if day_start == self.day_start {
            return;
        }
        if still_running(self.day_start, now_secs) {
            self.day_start = day_start;
        } else {
            *self = DailyUsage {
                day_start,
                ..DailyUsage::default()
            };
        }
    }

    /// The day being counted (Unix seconds of its start).
    pub fn day_start(&self) -> i64 {
        self.day_start
    }

    /// Today's count of the action named `action`, or of every request
    /// (`None`).
    pub fn count(&self, action: Option<&str>) -> u64 {
        let counted = match action {
            None => self.all,
            Some(name) => self
                .by_action
                .iter()
                .find(|(a, _)| &**a == name)
                .map_or(0, |(_, n)| *n),
        };
        counted + self.floor
    }

    /// The counts as persisted, actions by name.
    pub fn to_record(&self, record: &mut UsageRecord) {
        record.day_start = self.day_start;
        record.all = self.all + self.floor;
        record.actions = self
            .by_action
            .iter()
            .map(|(name, n)| (name.to_string(), n + self.floor))
            .collect();
    }

    /// Today's counts from a persisted record, plus its headroom on every
    /// count: the record's counts if its day is today's, or is still
    /// running (`day_resets_at` changed since).
    pub fn from_record(record: &UsageRecord, today_start: i64, now_secs: i64) -> Self {
        let mut usage = DailyUsage {
            day_start: today_start,
            floor: record.headroom,
            ..DailyUsage::default()
        };
        if record.day_start == today_start || still_running(record.day_start, now_secs) {
            usage.all = record.all;
            usage.by_action = record
                .actions
                .iter()
                .map(|(name, n)| (Arc::from(name.as_str()), *n))
                .collect();
        }
        usage
    }

    /// Counts one request with these actions (`names` maps an action id
    /// to its name).
    pub fn record(&mut self, actions: &ActionSet, names: &[Arc<str>]) {
        self.all += 1;
        for name in actions.iter().filter_map(|id| names.get(usize::from(id.0))) {
            match self.by_action.iter_mut().find(|(a, _)| a == name) {
                Some((_, n)) => *n += 1,
                None => self.by_action.push((name.clone(), 1)),
            }
        }
    }

    /// Takes back one request with these actions, if still the same day.
    pub fn give_back(&mut self, day_start: i64, actions: &ActionSet, names: &[Arc<str>]) {
        if day_start != self.day_start {
            return;
        }
        self.all = self.all.saturating_sub(1);
        for name in actions.iter().filter_map(|id| names.get(usize::from(id.0))) {
            if let Some((_, n)) = self.by_action.iter_mut().find(|(a, _)| a == name) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Whether the day that began at `day_start` (Unix seconds) is still
/// running at `now_secs`: a day is 24 hours, since `day_resets_at` is a
/// time with a fixed UTC offset.
fn still_running(day_start: i64, now_secs: i64) -> bool {
    (day_start..day_start.saturating_add(86_400)).contains(&now_secs)
}

/// The running batch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchProgress {
    /// Limited actions in the running batch (equal to the batch size during
    /// a pause).
    pub current: u64,
    /// Wall-clock ms when the pause ends, while paused.
    pub paused_until_ms: Option<i64>,
    /// Wall-clock ms when the last batch filled.
    pub last_batch_at_ms: Option<i64>,
    /// Which batch is running (bumped when a pause ends).
    sequence: u64,
}

/// What one admission did to the batch, to take it back.
#[derive(Debug, Clone, Copy)]
pub struct BatchUndo {
    sequence: u64,
    filled: bool,
    last_batch_at_before: Option<i64>,
}

impl BatchProgress {
    /// The batch as persisted.
    pub fn to_record(&self, record: &mut UsageRecord) {
        record.batch_current = self.current;
        record.batch_paused_until_ms = self.paused_until_ms;
        record.batch_last_at_ms = self.last_batch_at_ms;
    }

    /// The batch from a persisted record, its headroom added; a batch that
    /// may have filled after the snapshot is taken as full, its pause
    /// starting now.
    pub fn from_record(record: &UsageRecord, rule: Option<&BatchRule>, now_ms: i64) -> Self {
        let mut batch = BatchProgress {
            current: record.batch_current.saturating_add(record.headroom),
            paused_until_ms: record.batch_paused_until_ms,
            last_batch_at_ms: record.batch_last_at_ms,
            sequence: 0,
        };
        if let Some(rule) = rule {
            batch.fit(rule, now_ms);
        }
        batch
    }

    /// Keeps `current` within the batch size (which may have been lowered
    /// below it, or restored with headroom): a batch at or past its size is
    /// full, its pause starting now if none runs.
    pub fn fit(&mut self, rule: &BatchRule, now_ms: i64) {
        if self.current < rule.size {
            return;
        }
        if self.paused_until_ms.is_none() {
            self.current = rule.size - 1;
            self.record(rule, now_ms);
        }
        self.current = rule.size;
    }

    /// Ends a pause that is over: the next batch starts at 0.
    pub fn roll(&mut self, now_ms: i64) {
        if self.paused_until_ms.is_some_and(|until| until <= now_ms) {
            self.current = 0;
            self.paused_until_ms = None;
            self.sequence += 1;
        }
    }

    /// How long until the pause ends, if paused.
    pub fn pause_left(&self, now_ms: i64) -> Option<Duration> {
        let until = self.paused_until_ms?;
        let left = u64::try_from(until - now_ms).ok().filter(|ms| *ms > 0)?;
        Some(Duration::from_millis(left))
    }

    /// Counts one limited action; a full batch starts the pause.
    pub fn record(&mut self, rule: &BatchRule, now_ms: i64) -> BatchUndo {
        let undo = BatchUndo {
            sequence: self.sequence,
            filled: false,
            last_batch_at_before: self.last_batch_at_ms,
        };
        self.current += 1;
        if self.current < rule.size {
            return undo;
        }
        let pause = i64::try_from(rule.pause.as_millis()).unwrap_or(i64::MAX);
        self.paused_until_ms = Some(now_ms.saturating_add(pause));
        self.last_batch_at_ms = Some(now_ms);
        BatchUndo {
            filled: true,
            ..undo
        }
    }

    /// Takes back one limited action of the same batch. The admission that
    /// filled the batch also lifts the pause it started; any other leaves a
    /// pause alone (the batch is full either way).
    pub fn give_back(&mut self, undo: BatchUndo) {
        if undo.sequence != self.sequence {
            return;
        }
        if undo.filled {
            self.paused_until_ms = None;
            self.last_batch_at_ms = undo.last_batch_at_before;
        }
        if self.paused_until_ms.is_none() {
            self.current = self.current.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: BatchRule = BatchRule {
        size: 2,
        pause: Duration::from_secs(3600),
    };

    #[test]
    fn a_full_batch_pauses_and_the_next_starts_at_zero() {
        let mut batch = BatchProgress::default();
        batch.record(&RULE, 0);
        assert_eq!(batch.pause_left(0), None);
        batch.record(&RULE, 10);
        assert_eq!(batch.current, 2);
        assert_eq!(batch.last_batch_at_ms, Some(10));
        assert_eq!(batch.pause_left(10), Some(Duration::from_secs(3600)));
        batch.roll(3_600_009);
        assert_eq!(batch.current, 2, "still paused");
        batch.roll(3_600_010);
        assert_eq!((batch.current, batch.paused_until_ms), (0, None));
    }

    #[test]
    fn giving_back_the_filling_action_lifts_the_pause() {
        let mut batch = BatchProgress::default();
        let first = batch.record(&RULE, 0);
        let filling = batch.record(&RULE, 5);
        batch.give_back(first);
        assert_eq!(batch.current, 2, "a pause started by another stays");
        batch.give_back(filling);
        assert_eq!(batch.current, 1);
        assert_eq!(
            (batch.paused_until_ms, batch.last_batch_at_ms),
            (None, None)
        );
    }
}
