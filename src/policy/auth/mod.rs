//! Identifying the account (SPEC section 3): the credentials a client
//! offers, from a `Proxy-Authorization: Basic` header or an RFC 1929
//! sub-negotiation, and why they were not accepted. The secret itself is
//! compared in constant time by [`crate::config::Secret::matches`]; which
//! account the id names is the state layer's lookup. Secrets of accounts
//! created at runtime are kept only as a hash ([`hashed`]).

pub mod hashed;

use base64::Engine as _;
use http::HeaderValue;
use smallvec::SmallVec;

/// Why a client was not identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials were offered.
    #[error("proxy credentials are required")]
    Missing,
    /// The credentials did not match an account.
    #[error("proxy credentials were not accepted")]
    Invalid,
}

/// An id or a secret as the client sent it: inline up to 64 bytes, so
/// that reading credentials allocates nothing for the usual lengths.
pub type Field = SmallVec<[u8; 64]>;

/// An id and a secret as the client sent them.
pub struct Credentials {
    /// The account id (user name), as bytes.
    pub id: Field,
    /// The secret (password), as bytes.
    pub secret: Field,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("id", &String::from_utf8_lossy(&self.id))
            .field("secret", &"***")
            .finish()
    }
}

impl Credentials {
    /// The credentials of a `Proxy-Authorization` header (scheme `Basic`,
    /// case-insensitive, `id:secret` in base64).
    pub fn from_basic(header: Option<&HeaderValue>) -> Result<Self, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let decoded = decode_basic(header.as_bytes()).ok_or(AuthError::Invalid)?;
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(AuthError::Invalid)?;
        Ok(Credentials {
            id: Field::from_slice(&decoded[..colon]),
            secret: Field::from_slice(&decoded[colon + 1..]),
        })
    }
}

/// The decoded `id:secret` of a `Basic` credential (on the stack up to
/// 192 bytes).
fn decode_basic(value: &[u8]) -> Option<SmallVec<[u8; 192]>> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at_checked(5)?;
    if !scheme.eq_ignore_ascii_case(b"basic") || !rest.first()?.is_ascii_whitespace() {
        return None;
    }
    let encoded = rest.trim_ascii();
    let mut decoded = SmallVec::from_elem(0, base64::decoded_len_estimate(encoded.len()));
    let len = base64::engine::general_purpose::STANDARD
        .decode_slice(encoded, &mut decoded)
        .ok()?;
    decoded.truncate(len);
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user_pass: &str) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_pass);
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("header")
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let creds = Credentials::from_basic(Some(&basic("acct-1:s3:cret"))).expect("creds");
        assert_eq!(&creds.id[..], b"acct-1");
        assert_eq!(&creds.secret[..], b"s3:cret");
        let long = format!("{}:{}", "i".repeat(100), "s".repeat(300));
        let creds = Credentials::from_basic(Some(&basic(&long))).expect("long creds");
        assert_eq!((creds.id.len(), creds.secret.len()), (100, 300));
        let lower = HeaderValue::from_static("basic YWNjdC0xOnMzY3JldA==");
        assert!(Credentials::from_basic(Some(&lower)).is_ok());
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(
            Credentials::from_basic(None).map(|_| ()),
            Err(AuthError::Missing)
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic", "Basicx YQ=="] {
            let header = HeaderValue::from_static(bad);
            let result = Credentials::from_basic(Some(&header)).map(|_| ());
            assert_eq!(result, Err(AuthError::Invalid), "{bad}");
        }
        let no_colon = basic("acct-1");
        let result = Credentials::from_basic(Some(&no_colon)).map(|_| ());
        assert_eq!(result, Err(AuthError::Invalid));
    }

    #[test]
    fn secrets_are_masked() {
        let creds = Credentials::from_basic(Some(&basic("a:topsecret"))).expect("creds");
        assert!(!format!("{creds:?}").contains("topsecret"));
    }
}
