//! SCIM tokens: made for one SSO connection, shown once, revoked.

use super::{Admin, Result};
use crate::store::{
    audit::Event,
    orgs::Org,
    scim_tokens::{self, ScimToken},
    Tx,
};

/// A new token and its secret, which is shown this once.
pub async fn create(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    connection_id: i64,
    name: &str,
) -> Result<(ScimToken, String)> {
    let (token, secret) = scim_tokens::create(tx, org.id, connection_id, name).await?;
    let event = Event::new(org.id, "scim_token.created", "scim_token", token.id).after(&token);
    admin.record(tx, event).await?;
    Ok((token, secret))
}

pub async fn revoke(tx: &mut Tx, admin: &Admin, org: &Org, id: i64) -> Result<ScimToken> {
    let token = scim_tokens::revoke(tx, org.id, id).await?;
    let event = Event::new(org.id, "scim_token.revoked", "scim_token", id).before(&token);
    admin.record(tx, event).await?;
    Ok(token)
}
