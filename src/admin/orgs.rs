//! Org settings: name, required 2FA, enforced single sign-on.

use super::{Admin, Result};
use crate::store::{
    audit::Event,
    orgs::{self, Org, OrgChanges},
    Tx,
};

pub async fn update(tx: &mut Tx, admin: &Admin, org: &Org, changes: OrgChanges) -> Result<Org> {
    let after = orgs::update(tx, org.id, changes).await?;
    let event = Event::new(org.id, "org.updated", "organization", &org.slug);
    admin.record(tx, event.before(org).after(&after)).await?;
    Ok(after)
}
