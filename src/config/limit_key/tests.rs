//! The limit-key grammar, exhaustively by table.

use super::*;

const ACTIONS: &[&str] = &[
    "send_message",
    "login",
    "x",
    "msg_per_user",
    "sales-nav",
    "send",
];

fn rolling(action: &str, secs: u64) -> Result<LimitKey, LimitKeyError> {
    Ok(LimitKey::Rolling {
        action: action.into(),
        window: Duration::from_secs(secs),
    })
}

fn daily(action: &str) -> Result<LimitKey, LimitKeyError> {
    Ok(LimitKey::DailyCap {
        action: action.into(),
    })
}

#[test]
fn grammar_table() {
    let table: &[(&str, Result<LimitKey, LimitKeyError>, &str)] = &[
        (
            "send_message_per_second",
            rolling("send_message", 1),
            "send_message_per_second",
        ),
        (
            "send_message_per_minute",
            rolling("send_message", 60),
            "send_message_per_minute",
        ),
        (
            "send_message_per_hour",
            rolling("send_message", 3600),
            "send_message_per_hour",
        ),
        ("login_per_5m", rolling("login", 300), "login_per_5m"),
        ("x_per_90s", rolling("x", 90), "x_per_90s"),
        ("x_per_60s", rolling("x", 60), "x_per_minute"),
        ("x_per_120m", rolling("x", 7200), "x_per_2h"),
        ("x_per_24h", rolling("x", 86_400), "x_per_24h"),
        ("x_per_1s", rolling("x", 1), "x_per_second"),
        ("x_per_007m", rolling("x", 420), "x_per_7m"),
        ("all_per_second", rolling("all", 1), "all_per_second"),
        (
            "msg_per_user_per_hour",
            rolling("msg_per_user", 3600),
            "msg_per_user_per_hour",
        ),
        (
            "sales-nav_per_minute",
            rolling("sales-nav", 60),
            "sales-nav_per_minute",
        ),
        (
            "send_message_daily_cap",
            daily("send_message"),
            "send_message_daily_cap",
        ),
        (
            "send_message",
            daily("send_message"),
            "send_message_daily_cap",
        ),
        (
            "msg_per_user",
            daily("msg_per_user"),
            "msg_per_user_daily_cap",
        ),
        ("all", daily("all"), "all_daily_cap"),
        ("all_daily_cap", daily("all"), "all_daily_cap"),
        (
            "account_protection_seconds",
            Ok(LimitKey::ProtectionGap),
            "account_protection_seconds",
        ),
        (
            "concurrent_limit",
            Ok(LimitKey::ConcurrentLimit),
            "concurrent_limit",
        ),
        ("batch", Ok(LimitKey::Batch), "batch"),
        ("batch_hours", Ok(LimitKey::BatchHours), "batch_hours"),
    ];
    for (key, want, canonical) in table {
        let got = LimitKey::parse(key, ACTIONS);
        assert_eq!(&got, want, "{key}");
        assert_eq!(got.unwrap().to_string(), *canonical, "{key}");
    }
}

#[test]
fn grammar_errors() {
    let table: &[(&str, &str)] = &[
        (
            "foo_per_minute",
            "unknown action `foo` in limit key `foo_per_minute`",
        ),
        (
            "x_per_fortnight",
            "unknown suffix `per_fortnight` in `x_per_fortnight`",
        ),
        ("x_per_day", "unknown suffix `per_day` in `x_per_day`"),
        ("x_per_5d", "unknown suffix `per_5d`"),
        ("x_per_m", "unknown suffix `per_m`"),
        ("x_per_", "unknown suffix `per_`"),
        ("x_per_+5m", "unknown suffix `per_+5m`"),
        ("x_per_99999999999999999999h", "longer than pacer can count"),
        (
            "all_per_9999999h",
            "longer than pacer can count (at most 1281023h)",
        ),
        ("all_per_1281024h", "longer than pacer can count"),
        ("x_per_0s", "zero-length window `per_0s` in `x_per_0s`"),
        ("x_per_00m", "zero-length window"),
        (
            "foo_daily_cap",
            "unknown action `foo` in limit key `foo_daily_cap`",
        ),
        ("_daily_cap", "unknown action `` in limit key `_daily_cap`"),
        ("foo", "unknown limit key `foo`"),
        ("Send_message", "unknown limit key `Send_message`"),
        ("", "unknown limit key ``"),
        ("send_messages_per_minute", "unknown action `send_messages`"),
        (
            "login_per_user",
            "unknown suffix `per_user` in `login_per_user`",
        ),
        ("batch_per_minute", "unknown action `batch`"),
    ];
    for (key, want) in table {
        let err = LimitKey::parse(key, ACTIONS).unwrap_err().to_string();
        assert!(err.contains(want), "{key}: {err}");
    }
}

#[test]
fn values() {
    let k = |s: &str| LimitKey::parse(s, ACTIONS).unwrap();
    assert_eq!(
        k("batch").value(LimitNumber::Int(50)),
        Ok(LimitValue::Count(50))
    );
    assert_eq!(
        k("batch_hours").value(LimitNumber::Float(0.25)),
        Ok(LimitValue::Hours(0.25))
    );
    assert_eq!(
        k("batch_hours").value(LimitNumber::Int(2)),
        Ok(LimitValue::Hours(2.0))
    );
    assert_eq!(
        LimitValue::Hours(0.25).hours(),
        Some(Duration::from_secs(900))
    );
    assert_eq!(LimitValue::Count(3).count(), Some(3));
    for bad in [
        LimitNumber::Int(0),
        LimitNumber::Int(-1),
        LimitNumber::Float(0.0),
        LimitNumber::Float(-0.5),
        LimitNumber::Float(1e9),
    ] {
        assert!(k("batch_hours").value(bad).is_err(), "{bad:?}");
    }
    for bad in [
        LimitNumber::Int(0),
        LimitNumber::Int(-3),
        LimitNumber::Float(8.0),
        LimitNumber::Float(f64::NAN),
    ] {
        let err = k("x_per_minute").value(bad).unwrap_err().to_string();
        assert!(
            err.contains("`x_per_minute` must be a positive integer"),
            "{err}"
        );
    }
}

#[test]
fn limit_parse_keeps_raw_key() {
    let l = Limit::parse("login", LimitNumber::Int(5), ACTIONS).unwrap();
    assert_eq!(l.raw_key, "login");
    assert_eq!(l.key.to_string(), "login_daily_cap");
    assert_eq!(l.key.action(), Some("login"));
    assert_eq!(LimitKey::Batch.action(), None);
}

#[test]
fn action_names() {
    for ok in [
        "send_message",
        "login",
        "msg_per_user",
        "x_per_5",
        "sales-nav",
        "A1",
        "batches",
    ] {
        assert_eq!(check_action_name(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "all",
        "batch",
        "batch_hours",
        "concurrent_limit",
        "account_protection_seconds",
        "x_daily_cap",
        "x_per_minute",
        "x_per_5m",
        "x_per_0s",
        "has space",
        "dot.ted",
    ] {
        assert!(check_action_name(bad).is_err(), "{bad}");
    }
}
