//! The admin API's JSON bodies through the real admin connection
//! (`control::admin::serve_connection`): the first byte picks the route
//! (`POST /v1/accounts`, `PATCH /v2/session/rate-limit`,
//! `PATCH /v1/accounts/{acct-1,acct-2}`, or `PUT /v1/accounts/rt-1`, a
//! runtime account), the rest is the body. The
//! answer is a whole HTTP response that is not a 500, and the proxy keeps
//! answering. A `proxy` object is tried by dialling it: its host and port
//! are pinned to a closed loopback port first, so nothing else is dialled.
#![no_main]

use harness::stream::{End, Scripted};
use harness::{block_on, proxy};
use libfuzzer_sys::fuzz_target;
use pacer::control::admin::serve_connection;
use serde_json::Value;

const ROUTES: [&str; 5] = [
    "POST /v1/accounts",
    "PATCH /v2/session/rate-limit",
    "PATCH /v1/accounts/acct-1",
    "PATCH /v1/accounts/acct-2",
    "PUT /v1/accounts/rt-1",
];

/// The body with any `proxy.host` / `proxy.port` pointed at loopback port 1.
fn pinned(body: &[u8]) -> Vec<u8> {
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(body) else {
        return body.to_vec();
    };
    let Some(Value::Object(proxy)) = object.get_mut("proxy") else {
        return body.to_vec();
    };
    if proxy.contains_key("host") {
        proxy.insert("host".into(), "127.0.0.1".into());
    }
    if proxy.contains_key("port") {
        proxy.insert("port".into(), 1.into());
    }
    serde_json::to_vec(&object).expect("a JSON object serializes")
}

/// The status code of a whole HTTP/1.1 response.
fn status_of(answer: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(answer) {
        Ok(httparse::Status::Complete(_)) => response.code,
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let route = ROUTES[usize::from(pick) % ROUTES.len()];
    let body = pinned(body);
    let mut request = format!(
        "{route} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        proxy::ADMIN_KEY,
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let client = Scripted::new(&request, request.len(), End::Silent);
    let answer = client.answer();
    block_on(serve_connection(proxy::control(), client));
    let answer = answer.lock().expect("the answer").clone();
    let status = status_of(&answer)
        .unwrap_or_else(|| panic!("no whole response: {:?}", String::from_utf8_lossy(&answer)));
    assert_ne!(status, 500, "{}", String::from_utf8_lossy(&answer));
});
