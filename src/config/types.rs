//! Domain value types of the config: [`Secret`] (masked), [`CountryCode`],
//! [`DayReset`] (daily-cap reset arithmetic) and duration strings.
//!
//! Each type parses from the text a user writes and knows nothing about
//! TOML, so the admin API can reuse them on JSON input. Upstream proxy URLs
//! live in the sibling module `upstream_url`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use subtle::ConstantTimeEq;

/// A credential (account secret, admin API key, proxy password).
///
/// `Debug` and `Display` print `***`, so a secret cannot leak into a log
/// line or an API answer by formatting. Equality is constant-time.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear text, for the few places that must send it (an upstream
    /// proxy's credentials). Never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a candidate presented by a client.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(candidate).into()
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why `id` cannot name an account, if it cannot. An id is the user part
/// of Basic credentials (`id:secret`), an RFC 1929 user name (at most 255
/// bytes) and one percent-encoded segment of an admin path: non-empty, no
/// `:`, no control characters.
pub fn account_id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        Some("account id must not be empty".into())
    } else if id.len() > 255 {
        Some(format!("account id is {} bytes; at most 255", id.len()))
    } else if id.contains(':') {
        Some(format!("account id `{id}` must not contain `:`"))
    } else if id.chars().any(char::is_control) {
        Some(format!(
            "account id {:?} must not contain control characters",
            id
        ))
    } else {
        None
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An ISO 3166-1 alpha-2 country code, stored upper-case (`"us"` parses as
/// `US`). Only officially assigned codes are accepted (`GB`, not `UK`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// The code as a two-letter upper-case string.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl FromStr for CountryCode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.to_ascii_uppercase();
        let bytes = upper.as_bytes();
        let invalid = || format!("`{s}` is not an ISO 3166-1 alpha-2 country code");
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(invalid());
        }
        isocountry::CountryCode::for_alpha2(&upper).map_err(|_| invalid())?;
        Ok(CountryCode([bytes[0], bytes[1]]))
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

const DAY_SECS: i64 = 86_400;
/// Offsets in use worldwide run from UTC-12:00 to UTC+14:00.
const MIN_OFFSET_MINUTES: i32 = -12 * 60;
const MAX_OFFSET_MINUTES: i32 = 14 * 60;

/// When daily caps reset: a local time of day at a fixed UTC offset,
/// written `HH:MM+HH:MM` or `HH:MM-HH:MM` (default `00:00+00:00`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayReset {
    /// Minutes after local midnight, 0..1440.
    pub minute_of_day: u16,
    /// Offset of local time from UTC in minutes, -720..=840.
    pub offset_minutes: i16,
}

impl DayReset {
    /// Unix time of the last reset at or before `unix_secs`: the start of
    /// the "day" that `unix_secs` belongs to.
    pub fn day_start(&self, unix_secs: i64) -> i64 {
        let shift = i64::from(self.offset_minutes) * 60 - i64::from(self.minute_of_day) * 60;
        let day = (unix_secs + shift).div_euclid(DAY_SECS);
        day * DAY_SECS - shift
    }

    /// Unix time of the first reset strictly after `unix_secs`.
    pub fn next_reset_after(&self, unix_secs: i64) -> i64 {
        self.day_start(unix_secs) + DAY_SECS
    }
}

impl FromStr for DayReset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let invalid =
            || format!("invalid day_resets_at `{s}`: expected HH:MM+HH:MM or HH:MM-HH:MM");
        let sign_at = s.find(['+', '-']).ok_or_else(invalid)?;
        let (time, offset) = s.split_at(sign_at);
        let (h, m) = parse_hh_mm(time).ok_or_else(invalid)?;
        let (oh, om) = parse_hh_mm(&offset[1..]).ok_or_else(invalid)?;
        if h > 23 || m > 59 || om > 59 {
            return Err(invalid());
        }
        let magnitude = i32::from(oh) * 60 + i32::from(om);
        let offset = if offset.starts_with('-') {
            -magnitude
        } else {
            magnitude
        };
        if !(MIN_OFFSET_MINUTES..=MAX_OFFSET_MINUTES).contains(&offset) {
            return Err(format!(
                "day_resets_at `{s}`: UTC offset must be between -12:00 and +14:00"
            ));
        }
        Ok(DayReset {
            minute_of_day: u16::from(h) * 60 + u16::from(m),
            offset_minutes: offset as i16,
        })
    }
}

/// Parses exactly `HH:MM` (two digits each) into (hours, minutes).
fn parse_hh_mm(s: &str) -> Option<(u8, u8)> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let two = |x: &[u8]| -> Option<u8> {
        x.iter()
            .all(u8::is_ascii_digit)
            .then(|| (x[0] - b'0') * 10 + (x[1] - b'0'))
    };
    Some((two(&b[0..2])?, two(&b[3..5])?))
}

impl fmt::Display for DayReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.offset_minutes < 0 { '-' } else { '+' };
        let off = self.offset_minutes.unsigned_abs();
        let (h, m) = (self.minute_of_day / 60, self.minute_of_day % 60);
        write!(f, "{h:02}:{m:02}{sign}{:02}:{:02}", off / 60, off % 60)
    }
}

