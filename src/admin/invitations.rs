//! Invitations: send (1 to 100 addresses), resend, revoke, clean up expired. Sending and
//! resending write the email to the outbox in the same transaction (`crate::invitations`).

use super::{Admin, Error, Result};
use crate::{
    config::Config,
    invitations::{self, AddressResult, Request},
    store::{
        audit::Event,
        invitations::{self as stored, Invitation},
        orgs::Org,
        Tx,
    },
};

/// The most addresses one request may invite.
pub const MAX_ADDRESSES: usize = 100;

/// Invites each address; one bad address does not stop the others.
pub async fn send(
    tx: &mut Tx,
    config: &Config,
    admin: &Admin,
    org: &Org,
    request: Request<'_>,
) -> Result<Vec<AddressResult>> {
    if request.emails.is_empty() || request.emails.len() > MAX_ADDRESSES {
        return Err(Error::Invalid(format!(
            "send 1 to {MAX_ADDRESSES} email addresses at a time, not {}",
            request.emails.len()
        )));
    }
    Ok(invitations::send(tx, config, org, &admin.actor, &admin.user, request).await?)
}

/// A new link and expiry; the old link stops working.
pub async fn resend(
    tx: &mut Tx,
    config: &Config,
    admin: &Admin,
    org: &Org,
    id: i64,
) -> Result<Invitation> {
    Ok(invitations::resend(tx, config, org, &admin.actor, &admin.user, id).await?)
}

pub async fn revoke(tx: &mut Tx, admin: &Admin, org: &Org, id: i64) -> Result<Invitation> {
    let revoked = stored::revoke(tx, org.id, id).await?;
    let event = Event::new(org.id, "invitation.revoked", "invitation", id).after(&revoked);
    admin.record(tx, event).await?;
    Ok(revoked)
}

/// Deletes the org's expired invitations; returns how many.
pub async fn delete_expired(tx: &mut Tx, admin: &Admin, org: &Org) -> Result<u64> {
    let deleted = stored::delete_expired(tx, org.id).await?;
    let event = Event::new(
        org.id,
        "invitation.expired_deleted",
        "organization",
        &org.slug,
    )
    .after(&serde_json::json!({ "deleted": deleted }));
    admin.record(tx, event).await?;
    Ok(deleted)
}
