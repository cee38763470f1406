use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::QueryBuilder;
use utoipa::ToSchema;

use super::{now, on, on_unique, text_enum, users::user_columns, users::User, Error, Result, Tx};

/// Who put a member in a team: an admin by hand, an SSO sign-in or a SCIM push (from the
/// IdP's groups), or an invitation. IdP reconciliation only touches its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TeamSource {
    Manual,
    Sso,
    Scim,
    Invitation,
}

text_enum!(TeamSource {
    Manual = "manual",
    Sso = "sso",
    Scim = "scim",
    Invitation = "invitation",
});

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub member_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct TeamMember {
    #[sqlx(flatten)]
    pub user: User,
    pub source: TeamSource,
    pub added_at: DateTime<Utc>,
}

macro_rules! team_select {
    () => {
        concat!(
            "SELECT t.id, t.name, t.created_at, t.updated_at, ",
            "(SELECT COUNT(*) FROM team_memberships tm WHERE tm.team_id = t.id) AS member_count ",
            "FROM teams t "
        )
    };
}

fn validate_name(name: &str) -> Result<(String, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Invalid("team name must be 1–100 characters".into()));
    }
    Ok((name.to_string(), name.to_lowercase()))
}

fn name_taken(name: &str) -> impl FnOnce(sqlx::Error) -> Error {
    on_unique(
        "team_name_taken",
        format!("a team named {name:?} already exists in this organization"),
    )
}

pub async fn create(tx: &mut Tx, org_id: i64, name: &str) -> Result<Team> {
    let (name, normalized) = validate_name(name)?;
    let now = now();
    let id: i64 = on!(tx, c => sqlx::query_scalar(
        "INSERT INTO teams (org_id, name, name_normalized, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) RETURNING id",
    )
    .bind(org_id)
    .bind(&name)
    .bind(&normalized)
    .bind(now)
    .fetch_one(&mut *c)
    .await)
    .map_err(name_taken(&name))?;
    require(tx, org_id, id).await
}

pub async fn list(tx: &mut Tx, org_id: i64) -> Result<Vec<Team>> {
    let sql = concat!(
        team_select!(),
        "WHERE t.org_id = $1 ORDER BY t.name_normalized"
    );
    Ok(on!(tx, c => sqlx::query_as::<_, Team>(sql).bind(org_id).fetch_all(&mut *c).await)?)
}

pub async fn get(tx: &mut Tx, org_id: i64, team_id: i64) -> Result<Option<Team>> {
    let sql = concat!(team_select!(), "WHERE t.org_id = $1 AND t.id = $2");
    Ok(on!(tx, c => sqlx::query_as::<_, Team>(sql)
        .bind(org_id)
        .bind(team_id)
        .fetch_optional(&mut *c)
        .await)?)
}

pub async fn require(tx: &mut Tx, org_id: i64, team_id: i64) -> Result<Team> {
    get(tx, org_id, team_id)
        .await?
        .ok_or(Error::NotFound("team"))
}

pub async fn rename(tx: &mut Tx, org_id: i64, team_id: i64, name: &str) -> Result<(Team, Team)> {
    let before = require(tx, org_id, team_id).await?;
    let (name, normalized) = validate_name(name)?;
    on!(tx, c => sqlx::query(
        "UPDATE teams SET name = $3, name_normalized = $4, updated_at = $5 WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(team_id)
    .bind(&name)
    .bind(&normalized)
    .bind(now())
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))
    .map_err(name_taken(&name))?;
    Ok((before, require(tx, org_id, team_id).await?))
}

pub async fn delete(tx: &mut Tx, org_id: i64, team_id: i64) -> Result<Team> {
    let before = require(tx, org_id, team_id).await?;
    on!(tx, c => sqlx::query("DELETE FROM teams WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(team_id)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(before)
}

pub async fn members(tx: &mut Tx, org_id: i64, team_id: i64) -> Result<Vec<TeamMember>> {
    require(tx, org_id, team_id).await?;
    let sql = concat!(
        "SELECT ",
        user_columns!(),
        ", tm.source, tm.created_at AS added_at FROM team_memberships tm ",
        "JOIN users ON users.id = tm.user_id WHERE tm.org_id = $1 AND tm.team_id = $2 ",
        "ORDER BY users.email_normalized"
    );
    Ok(on!(tx, c => sqlx::query_as::<_, TeamMember>(sql)
        .bind(org_id)
        .bind(team_id)
        .fetch_all(&mut *c)
        .await)?)
}

/// Adds a member of the org to a team; adding someone already in it changes nothing.
/// Returns whether a row was added.
pub async fn add_member(
    tx: &mut Tx,
    org_id: i64,
    team_id: i64,
    user_id: i64,
    source: TeamSource,
) -> Result<bool> {
    let result = on!(tx, c => sqlx::query(
        "INSERT INTO team_memberships (team_id, org_id, user_id, source, created_at) \
         SELECT t.id, t.org_id, $3, $4, $5 FROM teams t WHERE t.id = $2 AND t.org_id = $1 \
         ON CONFLICT (team_id, user_id) DO NOTHING",
    )
    .bind(org_id)
    .bind(team_id)
    .bind(user_id)
    .bind(source)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()));
    match result {
        Ok(n) => Ok(n == 1),
        // The composite key to memberships: the user is not a member of this org.
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            Err(Error::NotFound("member"))
        }
        Err(err) => Err(err.into()),
    }
}