/// Parses a duration written with a unit: `"500ms"`, `"10s"`, `"5m"`,
/// `"2h"`, `"1d"` (humantime syntax, so `"1h 30m"` works too; note that
/// `M` is months). A bare number such as `"10"` is an error.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err("empty duration: write a number with a unit, e.g. \"10s\"".into());
    }
    if trimmed.starts_with('-') {
        return Err(format!("duration `{s}` must not be negative"));
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("duration `{s}` needs a unit, e.g. \"{trimmed}s\""));
    }
    humantime::parse_duration(trimmed).map_err(|e| format!("invalid duration `{s}`: {e}"))
}

/// One entry of `[server] deny_destinations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DenyRule {
    /// Addresses in this network.
    Net(ipnet::IpNet),
    /// Host names matching this glob.
    Host(String),
}

impl DenyRule {
    /// The default list: the link-local ranges (cloud metadata services).
    pub fn link_local() -> Vec<DenyRule> {
        let v4 = ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
            std::net::Ipv4Addr::new(169, 254, 0, 0),
            16,
        ));
        let v6 = ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
            std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
        ));
        vec![DenyRule::Net(v4), DenyRule::Net(v6)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_masked() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert!(s.matches(b"hunter2"));
        assert!(!s.matches(b"hunter3"));
        assert!(!s.matches(b"hunter"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn country_codes() {
        assert_eq!("US".parse::<CountryCode>().unwrap().as_str(), "US");
        assert_eq!("de".parse::<CountryCode>().unwrap().to_string(), "DE");
        for bad in ["UK", "XX", "USA", "", "1A", "U"] {
            assert!(bad.parse::<CountryCode>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let ok = [
            ("500ms", Duration::from_millis(500)),
            ("10s", Duration::from_secs(10)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7200)),
            ("1d", Duration::from_secs(86_400)),
            ("0s", Duration::ZERO),
            ("1h 30m", Duration::from_secs(5400)),
        ];
        for (text, want) in ok {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("1.5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("-1s").unwrap_err().contains("negative"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10 parsecs").is_err());
    }

    fn reset(s: &str) -> DayReset {
        s.parse().unwrap()
    }

    // 2026-01-01T00:00:00Z
    const JAN1: i64 = 1_767_225_600;

    #[test]
    fn day_reset_utc_midnight() {
        let r = DayReset::default();
        assert_eq!(r.to_string(), "00:00+00:00");
        assert_eq!(r.day_start(JAN1), JAN1);
        assert_eq!(r.next_reset_after(JAN1), JAN1 + DAY_SECS);
        assert_eq!(r.day_start(JAN1 + 3600), JAN1);
        assert_eq!(r.day_start(JAN1 - 1), JAN1 - DAY_SECS);
    }

    #[test]
    fn day_reset_positive_offset() {
        // 04:00 at UTC+2 is 02:00 UTC.
        let r = reset("04:00+02:00");
        assert_eq!(r.to_string(), "04:00+02:00");
        let at_reset = JAN1 + 2 * 3600;
        assert_eq!(r.day_start(at_reset), at_reset);
        assert_eq!(r.next_reset_after(at_reset), at_reset + DAY_SECS);
        assert_eq!(r.day_start(at_reset - 1), at_reset - DAY_SECS);
        assert_eq!(r.next_reset_after(at_reset - 1), at_reset);
        assert_eq!(r.next_reset_after(JAN1), at_reset);
    }

    #[test]
    fn day_reset_negative_offset() {
        // 23:30 at UTC-5 is 04:30 UTC the next calendar day.
        let r = reset("23:30-05:00");
        assert_eq!(r.to_string(), "23:30-05:00");
        let at_reset = JAN1 + 4 * 3600 + 30 * 60;
        assert_eq!(r.next_reset_after(JAN1), at_reset);
        assert_eq!(r.day_start(JAN1), at_reset - DAY_SECS);
        assert_eq!(r.day_start(at_reset + 10), at_reset);
        assert_eq!(r.next_reset_after(at_reset), at_reset + DAY_SECS);
    }

    #[test]
    fn day_reset_before_epoch_and_half_hour_offset() {
        let r = reset("00:00+05:30");
        // Local midnight at UTC+5:30 is 18:30 UTC the day before.
        assert_eq!(r.next_reset_after(0), 18 * 3600 + 30 * 60);
        assert_eq!(r.day_start(-1), 18 * 3600 + 30 * 60 - DAY_SECS);
        assert_eq!(
            r.day_start(18 * 3600 + 30 * 60 - DAY_SECS - 1),
            18 * 3600 + 30 * 60 - 2 * DAY_SECS
        );
    }

    #[test]
    fn day_reset_rejects_bad_text() {
        for bad in [
            "",
            "00:00",
            "24:00+00:00",
            "00:60+00:00",
            "0:00+00:00",
            "00:00+15:00",
            "00:00-13:00",
            "00:00+01:60",
            "00:00*01:00",
            "aa:bb+00:00",
            "00:00+0100",
        ] {
            assert!(bad.parse::<DayReset>().is_err(), "{bad}");
        }
        assert_eq!(reset("12:00-12:00").offset_minutes, -720);
        assert_eq!(reset("12:00+14:00").offset_minutes, 840);
    }
}
