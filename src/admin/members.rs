//! Members: promote and demote, suspend and reactivate, set teams, remove.

use super::{Admin, Result};
use crate::store::{
    audit::Event,
    members::{self, Member, Status, SuspendedBy},
    orgs::Org,
    Tx,
};

/// Sets the admin flag and/or the status; each change that happens is its own audit event.
pub async fn update(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    user_id: i64,
    is_admin: Option<bool>,
    status: Option<Status>,
) -> Result<Member> {
    let mut member = members::require(tx, org.id, user_id).await?;
    if let Some(is_admin) = is_admin.filter(|&a| a != member.is_admin) {
        let (before, after) = members::set_admin(tx, org.id, user_id, is_admin).await?;
        let action = if is_admin {
            "member.promoted"
        } else {
            "member.demoted"
        };
        let event = Event::new(org.id, action, "member", user_id);
        admin
            .record(tx, event.before(&before).after(&after))
            .await?;
        member = after;
    }
    if let Some(status) = status.filter(|s| *s != member.status) {
        let (before, after) =
            members::set_status(tx, org.id, user_id, status, SuspendedBy::Admin).await?;
        let action = match status {
            Status::Suspended => "member.suspended",
            Status::Active => "member.reactivated",
        };
        let event = Event::new(org.id, action, "member", user_id);
        admin
            .record(tx, event.before(&before).after(&after))
            .await?;
        member = after;
    }
    Ok(member)
}

/// Sets the member's hand-picked teams to exactly `team_ids`.
pub async fn set_teams(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    user_id: i64,
    team_ids: &[i64],
) -> Result<Member> {
    let (before, after) = members::replace_teams(tx, org.id, user_id, team_ids).await?;
    if before.teams != after.teams {
        let event = Event::new(org.id, "member.teams_changed", "member", user_id);
        admin
            .record(tx, event.before(&before).after(&after))
            .await?;
    }
    Ok(after)
}

/// Removes the member: they lose access with the commit.
pub async fn remove(tx: &mut Tx, admin: &Admin, org: &Org, user_id: i64) -> Result<Member> {
    let before = members::remove(tx, org.id, user_id).await?;
    let event = Event::new(org.id, "member.removed", "member", user_id);
    admin.record(tx, event.before(&before)).await?;
    Ok(before)
}
