//! Platform feedback (SPEC section 4): when an origin answers one of a
//! policy's backoff statuses, the actions that request matched (or `all`
//! when it matched none) are paused for the account, for the answer's
//! `Retry-After` (delta-seconds or an HTTP date, at most `max_pause`) or
//! `default_pause`. A later answer extends a pause, never shortens it.
//! Pauses are on wall-clock time: they outlive a restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Backoff, ALL_ACTION};

/// How long the origin's answer pauses the account: its `Retry-After`
/// (seconds, or an HTTP date relative to `now`), at most `max_pause`;
/// `default_pause` when there is none or it cannot be read.
pub fn pause_for(rule: &Backoff, retry_after: Option<&[u8]>, now: SystemTime) -> Duration {
    let asked = retry_after
        .and_then(|value| std::str::from_utf8(value).ok())
        .map(str::trim)
        .and_then(|text| retry_after_value(text, now));
    asked.unwrap_or(rule.default_pause).min(rule.max_pause)
}

fn retry_after_value(text: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// One paused action of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// The paused action's name (`all` when the answer matched none).
    pub action: String,
    /// Wall-clock ms when the pause began.
    pub since_ms: i64,
    /// Wall-clock ms when it ends.
    pub until_ms: i64,
    /// The origin status that started (or last extended) it.
    pub status: u16,
}

impl Pause {
    /// Whether it applies to a request that matched `names` (every request
    /// matches `all`).
    pub fn holds(&self, names: &[&str]) -> bool {
        self.action == ALL_ACTION || names.contains(&self.action.as_str())
    }

    /// Time left at `now_ms`, if any.
    pub fn left(&self, now_ms: i64) -> Option<Duration> {
        let left = u64::try_from(self.until_ms - now_ms)
            .ok()
            .filter(|ms| *ms > 0)?;
        Some(Duration::from_millis(left))
    }

    /// The whole pause.
    pub fn length(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.until_ms - self.since_ms).unwrap_or(0))
    }
}

/// An account's pauses.
#[derive(Debug, Clone, Default)]
pub struct Pauses(Vec<Pause>);

impl Pauses {
    /// The pauses as persisted or restored.
    pub fn from_list(list: Vec<Pause>) -> Self {
        Pauses(list)
    }

    /// Every pause still running at `now_ms`.
    pub fn running(&self, now_ms: i64) -> impl Iterator<Item = &Pause> {
        self.0.iter().filter(move |p| p.until_ms > now_ms)
    }

    /// The running pause that holds a request which matched `names`, the
    /// one ending last.
    pub fn holding(&self, names: &[&str], now_ms: i64) -> Option<&Pause> {
        self.running(now_ms)
            .filter(|p| p.holds(names))
            .max_by_key(|p| p.until_ms)
    }

    /// Pauses `action` until `until_ms` after `status`; an earlier end
    /// never replaces a later one. True when a pause started (none was
    /// running).
    pub fn extend(&mut self, action: &Arc<str>, status: u16, now_ms: i64, until_ms: i64) -> bool {
        self.0.retain(|p| p.until_ms > now_ms);
        match self.0.iter_mut().find(|p| *p.action == **action) {
            Some(running) => {
                if until_ms > running.until_ms {
                    running.until_ms = until_ms;
                    running.status = status;
                }
                false
            }
            None => {
                self.0.push(Pause {
                    action: action.to_string(),
                    since_ms: now_ms,
                    until_ms,
                    status,
                });
                true
            }
        }
    }

    /// The pauses to persist.
    pub fn to_list(&self) -> Vec<Pause> {
        self.0.clone()
    }
}

/// Unix milliseconds of `at`.
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Backoff = Backoff {
        statuses: Vec::new(),
        default_pause: Duration::from_secs(60),
        max_pause: Duration::from_secs(3600),
    };

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_seconds_dates_default_and_cap() {
        let now = at(1_795_305_600);
        let pause = |value: Option<&str>| pause_for(&RULE, value.map(str::as_bytes), now);
        assert_eq!(pause(Some("2")), Duration::from_secs(2));
        assert_eq!(pause(None), Duration::from_secs(60), "no header");
        assert_eq!(pause(Some("soon")), Duration::from_secs(60), "unreadable");
        assert_eq!(pause(Some("999999")), Duration::from_secs(3600), "capped");
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(pause(Some(&date)), Duration::from_secs(90));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(pause(Some(&past)), Duration::ZERO);
    }

    #[test]
    fn a_later_answer_extends_and_never_shortens() {
        let send: Arc<str> = Arc::from("send");
        let mut pauses = Pauses::default();
        assert!(pauses.extend(&send, 429, 0, 10_000), "a pause starts");
        assert!(!pauses.extend(&send, 999, 5_000, 8_000), "shorter: kept");
        assert_eq!(
            pauses.running(5_000).next().map(|p| (p.until_ms, p.status)),
            Some((10_000, 429))
        );
        assert!(!pauses.extend(&send, 999, 5_000, 20_000));
        assert_eq!(
            pauses.running(5_000).next().map(|p| (p.until_ms, p.status)),
            Some((20_000, 999))
        );
        assert_eq!(pauses.running(20_000).count(), 0, "over");
        assert!(pauses.extend(&send, 429, 30_000, 31_000), "a new pause");
    }

    #[test]
    fn a_pause_holds_its_action_and_all_holds_everything() {
        let pause = |action: &str| Pause {
            action: action.to_owned(),
            since_ms: 0,
            until_ms: 1000,
            status: 429,
        };
        assert!(pause("send").holds(&["view", "send"]));
        assert!(!pause("send").holds(&["view"]));
        assert!(pause(ALL_ACTION).holds(&[]));
        assert_eq!(pause("send").length(), Duration::from_secs(1));
    }
}
