//! Password reset links.

use chrono::Duration;

use super::{now, on, Result, Tx};

pub async fn create(tx: &mut Tx, user_id: i64, token_hash: &str, ttl: Duration) -> Result<()> {
    let now = now();
    on!(tx, c => sqlx::query(
        "INSERT INTO password_resets (user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(token_hash)
    .bind(now + ttl)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The user of a usable (unused, unexpired) reset link.
pub async fn user_of(tx: &mut Tx, token_hash: &str) -> Result<Option<i64>> {
    Ok(on!(tx, c => sqlx::query_scalar(
        "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now())
    .fetch_optional(&mut *c)
    .await)?)
}

/// Uses the link up, and every other open link of the same user. Returns the user, or None
/// when the link was no longer usable (single use, also under concurrency).
pub async fn consume(tx: &mut Tx, token_hash: &str) -> Result<Option<i64>> {
    let now = now();
    let user: Option<i64> = on!(tx, c => sqlx::query_scalar(
        "UPDATE password_resets SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         RETURNING user_id",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await)?;
    if let Some(user_id) = user {
        on!(tx, c => sqlx::query("UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(user)
}
