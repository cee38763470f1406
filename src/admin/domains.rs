//! Email domains: claim, verify by DNS TXT record, delete.

use super::{Admin, Error, Result};
use crate::{
    dns,
    store::{
        audit::Event,
        domains::{self, Domain},
        orgs::Org,
        Store, Tx,
    },
};

pub async fn claim(tx: &mut Tx, admin: &Admin, org: &Org, domain: &str) -> Result<Domain> {
    let domain = domains::claim(tx, org.id, domain).await?;
    let event = Event::new(org.id, "domain.claimed", "domain", &domain.domain).after(&domain);
    admin.record(tx, event).await?;
    Ok(domain)
}

pub async fn delete(tx: &mut Tx, admin: &Admin, org: &Org, id: i64) -> Result<Domain> {
    let domain = domains::delete(tx, org.id, id).await?;
    let event = Event::new(org.id, "domain.deleted", "domain", &domain.domain).before(&domain);
    admin.record(tx, event).await?;
    Ok(domain)
}

/// Looks the TXT record up now and marks the domain verified when it carries the value. The
/// lookup runs outside any transaction (DNS can take seconds); the admin check runs again
/// with the write.
pub async fn verify(
    store: &Store,
    resolver: &dns::Resolver,
    admin: &Admin,
    slug: &str,
    id: i64,
) -> Result<Domain> {
    let domain = {
        let mut tx = store.read().await?;
        let org = admin.org(&mut tx, slug).await?;
        domains::require(&mut tx, org.id, id).await?
    };
    if domain.verified_at.is_some() {
        return Ok(domain);
    }
    let (name, expected) = (domain.txt_name(), domain.txt_value());
    let found = resolver.txt(&name).await.map_err(|err| {
        tracing::warn!(%name, %err, "domain verification lookup failed");
        Error::Upstream {
            code: "dns_lookup_failed",
            message: format!("looking up TXT {name} failed: {err}; try again later"),
        }
    })?;
    if !found.iter().any(|v| v.trim() == expected) {
        let seen = if found.is_empty() {
            "no TXT record".to_string()
        } else {
            format!("TXT records {found:?}")
        };
        return Err(Error::Unprocessable {
            code: "domain_not_verified",
            message: format!(
                "{name} has {seen}; publish a TXT record with the value {expected:?} and try again"
            ),
        });
    }
    let mut tx = store.begin().await?;
    let org = admin.org(&mut tx, slug).await?;
    let verified = domains::mark_verified(&mut tx, org.id, id, "dns").await?;
    let event = Event::new(org.id, "domain.verified", "domain", &verified.domain).after(&verified);
    admin.record(&mut tx, event).await?;
    tx.commit().await?;
    Ok(verified)
}
