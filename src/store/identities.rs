//! External identities: (connection, subject) → user. The subject is the one thing an IdP
//! guarantees stable (SAML persistent NameID, Entra tid+oid, SCIM id), so it, not the
//! email, is the key an SSO login is found by.

use super::{now, on, Result, Tx};

pub async fn find(tx: &mut Tx, connection_id: i64, subject: &str) -> Result<Option<i64>> {
    Ok(on!(tx, c => sqlx::query_scalar(
        "SELECT user_id FROM external_identities WHERE connection_id = $1 AND subject = $2",
    )
    .bind(connection_id)
    .bind(subject)
    .fetch_optional(&mut *c)
    .await)?)
}

/// Links the subject to the user, or keeps the link a concurrent login made first.
/// Returns the user the subject is linked to afterwards, and records this sighting.
pub async fn link(
    tx: &mut Tx,
    connection_id: i64,
    subject: &str,
    user_id: i64,
    email: Option<&str>,
) -> Result<i64> {
    let now = now();
    on!(tx, c => sqlx::query(
        "INSERT INTO external_identities (connection_id, subject, user_id, email, created_at, last_seen_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (connection_id, subject) \
         DO UPDATE SET email = excluded.email, last_seen_at = excluded.last_seen_at",
    )
    .bind(connection_id)
    .bind(subject)
    .bind(user_id)
    .bind(email)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    find(tx, connection_id, subject)
        .await?
        .ok_or(super::Error::NotFound("external identity"))
}
