//! The wire mapping: statuses, envelope types and SOCKS5 replies.
use super::*;
use crate::egress::dial::DialError;
use crate::egress::upstream::UpstreamError;

fn dial(kind: DialErrorKind) -> ProxyError {
    ProxyError::Route(RouteError::Destination(DialError::for_test(kind)))
}

#[test]
fn socks_codes_follow_the_spec() {
    assert_eq!(
        dial(DialErrorKind::Refused).socks_reply().as_u8(),
        0x05,
        "destination refused"
    );
    assert_eq!(dial(DialErrorKind::TimedOut).socks_reply().as_u8(), 0x04);
    assert_eq!(ProxyError::Unavailable("x").socks_reply().as_u8(), 0x01);
}

#[test]
fn retry_after_rounds_up() {
    assert_eq!(retry_after_secs(Duration::from_millis(6001)), 7);
    assert_eq!(retry_after_secs(Duration::from_secs(7)), 7);
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
}

#[test]
fn timeouts_are_504_and_refusals_502() {
    let timeout = dial(DialErrorKind::TimedOut);
    assert_eq!(timeout.wire_code().status, 504);
    assert_eq!(timeout.wire_code().kind, "errors/request_timeout");
    let resolve = dial(DialErrorKind::Resolve);
    assert_eq!(resolve.wire_code().status, 502);
    assert_eq!(resolve.wire_code().kind, "errors/provider_error");
}

fn through_upstream(kind: UpstreamErrorKind, tried: u32) -> ProxyError {
    let last = UpstreamError::new(&std::sync::Arc::from("127.0.0.1:3128"), kind);
    ProxyError::Route(RouteError::Upstream { last, tried })
}

fn destination(answer: DestinationAnswer) -> UpstreamErrorKind {
    UpstreamErrorKind::Destination {
        target: "example.com:443".into(),
        answer,
    }
}

#[test]
fn upstream_failures_follow_spec_section_5() {
    let cases = [
        (
            UpstreamErrorKind::CredentialsRejected("HTTP 407".into()),
            502,
            "errors/invalid_proxy_credentials",
            0x01,
        ),
        (
            UpstreamErrorKind::TimedOut(Duration::from_secs(1)),
            504,
            "errors/request_timeout",
            0x04,
        ),
        (
            UpstreamErrorKind::Connect(DialErrorKind::Refused),
            502,
            "errors/proxy_error",
            0x01,
        ),
        (
            UpstreamErrorKind::Broken("closed".into()),
            502,
            "errors/proxy_error",
            0x01,
        ),
        (
            destination(DestinationAnswer::HttpStatus(502)),
            502,
            "errors/provider_error",
            0x04,
        ),
        (
            destination(DestinationAnswer::SocksReply(0x05)),
            502,
            "errors/provider_error",
            0x05,
        ),
        (
            destination(DestinationAnswer::SocksReply(0x03)),
            502,
            "errors/provider_error",
            0x04,
        ),
        (
            destination(DestinationAnswer::SocksReply(0x09)),
            502,
            "errors/provider_error",
            0x01,
        ),
    ];
    for (kind, status, envelope, socks) in cases {
        let what = format!("{kind:?}");
        let err = through_upstream(kind, 2);
        assert_eq!(err.wire_code().status, status, "{what}");
        assert_eq!(err.wire_code().kind, envelope, "{what}");
        assert_eq!(err.socks_reply().as_u8(), socks, "{what}");
        assert!(!err.wire().close);
    }
}

#[test]
fn details_count_the_upstreams_and_hide_credentials() {
    let err = through_upstream(UpstreamErrorKind::Connect(DialErrorKind::Refused), 3);
    assert_eq!(
        err.to_string(),
        "upstream 127.0.0.1:3128 refused the connection (3 upstreams tried)"
    );
    let none = ProxyError::Route(RouteError::NoUpstream {
        country: "US".parse().ok(),
    });
    assert_eq!(none.wire_code().kind, "errors/proxy_error");
    assert!(none.to_string().contains("country US"), "{none}");
    assert!(none.to_string().contains("0 upstreams tried"), "{none}");
}
