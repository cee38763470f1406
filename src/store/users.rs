use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{now, on, Error, Result, Tx};

/// One global identity. A person who belongs to several orgs is one user.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default, Clone)]
pub struct NewUser {
    pub email: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

/// The columns of [`User`], qualified so they can be selected from joins.
macro_rules! user_columns {
    () => {
        "users.id, users.email, users.display_name, users.given_name, users.family_name, users.created_at"
    };
}
pub(crate) use user_columns;

/// Trims and lower-cases an address after a structural check. Lower-casing the local part
/// departs from RFC 5321, but every IdP and mail provider rollcall meets treats it as
/// case-insensitive, and two accounts differing only in case would be a takeover risk.
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim();
    let invalid = || Error::Invalid(format!("{email:?} is not a valid email address"));
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let domain_ok = domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
        && !domain.contains(['@', '[', ']', '(', ')', ',', ';', ':', '<', '>', '"']);
    if local.is_empty() || local.len() > 64 || local.contains(['@', '<', '>', '"']) || !domain_ok {
        return Err(invalid());
    }
    Ok(email.to_lowercase())
}

pub async fn get(tx: &mut Tx, user_id: i64) -> Result<Option<User>> {
    let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
    Ok(on!(tx, c => sqlx::query_as::<_, User>(sql).bind(user_id).fetch_optional(&mut *c).await)?)
}

pub async fn by_email(tx: &mut Tx, email: &str) -> Result<Option<User>> {
    let normalized = normalize_email(email)?;
    let sql = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE email_normalized = $1"
    );
    Ok(
        on!(tx, c => sqlx::query_as::<_, User>(sql).bind(&normalized).fetch_optional(&mut *c).await)?,
    )
}

pub async fn create(tx: &mut Tx, new: NewUser) -> Result<User> {
    insert_if_absent(tx, &new).await?.ok_or_else(|| {
        let email = normalize_email(&new.email).unwrap_or_default();
        Error::conflict(
            "email_taken",
            format!("a user with email {email:?} already exists"),
        )
    })
}

/// Creates the user unless one with this email exists; `None` then. For concurrent first
/// logins, where check-then-insert would race.
pub async fn insert_if_absent(tx: &mut Tx, new: &NewUser) -> Result<Option<User>> {
    let normalized = normalize_email(&new.email)?;
    let now = now();
    let sql = concat!(
        "INSERT INTO users (email, email_normalized, display_name, given_name, family_name, created_at, updated_at) ",
        "VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (email_normalized) DO NOTHING RETURNING ",
        user_columns!()
    );
    Ok(on!(tx, c => sqlx::query_as::<_, User>(sql)
        .bind(new.email.trim())
        .bind(&normalized)
        .bind(&new.display_name)
        .bind(&new.given_name)
        .bind(&new.family_name)
        .bind(now)
        .fetch_optional(&mut *c)
        .await)?)
}

/// Takes names the IdP sent; names it did not send are kept.
pub async fn update_names(tx: &mut Tx, user_id: i64, new: &NewUser) -> Result<()> {
    on!(tx, c => sqlx::query(
        "UPDATE users SET display_name = COALESCE($2, display_name), given_name = COALESCE($3, given_name), \
         family_name = COALESCE($4, family_name), updated_at = $5 WHERE id = $1 \
         AND (display_name IS DISTINCT FROM COALESCE($2, display_name) OR given_name IS DISTINCT FROM COALESCE($3, given_name) \
         OR family_name IS DISTINCT FROM COALESCE($4, family_name))",
    )
    .bind(user_id)
    .bind(&new.display_name)
    .bind(&new.given_name)
    .bind(&new.family_name)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Changes the sign-in address. Another account with it already is a conflict.
pub async fn update_email(tx: &mut Tx, user_id: i64, email: &str) -> Result<()> {
    let normalized = normalize_email(email)?;
    on!(tx, c => sqlx::query(
        "UPDATE users SET email = $2, email_normalized = $3, updated_at = $4 WHERE id = $1 AND email <> $2",
    )
    .bind(user_id)
    .bind(email.trim())
    .bind(&normalized)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(super::on_unique(
        "uniqueness",
        format!("another account already uses {normalized}"),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::memory_store;

    #[test]
    fn emails_normalise_and_reject_garbage() {
        assert_eq!(
            normalize_email("  Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@localhost",
            "a b@example.com",
            "alice@exa mple.com",
            "alice@-example.com",
            "alice@example..com",
            "<alice@example.com>",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[tokio::test]
    async fn email_is_unique_case_insensitively() {
        let store = memory_store().await;
        let mut tx = store.begin().await.unwrap();
        let alice = create(
            &mut tx,
            NewUser {
                email: "Alice@Example.com".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(alice.email, "Alice@Example.com");
        let err = create(
            &mut tx,
            NewUser {
                email: "alice@example.COM".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            Error::Conflict {
                code: "email_taken",
                ..
            }
        ));
        let found = by_email(&mut tx, "ALICE@example.com").await.unwrap();
        assert_eq!(found.map(|u| u.id), Some(alice.id));
    }
}
