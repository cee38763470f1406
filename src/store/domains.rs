//! Email domains an org claims. Verified domains decide when an SSO login may be linked to
//! an existing account by its email, and which grants may match by domain.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{now, on, on_unique, Error, Result, Tx};

/// The DNS name under the domain where the verification TXT record goes.
pub const TXT_LABEL: &str = "_rollcall-challenge";
/// The TXT record value is this prefix followed by the domain's token.
pub const TXT_PREFIX: &str = "rollcall-domain-verification=";

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Domain {
    pub id: i64,
    #[serde(skip)]
    pub org_id: i64,
    pub domain: String,
    #[serde(skip)]
    pub verification_token: String,
    pub verified_at: Option<DateTime<Utc>>,
    /// `dns` (TXT record found) or `operator` (the CLI).
    pub verified_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Domain {
    pub fn txt_name(&self) -> String {
        format!("{TXT_LABEL}.{}", self.domain)
    }

    pub fn txt_value(&self) -> String {
        format!("{TXT_PREFIX}{}", self.verification_token)
    }
}

macro_rules! select {
    () => {
        "SELECT id, org_id, domain, verification_token, verified_at, verified_by, created_at FROM domains "
    };
}

/// Lower-cases and checks a DNS domain name (IDNs must be given in their xn-- form).
pub fn normalize(domain: &str) -> Result<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let tld_ok = labels
        .last()
        .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()));
    if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) || !tld_ok {
        return Err(Error::Invalid(format!(
            "{domain:?} is not a valid domain name"
        )));
    }
    Ok(domain)
}

/// The domain part of an email address, lower-cased.
pub fn of_email(email: &str) -> Option<String> {
    email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())
}

pub async fn claim(tx: &mut Tx, org_id: i64, domain: &str) -> Result<Domain> {
    let domain = normalize(domain)?;
    let token = crate::secrets::generate("").plaintext;
    let id: i64 = on!(tx, c => sqlx::query_scalar(
        "INSERT INTO domains (org_id, domain, verification_token, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(org_id)
    .bind(&domain)
    .bind(&token)
    .bind(now())
    .fetch_one(&mut *c)
    .await)
    .map_err(on_unique(
        "domain_already_claimed",
        format!("this organization has already claimed {domain}"),
    ))?;
    require(tx, org_id, id).await
}

pub async fn list(tx: &mut Tx, org_id: i64) -> Result<Vec<Domain>> {
    let sql = concat!(select!(), "WHERE org_id = $1 ORDER BY domain");
    Ok(on!(tx, c => sqlx::query_as::<_, Domain>(sql).bind(org_id).fetch_all(&mut *c).await)?)
}

pub async fn require(tx: &mut Tx, org_id: i64, id: i64) -> Result<Domain> {
    let sql = concat!(select!(), "WHERE org_id = $1 AND id = $2");
    on!(tx, c => sqlx::query_as::<_, Domain>(sql)
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?
    .ok_or(Error::NotFound("domain"))
}

pub async fn by_name(tx: &mut Tx, org_id: i64, domain: &str) -> Result<Option<Domain>> {
    let domain = normalize(domain)?;
    let sql = concat!(select!(), "WHERE org_id = $1 AND domain = $2");
    Ok(on!(tx, c => sqlx::query_as::<_, Domain>(sql)
        .bind(org_id)
        .bind(&domain)
        .fetch_optional(&mut *c)
        .await)?)
}

/// The org that verified `domain`, if one did (a verified domain belongs to one org).
pub async fn verified_owner(tx: &mut Tx, domain: &str) -> Result<Option<i64>> {
    Ok(on!(tx, c => sqlx::query_scalar(
        "SELECT org_id FROM domains WHERE domain = $1 AND verified_at IS NOT NULL",
    )
    .bind(domain)
    .fetch_optional(&mut *c)
    .await)?)
}

/// Whether `domain` is verified for this org.
pub async fn is_verified(tx: &mut Tx, org_id: i64, domain: &str) -> Result<bool> {
    let n: i64 = on!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM domains WHERE org_id = $1 AND domain = $2 AND verified_at IS NOT NULL",
    )
    .bind(org_id)
    .bind(domain)
    .fetch_one(&mut *c)
    .await)?;
    Ok(n > 0)
}

/// The org's verified domains, for matching many addresses with one query.
pub async fn verified(tx: &mut Tx, org_id: i64) -> Result<std::collections::BTreeSet<String>> {
    let rows: Vec<String> = on!(tx, c => sqlx::query_scalar(
        "SELECT domain FROM domains WHERE org_id = $1 AND verified_at IS NOT NULL",
    )
    .bind(org_id)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().collect())
}

/// Marks a claimed domain verified. Refused when another org verified it first.
pub async fn mark_verified(tx: &mut Tx, org_id: i64, id: i64, by: &str) -> Result<Domain> {
    let domain = require(tx, org_id, id).await?;
    if domain.verified_at.is_some() {
        return Ok(domain);
    }
    on!(tx, c => sqlx::query("UPDATE domains SET verified_at = $3, verified_by = $4 WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .bind(now())
        .bind(by)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(on_unique(
        "domain_verified_elsewhere",
        format!("{} is already verified by another organization", domain.domain),
    ))?;
    require(tx, org_id, id).await
}

/// Deletes the claim. Grants that match by this domain must go first.
pub async fn delete(tx: &mut Tx, org_id: i64, id: i64) -> Result<Domain> {
    let domain = require(tx, org_id, id).await?;
    let grants: i64 = on!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM access_grants WHERE org_id = $1 AND match_kind = 'email_domain' AND match_value = $2",
    )
    .bind(org_id)
    .bind(&domain.domain)
    .fetch_one(&mut *c)
    .await)?;
    if grants > 0 {
        return Err(Error::conflict(
            "domain_in_use",
            format!(
                "{} is used by {grants} access grant(s); delete them first",
                domain.domain
            ),
        ));
    }
    on!(tx, c => sqlx::query("DELETE FROM domains WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_normalise() {
        assert_eq!(normalize(" Example.COM. ").unwrap(), "example.com");
        assert_eq!(
            normalize("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "com",
            "exa mple.com",
            "-a.com",
            "a..com",
            "a.123",
            "a_b.com",
            "example.com/x",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert_eq!(of_email("Bob@Example.com").as_deref(), Some("example.com"));
    }
}
