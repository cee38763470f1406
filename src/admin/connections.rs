//! SSO connections, their access grants and group-to-team mappings. Settings arrive already
//! prepared (`crate::connections::prepare`: checked, secrets sealed, metadata fetched).

use serde_json::Value;

use super::{Admin, Result};
use crate::{
    connections::shown,
    provisioning::push,
    store::{
        audit::Event,
        connections::{self, Changes, Connection, Kind},
        grants::{self, Grant, GroupRef, Mapping, Match},
        orgs::Org,
        Tx,
    },
};

pub async fn create(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    kind: Kind,
    name: &str,
    enabled: bool,
    settings: Value,
) -> Result<Connection> {
    let created = shown(connections::create(tx, org.id, kind, name, enabled, settings).await?);
    let event = Event::new(org.id, "connection.created", "connection", created.id).after(&created);
    admin.record(tx, event).await?;
    Ok(created)
}

pub async fn update(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    id: i64,
    changes: Changes,
) -> Result<Connection> {
    let (before, after) = connections::update(tx, org.id, id, changes).await?;
    let (before, after) = (shown(before), shown(after));
    let event = Event::new(org.id, "connection.updated", "connection", id)
        .before(&before)
        .after(&after);
    admin.record(tx, event).await?;
    Ok(after)
}

pub async fn delete(tx: &mut Tx, admin: &Admin, org: &Org, id: i64) -> Result<Connection> {
    let before = shown(connections::delete(tx, org.id, id).await?);
    let event = Event::new(org.id, "connection.deleted", "connection", id).before(&before);
    admin.record(tx, event).await?;
    Ok(before)
}

pub async fn create_grant(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    connection_id: i64,
    matches: &Match,
    team_ids: &[i64],
    is_admin: bool,
) -> Result<Grant> {
    connections::require(tx, org.id, connection_id).await?;
    let grant =
        grants::create_grant(tx, org.id, connection_id, matches, team_ids, is_admin).await?;
    let event = Event::new(org.id, "grant.created", "grant", grant.id).after(&grant);
    admin.record(tx, event).await?;
    Ok(grant)
}

pub async fn delete_grant(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    connection_id: i64,
    grant_id: i64,
) -> Result<Grant> {
    let grant = grants::delete_grant(tx, org.id, connection_id, grant_id).await?;
    let event = Event::new(org.id, "grant.deleted", "grant", grant_id).before(&grant);
    admin.record(tx, event).await?;
    Ok(grant)
}

/// Maps a group to teams; people the IdP already pushed into the group get them now.
pub async fn create_mapping(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    connection_id: i64,
    group: &GroupRef,
    team_ids: &[i64],
) -> Result<Mapping> {
    connections::require(tx, org.id, connection_id).await?;
    let mapping = grants::create_mapping(tx, org.id, connection_id, group, team_ids).await?;
    let resynced = push::resync_group(tx, org.id, connection_id, &mapping.group).await?;
    let event = Event::new(org.id, "mapping.created", "mapping", mapping.id)
        .after(&serde_json::json!({"mapping": mapping, "pushed_members_changed": resynced}));
    admin.record(tx, event).await?;
    Ok(mapping)
}

/// Removes a mapping; people the IdP pushed into the group lose its teams now.
pub async fn delete_mapping(
    tx: &mut Tx,
    admin: &Admin,
    org: &Org,
    connection_id: i64,
    mapping_id: i64,
) -> Result<Mapping> {
    let mapping = grants::delete_mapping(tx, org.id, connection_id, mapping_id).await?;
    let resynced = push::resync_group(tx, org.id, connection_id, &mapping.group).await?;
    let event = Event::new(org.id, "mapping.deleted", "mapping", mapping_id)
        .before(&mapping)
        .after(&serde_json::json!({"pushed_members_changed": resynced}));
    admin.record(tx, event).await?;
    Ok(mapping)
}
