//! The limit-key grammar of SPEC section 2, shared by the config file and
//! the admin API (where keys arrive as JSON strings), so it knows nothing
//! about TOML.
//!
//! For an action `A` (defined under `[[actions]]`, or the built-in `all`):
//! `A_per_second|minute|hour`, `A_per_<n><s|m|h>`, `A_daily_cap`, bare `A`,
//! plus the action-free keys `account_protection_seconds`,
//! `concurrent_limit`, `batch` and `batch_hours`.
//!
//! Parsing order, which makes the grammar unambiguous together with
//! [`check_action_name`]: the four action-free keys; `…_daily_cap`; a bare
//! known action; then `A_per_<window>` split at the *last* `_per_`, so
//! action names may contain underscores and even `_per_`
//! (`send_message_per_minute` is `send_message` per minute).

use std::fmt;
use std::time::Duration;

/// The built-in action every request or tunnel belongs to.
pub const ALL_ACTION: &str = "all";

const PROTECTION_GAP: &str = "account_protection_seconds";
const CONCURRENT_LIMIT: &str = "concurrent_limit";
const BATCH: &str = "batch";
const BATCH_HOURS: &str = "batch_hours";
const DAILY_CAP_SUFFIX: &str = "_daily_cap";
/// `batch_hours` ceiling (one year), so the pause always fits a `Duration`.
const MAX_BATCH_HOURS: f64 = 8760.0;

/// A parsed limit key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// At most N in every rolling window of this length.
    Rolling { action: String, window: Duration },
    /// At most N per calendar day (`A_daily_cap` or bare `A`).
    DailyCap { action: String },
    /// `account_protection_seconds`: a gap between two limited actions.
    ProtectionGap,
    /// `concurrent_limit`: requests or tunnels in flight.
    ConcurrentLimit,
    /// `batch`: limited actions per batch.
    Batch,
    /// `batch_hours`: the pause after a full batch.
    BatchHours,
}

/// A limit value as it arrives from a file or a JSON body.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LimitNumber {
    Int(i64),
    Float(f64),
}

/// A validated limit value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LimitValue {
    /// A positive count (or seconds, for `account_protection_seconds`).
    Count(u64),
    /// Positive hours, possibly fractional; only for `batch_hours`.
    Hours(f64),
}

/// One limit of a policy or of an account type's `max` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub key: LimitKey,
    /// The key as written (`send_message` rather than the canonical
    /// `send_message_daily_cap`).
    pub raw_key: String,
    pub value: LimitValue,
}

/// Why a limit key or value was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LimitKeyError {
    #[error("unknown action `{action}` in limit key `{key}`")]
    UnknownAction { action: String, key: String },
    #[error("unknown suffix `{suffix}` in `{key}` (expected per_second, per_minute, per_hour, per_<n><s|m|h> or daily_cap)")]
    UnknownSuffix { suffix: String, key: String },
    #[error("zero-length window `{suffix}` in `{key}`")]
    ZeroWindow { suffix: String, key: String },
    #[error("window `{suffix}` in `{key}` is longer than pacer can count (at most {}h)", MAX_WINDOW.as_secs() / 3600)]
    WindowTooLong { suffix: String, key: String },
    #[error(
        "unknown limit key `{key}`: no action `{key}` is defined and it is not a built-in key"
    )]
    UnknownKey { key: String },
    #[error("`{key}` must be a positive integer, got {got}")]
    NotPositiveInteger { key: String, got: String },
    #[error("`{key}` must be a positive number of hours up to 8760, got {got}")]
    NotPositiveHours { key: String, got: String },
}

