//! Second factors (TOTP and recovery codes) and the sign-in challenges that wait for them.

use chrono::{DateTime, Duration, Utc};

use super::{now, on, Result, Tx};
use crate::secrets;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Totp {
    pub secret: String,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_step: i64,
}

pub async fn totp(tx: &mut Tx, user_id: i64) -> Result<Option<Totp>> {
    Ok(on!(tx, c => sqlx::query_as::<_, Totp>(
        "SELECT secret, confirmed_at, last_step FROM totp_credentials WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await)?)
}

/// Seals TOTP seeds stored in plaintext by versions before they were sealed. Runs at every
/// start; a sealed seed is left alone. Returns how many it sealed.
pub async fn seal_plaintext_seeds(tx: &mut Tx, sealer: &secrets::Sealer) -> Result<u64> {
    let plain: Vec<(i64, String)> = on!(tx, c => sqlx::query_as(
        "SELECT user_id, secret FROM totp_credentials WHERE secret NOT LIKE 'v1:%'",
    )
    .fetch_all(&mut *c)
    .await)?;
    for (user_id, secret) in &plain {
        on!(tx, c => sqlx::query("UPDATE totp_credentials SET secret = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(sealer.seal(secret))
            .execute(&mut *c)
            .await
            .map(drop))?;
    }
    Ok(plain.len() as u64)
}

/// Starts (or restarts) enrolment with a new secret, sealed by the caller; unconfirmed until
/// [`confirm_totp`].
pub async fn begin_totp(tx: &mut Tx, user_id: i64, secret: &str) -> Result<()> {
    on!(tx, c => sqlx::query(
        "INSERT INTO totp_credentials (user_id, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, confirmed_at = NULL, last_step = 0, \
         created_at = excluded.created_at",
    )
    .bind(user_id)
    .bind(secret)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records that the code of time step `step` was used. Returns false when that step (or a
/// later one) was used already: a code works once, even within its 30 seconds.
pub async fn use_step(tx: &mut Tx, user_id: i64, step: i64) -> Result<bool> {
    let n = on!(tx, c => sqlx::query(
        "UPDATE totp_credentials SET last_step = $2 WHERE user_id = $1 AND last_step < $2",
    )
    .bind(user_id)
    .bind(step)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn confirm_totp(tx: &mut Tx, user_id: i64) -> Result<()> {
    on!(tx, c => sqlx::query("UPDATE totp_credentials SET confirmed_at = $2 WHERE user_id = $1")
        .bind(user_id)
        .bind(now())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Replaces the user's recovery codes with new ones; returns them (shown once).
pub async fn new_recovery_codes(tx: &mut Tx, user_id: i64, count: usize) -> Result<Vec<String>> {
    on!(tx, c => sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    let mut codes = Vec::with_capacity(count);
    for _ in 0..count {
        // 10 characters of Crockford-like base32 (about 50 bits), grouped for reading aloud.
        let raw = secrets::generate("").plaintext;
        let alphabet = b"0123456789abcdefghjkmnpqrstvwxyz";
        let chars: String = raw
            .bytes()
            .take(10)
            .map(|b| alphabet[(b as usize) % 32] as char)
            .collect();
        let code = format!("{}-{}", &chars[..5], &chars[5..]);
        on!(tx, c => sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(user_id)
            .bind(secrets::hash(&code))
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        codes.push(code);
    }
    Ok(codes)
}

/// Uses up a recovery code. Returns whether it was valid and unused.
pub async fn use_recovery_code(tx: &mut Tx, user_id: i64, code: &str) -> Result<bool> {
    let normalized = code.trim().to_ascii_lowercase();
    let n = on!(tx, c => sqlx::query(
        "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(user_id)
    .bind(secrets::hash(&normalized))
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Challenge {
    pub id: i64,
    pub user_id: i64,
    /// `verify` (enter a code) or `enrol` (set up an authenticator first).
    pub purpose: String,
    pub return_to: String,
}

/// A challenge for `user_id`, valid 10 minutes; returns the secret for its cookie.
pub async fn create_challenge(
    tx: &mut Tx,
    user_id: i64,
    purpose: &str,
    return_to: &str,
) -> Result<String> {
    let secret = secrets::generate("rc_mfa_");
    let now = now();
    on!(tx, c => sqlx::query(
        "INSERT INTO login_challenges (secret_hash, user_id, purpose, return_to, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&secret.hash)
    .bind(user_id)
    .bind(purpose)
    .bind(return_to)
    .bind(now + Duration::minutes(10))
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(secret.plaintext)
}

pub async fn challenge(tx: &mut Tx, secret: &str) -> Result<Option<Challenge>> {
    Ok(on!(tx, c => sqlx::query_as::<_, Challenge>(
        "SELECT id, user_id, purpose, return_to FROM login_challenges WHERE secret_hash = $1 AND expires_at > $2",
    )
    .bind(secrets::hash(secret))
    .bind(now())
    .fetch_optional(&mut *c)
    .await)?)
}

pub async fn end_challenge(tx: &mut Tx, id: i64) -> Result<()> {
    on!(tx, c => sqlx::query("DELETE FROM login_challenges WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes challenges that expired before `before`.
pub async fn prune_challenges(tx: &mut Tx, before: DateTime<Utc>) -> Result<u64> {
    Ok(
        on!(tx, c => sqlx::query("DELETE FROM login_challenges WHERE expires_at < $1")
        .bind(before)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?,
    )
}
