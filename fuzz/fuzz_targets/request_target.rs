//! Request-target and authority parsing: the bytes as a SOCKS5 domain name
//! (`Target::destination`, with the port of the first two bytes), as a
//! CONNECT authority and as an absolute-form URI. Every destination
//! accepted keeps the invariants of `harness::destination`.
#![no_main]

use harness::destination;
use libfuzzer_sys::fuzz_target;
use pacer::egress::target::Target;

fuzz_target!(|data: &[u8]| {
    let [high, low, name @ ..] = data else {
        return;
    };
    let port = u16::from_be_bytes([*high, *low]);
    let text = String::from_utf8_lossy(name);
    if let Ok(target) = Target::destination(&text, port) {
        destination::check(&target);
    }
    let Ok(uri) = http::Uri::try_from(name) else {
        return;
    };
    for parsed in [Target::from_connect(&uri), Target::from_absolute(&uri)] {
        if let Ok(target) = parsed {
            destination::check(&target);
            assert!(
                !target.host_str().contains('@'),
                "{uri}: userinfo taken for a host"
            );
        }
    }
});
