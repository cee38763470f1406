//! Access grants (who may sign in through a connection, and what they get) and
//! group-to-team mappings (which IdP group puts a person in which teams).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{domains, now, on, on_unique, teams, users, Error, Result, Tx};

/// An IdP group, named by its ID (e.g. an Entra group object ID) or by its name (e.g. an
/// Okta group). Exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Whether `s` is a GUID (Entra's tenant and object IDs), in either case.
pub fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A group ID as it is stored and compared: a GUID in lower case, as Entra's tokens and
/// SCIM pushes carry it; any other ID (Okta's are case-sensitive) as given.
pub fn canonical_group_id(id: &str) -> String {
    let id = id.trim();
    if is_guid(id) {
        id.to_ascii_lowercase()
    } else {
        id.to_string()
    }
}

impl GroupRef {
    /// (`id` | `name`, the value as stored).
    fn parts(&self) -> Result<(&'static str, String)> {
        match (&self.id, &self.name) {
            (Some(id), None) if !id.trim().is_empty() => Ok(("id", canonical_group_id(id))),
            (None, Some(name)) if !name.trim().is_empty() => Ok(("name", name.trim().to_string())),
            _ => Err(Error::Invalid(
                "a group is named by exactly one of \"id\" or \"name\", not empty".into(),
            )),
        }
    }
}

