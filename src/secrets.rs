//! Bearer secrets (API tokens, session IDs, later SCIM and invitation tokens).
//!
//! Each is 256 bits from the OS RNG with a recognisable prefix, shown once and stored only
//! as a SHA-256 hash. A fast hash is right here: the input has full entropy, so there is
//! nothing for a slow password hash to protect, and lookups by hash stay one index probe.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};

pub const API_TOKEN_PREFIX: &str = "rc_pat_";
pub const SESSION_PREFIX: &str = "rc_ses_";

pub struct NewSecret {
    /// The only copy of the secret: give it to the user, never store it.
    pub plaintext: String,
    pub hash: String,
    /// Enough of the start to tell tokens apart in a list, not enough to use.
    pub display_prefix: String,
}

pub fn generate(prefix: &str) -> NewSecret {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let plaintext = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewSecret {
        hash: hash(&plaintext),
        display_prefix: plaintext[..prefix.len() + 6].to_string(),
        plaintext,
    }
}

pub fn hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = generate(API_TOKEN_PREFIX);
        let b = generate(API_TOKEN_PREFIX);
        assert!(a.plaintext.starts_with("rc_pat_"));
        assert_eq!(a.plaintext.len(), "rc_pat_".len() + 43);
        assert_ne!(a.plaintext, b.plaintext);
        assert_eq!(a.hash, hash(&a.plaintext));
        assert_ne!(a.hash, a.plaintext);
        assert!(a.plaintext.starts_with(&a.display_prefix));
    }
}
