//! Password credentials of local accounts (hashes only; see `crate::accounts`).

use super::{now, on, Result, Tx};

pub async fn hash_of(tx: &mut Tx, user_id: i64) -> Result<Option<String>> {
    Ok(
        on!(tx, c => sqlx::query_scalar("SELECT password_hash FROM password_credentials WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&mut *c)
        .await)?,
    )
}

pub async fn set(tx: &mut Tx, user_id: i64, password_hash: &str) -> Result<()> {
    let now = now();
    on!(tx, c => sqlx::query(
        "INSERT INTO password_credentials (user_id, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
    )
    .bind(user_id)
    .bind(password_hash)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
