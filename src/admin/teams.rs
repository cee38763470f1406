//! Teams: create, rename, delete, and hand-picked members.

use super::{Admin, Result};
use crate::store::{
    audit::Event,
    orgs::Org,
    teams::{self, Team, TeamSource},
    Tx,
};

pub async fn create(tx: &mut Tx, admin: &Admin, org: &Org, name: &str) -> Result<Team> {
    let team = teams::create(tx, org.id, name).await?;
    let event = Event::new(org.id, "team.created", "team", team.id).after(&team);
    admin.record(tx, event).await?;
    Ok(team)
}

pub async fn rename(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    team_id: i64,
    name: &str,
) -> Result<Team> {
    let (before, after) = teams::rename(tx, org.id, team_id, name).await?;
    let event = Event::new(org.id, "team.renamed", "team", team_id)
        .before(&before)
        .after(&after);
    admin.record(tx, event).await?;
    Ok(after)
}

pub async fn delete(tx: &mut Tx, admin: &Admin, org: &Org, team_id: i64) -> Result<Team> {
    let before = teams::delete(tx, org.id, team_id).await?;
    let event = Event::new(org.id, "team.deleted", "team", team_id).before(&before);
    admin.record(tx, event).await?;
    Ok(before)
}

/// Puts a member in a team by hand. Returns false when they were in it already.
pub async fn add_member(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    team_id: i64,
    user_id: i64,
) -> Result<bool> {
    teams::require(tx, org.id, team_id).await?;
    if !teams::add_member(tx, org.id, team_id, user_id, TeamSource::Manual).await? {
        return Ok(false);
    }
    let event = Event::new(org.id, "team.member_added", "team", team_id)
        .after(&serde_json::json!({ "user_id": user_id, "source": "manual" }));
    admin.record(tx, event).await?;
    Ok(true)
}

/// Takes a member out of a team. Returns false when they were not in it.
pub async fn remove_member(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    team_id: i64,
    user_id: i64,
) -> Result<bool> {
    teams::require(tx, org.id, team_id).await?;
    if !teams::remove_member(tx, org.id, team_id, user_id).await? {
        return Ok(false);
    }
    let event = Event::new(org.id, "team.member_removed", "team", team_id)
        .before(&serde_json::json!({ "user_id": user_id }));
    admin.record(tx, event).await?;
    Ok(true)
}