impl LimitKey {
    /// Parses a key against the defined action names (`all` is implicit).
    pub fn parse<A: AsRef<str>>(key: &str, known_actions: &[A]) -> Result<LimitKey, LimitKeyError> {
        if let Some(fixed) = action_free(key) {
            return Ok(fixed);
        }
        let known = |a: &str| a == ALL_ACTION || known_actions.iter().any(|k| k.as_ref() == a);
        if let Some(action) = key.strip_suffix(DAILY_CAP_SUFFIX) {
            if !known(action) {
                return Err(unknown_action(action, key));
            }
            return Ok(LimitKey::DailyCap {
                action: action.into(),
            });
        }
        if known(key) {
            return Ok(LimitKey::DailyCap { action: key.into() });
        }
        let Some(at) = key.rfind("_per_") else {
            return Err(LimitKeyError::UnknownKey { key: key.into() });
        };
        let (action, suffix) = (&key[..at], &key[at + 1..]);
        if !known(action) {
            return Err(unknown_action(action, key));
        }
        match window_of(&suffix["per_".len()..]) {
            Ok(window) => Ok(LimitKey::Rolling {
                action: action.into(),
                window,
            }),
            Err(WindowError::Zero) => Err(LimitKeyError::ZeroWindow {
                suffix: suffix.into(),
                key: key.into(),
            }),
            Err(WindowError::TooLong) => Err(LimitKeyError::WindowTooLong {
                suffix: suffix.into(),
                key: key.into(),
            }),
            Err(WindowError::Unknown) => Err(LimitKeyError::UnknownSuffix {
                suffix: suffix.into(),
                key: key.into(),
            }),
        }
    }

    /// The action this key limits, if any.
    pub fn action(&self) -> Option<&str> {
        match self {
            LimitKey::Rolling { action, .. } | LimitKey::DailyCap { action } => Some(action),
            _ => None,
        }
    }

    /// Checks a value for this key: a positive integer, or for
    /// `batch_hours` a positive (possibly fractional) number of hours.
    /// Errors name the canonical key.
    pub fn value(&self, raw: LimitNumber) -> Result<LimitValue, LimitKeyError> {
        self.value_named(raw, &self.to_string())
    }

    fn value_named(&self, raw: LimitNumber, key: &str) -> Result<LimitValue, LimitKeyError> {
        let got = match raw {
            LimitNumber::Int(i) => i.to_string(),
            LimitNumber::Float(f) => f.to_string(),
        };
        let key = key.to_string();
        match (self, raw) {
            (LimitKey::BatchHours, LimitNumber::Int(i))
                if i > 0 && (i as f64) <= MAX_BATCH_HOURS =>
            {
                Ok(LimitValue::Hours(i as f64))
            }
            (LimitKey::BatchHours, LimitNumber::Float(f)) if f > 0.0 && f <= MAX_BATCH_HOURS => {
                Ok(LimitValue::Hours(f))
            }
            (LimitKey::BatchHours, _) => Err(LimitKeyError::NotPositiveHours { key, got }),
            (_, LimitNumber::Int(i)) if i > 0 => Ok(LimitValue::Count(i as u64)),
            _ => Err(LimitKeyError::NotPositiveInteger { key, got }),
        }
    }
}

impl Limit {
    /// Parses a key and its value together (the admin API's entry point);
    /// errors name the key as written.
    pub fn parse<A: AsRef<str>>(
        raw_key: &str,
        raw: LimitNumber,
        known_actions: &[A],
    ) -> Result<Limit, LimitKeyError> {
        let key = LimitKey::parse(raw_key, known_actions)?;
        let value = key.value_named(raw, raw_key)?;
        Ok(Limit {
            key,
            raw_key: raw_key.into(),
            value,
        })
    }
}

impl LimitValue {
    /// The count, for every key but `batch_hours`.
    pub fn count(&self) -> Option<u64> {
        match self {
            LimitValue::Count(n) => Some(*n),
            LimitValue::Hours(_) => None,
        }
    }

    /// The pause, for `batch_hours`.
    pub fn hours(&self) -> Option<Duration> {
        match self {
            LimitValue::Hours(h) => Duration::try_from_secs_f64(h * 3600.0).ok(),
            LimitValue::Count(_) => None,
        }
    }
}

impl fmt::Display for LimitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitValue::Count(n) => write!(f, "{n}"),
            LimitValue::Hours(h) => write!(f, "{h}"),
        }
    }
}