/// Returns whether a row was removed.
pub async fn remove_member(tx: &mut Tx, org_id: i64, team_id: i64, user_id: i64) -> Result<bool> {
    let n = on!(tx, c => sqlx::query(
        "DELETE FROM team_memberships WHERE org_id = $1 AND team_id = $2 AND user_id = $3",
    )
    .bind(org_id)
    .bind(team_id)
    .bind(user_id)
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Rows bound per statement by the set-based writes below: far under both backends'
/// limits on bound parameters (SQLite 32,766, PostgreSQL 65,535).
const PAIRS_PER_STATEMENT: usize = 1000;

/// [`add_member`] for many `(team_id, user_id)` pairs at once, a statement per thousand:
/// re-applying the teams of a large group's members must not cost a round trip each.
/// Returns the pairs that were added (not those already there, nor teams of another org).
pub async fn add_members(
    tx: &mut Tx,
    org_id: i64,
    pairs: &[(i64, i64)],
    source: TeamSource,
) -> Result<Vec<(i64, i64)>> {
    let mut added = Vec::new();
    for chunk in pairs.chunks(PAIRS_PER_STATEMENT) {
        let rows: Vec<(i64, i64)> = on!(tx, c => {
            // VALUES columns are column1, column2 on both backends; `WHERE TRUE` keeps
            // SQLite from reading ON CONFLICT as the join's ON.
            let mut q = QueryBuilder::new(
                "INSERT INTO team_memberships (team_id, org_id, user_id, source, created_at) \
                 SELECT t.id, t.org_id, v.column2, ",
            );
            q.push_bind(source).push(", ").push_bind(now()).push(" FROM (VALUES ");
            let mut list = q.separated(", ");
            for (team_id, user_id) in chunk {
                list.push("(").push_bind_unseparated(*team_id).push_unseparated(", ");
                list.push_bind_unseparated(*user_id).push_unseparated(")");
            }
            q.push(") AS v JOIN teams t ON t.id = v.column1 WHERE t.org_id = ")
                .push_bind(org_id)
                .push(" ON CONFLICT (team_id, user_id) DO NOTHING RETURNING team_id, user_id");
            q.build_query_as().fetch_all(&mut *c).await
        })?;
        added.extend(rows);
    }
    Ok(added)
}

/// [`remove_member`] for many `(team_id, user_id)` pairs at once. Returns the pairs removed.
pub async fn remove_members(
    tx: &mut Tx,
    org_id: i64,
    pairs: &[(i64, i64)],
) -> Result<Vec<(i64, i64)>> {
    let mut removed = Vec::new();
    for chunk in pairs.chunks(PAIRS_PER_STATEMENT) {
        let rows: Vec<(i64, i64)> = on!(tx, c => {
            let mut q = QueryBuilder::new("DELETE FROM team_memberships WHERE org_id = ");
            q.push_bind(org_id).push(" AND (team_id, user_id) IN (VALUES ");
            let mut list = q.separated(", ");
            for (team_id, user_id) in chunk {
                list.push("(").push_bind_unseparated(*team_id).push_unseparated(", ");
                list.push_bind_unseparated(*user_id).push_unseparated(")");
            }
            q.push(") RETURNING team_id, user_id");
            q.build_query_as().fetch_all(&mut *c).await
        })?;
        removed.extend(rows);
    }
    Ok(removed)
}

/// Inserts (owner, team) rows with `sql`, a two-parameter INSERT into one of the link tables
/// (`access_grant_teams`, `group_mapping_teams`, `invitation_teams`).
pub(crate) async fn link(
    tx: &mut Tx,
    sql: &'static str,
    owner_id: i64,
    team_ids: impl IntoIterator<Item = i64>,
) -> Result<()> {
    for team_id in team_ids {
        on!(tx, c => sqlx::query(sql)
            .bind(owner_id)
            .bind(team_id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// Which of `ids` are teams of this org.
pub async fn existing_ids(tx: &mut Tx, org_id: i64, ids: &BTreeSet<i64>) -> Result<BTreeSet<i64>> {
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let found: Vec<i64> = on!(tx, c => {
        let mut q = QueryBuilder::new("SELECT id FROM teams WHERE org_id = ");
        q.push_bind(org_id).push(" AND id IN (");
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        q.push(")");
        q.build_query_scalar::<i64>().fetch_all(&mut *c).await
    })?;
    Ok(found.into_iter().collect())
}
