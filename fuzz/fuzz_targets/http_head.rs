//! The HTTP listener's head reader (`read_head`) on a client's
//! bytes in chunks, then the request target of an accepted head parsed as
//! the pipeline does (`Target::from_connect` for CONNECT, else
//! `Target::from_absolute`), its destination checked. Flag byte: bits 0-5
//! the read size; the second byte picks the head limit.
#![no_main]

use bytes::Bytes;
use harness::{block_on, destination, stream};
use libfuzzer_sys::fuzz_target;
use pacer::egress::target::Target;
use pacer::wire::head::{read_head, HeadError, MAX_HEADERS};

fuzz_target!(|data: &[u8]| {
    let [flags, limit, script @ ..] = data else {
        return;
    };
    // Up to four read chunks of pacer's: a limit the buffer can grow past.
    let max_bytes = 16 + usize::from(*limit) * 64;
    let mut client = stream::from_flags(flags & 0x3f, script);
    let head = match block_on(read_head(&mut client, Bytes::new(), max_bytes)) {
        Ok(head) => head,
        Err(HeadError::Closed) => {
            assert!(script.is_empty(), "bytes were sent");
            return;
        }
        Err(HeadError::Malformed(_) | HeadError::TooLarge) => return,
    };
    assert!(script.starts_with(&head.bytes), "the head is what was sent");
    assert!(head.len <= head.bytes.len(), "the head is within what was read");
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(&head.bytes).expect("an accepted head parses");
    let httparse::Status::Complete(end) = parsed else {
        panic!("an accepted head is complete");
    };
    assert!(
        end <= max_bytes,
        "a head of {end} bytes passed a limit of {max_bytes}"
    );
    assert_eq!(end, head.len, "the head's length is httparse's");
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
