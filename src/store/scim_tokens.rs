//! SCIM bearer tokens: how an org's identity provider authenticates to its SCIM endpoint.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{now, on, orgs::Org, Error, Result, Tx};
use crate::secrets;

pub const PREFIX: &str = "rc_scim_";

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ScimToken {
    pub id: i64,
    /// The SSO connection of the same identity provider.
    pub connection_id: i64,
    pub name: String,
    /// The first characters of the token, to tell tokens apart.
    pub display_prefix: String,
    pub created_at: DateTime<Utc>,
    /// Recorded to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

macro_rules! select {
    () => {
        "SELECT id, connection_id, name, display_prefix, created_at, last_used_at FROM scim_tokens "
    };
}

/// A token for `connection_id`, which must be a connection of the org.
pub async fn create(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    name: &str,
) -> Result<(ScimToken, String)> {
    super::connections::require(tx, org_id, connection_id).await?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Invalid("token name must be 1–100 characters".into()));
    }
    let secret = secrets::generate(PREFIX);
    let id: i64 = on!(tx, c => sqlx::query_scalar(
                "INSERT INTO scim_tokens (org_id, connection_id, name, display_prefix, secret_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(org_id)
    .bind(connection_id)
    .bind(name)
    .bind(&secret.display_prefix)
    .bind(&secret.hash)
    .bind(now())
    .fetch_one(&mut *c)
    .await)?;
    let sql = concat!(select!(), "WHERE id = $1");
    let token =
        on!(tx, c => sqlx::query_as::<_, ScimToken>(sql).bind(id).fetch_one(&mut *c).await)?;
    Ok((token, secret.plaintext))
}

/// The org's tokens that still work, newest first.
pub async fn list(tx: &mut Tx, org_id: i64) -> Result<Vec<ScimToken>> {
    let sql = concat!(
        select!(),
        "WHERE org_id = $1 AND revoked_at IS NULL ORDER BY id DESC"
    );
    Ok(on!(tx, c => sqlx::query_as::<_, ScimToken>(sql).bind(org_id).fetch_all(&mut *c).await)?)
}

pub async fn revoke(tx: &mut Tx, org_id: i64, id: i64) -> Result<ScimToken> {
    let sql = concat!(
        select!(),
        "WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL"
    );
    let token = on!(tx, c => sqlx::query_as::<_, ScimToken>(sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?
    .ok_or(Error::NotFound("SCIM token"))?;
    on!(tx, c => sqlx::query("UPDATE scim_tokens SET revoked_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(token)
}

/// The org and token a bearer secret belongs to, if it is a live SCIM token: one query,
/// as it runs before every SCIM request. Only reads; the caller records use with [`touch`]
/// when [`super::credentials::is_stale`] says so.
pub async fn authenticate(tx: &mut Tx, secret: &str) -> Result<Option<(Org, ScimToken)>> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        token: ScimToken,
        org_id: i64,
        org_slug: String,
        org_name: String,
        org_require_2fa: bool,
        org_sso_enforced: bool,
        org_created_at: DateTime<Utc>,
        org_updated_at: DateTime<Utc>,
    }
    let sql = "SELECT t.id, t.connection_id, t.name, t.display_prefix, t.created_at, t.last_used_at, \
         o.id AS org_id, o.slug AS org_slug, o.name AS org_name, o.require_2fa AS org_require_2fa, \
         o.sso_enforced AS org_sso_enforced, o.created_at AS org_created_at, o.updated_at AS org_updated_at \
         FROM scim_tokens t JOIN organizations o ON o.id = t.org_id \
         WHERE t.secret_hash = $1 AND t.revoked_at IS NULL";
    let row = on!(tx, c => sqlx::query_as::<_, Row>(sql)
        .bind(secrets::hash(secret))
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(|r| {
        let org = Org {
            id: r.org_id,
            slug: r.org_slug,
            name: r.org_name,
            require_2fa: r.org_require_2fa,
            sso_enforced: r.org_sso_enforced,
            created_at: r.org_created_at,
            updated_at: r.org_updated_at,
        };
        (org, r.token)
    }))
}

pub async fn touch(tx: &mut Tx, token_id: i64) -> Result<()> {
    on!(tx, c => sqlx::query("UPDATE scim_tokens SET last_used_at = $2 WHERE id = $1")
        .bind(token_id)
        .bind(now())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{
        connections::{self, Kind},
        orgs,
        testing::memory_store,
    };

    #[tokio::test]
    async fn tokens_authenticate_their_org_until_revoked() {
        let store = memory_store().await;
        let mut tx = store.begin().await.unwrap();
        let acme = orgs::create(&mut tx, "acme", "Acme").await.unwrap();
        let other = orgs::create(&mut tx, "other", "Other").await.unwrap();
        let settings = serde_json::json!({});
        let okta =
            connections::create(&mut tx, acme.id, Kind::Saml, "Okta", true, settings.clone())
                .await
                .unwrap();
        let entra = connections::create(&mut tx, other.id, Kind::Oidc, "Entra", true, settings)
            .await
            .unwrap();
        let (token, secret) = create(&mut tx, acme.id, okta.id, "Okta").await.unwrap();
        assert_eq!(token.connection_id, okta.id);
        create(&mut tx, other.id, entra.id, "Entra").await.unwrap();
        // A connection of another org is not this org's to bind.
        assert!(matches!(
            create(&mut tx, acme.id, entra.id, "x").await,
            Err(Error::NotFound(_))
        ));
        assert!(secret.starts_with("rc_scim_"));
        let (org, found) = authenticate(&mut tx, &secret).await.unwrap().unwrap();
        assert_eq!((org.id, found.id), (acme.id, token.id));
        assert!(found.last_used_at.is_none(), "the row as it was");
        touch(&mut tx, found.id).await.unwrap();
        let (_, again) = authenticate(&mut tx, &secret).await.unwrap().unwrap();
        assert!(again.last_used_at.is_some(), "use was recorded");
        assert!(authenticate(&mut tx, "rc_scim_not-a-token")
            .await
            .unwrap()
            .is_none());
        assert!(authenticate(&mut tx, "rc_pat_wrong-kind")
            .await
            .unwrap()
            .is_none());
        assert_eq!(list(&mut tx, acme.id).await.unwrap().len(), 1);
        assert!(
            matches!(
                revoke(&mut tx, other.id, token.id).await,
                Err(Error::NotFound(_))
            ),
            "another org's token"
        );
        revoke(&mut tx, acme.id, token.id).await.unwrap();
        assert!(authenticate(&mut tx, &secret).await.unwrap().is_none());
        assert!(list(&mut tx, acme.id).await.unwrap().is_empty());
    }
}
