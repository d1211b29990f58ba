//! Telling a TLS ClientHello from other first bytes of a tunnel: a TLS
//! record of type handshake (0x16), version 3.x, whose first message is a
//! ClientHello (type 0x01).

/// Bytes needed to decide.
pub const NEEDED: usize = 6;

/// Whether `first` (the client's first bytes, at least [`NEEDED`] when the
/// client sent that many) starts a TLS ClientHello.
pub fn is_client_hello(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, minor, _, _, 0x01, ..] if *minor <= 0x04)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_hellos_and_other_bytes() {
        assert!(is_client_hello(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]));
        assert!(!is_client_hello(b"GET / HTTP/1.1\r\n"));
        assert!(!is_client_hello(&[0x16, 0x03, 0x01]), "too short to tell");
        assert!(
            !is_client_hello(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x02]),
            "not a ClientHello"
        );
        assert!(!is_client_hello(&[0x05, 0x01, 0x00]), "SOCKS inside");
    }
}
