//! Secrets kept only as a slow salted hash (accounts created through the
//! admin API): an Argon2id PHC string, verified on the blocking pool, and
//! a one-slot cache of the last secret that verified, so a keep-alive
//! client or a busy account pays the hash once, not per request.
//!
//! The cache holds an HMAC-SHA-256 tag of the verified secret under a key
//! drawn at start-up, never the secret itself; a candidate is checked by
//! computing its tag and comparing in constant time.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use ring::hmac;
use subtle::ConstantTimeEq;

/// A tag of a secret under this process's cache key.
type Tag = [u8; 32];

/// A secret known only by its Argon2id hash.
pub struct SecretHash {
    phc: String,
    /// The tag of the last candidate that verified.
    verified: ArcSwapOption<Tag>,
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(***)")
    }
}

/// Why a secret could not be hashed, or a stored hash read.
#[derive(Debug, thiserror::Error)]
#[error("secret hash: {0}")]
pub struct HashError(String);

impl SecretHash {
    /// Hashes `secret` with a fresh random salt (slow: call it off the
    /// async threads).
    pub fn hash(secret: &[u8]) -> Result<Self, HashError> {
        let phc = Argon2::default()
            .hash_password(secret)
            .map_err(|e| HashError(e.to_string()))?
            .to_string();
        Ok(SecretHash {
            phc,
            verified: ArcSwapOption::empty(),
        })
    }

    /// A hash as stored (a PHC string), checked to be readable.
    pub fn from_phc(phc: &str) -> Result<Self, HashError> {
        PasswordHash::new(phc).map_err(|e| HashError(e.to_string()))?;
        Ok(SecretHash {
            phc: phc.to_owned(),
            verified: ArcSwapOption::empty(),
        })
    }

    /// The PHC string to store.
    pub fn phc(&self) -> &str {
        &self.phc
    }

    /// `Some(true)` when `candidate` is the secret that last verified;
    /// `None` when only the slow check can tell.
    pub fn check_cached(&self, candidate: &[u8]) -> Option<bool> {
        let verified = self.verified.load();
        let known = verified.as_deref()?;
        let matches: bool = tag(candidate).ct_eq(known).into();
        matches.then_some(true)
    }

    /// The slow check (call it off the async threads); a match is cached.
    pub fn verify(&self, candidate: &[u8]) -> bool {
        let Ok(parsed) = PasswordHash::new(&self.phc) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(candidate, &parsed)
            .is_ok();
        if matches {
            self.verified.store(Some(Arc::new(tag(candidate))));
        }
        matches
    }
}

/// A hash of nothing anyone knows: an unknown id is checked against it,
/// so that it costs what a wrong secret of a hashed account costs.
pub fn decoy() -> &'static SecretHash {
    static DECOY: OnceLock<SecretHash> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        // Never used to accept anything: a failed draw leaves zeros.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret);
        SecretHash::hash(&secret).unwrap_or(SecretHash {
            phc: String::new(),
            verified: ArcSwapOption::empty(),
        })
    })
}

fn tag(candidate: &[u8]) -> Tag {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // No system randomness: a key from the clock and address space
            // still makes tags useless outside this process.
            let seed = format!("{:?}{:p}", std::time::SystemTime::now(), &rng);
            hmac::Key::new(hmac::HMAC_SHA256, seed.as_bytes())
        })
    });
    let mut out = [0u8; 32];
    out.copy_from_slice(hmac::sign(key, candidate).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_secret_only_and_caches_the_match() {
        let hash = SecretHash::hash(b"s3cret").expect("hash");
        assert!(hash.phc().starts_with("$argon2id$"));
        assert!(!hash.phc().contains("s3cret"));
        assert_eq!(hash.check_cached(b"s3cret"), None, "nothing verified yet");
        assert!(!hash.verify(b"wrong"));
        assert_eq!(hash.check_cached(b"wrong"), None);
        assert!(hash.verify(b"s3cret"));
        assert_eq!(hash.check_cached(b"s3cret"), Some(true));
        assert_eq!(hash.check_cached(b"s3cret!"), None);
        let stored = SecretHash::from_phc(hash.phc()).expect("readable");
        assert!(stored.verify(b"s3cret"));
        assert!(SecretHash::from_phc("not a hash").is_err());
        assert!(!decoy().verify(b""));
    }
}