/// What a grant matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Match {
    /// Everyone the connection's IdP signs in.
    Everyone,
    /// People whose email is in this domain; the domain must be verified for the org.
    EmailDomain { domain: String },
    /// Members of an IdP group, by ID or by name (names compare case-insensitively).
    Group {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// One person, by the IdP's subject or by email.
    User {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TeamRef {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Grant {
    pub id: i64,
    pub connection_id: i64,
    #[serde(rename = "match")]
    pub matches: Match,
    pub teams: Vec<TeamRef>,
    /// Admin only through a grant that says so.
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Mapping {
    pub id: i64,
    pub connection_id: i64,
    pub group: GroupRef,
    pub teams: Vec<TeamRef>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: i64,
    connection_id: i64,
    match_kind: String,
    match_value: Option<String>,
    is_admin: bool,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct MappingRow {
    id: i64,
    connection_id: i64,
    group_match: String,
    group_value: String,
    created_at: DateTime<Utc>,
}

/// Checks the teams exist in the org and returns them without duplicates.
async fn check_teams(tx: &mut Tx, org_id: i64, team_ids: &[i64]) -> Result<BTreeSet<i64>> {
    let wanted: BTreeSet<i64> = team_ids.iter().copied().collect();
    let known = teams::existing_ids(tx, org_id, &wanted).await?;
    let missing: Vec<String> = wanted.difference(&known).map(i64::to_string).collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "no team with id {} in this organization",
            missing.join(", ")
        )));
    }
    Ok(wanted)
}

/// Turns an API match into the stored (kind, value), validating it.
async fn stored_match(
    tx: &mut Tx,
    org_id: i64,
    m: &Match,
) -> Result<(&'static str, Option<String>)> {
    Ok(match m {
        Match::Everyone => ("everyone", None),
        Match::EmailDomain { domain } => {
            let domain = domains::normalize(domain)?;
            if !domains::is_verified(tx, org_id, &domain).await? {
                return Err(Error::Invalid(format!(
                    "{domain} is not a verified domain of this organization; claim and verify it first"
                )));
            }
            ("email_domain", Some(domain))
        }
        Match::Group { id, name } => {
            let group = GroupRef {
                id: id.clone(),
                name: name.clone(),
            };
            match group.parts()? {
                ("id", v) => ("group_id", Some(v)),
                (_, v) => ("group_name", Some(v)),
            }
        }
        Match::User { subject, email } => match (subject, email) {
            (Some(s), None) if !s.trim().is_empty() => ("subject", Some(s.trim().to_string())),
            (None, Some(e)) => ("email", Some(users::normalize_email(e)?)),
            _ => {
                return Err(Error::Invalid(
                    "a user grant names exactly one of \"subject\" or \"email\"".into(),
                ))
            }
        },
    })
}

fn api_match(kind: &str, value: Option<String>) -> Match {
    let value = value.unwrap_or_default();
    match kind {
        "email_domain" => Match::EmailDomain { domain: value },
        "group_id" => Match::Group {
            id: Some(value),
            name: None,
        },
        "group_name" => Match::Group {
            id: None,
            name: Some(value),
        },
        "subject" => Match::User {
            subject: Some(value),
            email: None,
        },
        "email" => Match::User {
            subject: None,
            email: Some(value),
        },
        _ => Match::Everyone,
    }
}

pub async fn create_grant(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    matches: &Match,
    team_ids: &[i64],
    is_admin: bool,
) -> Result<Grant> {
    let (kind, value) = stored_match(tx, org_id, matches).await?;
    let team_ids = check_teams(tx, org_id, team_ids).await?;
    let id: i64 = on!(tx, c => sqlx::query_scalar(
        "INSERT INTO access_grants (org_id, connection_id, match_kind, match_value, is_admin, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(org_id)
    .bind(connection_id)
    .bind(kind)
    .bind(&value)
    .bind(is_admin)
    .bind(now())
    .fetch_one(&mut *c)
    .await)?;
    let sql = "INSERT INTO access_grant_teams (grant_id, team_id) VALUES ($1, $2)";
    teams::link(tx, sql, id, team_ids).await?;
    list_grants(tx, org_id, connection_id)
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or(Error::NotFound("grant"))
}

pub async fn list_grants(tx: &mut Tx, org_id: i64, connection_id: i64) -> Result<Vec<Grant>> {
    // One query, the teams joined in (a grant without teams is one row with none): every
    // sign-in and SCIM push reads the connection's rules.
    let rows = on!(tx, c => sqlx::query_as::<_, WithTeam<GrantRow>>(
        "SELECT g.id, g.connection_id, g.match_kind, g.match_value, g.is_admin, g.created_at, \
         t.id AS team_id, t.name AS team_name FROM access_grants g \
         LEFT JOIN access_grant_teams gt ON gt.grant_id = g.id LEFT JOIN teams t ON t.id = gt.team_id \
         WHERE g.org_id = $1 AND g.connection_id = $2 ORDER BY g.id, t.name_normalized",
    )
    .bind(org_id)
    .bind(connection_id)
    .fetch_all(&mut *c)
    .await)?;
    Ok(with_teams(rows, |r| r.id)
        .into_iter()
        .map(|(r, teams)| Grant {
            teams,
            id: r.id,
            connection_id: r.connection_id,
            matches: api_match(&r.match_kind, r.match_value),
            is_admin: r.is_admin,
            created_at: r.created_at,
        })
        .collect())
}

/// A rule's row with one of its teams (or none), as a LEFT JOIN gives it.
#[derive(sqlx::FromRow)]
struct WithTeam<T> {
    #[sqlx(flatten)]
    row: T,
    team_id: Option<i64>,
    team_name: Option<String>,
}

/// Folds LEFT JOIN rows, ordered by owner, into each owner with its teams.
fn with_teams<T>(rows: Vec<WithTeam<T>>, id: impl Fn(&T) -> i64) -> Vec<(T, Vec<TeamRef>)> {
    let mut out: Vec<(T, Vec<TeamRef>)> = Vec::new();
    for r in rows {
        let team = r
            .team_id
            .zip(r.team_name)
            .map(|(id, name)| TeamRef { id, name });
        match out.last_mut() {
            Some((last, teams)) if id(last) == id(&r.row) => teams.extend(team),
            _ => out.push((r.row, team.into_iter().collect())),
        }
    }
    out
}

pub async fn delete_grant(tx: &mut Tx, org_id: i64, connection_id: i64, id: i64) -> Result<Grant> {
    let grant = list_grants(tx, org_id, connection_id)
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or(Error::NotFound("grant"))?;
    on!(tx, c => sqlx::query("DELETE FROM access_grants WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(grant)
}

pub async fn create_mapping(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    group: &GroupRef,
    team_ids: &[i64],
) -> Result<Mapping> {
    let (by, value) = group.parts()?;
    if team_ids.is_empty() {
        return Err(Error::Invalid("a mapping names at least one team".into()));
    }
    let team_ids = check_teams(tx, org_id, team_ids).await?;
    let normalized = if by == "name" {
        value.to_lowercase()
    } else {
        value.clone()
    };
    let id: i64 = on!(tx, c => sqlx::query_scalar(
        "INSERT INTO group_mappings (org_id, connection_id, group_match, group_value, group_value_normalized, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(org_id)
    .bind(connection_id)
    .bind(by)
    .bind(&value)
    .bind(&normalized)
    .bind(now())
    .fetch_one(&mut *c)
    .await)
    .map_err(on_unique(
        "mapping_exists",
        format!("group {by} {value:?} is already mapped on this connection; change that mapping instead"),
    ))?;
    let sql = "INSERT INTO group_mapping_teams (mapping_id, team_id) VALUES ($1, $2)";
    teams::link(tx, sql, id, team_ids).await?;
    list_mappings(tx, org_id, connection_id)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or(Error::NotFound("mapping"))
}

pub async fn list_mappings(tx: &mut Tx, org_id: i64, connection_id: i64) -> Result<Vec<Mapping>> {
    let rows = on!(tx, c => sqlx::query_as::<_, WithTeam<MappingRow>>(
        "SELECT m.id, m.connection_id, m.group_match, m.group_value, m.created_at, \
         t.id AS team_id, t.name AS team_name FROM group_mappings m \
         LEFT JOIN group_mapping_teams mt ON mt.mapping_id = m.id LEFT JOIN teams t ON t.id = mt.team_id \
         WHERE m.org_id = $1 AND m.connection_id = $2 ORDER BY m.id, t.name_normalized",
    )
    .bind(org_id)
    .bind(connection_id)
    .fetch_all(&mut *c)
    .await)?;
    Ok(with_teams(rows, |r| r.id)
        .into_iter()
        .map(|(r, teams)| Mapping {
            teams,
            id: r.id,
            connection_id: r.connection_id,
            group: if r.group_match == "id" {
                GroupRef {
                    id: Some(r.group_value),
                    name: None,
                }
            } else {
                GroupRef {
                    id: None,
                    name: Some(r.group_value),
                }
            },
            created_at: r.created_at,
        })
        .collect())
}

pub async fn delete_mapping(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    id: i64,
) -> Result<Mapping> {
    let mapping = list_mappings(tx, org_id, connection_id)
        .await?
        .into_iter()
        .find(|m| m.id == id)
        .ok_or(Error::NotFound("mapping"))?;
    on!(tx, c => sqlx::query("DELETE FROM group_mappings WHERE id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(mapping)
}
