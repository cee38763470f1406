//! Invitations as the provisioning core sees them: an address, an org, teams and an admin
//! flag, pending until accepted, revoked or expired.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::QueryBuilder;
use utoipa::ToSchema;

use super::{
    grants::TeamRef, now, on, on_unique, outbox::Delivery, teams, text_enum, users, Error, Result,
    Tx,
};

macro_rules! invitation_select {
    () => {
        concat!(
            "SELECT i.id, i.org_id, i.email, i.is_admin, i.status, i.expires_at, i.accepted_at, i.created_at, ",
            "i.sent_count, u.email AS invited_by, i.accepted_user_id FROM invitations i ",
            "LEFT JOIN users u ON u.id = i.invited_by_user_id "
        )
    };
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub id: i64,
    #[serde(skip)]
    pub org_id: i64,
    pub email: String,
    pub is_admin: bool,
    pub status: Status,
    pub teams: Vec<TeamRef>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// How many times it was sent (1 + resends).
    pub sent_count: i64,
    pub invited_by: Option<String>,
    /// Who accepted it, once accepted.
    #[serde(skip)]
    pub accepted_user_id: Option<i64>,
    /// Where the latest email for it stands.
    pub delivery: Option<Delivery>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    org_id: i64,
    email: String,
    is_admin: bool,
    status: Status,
    expires_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    sent_count: i64,
    invited_by: Option<String>,
    accepted_user_id: Option<i64>,
}

pub struct NewInvitation<'a> {
    pub email: &'a str,
    pub is_admin: bool,
    pub team_ids: &'a [i64],
    pub invited_by: Option<i64>,
    pub ttl: Duration,
    /// Hash of the link's secret; see [`crate::secrets`].
    pub token_hash: &'a str,
}

/// Checks the teams belong to the org.
async fn check_teams(
    tx: &mut Tx,
    org_id: i64,
    team_ids: &[i64],
) -> Result<std::collections::BTreeSet<i64>> {
    let wanted = team_ids.iter().copied().collect();
    let known = teams::existing_ids(tx, org_id, &wanted).await?;
    if known != wanted {
        let missing: Vec<String> = wanted.difference(&known).map(i64::to_string).collect();
        return Err(Error::Invalid(format!(
            "no team with id {} in this organization",
            missing.join(", ")
        )));
    }
    Ok(known)
}

pub async fn create(tx: &mut Tx, org_id: i64, new: NewInvitation<'_>) -> Result<Invitation> {
    let normalized = users::normalize_email(new.email)?;
    let known = check_teams(tx, org_id, new.team_ids).await?;
    let now = now();
    let id: i64 = on!(tx, c => sqlx::query_scalar(
        "INSERT INTO invitations (org_id, email, email_normalized, is_admin, status, invited_by_user_id, \
         expires_at, token_hash, sent_count, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, 1, $8, $8) RETURNING id",
    )
    .bind(org_id)
    .bind(new.email.trim())
    .bind(&normalized)
    .bind(new.is_admin)
    .bind(new.invited_by)
    .bind(now + new.ttl)
    .bind(new.token_hash)
    .bind(now)
    .fetch_one(&mut *c)
    .await)
    .map_err(on_unique(
        "invitation_pending",
        format!("{normalized} already has a pending invitation"),
    ))?;
    let sql = "INSERT INTO invitation_teams (invitation_id, team_id) VALUES ($1, $2)";
    teams::link(tx, sql, id, known).await?;
    get(tx, id).await?.ok_or(Error::NotFound("invitation"))
}

