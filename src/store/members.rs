//! Memberships: a user in an org, with its admin flag, status and teams.
//!
//! Access is decided from these rows on every request (nothing is cached), so a removed or
//! suspended member loses access to the org with the commit that removes them.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;
use utoipa::ToSchema;

use super::{
    credentials, now, on, orgs,
    teams::TeamSource,
    text_enum,
    users::{user_columns, User},
    Error, Result, Tx,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Suspended,
}

text_enum!(Status {
    Active = "active",
    Suspended = "suspended",
});

/// How a membership came to be. Later IdP-driven changes use it to leave alone what they
/// did not create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Invitation,
    Sso,
    Scim,
    Manual,
    Bootstrap,
}

text_enum!(Source {
    Invitation = "invitation",
    Sso = "sso",
    Scim = "scim",
    Manual = "manual",
    Bootstrap = "bootstrap",
});

/// Who suspended a member: an admin, or the IdP through SCIM (`active=false`). SCIM lifts
/// only its own suspensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SuspendedBy {
    Admin,
    Scim,
}

text_enum!(SuspendedBy {
    Admin = "admin",
    Scim = "scim",
});

/// Who made a member admin: an admin's hand (also bootstrap and an invitation's admin flag)
/// or an access grant, which takes it back when no grant gives it any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdminSource {
    Manual,
    Grant,
}

