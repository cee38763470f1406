//! Local accounts: people who sign in with an email and a password rather than through
//! their organization's identity provider.

use std::sync::OnceLock;

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};

use crate::store::{self, passwords, users, Store};

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 256;

/// Refuses passwords that are short or guessable: zxcvbn estimates the guesses needed,
/// counting common passwords, dictionary words, keyboard patterns and the person's own
/// email and name. Returns the reason in words a person can act on.
pub fn check_policy(password: &str, email: &str, name: Option<&str>) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!("Use at least {MIN_LENGTH} characters."));
    }
    if length > MAX_LENGTH {
        return Err(format!("Use at most {MAX_LENGTH} characters."));
    }
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    // The name's parts alone and run together ("annsmith"), as people write them in passwords.
    let joined: String = name.unwrap_or_default().split_whitespace().collect();
    let mut inputs = vec![email, local, domain, joined.as_str()];
    inputs.extend(domain.split('.'));
    inputs.extend(name.iter().flat_map(|n| n.split_whitespace()));
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .unwrap_or_else(|| "It is too easy to guess.".into());
        return Err(format!("Choose a harder password. {hint}"));
    }
    Ok(())
}

/// An argon2id hash in PHC form, with a fresh salt. Argon2 is deliberately slow, so it runs
/// on the blocking pool, on any CPU (a server pinned for SQLite included): a burst of
/// sign-ins must not stall the async workers.
pub async fn hash(password: &str) -> String {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        crate::affinity::widen_current_thread();
        hash_now(&password)
    })
    .await
    .expect("argon2 hashing does not panic")
}

fn hash_now(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

/// Whether `password` matches the stored hash, checked on the blocking pool.
pub async fn verify(stored: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        crate::affinity::widen_current_thread();
        verify_now(&stored, &password)
    })
    .await
    .expect("argon2 verification does not panic")
}

fn verify_now(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of nothing in particular, verified when there is no account, so that an unknown
/// email costs the same time as a wrong password and responses cannot tell them apart.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_now("rollcall-decoy-password"))
}

/// The user, if the email has a local account and the password is right. Unknown email,
/// no password set and wrong password all answer `None`, in about the same time. The hash
/// is read in a short transaction that ends before the slow check begins, so no database
/// connection waits on Argon2.
pub async fn authenticate(
    store: &Store,
    email: &str,
    password: &str,
) -> store::Result<Option<users::User>> {
    let mut tx = store.read().await?;
    let user = match users::normalize_email(email) {
        Ok(email) => users::by_email(&mut tx, &email).await?,
        Err(_) => None,
    };
    let stored = match &user {
        Some(user) => passwords::hash_of(&mut tx, user.id).await?,
        None => None,
    };
    drop(tx);
    let known = stored.is_some();
    let against = stored.unwrap_or_else(|| decoy().to_string());
    let ok = verify(against, password.to_string()).await && known;
    Ok(user.filter(|_| ok))
}

/// A new TOTP shared secret (160 bits, base32), as authenticator apps expect.
pub fn new_totp_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    totp_rs::Secret::Raw(bytes.to_vec())
        .to_encoded()
        .to_string()
}

fn totp(secret: &str, account: &str) -> Option<totp_rs::TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret.to_string())
        .to_bytes()
        .ok()?;
    // SHA-1, 6 digits, 30 s: what every authenticator app supports.
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some("rollcall".to_string()),
        account.replace(':', ""),
    )
    .ok()
}

/// The otpauth:// URI to add the secret to an authenticator app.
pub fn totp_uri(secret: &str, account: &str) -> Option<String> {
    totp(secret, account).map(|t| t.get_url())
}

/// The 30-second step whose code `code` is, if it is the code of the current step or of
/// one step either side (clock drift). The caller refuses steps already used.
pub fn totp_step(secret: &str, code: &str, unix_time: u64) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "x")?;
    let now_step = unix_time / 30;
    [now_step.saturating_sub(1), now_step, now_step + 1]
        .into_iter()
        .find(|step| {
            let expected = t.generate(step * 30);
            expected.len() == code.len()
                && expected
                    .bytes()
                    .zip(code.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        })
        .map(|step| step as i64)
}

/// The current code of a secret; for tests and for the stand-in authenticator in them.
pub fn totp_code(secret: &str, unix_time: u64) -> Option<String> {
    totp(secret, "x").map(|t| t.generate(unix_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_salted() {
        let a = hash("correct horse battery staple").await;
        let b = hash("correct horse battery staple").await;
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(verify(a.clone(), "correct horse battery staple".into()).await);
        assert!(!verify(a, "correct horse battery stapler".into()).await);
        assert!(!verify("not a hash".into(), "anything".into()).await);
    }

    /// On a single-threaded runtime, a task keeps ticking while passwords are hashed and
    /// checked: Argon2 runs on the blocking pool, not on the async worker.
    #[tokio::test(flavor = "current_thread")]
    async fn argon2_leaves_the_async_workers_free() {
        use std::sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        };
        let ticks = Arc::new(AtomicUsize::new(0));
        let counter = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::task::yield_now().await;
        let before = ticks.load(Ordering::SeqCst);
        let stored = hash("correct horse battery staple").await;
        assert!(verify(stored, "correct horse battery staple".into()).await);
        let during = ticks.load(Ordering::SeqCst) - before;
        ticker.abort();
        assert!(
            during >= 2,
            "the runtime ticked {during} times while Argon2 ran: it blocked the worker"
        );
    }

    #[test]
    fn totp_codes_match_their_step_with_one_step_of_drift() {
        let secret = new_totp_secret();
        let now = 1_800_000_000u64;
        let code = totp_code(&secret, now).unwrap();
        assert_eq!(totp_step(&secret, &code, now), Some((now / 30) as i64));
        assert_eq!(totp_step(&secret, &code, now + 30), Some((now / 30) as i64));
        assert_eq!(totp_step(&secret, &code, now + 90), None);
        assert_eq!(totp_step(&secret, "12345", now), None);
        assert_eq!(totp_step(&secret, "abcdef", now), None);
        let uri = totp_uri(&secret, "ann@acme.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/rollcall:ann%40acme.com?secret="),
            "{uri}"
        );
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        assert!(check_policy("short", "ann@acme.com", None)
            .unwrap_err()
            .contains("at least 10"));
        for weak in ["password123", "qwertyuiop", "1234567890", "annsmith2024!"] {
            assert!(
                check_policy(weak, "ann@acme.com", Some("Ann Smith")).is_err(),
                "{weak}"
            );
        }
        assert!(check_policy("ann@acme.com1", "ann@acme.com", None).is_err());
        assert!(check_policy(
            "tangerine-viaduct-41-mollusc",
            "ann@acme.com",
            Some("Ann Smith")
        )
        .is_ok());
    }
}
