//! Paths as classification compares them (SPEC section 5): after RFC 3986
//! normalisation, percent-escapes of unreserved characters decoded and dot
//! segments removed, so `/v1/%6Dessages` and `/v1/x/../messages` count as
//! `/v1/messages`. Only classification sees this; the request goes to the
//! origin unchanged.

use std::borrow::Cow;

/// `path` normalised, borrowed when it needs no change.
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !path.contains('%') && !has_dot_segment(path) {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    Cow::Owned(remove_dot_segments(&decoded))
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/')
        .any(|segment| segment == "." || segment == "..")
}

/// Decodes `%XX` where XX is an unreserved character (letters, digits,
/// `-`, `.`, `_`, `~`); every other escape stays as it is.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(c) = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .map(char::from)
            {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') {
                    out.push(c);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

/// RFC 3986 section 5.2.4, on a path (no query).
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." => {
                if last {
                    kept.push("");
                }
            }
            ".." => {
                if kept.len() > 1 {
                    kept.pop();
                }
                if last {
                    kept.push("");
                }
            }
            other => kept.push(other),
        }
    }
    kept.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_escapes_and_dot_segments_are_normalised() {
        assert_eq!(normalize("/v1/messages"), "/v1/messages");
        assert!(matches!(normalize("/v1/messages"), Cow::Borrowed(_)));
        assert_eq!(normalize("/v1/%6Dessages"), "/v1/messages");
        assert_eq!(
            normalize("/v1/%2Fsecret"),
            "/v1/%2Fsecret",
            "a reserved escape stays"
        );
        assert_eq!(normalize("/v1/x/../messages"), "/v1/messages");
        assert_eq!(normalize("/v1/./messages/."), "/v1/messages/");
        assert_eq!(normalize("/../../etc"), "/etc");
        assert_eq!(
            normalize("/a/%2e%2e/b"),
            "/b",
            "escaped dots are dot segments"
        );
        assert_eq!(normalize("/100%"), "/100%");
    }
}
