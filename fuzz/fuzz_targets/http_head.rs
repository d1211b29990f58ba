//! The HTTP listener's first-head reader (`read_first_head`) on a client's
//! bytes in chunks, then the request target of an accepted head parsed as
//! the pipeline does (`Target::from_connect` for CONNECT, else
//! `Target::from_absolute`), its destination checked. Flag byte: bits 0-5
//! the read size; the second byte picks the head limit.
#![no_main]

use harness::{block_on, destination, stream};
use libfuzzer_sys::fuzz_target;
use pacer::egress::target::Target;
use pacer::ingress::http::head::{read_first_head, HeadError, MAX_HEADERS};

fuzz_target!(|data: &[u8]| {
    let [flags, limit, script @ ..] = data else {
        return;
    };
    // Up to four read chunks of pacer's: a limit the buffer can grow past.
    let max_bytes = 16 + usize::from(*limit) * 64;
    let mut client = stream::from_flags(flags & 0x3f, script);
    let head = match block_on(read_first_head(&mut client, max_bytes)) {
        Ok(head) => head,
        Err(HeadError::Closed) => {
            assert!(script.is_empty(), "bytes were sent");
            return;
        }
        Err(HeadError::Malformed | HeadError::TooLarge) => return,
    };
    assert!(script.starts_with(&head), "the head is what was sent");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(&head).expect("an accepted head parses");
    let httparse::Status::Complete(end) = parsed else {
        panic!("an accepted head is complete");
    };
    assert!(
        end <= max_bytes,
        "a head of {end} bytes passed a limit of {max_bytes}"
    );
    let (Some(method), Some(path)) = (request.method, request.path) else {
        panic!("a complete head has a method and a target");
    };
    let Ok(uri) = path.parse::<http::Uri>() else {
        return;
    };
    let target = if method == "CONNECT" {
        Target::from_connect(&uri)
    } else {
        Target::from_absolute(&uri)
    };
    if let Ok(target) = target {
        destination::check(&target);
    }
});
