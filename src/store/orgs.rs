use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{now, on, on_unique, Error, Result, Tx};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Org {
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// Members who sign in with a password must use two-factor authentication.
    pub require_2fa: bool,
    /// Members must sign in through one of the org's SSO connections.
    pub sso_enforced: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone)]
pub struct OrgChanges {
    pub name: Option<String>,
    pub require_2fa: Option<bool>,
    pub sso_enforced: Option<bool>,
}

macro_rules! columns {
    () => {
        "id, slug, name, require_2fa, sso_enforced, created_at, updated_at"
    };
}

/// Slugs appear in URLs handed to IdPs (ACS, SCIM base), so they are kept URL-plain.
pub fn validate_slug(slug: &str) -> Result<()> {
    let ok = (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "organization slug {slug:?} must be 2–63 characters of a-z, 0-9 and '-', not starting or ending with '-'"
        )))
    }
}

pub fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::Invalid(
            "organization name must be 1–200 characters".into(),
        ));
    }
    Ok(name.to_string())
}

pub async fn create(tx: &mut Tx, slug: &str, name: &str) -> Result<Org> {
    validate_slug(slug)?;
    let name = validate_name(name)?;
    let now = now();
    let sql = concat!(
        "INSERT INTO organizations (slug, name, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING ",
        columns!()
    );
    on!(tx, c => sqlx::query_as::<_, Org>(sql)
        .bind(slug)
        .bind(&name)
        .bind(now)
        .fetch_one(&mut *c)
        .await)
    .map_err(on_unique(
        "org_slug_taken",
        format!("an organization with slug {slug:?} already exists"),
    ))
}

pub async fn by_slug(tx: &mut Tx, slug: &str) -> Result<Option<Org>> {
    let sql = concat!("SELECT ", columns!(), " FROM organizations WHERE slug = $1");
    Ok(on!(tx, c => sqlx::query_as::<_, Org>(sql).bind(slug).fetch_optional(&mut *c).await)?)
}

pub async fn by_id(tx: &mut Tx, id: i64) -> Result<Option<Org>> {
    let sql = concat!("SELECT ", columns!(), " FROM organizations WHERE id = $1");
    Ok(on!(tx, c => sqlx::query_as::<_, Org>(sql).bind(id).fetch_optional(&mut *c).await)?)
}

pub async fn update(tx: &mut Tx, org_id: i64, changes: OrgChanges) -> Result<Org> {
    let name = changes.name.as_deref().map(validate_name).transpose()?;
    let sql = concat!(
        "UPDATE organizations SET name = COALESCE($2, name), require_2fa = COALESCE($3, require_2fa), ",
        "sso_enforced = COALESCE($4, sso_enforced), updated_at = $5 WHERE id = $1 RETURNING ",
        columns!()
    );
    on!(tx, c => sqlx::query_as::<_, Org>(sql)
        .bind(org_id)
        .bind(&name)
        .bind(changes.require_2fa)
        .bind(changes.sso_enforced)
        .bind(now())
        .fetch_optional(&mut *c)
        .await)?
    .ok_or(Error::NotFound("organization"))
}

/// Serialises changes that must see a stable set of an org's admins (the last-admin rule)
/// on PostgreSQL. SQLite needs nothing: [`super::Store::begin`] already holds its write lock.
pub(crate) async fn lock(tx: &mut Tx, org_id: i64) -> Result<()> {
    if let Tx::Postgres(t) = tx {
        sqlx::query("SELECT id FROM organizations WHERE id = $1 FOR UPDATE")
            .bind(org_id)
            .execute(&mut **t)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::memory_store;

    #[test]
    fn slugs_are_url_plain() {
        assert!(validate_slug("acme-corp").is_ok());
        assert!(validate_slug("a").is_err());
        assert!(validate_slug("Acme").is_err());
        assert!(validate_slug("-acme").is_err());
        assert!(validate_slug("acme/../x").is_err());
    }

    #[tokio::test]
    async fn duplicate_slug_is_a_named_conflict() {
        let store = memory_store().await;
        let mut tx = store.begin().await.unwrap();
        create(&mut tx, "acme", "Acme").await.unwrap();
        let err = create(&mut tx, "acme", "Other").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Conflict {
                    code: "org_slug_taken",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn partial_update_keeps_other_settings() {
        let store = memory_store().await;
        let mut tx = store.begin().await.unwrap();
        let org = create(&mut tx, "acme", "Acme").await.unwrap();
        let changes = OrgChanges {
            require_2fa: Some(true),
            ..Default::default()
        };
        let updated = update(&mut tx, org.id, changes).await.unwrap();
        assert!(updated.require_2fa);
        assert!(!updated.sso_enforced);
        assert_eq!(updated.name, "Acme");
    }
}
