//! An org's SSO connections. The protocol settings are owned by the SAML and OIDC front
//! doors; here a connection is what grants, mappings and external identities hang on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::{now, on, on_unique, text_enum, Error, Result, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// SAML 2.0 (Okta and other SAML IdPs).
    Saml,
    /// OpenID Connect (Microsoft Entra ID / Azure AD and other OIDC providers).
    Oidc,
}

text_enum!(Kind {
    Saml = "saml",
    Oidc = "oidc",
});

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Connection {
    pub id: i64,
    #[serde(skip)]
    pub org_id: i64,
    /// `saml` or `oidc`.
    pub kind: Kind,
    pub name: String,
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub settings: Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Changes {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub settings: Option<Value>,
}

macro_rules! select {
    () => {
        "SELECT id, org_id, kind, name, enabled, settings, created_at, updated_at FROM connections "
    };
}

fn validate_name(name: &str) -> Result<(String, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Invalid(
            "connection name must be 1–100 characters".into(),
        ));
    }
    Ok((name.to_string(), name.to_lowercase()))
}

fn validate_settings(settings: &Value) -> Result<()> {
    if settings.is_object() {
        Ok(())
    } else {
        Err(Error::Invalid(
            "connection settings must be a JSON object".into(),
        ))
    }
}

fn name_taken(name: &str) -> impl FnOnce(sqlx::Error) -> Error {
    on_unique(
        "connection_name_taken",
        format!("a connection named {name:?} already exists in this organization"),
    )
}

pub async fn create(
    tx: &mut Tx,
    org_id: i64,
    kind: Kind,
    name: &str,
    enabled: bool,
    settings: Value,
) -> Result<Connection> {
    let (name, normalized) = validate_name(name)?;
    validate_settings(&settings)?;
    let now = now();
    let id: i64 = on!(tx, c => sqlx::query_scalar(
        "INSERT INTO connections (org_id, kind, name, name_normalized, enabled, settings, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
    )
    .bind(org_id)
    .bind(kind.as_str())
    .bind(&name)
    .bind(&normalized)
    .bind(enabled)
    .bind(Json(&settings))
    .bind(now)
    .fetch_one(&mut *c)
    .await)
    .map_err(name_taken(&name))?;
    require(tx, org_id, id).await
}

pub async fn list(tx: &mut Tx, org_id: i64) -> Result<Vec<Connection>> {
    let sql = concat!(select!(), "WHERE org_id = $1 ORDER BY name_normalized");
    Ok(on!(tx, c => sqlx::query_as::<_, Connection>(sql).bind(org_id).fetch_all(&mut *c).await)?)
}

/// A connection of this org; another org's connection is "not found".
pub async fn require(tx: &mut Tx, org_id: i64, id: i64) -> Result<Connection> {
    let sql = concat!(select!(), "WHERE org_id = $1 AND id = $2");
    on!(tx, c => sqlx::query_as::<_, Connection>(sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?
    .ok_or(Error::NotFound("connection"))
}

/// Every connection of a kind, in every org (for the SAML metadata refresher).
pub async fn all_of_kind(tx: &mut Tx, kind: Kind) -> Result<Vec<Connection>> {
    let sql = concat!(select!(), "WHERE kind = $1 ORDER BY id");
    Ok(on!(tx, c => sqlx::query_as::<_, Connection>(sql).bind(kind).fetch_all(&mut *c).await)?)
}

/// A connection by id alone, for front doors whose URL names it.
pub async fn by_id(tx: &mut Tx, id: i64) -> Result<Option<Connection>> {
    let sql = concat!(select!(), "WHERE id = $1");
    Ok(on!(tx, c => sqlx::query_as::<_, Connection>(sql).bind(id).fetch_optional(&mut *c).await)?)
}

pub async fn update(
    tx: &mut Tx,
    org_id: i64,
    id: i64,
    changes: Changes,
) -> Result<(Connection, Connection)> {
    let before = require(tx, org_id, id).await?;
    let (name, normalized) = match &changes.name {
        Some(name) => validate_name(name)?,
        None => (before.name.clone(), before.name.to_lowercase()),
    };
    if let Some(settings) = &changes.settings {
        validate_settings(settings)?;
    }
    let settings = changes
        .settings
        .unwrap_or_else(|| before.settings.0.clone());
    on!(tx, c => sqlx::query(
        "UPDATE connections SET name = $3, name_normalized = $4, enabled = $5, settings = $6, updated_at = $7 \
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .bind(&name)
    .bind(&normalized)
    .bind(changes.enabled.unwrap_or(before.enabled))
    .bind(Json(&settings))
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(name_taken(&name))?;
    let after = require(tx, org_id, id).await?;
    Ok((before, after))
}

/// Deletes the connection with its grants, mappings and external identities. Members it
/// provisioned stay members; they can no longer sign in through it.
pub async fn delete(tx: &mut Tx, org_id: i64, id: i64) -> Result<Connection> {
    let before = require(tx, org_id, id).await?;
    on!(tx, c => sqlx::query("DELETE FROM connections WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(before)
}