text_enum!(AdminSource {
    Manual = "manual",
    Grant = "grant",
});

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct MemberTeam {
    pub id: i64,
    pub name: String,
    /// IdP reconciliation only touches its own.
    pub source: TeamSource,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Member {
    pub user: User,
    pub is_admin: bool,
    pub admin_source: Option<AdminSource>,
    pub status: Status,
    /// Who suspended them, while suspended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_by: Option<SuspendedBy>,
    pub source: Source,
    pub joined_at: DateTime<Utc>,
    pub teams: Vec<MemberTeam>,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    #[sqlx(flatten)]
    user: User,
    is_admin: bool,
    admin_source: Option<AdminSource>,
    status: Status,
    suspended_by: Option<SuspendedBy>,
    source: Source,
    joined_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct TeamRow {
    user_id: i64,
    id: i64,
    name: String,
    source: TeamSource,
}

macro_rules! member_select {
    () => {
        concat!(
            "SELECT ",
            user_columns!(),
            ", m.is_admin, m.admin_source, m.status, m.suspended_by, m.source, m.created_at AS joined_at ",
            "FROM memberships m JOIN users ON users.id = m.user_id "
        )
    };
}

#[derive(Debug, Default, Clone)]
pub struct ListQuery {
    /// Case-insensitive substring of email or display name.
    pub search: Option<String>,
    pub status: Option<Status>,
    /// Keyset cursor: the normalised email of the last member of the previous page.
    pub after: Option<String>,
    pub limit: i64,
}

pub async fn add(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    is_admin: bool,
    source: Source,
) -> Result<()> {
    let now = now();
    on!(tx, c => sqlx::query(
        "INSERT INTO memberships (org_id, user_id, is_admin, admin_source, status, source, created_at, updated_at) \
         VALUES ($1, $2, $3, CASE WHEN $3 THEN 'manual' END, 'active', $4, $5, $5)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(is_admin)
    .bind(source.as_str())
    .bind(now)
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))
    .map_err(super::on_unique(
        "already_member",
        "the user is already a member of this organization",
    ))?;
    Ok(())
}

/// Creates an active, non-admin membership unless one exists, and returns it (in no team
/// yet); `None` when there was one: concurrent first logins create exactly one. One
/// statement: the membership and the person come back with the write (a SCIM create's and
/// a first sign-in's).
pub async fn insert_if_absent(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    source: Source,
) -> Result<Option<Member>> {
    let now = now();
    let row = on!(tx, c => sqlx::query_as::<_, MemberRow>(
        "INSERT INTO memberships (org_id, user_id, is_admin, status, source, created_at, updated_at) \
         VALUES ($1, $2, FALSE, 'active', $3, $4, $4) ON CONFLICT (org_id, user_id) DO NOTHING \
         RETURNING user_id AS id, \
         (SELECT u.email FROM users u WHERE u.id = $2) AS email, \
         (SELECT u.display_name FROM users u WHERE u.id = $2) AS display_name, \
         (SELECT u.given_name FROM users u WHERE u.id = $2) AS given_name, \
         (SELECT u.family_name FROM users u WHERE u.id = $2) AS family_name, \
         (SELECT u.created_at FROM users u WHERE u.id = $2) AS created_at, \
         is_admin, admin_source, status, suspended_by, source, created_at AS joined_at",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(source.as_str())
    .bind(now)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(|r| r.into_member(Vec::new())))
}

/// Sets the admin flag from its source: `Some(_)` makes admin, `None` not. The caller
/// applies the last-admin rule.
pub(crate) async fn set_admin_source(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    source: Option<AdminSource>,
) -> Result<()> {
    on!(tx, c => sqlx::query(
        "UPDATE memberships SET is_admin = $3, admin_source = $4, updated_at = $5 WHERE org_id = $1 AND user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(source.is_some())
    .bind(source)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn get(tx: &mut Tx, org_id: i64, user_id: i64) -> Result<Option<Member>> {
    match row(tx, org_id, user_id).await? {
        None => Ok(None),
        Some(row) => Ok(with_teams(tx, org_id, vec![row]).await?.pop()),
    }
}

async fn row(tx: &mut Tx, org_id: i64, user_id: i64) -> Result<Option<MemberRow>> {
    let sql = concat!(member_select!(), "WHERE m.org_id = $1 AND m.user_id = $2");
    Ok(on!(tx, c => sqlx::query_as::<_, MemberRow>(sql)
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&mut *c)
        .await)?)
}

/// [`get`] for many users at once (with their teams), in no particular order; users who
/// are not members are absent.
pub async fn get_many(tx: &mut Tx, org_id: i64, user_ids: &[i64]) -> Result<Vec<Member>> {
    let mut members = Vec::with_capacity(user_ids.len());
    // A thousand ids a statement (bound twice on PostgreSQL, below), well under both
    // backends' limits on bound parameters (32,766 and 65,535).
    for chunk in user_ids.chunks(1000) {
        // On PostgreSQL the list on both sides of the join: it does not carry an IN list
        // across `users.id = m.user_id`, and with the list on one side only it joined a
        // sequential scan of every user (9 ms a chunk of 500 in an org of 60,000, against
        // 0.9 ms). SQLite looks both up by key either way.
        let sides: &[&str] = match tx {
            Tx::Postgres(_) => &[" AND m.user_id IN (", ") AND users.id IN ("],
            Tx::Sqlite(_) => &[" AND m.user_id IN ("],
        };
        let rows: Vec<MemberRow> = on!(tx, c => {
            let mut q = QueryBuilder::new(concat!(member_select!(), "WHERE m.org_id = "));
            q.push_bind(org_id);
            for side in sides {
                q.push(*side);
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
            }
            q.push(")");
            q.build_query_as::<MemberRow>().fetch_all(&mut *c).await
        })?;
        members.extend(with_teams(tx, org_id, rows).await?);
    }
    Ok(members)
}

pub async fn require(tx: &mut Tx, org_id: i64, user_id: i64) -> Result<Member> {
    get(tx, org_id, user_id)
        .await?
        .ok_or(Error::NotFound("member"))
}

/// A page of members ordered by email, plus the cursor for the next page.
pub async fn list(
    tx: &mut Tx,
    org_id: i64,
    query: &ListQuery,
) -> Result<(Vec<Member>, Option<String>)> {
    let pattern = query
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| super::like_pattern(&s.to_lowercase()));
    let sql = concat!(
        member_select!(),
        "WHERE m.org_id = $1 AND ($2 IS NULL OR users.email_normalized > $2) ",
        "AND ($3 IS NULL OR m.status = $3) ",
        "AND ($4 IS NULL OR users.email_normalized LIKE $4 ESCAPE '\\' ",
        "OR lower(COALESCE(users.display_name, '')) LIKE $4 ESCAPE '\\') ",
        "ORDER BY users.email_normalized LIMIT $5"
    );
    let status = query.status.map(Status::as_str);
    let rows = on!(tx, c => sqlx::query_as::<_, MemberRow>(sql)
        .bind(org_id)
        .bind(&query.after)
        .bind(status)
        .bind(&pattern)
        .bind(query.limit + 1)
        .fetch_all(&mut *c)
        .await)?;
    let mut members = with_teams(tx, org_id, rows).await?;
    let next = if members.len() as i64 > query.limit {
        members.truncate(query.limit as usize);
        members.last().map(|m| m.user.email.to_lowercase())
    } else {
        None
    };
    Ok((members, next))
}

/// Loads the teams of many members with one query.
async fn with_teams(tx: &mut Tx, org_id: i64, rows: Vec<MemberRow>) -> Result<Vec<Member>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.user.id).collect();
    let team_rows: Vec<TeamRow> = on!(tx, c => {
        let mut q = QueryBuilder::new(
            "SELECT tm.user_id, t.id, t.name, tm.source FROM team_memberships tm \
             JOIN teams t ON t.id = tm.team_id WHERE tm.org_id = ",
        );
        q.push_bind(org_id).push(" AND tm.user_id IN (");
        let mut list = q.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        q.push(") ORDER BY t.name_normalized");
        q.build_query_as::<TeamRow>().fetch_all(&mut *c).await
    })?;
    let mut by_user: HashMap<i64, Vec<MemberTeam>> = HashMap::new();
    for t in team_rows {
        by_user.entry(t.user_id).or_default().push(MemberTeam {
            id: t.id,
            name: t.name,
            source: t.source,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let teams = by_user.remove(&r.user.id).unwrap_or_default();
            r.into_member(teams)
        })
        .collect())
}

impl MemberRow {
    fn into_member(self, teams: Vec<MemberTeam>) -> Member {
        Member {
            teams,
            user: self.user,
            is_admin: self.is_admin,
            admin_source: self.admin_source,
            status: self.status,
            suspended_by: self.suspended_by,
            source: self.source,
            joined_at: self.joined_at,
        }
    }
}

/// How many active admins the org has besides this user.
pub(crate) async fn other_active_admins(tx: &mut Tx, org_id: i64, user_id: i64) -> Result<i64> {
    Ok(on!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE org_id = $1 AND user_id <> $2 \
         AND is_admin = TRUE AND status = 'active'",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_one(&mut *c)
    .await)?)
}

/// Refuses a change that would leave the org without an active admin.
async fn ensure_other_admin(tx: &mut Tx, org_id: i64, user_id: i64, what: &str) -> Result<()> {
    if other_active_admins(tx, org_id, user_id).await? == 0 {
        return Err(Error::conflict(
            "last_admin",
            format!("cannot {what} the last admin of the organization; promote another member to admin first"),
        ));
    }
    Ok(())
}

fn is_active_admin(member: &Member) -> bool {
    member.is_admin && member.status == Status::Active
}

/// Promotes or demotes. Returns the member before and after.
pub async fn set_admin(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    is_admin: bool,
) -> Result<(Member, Member)> {
    orgs::lock(tx, org_id).await?;
    let before = require(tx, org_id, user_id).await?;
    if !is_admin && is_active_admin(&before) {
        ensure_other_admin(tx, org_id, user_id, "demote").await?;
    }
    on!(tx, c => sqlx::query(
        "UPDATE memberships SET is_admin = $3, admin_source = CASE WHEN $3 THEN 'manual' END, \
         updated_at = $4 WHERE org_id = $1 AND user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(is_admin)
    .bind(now())
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    let after = require(tx, org_id, user_id).await?;
    Ok((before, after))
}

/// Suspends or reactivates, as `by` decides. Suspension cuts access like removal but keeps
/// the membership, its teams and its history, so it can be undone.
pub async fn set_status(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    status: Status,
    by: SuspendedBy,
) -> Result<(Member, Member)> {
    orgs::lock(tx, org_id).await?;
    let before = require(tx, org_id, user_id).await?;
    if status == Status::Suspended && is_active_admin(&before) {
        ensure_other_admin(tx, org_id, user_id, "suspend").await?;
    }
    on!(tx, c => sqlx::query(
        "UPDATE memberships SET status = $3, suspended_by = $4, updated_at = $5 \
         WHERE org_id = $1 AND user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(status)
    .bind((status == Status::Suspended).then_some(by))
    .bind(now())
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    if status == Status::Suspended {
        revoke_if_no_access_left(tx, user_id).await?;
    }
    let after = require(tx, org_id, user_id).await?;
    Ok((before, after))
}

/// Removes the member and their teams in this org. Returns the member as they were.
pub async fn remove(tx: &mut Tx, org_id: i64, user_id: i64) -> Result<Member> {
    orgs::lock(tx, org_id).await?;
    let before = require(tx, org_id, user_id).await?;
    if is_active_admin(&before) {
        ensure_other_admin(tx, org_id, user_id, "remove").await?;
    }
    // team_memberships go with it (ON DELETE CASCADE on the membership key).
    on!(tx, c => sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2")
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    revoke_if_no_access_left(tx, user_id).await?;
    Ok(before)
}

/// Access to this org is already gone: every request re-reads the membership. Sessions and
/// tokens are the user's, not the org's, so they are revoked only when no active membership
/// is left; otherwise one org's admin could sign a person out of every other org too.
async fn revoke_if_no_access_left(tx: &mut Tx, user_id: i64) -> Result<()> {
    let active: i64 = on!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE user_id = $1 AND status = 'active'",
    )
    .bind(user_id)
    .fetch_one(&mut *c)
    .await)?;
    if active == 0 {
        credentials::revoke_all(tx, user_id).await?;
    }
    Ok(())
}

/// Sets the member's teams to exactly `team_ids`. Teams kept keep their source (so an
/// IdP-managed team stays IdP-managed); teams added are `manual`.
pub async fn replace_teams(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    team_ids: &[i64],
) -> Result<(Member, Member)> {
    let before = require(tx, org_id, user_id).await?;
    let wanted: BTreeSet<i64> = team_ids.iter().copied().collect();
    let known = super::teams::existing_ids(tx, org_id, &wanted).await?;
    let missing: Vec<String> = wanted.difference(&known).map(|id| id.to_string()).collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "no team with id {} in this organization; nothing was changed",
            missing.join(", ")
        )));
    }
    let current: BTreeSet<i64> = before.teams.iter().map(|t| t.id).collect();
    for team_id in current.difference(&wanted) {
        super::teams::remove_member(tx, org_id, *team_id, user_id).await?;
    }
    for team_id in wanted.difference(&current) {
        super::teams::add_member(tx, org_id, *team_id, user_id, TeamSource::Manual).await?;
    }
    let after = require(tx, org_id, user_id).await?;
    Ok((before, after))
}