/// Canonical key: `A_per_second|minute|hour`, else `A_per_<n>h|m|s` in the
/// largest whole unit; `A_daily_cap`; the action-free keys as written.
impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitKey::Rolling { action, window } => {
                write!(f, "{action}_per_{}", window_name(*window))
            }
            LimitKey::DailyCap { action } => write!(f, "{action}{DAILY_CAP_SUFFIX}"),
            LimitKey::ProtectionGap => f.write_str(PROTECTION_GAP),
            LimitKey::ConcurrentLimit => f.write_str(CONCURRENT_LIMIT),
            LimitKey::Batch => f.write_str(BATCH),
            LimitKey::BatchHours => f.write_str(BATCH_HOURS),
        }
    }
}

fn window_name(window: Duration) -> String {
    match window.as_secs() {
        1 => "second".into(),
        60 => "minute".into(),
        3600 => "hour".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Refuses action names that are reserved or would make limit keys
/// ambiguous: `all`, the action-free keys, names ending in `_daily_cap` or
/// in a valid `_per_<window>`. Names use letters, digits, `_` and `-`.
pub fn check_action_name(name: &str) -> Result<(), String> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || !name.chars().all(valid_char) {
        return Err(format!(
            "action name `{name}` must be non-empty letters, digits, `_` or `-`"
        ));
    }
    if name == ALL_ACTION {
        return Err(
            "action name `all` is reserved: it is the built-in action every request belongs to"
                .into(),
        );
    }
    if action_free(name).is_some() {
        return Err(format!(
            "action name `{name}` is reserved: it is a limit key"
        ));
    }
    let window_like = name.rfind("_per_").is_some_and(|at| {
        !matches!(
            window_of(&name[at + "_per_".len()..]),
            Err(WindowError::Unknown)
        )
    });
    if name.ends_with(DAILY_CAP_SUFFIX) || window_like {
        return Err(format!("action name `{name}` ends like a limit-key suffix, which would make limit keys ambiguous"));
    }
    Ok(())
}

fn action_free(key: &str) -> Option<LimitKey> {
    match key {
        PROTECTION_GAP => Some(LimitKey::ProtectionGap),
        CONCURRENT_LIMIT => Some(LimitKey::ConcurrentLimit),
        BATCH => Some(LimitKey::Batch),
        BATCH_HOURS => Some(LimitKey::BatchHours),
        _ => None,
    }
}

fn unknown_action(action: &str, key: &str) -> LimitKeyError {
    LimitKeyError::UnknownAction {
        action: action.into(),
        key: key.into(),
    }
}

enum WindowError {
    Unknown,
    Zero,
    TooLong,
}

/// The longest rolling window (and `guard`): 2^62 ns, about 146 years, so
/// that a window plus its guard, added to a time on the Unix base, is
/// always counted in nanoseconds without overflow.
pub const MAX_WINDOW: Duration = Duration::from_nanos(1 << 62);

/// `second|minute|hour|<n><s|m|h>` (the part after `per_`).
fn window_of(word: &str) -> Result<Duration, WindowError> {
    match word {
        "second" => return Ok(Duration::from_secs(1)),
        "minute" => return Ok(Duration::from_secs(60)),
        "hour" => return Ok(Duration::from_secs(3600)),
        _ => {}
    }
    let unit_secs = match word.as_bytes().last() {
        Some(b's') => 1,
        Some(b'm') => 60,
        Some(b'h') => 3600,
        _ => return Err(WindowError::Unknown),
    };
    let digits = &word[..word.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WindowError::Unknown);
    }
    let n: u64 = digits.parse().map_err(|_| WindowError::TooLong)?;
    match n.checked_mul(unit_secs) {
        Some(0) => Err(WindowError::Zero),
        Some(secs) if Duration::from_secs(secs) <= MAX_WINDOW => Ok(Duration::from_secs(secs)),
        Some(_) | None => Err(WindowError::TooLong),
    }
}

#[cfg(test)]
mod tests;
