//! OpenID Connect sign-ins between the redirect to the provider and its callback.

use chrono::Duration;

use super::{now, on, Result, Tx};
use crate::secrets;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingLogin {
    pub connection_id: i64,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
}

pub async fn create(tx: &mut Tx, state: &str, login: &PendingLogin, ttl: Duration) -> Result<()> {
    let now = now();
    on!(tx, c => sqlx::query(
        "INSERT INTO oidc_logins (state_hash, connection_id, nonce, pkce_verifier, return_to, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(secrets::hash(state))
    .bind(login.connection_id)
    .bind(&login.nonce)
    .bind(&login.pkce_verifier)
    .bind(&login.return_to)
    .bind(now + ttl)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Takes the sign-in a state belongs to, once: a replayed, unknown or expired state gets
/// `None`, also when two callbacks race on two instances.
pub async fn consume(tx: &mut Tx, state: &str) -> Result<Option<PendingLogin>> {
    Ok(on!(tx, c => sqlx::query_as::<_, PendingLogin>(
        "DELETE FROM oidc_logins WHERE state_hash = $1 AND expires_at > $2 \
         RETURNING connection_id, nonce, pkce_verifier, return_to",
    )
    .bind(secrets::hash(state))
    .bind(now())
    .fetch_optional(&mut *c)
    .await)?)
}

/// Forgets sign-ins whose time ran out; anyone can start one, so they must not pile up.
pub async fn prune(tx: &mut Tx, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
    Ok(
        on!(tx, c => sqlx::query("DELETE FROM oidc_logins WHERE expires_at < $1")
        .bind(before)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?,
    )
}
