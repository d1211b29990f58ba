//! What every destination pacer accepts must keep, whichever parser it
//! came from: a host that is an IP literal or a lower-case name of
//! letters, digits, `-`, `_` and `.` (SPEC section 5), a non-zero port, and
//! a `host:port` form that parses back to the same destination. A name
//! that broke one of these could carry bytes into an upstream's `CONNECT`
//! line.

use pacer::egress::target::{Host, Target};

/// Panics when `target` breaks an invariant.
pub fn check(target: &Target) {
    assert_ne!(target.port, 0, "{target:?}: port 0");
    if let Host::Name(name) = &target.host {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
        assert!(
            !name.is_empty() && name.len() <= 253 && name.chars().all(allowed),
            "{target:?}: not a host name"
        );
    }
    let shown = target.to_string();
    let authority: http::uri::Authority = shown
        .parse()
        .unwrap_or_else(|e| panic!("{shown:?} is no authority: {e}"));
    let again = Target::destination(authority.host(), target.port)
        .unwrap_or_else(|e| panic!("{shown:?} is refused once shown: {e}"));
    assert_eq!(&again, target, "{shown:?} parses back to another target");
}