/// Sends an existing invitation again: a new link (the old one stops working), a new
/// expiry, and the given teams and admin flag. Pending and expired invitations only.
pub async fn renew(
    tx: &mut Tx,
    org_id: i64,
    id: i64,
    changes: Option<(bool, &[i64])>,
    ttl: Duration,
    token_hash: &str,
) -> Result<Invitation> {
    let current = require(tx, org_id, id).await?;
    if !current.status.is_open() {
        return Err(Error::conflict(
            "invitation_closed",
            format!(
                "the invitation is {}; send a new one instead",
                current.status
            ),
        ));
    }
    let now = now();
    let is_admin = changes.map_or(current.is_admin, |(admin, _)| admin);
    on!(tx, c => sqlx::query(
        "UPDATE invitations SET token_hash = $2, expires_at = $3, is_admin = $4, sent_count = sent_count + 1, \
         updated_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(token_hash)
    .bind(now + ttl)
    .bind(is_admin)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if let Some((_, team_ids)) = changes {
        let known = check_teams(tx, org_id, team_ids).await?;
        on!(tx, c => sqlx::query("DELETE FROM invitation_teams WHERE invitation_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        let sql = "INSERT INTO invitation_teams (invitation_id, team_id) VALUES ($1, $2)";
        teams::link(tx, sql, id, known).await?;
    }
    require(tx, org_id, id).await
}

pub async fn require(tx: &mut Tx, org_id: i64, id: i64) -> Result<Invitation> {
    get(tx, id)
        .await?
        .filter(|i| i.org_id == org_id)
        .ok_or(Error::NotFound("invitation"))
}

/// The invitation a link's secret belongs to, whatever its status.
pub async fn by_token_hash(tx: &mut Tx, token_hash: &str) -> Result<Option<Invitation>> {
    let id: Option<i64> = on!(tx, c => sqlx::query_scalar("SELECT id FROM invitations WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(&mut *c)
        .await)?;
    match id {
        Some(id) => get(tx, id).await,
        None => Ok(None),
    }
}

pub async fn revoke(tx: &mut Tx, org_id: i64, id: i64) -> Result<Invitation> {
    let current = require(tx, org_id, id).await?;
    if !current.status.is_open() {
        return Err(Error::conflict(
            "invitation_closed",
            format!("the invitation is already {}", current.status),
        ));
    }
    on!(tx, c => sqlx::query(
        "UPDATE invitations SET status = 'revoked', token_hash = NULL, updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    require(tx, org_id, id).await
}

/// Deletes the org's expired invitations; returns how many.
pub async fn delete_expired(tx: &mut Tx, org_id: i64) -> Result<u64> {
    Ok(on!(tx, c => sqlx::query(
        "DELETE FROM invitations WHERE org_id = $1 AND status = 'pending' AND expires_at <= $2",
    )
    .bind(org_id)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?)
}

/// Deletes, in every org, invitations that expired before `cutoff`; returns how many.
pub async fn purge_expired_before(tx: &mut Tx, cutoff: DateTime<Utc>) -> Result<u64> {
    Ok(
        on!(tx, c => sqlx::query("DELETE FROM invitations WHERE status = 'pending' AND expires_at <= $1")
        .bind(cutoff)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?,
    )
}

/// Where an invitation stands. `expired` is never stored: a pending invitation past its
/// expiry reads as expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Accepted,
    Expired,
    Revoked,
}

text_enum!(Status {
    Pending = "pending",
    Accepted = "accepted",
    Expired = "expired",
    Revoked = "revoked",
});

impl Status {
    /// Still open: it can be resent or revoked.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Expired)
    }
}

/// A page of the org's invitations, newest first, with where their latest email stands.
pub async fn list(
    tx: &mut Tx,
    org_id: i64,
    status: Option<Status>,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<Invitation>> {
    let sql = concat!(
        invitation_select!(),
        "WHERE i.org_id = $1 AND ($2 IS NULL OR i.id < $2) AND ( ",
        "$3 IS NULL ",
        "OR ($3 = 'pending' AND i.status = 'pending' AND i.expires_at > $4) ",
        "OR ($3 = 'expired' AND i.status = 'pending' AND i.expires_at <= $4) ",
        "OR ($3 IN ('accepted', 'revoked') AND i.status = $3)) ",
        "ORDER BY i.id DESC LIMIT $5"
    );
    let rows = on!(tx, c => sqlx::query_as::<_, Row>(sql)
        .bind(org_id)
        .bind(before_id)
        .bind(status.map(Status::as_str))
        .bind(now())
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?;
    hydrate(tx, rows).await
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    invitation_id: i64,
    #[sqlx(flatten)]
    delivery: Delivery,
}

/// Adds teams and latest delivery to invitation rows: two queries, however many rows.
async fn hydrate(tx: &mut Tx, rows: Vec<Row>) -> Result<Vec<Invitation>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let teams: Vec<(i64, i64, String)> = on!(tx, c => {
        let mut q = QueryBuilder::new(
            "SELECT it.invitation_id, t.id, t.name FROM invitation_teams it \
             JOIN teams t ON t.id = it.team_id WHERE it.invitation_id IN (",
        );
        let mut list = q.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        q.push(") ORDER BY t.name_normalized");
        q.build_query_as().fetch_all(&mut *c).await
    })?;
    let deliveries: Vec<DeliveryRow> = on!(tx, c => {
        let mut q = QueryBuilder::new(
            "SELECT invitation_id, status, attempts, last_error, sent_at FROM outbox WHERE id IN \
             (SELECT MAX(id) FROM outbox WHERE invitation_id IN (",
        );
        let mut list = q.separated(", ");
        for id in &ids {
            list.push_bind(*id);
        }
        q.push(") GROUP BY invitation_id)");
        q.build_query_as().fetch_all(&mut *c).await
    })?;
    let mut teams_of: HashMap<i64, Vec<TeamRef>> = HashMap::new();
    for (invitation_id, id, name) in teams {
        teams_of
            .entry(invitation_id)
            .or_default()
            .push(TeamRef { id, name });
    }
    let mut delivery_of: HashMap<i64, Delivery> = deliveries
        .into_iter()
        .map(|d| (d.invitation_id, d.delivery))
        .collect();
    let now = now();
    Ok(rows
        .into_iter()
        .map(|row| Invitation {
            // "expired" is not stored: a pending invitation past its expiry is expired.
            status: if row.status == Status::Pending && row.expires_at <= now {
                Status::Expired
            } else {
                row.status
            },
            teams: teams_of.remove(&row.id).unwrap_or_default(),
            delivery: delivery_of.remove(&row.id),
            id: row.id,
            org_id: row.org_id,
            email: row.email,
            is_admin: row.is_admin,
            sent_count: row.sent_count,
            invited_by: row.invited_by,
            accepted_user_id: row.accepted_user_id,
            expires_at: row.expires_at,
            accepted_at: row.accepted_at,
            created_at: row.created_at,
        })
        .collect())
}

pub async fn get(tx: &mut Tx, id: i64) -> Result<Option<Invitation>> {
    let sql = concat!(invitation_select!(), "WHERE i.id = $1");
    let rows = on!(tx, c => sqlx::query_as::<_, Row>(sql).bind(id).fetch_all(&mut *c).await)?;
    Ok(hydrate(tx, rows).await?.pop())
}

/// The org's open invitation for this (normalised) address: pending, expired or not.
pub async fn open_for(
    tx: &mut Tx,
    org_id: i64,
    email_normalized: &str,
) -> Result<Option<Invitation>> {
    let id: Option<i64> = on!(tx, c => sqlx::query_scalar(
        "SELECT id FROM invitations WHERE org_id = $1 AND email_normalized = $2 AND status = 'pending'",
    )
    .bind(org_id)
    .bind(email_normalized)
    .fetch_optional(&mut *c)
    .await)?;
    match id {
        Some(id) => get(tx, id).await,
        None => Ok(None),
    }
}

/// The org's pending, unexpired invitation for this (normalised) address.
pub async fn pending_for(
    tx: &mut Tx,
    org_id: i64,
    email_normalized: &str,
) -> Result<Option<Invitation>> {
    let id: Option<i64> = on!(tx, c => sqlx::query_scalar(
        "SELECT id FROM invitations WHERE org_id = $1 AND email_normalized = $2 \
         AND status = 'pending' AND expires_at > $3",
    )
    .bind(org_id)
    .bind(email_normalized)
    .bind(now())
    .fetch_optional(&mut *c)
    .await)?;
    match id {
        Some(id) => get(tx, id).await,
        None => Ok(None),
    }
}

/// Consumes a pending, unexpired invitation in one statement. Returns false when it was
/// no longer pending (accepted concurrently, revoked or expired): it can be used once.
pub async fn mark_accepted(tx: &mut Tx, id: i64, user_id: i64) -> Result<bool> {
    let now = now();
    let n = on!(tx, c => sqlx::query(
        "UPDATE invitations SET status = 'accepted', accepted_at = $3, accepted_user_id = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'pending' AND expires_at > $3",
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
