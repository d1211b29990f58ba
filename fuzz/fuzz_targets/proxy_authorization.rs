//! `Proxy-Authorization` decoding (`Credentials::from_basic`) on any header
//! value, then the request path's authentication (`pipeline::authenticate`)
//! with the decoded credentials on the fuzz proxy. Decoded credentials
//! encode back to themselves.
#![no_main]

use base64::Engine as _;
use harness::{block_on, proxy};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use pacer::pipeline::authenticate;
use pacer::policy::auth::Credentials;
use pacer::telemetry::context::ListenerKind;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(credentials) = Credentials::from_basic(Some(&value)) else {
        return;
    };
    assert!(!credentials.id.contains(&b':'), "an id holds no colon");
    let mut pair = credentials.id.clone();
    pair.push(b':');
    pair.extend_from_slice(&credentials.secret);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
    let again = HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a header");
    let again = Credentials::from_basic(Some(&again)).expect("encoded credentials decode");
    assert_eq!(
        (again.id, again.secret),
        (credentials.id.clone(), credentials.secret.clone())
    );
    let engine = &proxy::app().engine;
    let mut ctx = engine.context(ListenerKind::Http, proxy::peer());
    let _ = block_on(authenticate(engine, &mut ctx, &credentials));
});
