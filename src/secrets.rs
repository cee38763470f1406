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

/// Compares two secrets in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn hash(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Encrypts secrets that rollcall must read back (OIDC client secrets, SP private keys) so
/// they are never stored in plain text. ChaCha20-Poly1305 with a random nonce per value; the
/// key comes from configuration, never from the database.
#[derive(Clone)]
pub struct Sealer {
    cipher: chacha20poly1305::ChaCha20Poly1305,
}

const SEALED_PREFIX: &str = "v1:";

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        use chacha20poly1305::KeyInit;
        Sealer {
            cipher: chacha20poly1305::ChaCha20Poly1305::new(key.into()),
        }
    }

    /// The key from `secrets.key` (base64, 32 bytes) if set, else from `secrets.key_file`,
    /// which is created (mode 0600) with a fresh key on first start.
    pub fn from_config(config: &crate::config::SecretsConfig) -> Result<Sealer, String> {
        let encoded = match &config.key {
            Some(key) => key.trim().to_string(),
            None => {
                let path = std::path::Path::new(&config.key_file);
                if !path.exists() {
                    let mut key = [0u8; 32];
                    OsRng.fill_bytes(&mut key);
                    write_private(path, &URL_SAFE_NO_PAD.encode(key)).map_err(|e| {
                        format!("cannot create secrets.key_file {}: {e}", path.display())
                    })?;
                    tracing::info!(path = %path.display(), "created a new secret key file; back it up with the database");
                }
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read secrets.key_file {}: {e}", path.display()))?
                    .trim()
                    .to_string()
            }
        };
        let bytes = decode_key(&encoded)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the secret key must be 32 bytes".to_string())?;
        Ok(Sealer::new(&key))
    }

    pub fn seal(&self, plaintext: &str) -> String {
        use chacha20poly1305::aead::Aead;
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt((&nonce).into(), plaintext.as_bytes())
            .expect("ChaCha20-Poly1305 encrypts any input");
        let mut out = nonce.to_vec();
        out.extend(ciphertext);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// `None` when the value was not sealed with this key (or was tampered with).
    pub fn open(&self, sealed: &str) -> Option<String> {
        use chacha20poly1305::aead::Aead;
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(SEALED_PREFIX)?)
            .ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let plaintext = self.cipher.decrypt(nonce.into(), ciphertext).ok()?;
        String::from_utf8(plaintext).ok()
    }
}

/// A key in base64, standard (`openssl rand -base64 32`) or URL-safe, padded or not.
fn decode_key(encoded: &str) -> Result<Vec<u8>, String> {
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let bare = encoded.trim().trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(bare)
        .or_else(|_| URL_SAFE_NO_PAD.decode(bare))
        .map_err(|_| {
            "the secret key is not base64: make one with `openssl rand -base64 32`".to_string()
        })
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn keys_are_read_in_every_base64_spelling() {
        // 32 bytes whose base64 holds both '+' and '/' (standard) or '-' and '_' (URL-safe).
        let key: Vec<u8> = (0..32u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(251))
            .collect();
        let standard = base64::engine::general_purpose::STANDARD.encode(&key);
        assert!(
            standard.contains('+') || standard.contains('/'),
            "{standard}"
        );
        for spelling in [
            standard.clone(),
            standard.trim_end_matches('=').to_string(),
            URL_SAFE_NO_PAD.encode(&key),
            format!("{standard}\n"),
        ] {
            assert_eq!(decode_key(&spelling).unwrap(), key, "{spelling:?}");
        }
        assert!(decode_key("not base64!")
            .unwrap_err()
            .contains("openssl rand -base64 32"));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_unaltered() {
        let sealer = Sealer::new(&[7u8; 32]);
        let sealed = sealer.seal("client-secret-value");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("client-secret-value"));
        assert_ne!(
            sealed,
            sealer.seal("client-secret-value"),
            "a fresh nonce each time"
        );
        assert_eq!(sealer.open(&sealed).as_deref(), Some("client-secret-value"));
        assert_eq!(Sealer::new(&[8u8; 32]).open(&sealed), None);
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(sealer.open(&tampered), None);
        assert_eq!(sealer.open("plain text"), None);
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::SecretsConfig {
            key: None,
            key_file: dir.path().join("rollcall.key").display().to_string(),
        };
        let first = Sealer::from_config(&config).unwrap();
        let sealed = first.seal("x");
        let again = Sealer::from_config(&config).unwrap();
        assert_eq!(
            again.open(&sealed).as_deref(),
            Some("x"),
            "the same key next start"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("rollcall.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let bad = crate::config::SecretsConfig {
            key: Some("short".into()),
            key_file: String::new(),
        };
        assert!(Sealer::from_config(&bad).is_err());
    }

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