/// The org and admin flag of an active membership, by org slug: the authorisation check.
pub async fn access(tx: &mut Tx, slug: &str, user_id: i64) -> Result<Option<(orgs::Org, bool)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        org: orgs::Org,
        is_admin: bool,
    }
    let row = on!(tx, c => sqlx::query_as::<_, Row>(
        "SELECT o.id, o.slug, o.name, o.require_2fa, o.sso_enforced, o.created_at, o.updated_at, m.is_admin \
         FROM organizations o JOIN memberships m ON m.org_id = o.id \
         WHERE o.slug = $1 AND m.user_id = $2 AND m.status = 'active'",
    )
    .bind(slug)
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await)?;
    Ok(row.map(|r| (r.org, r.is_admin)))
}

/// The name of an org this user is an active member of that requires two-factor
/// authentication for password sign-ins, if any.
pub async fn org_requiring_2fa(tx: &mut Tx, user_id: i64) -> Result<Option<String>> {
    Ok(on!(tx, c => sqlx::query_scalar(
        "SELECT o.name FROM memberships m JOIN organizations o ON o.id = m.org_id \
         WHERE m.user_id = $1 AND m.status = 'active' AND o.require_2fa = TRUE ORDER BY o.name LIMIT 1",
    )
    .bind(user_id)
    .fetch_optional(&mut *c)
    .await)?)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrgAccess {
    #[serde(skip)]
    pub org_id: i64,
    pub slug: String,
    pub name: String,
    pub is_admin: bool,
    /// Whether the org admits only credentials from a single sign-on.
    pub sso_enforced: bool,
    pub teams: Vec<MemberTeam>,
}

/// Every org the user can act in now (active memberships only), with their teams there.
pub async fn of_user(tx: &mut Tx, user_id: i64) -> Result<Vec<OrgAccess>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        org_id: i64,
        slug: String,
        name: String,
        is_admin: bool,
        sso_enforced: bool,
    }
    #[derive(sqlx::FromRow)]
    struct UserTeam {
        org_id: i64,
        id: i64,
        name: String,
        source: TeamSource,
    }
    let rows = on!(tx, c => sqlx::query_as::<_, Row>(
        "SELECT o.id AS org_id, o.slug, o.name, m.is_admin, o.sso_enforced FROM memberships m \
         JOIN organizations o ON o.id = m.org_id \
         WHERE m.user_id = $1 AND m.status = 'active' ORDER BY o.slug",
    )
    .bind(user_id)
    .fetch_all(&mut *c)
    .await)?;
    let teams = on!(tx, c => sqlx::query_as::<_, UserTeam>(
        "SELECT tm.org_id, t.id, t.name, tm.source FROM team_memberships tm \
         JOIN teams t ON t.id = tm.team_id WHERE tm.user_id = $1 ORDER BY t.name_normalized",
    )
    .bind(user_id)
    .fetch_all(&mut *c)
    .await)?;
    let mut by_org: HashMap<i64, Vec<MemberTeam>> = HashMap::new();
    for t in teams {
        by_org.entry(t.org_id).or_default().push(MemberTeam {
            id: t.id,
            name: t.name,
            source: t.source,
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| OrgAccess {
            teams: by_org.remove(&r.org_id).unwrap_or_default(),
            org_id: r.org_id,
            slug: r.slug,
            name: r.name,
            is_admin: r.is_admin,
            sso_enforced: r.sso_enforced,
        })
        .collect())
}
